"""Loaded with ``-p`` before Django's settings: tests run with development defaults.

Tests never need a production secret; a value set in the environment still wins.
"""

import os

os.environ.setdefault("DEBUG", "true")
