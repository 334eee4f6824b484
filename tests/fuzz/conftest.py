"""Shared pieces of the fuzz tests: a modest hypothesis budget, hostile text, data snapshots.

Every fuzz test feeds malformed or hostile input to one entry point and checks two things: the
input is refused with a clear error (ValueError, CommandError or a 4xx answer with a message),
never an uncaught exception or a 500; and nothing already saved changed (:func:`snapshot`).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# The whole fuzz folder stays well under a minute on two shared cores; CI runs the same budget
# every time (derandomized), so a failure reproduces.
settings.register_profile(
    "fuzz",
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FUZZ = settings.get_profile("fuzz")

# Text an attacker or a careless export might put anywhere a string goes.
HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'; DROP TABLE reading_read; --",
    "1 OR 1=1",
    "=cmd|' /C calc'!A0",
    "+SUM(1,2)",
    "-2+3",
    "@SUM(A1)",
    "\x00NUL\x00",
    "\u202eevil\u202c",
    "Ångström ☢ \U0001d518\U0001d52b \U0001f600",
    "{{ settings.SECRET_KEY }}",
    "{% debug %}",
    "../../etc/passwd",
    "x" * 70_000,
)

hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=200),
    st.text(alphabet="<>\"'&=;,\n\r\t", max_size=50),
)


TRIAL_APPS = ("studies", "reading", "prereads", "audit", "dashboard")


def trial_data() -> dict[str, list[dict[str, Any]]]:
    """The snapshot less the record of refused inputs (the refusals and their audit events),
    which an import that refuses everything is meant to write."""
    data = snapshot()
    del data["studies.ImportRefusal"]
    data["audit.AuditEvent"] = [
        event for event in data["audit.AuditEvent"] if event["action"] != "import.refused"
    ]
    return data


def refusal_reasons() -> list[str]:
    """The reasons of every stored import refusal."""
    return [row["reason"] for row in snapshot()["studies.ImportRefusal"]]


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of every trial model, in primary-key order: equal snapshots, equal data."""
    from django.apps import apps

    return {
        model._meta.label: list(model.objects.order_by("pk").values())
        for label in TRIAL_APPS
        for model in apps.get_app_config(label).get_models()
    }
