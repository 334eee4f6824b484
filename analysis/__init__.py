"""Pure statistics for reader studies: MRMC ROC analysis, agreement, missed findings.

The package never imports Django, Celery or any project app (import-linter enforces it): data
frames in, frozen result dataclasses out, and a command line (``python -m analysis``).

Modules are imported lazily by their users; this file stays tiny because the command line's
start-up time counts in every analysis run.
"""
