"""Loaded with ``-p`` before Django's settings: tests run with development defaults.

Tests never need a production secret; a value set in the environment still wins.
"""

import os

os.environ.setdefault("DEBUG", "true")
# Playwright's sync API runs an event loop in the test thread; Django's ORM calls made from the
# test body are still synchronous and safe there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
