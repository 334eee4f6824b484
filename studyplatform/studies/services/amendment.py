"""What a protocol amendment may change, and applying it to an open study.

An amendment may change what does not invalidate the stored allocation or the reads already
submitted: the significance and AI threshold of finding types, new finding types (asked from the
next case a reader opens), the washout, the primary endpoint, the non-inferiority margin, the
contradiction rule, the FROC acceptance rule (marks are scored at analysis time, so a new rule
rescores the stored marks; the amendment is the record of why) and whether training feedback shows
the AI's answer (training reads are never analysed; feedback follows the version in force, from the
next feedback a reader sees). It may not change the design, the
arms, the reader groups, the readers per case (the allocation was randomized for them), remove a
finding type (submitted reads answered it), change the rating scale (submitted ratings used it) or
the pinned model (readers saw its output). ``studyplatform.audit.signatures.amend_protocol`` signs
and stores the new version.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Max
from django.utils.text import slugify

from studyplatform.studies.models import (
    ContradictionRule,
    FindingType,
    FrocRule,
    PrimaryEndpoint,
    Study,
)

__all__ = ["AMENDABLE", "NOT_AMENDABLE", "InvalidAmendmentError", "apply_amendment"]

AMENDABLE = (
    "finding_types",
    "add_finding_types",
    "washout_days",
    "primary_endpoint",
    "ni_margin",
    "contradiction_rule",
    "froc_rule",
    "froc_distance_px",
    "training_shows_ai",
)

_ALLOCATION = "the stored allocation was randomized for it; changing it would invalidate it"
NOT_AMENDABLE: Mapping[str, str] = {
    "design": _ALLOCATION,
    "arms": _ALLOCATION,
    "split_plot_groups": _ALLOCATION,
    "readers_per_case": _ALLOCATION,
    "remove_finding_types": "submitted reads answered it; mark it not clinically significant "
    "instead of removing it",
    "rating_scale": "submitted ratings were given on it; a new scale would not be comparable",
    "ai_model": "readers have seen the pinned model's output; another model would mix two AIs "
    "in one arm",
}


class InvalidAmendmentError(ValidationError):
    """The amendment's changes are not allowed or not valid; nothing was changed."""


def _refuse_not_amendable(changes: Mapping[str, Any]) -> None:
    for key in changes:
        name = "ai_model" if key.startswith("ai_model") else key
        if name in NOT_AMENDABLE:
            label = name.replace("_", " ")
            raise InvalidAmendmentError(f"{label} cannot be amended: {NOT_AMENDABLE[name]}")
    unknown = sorted(set(changes) - set(AMENDABLE))
    if unknown:
        raise InvalidAmendmentError(f"unknown protocol field(s): {', '.join(map(str, unknown))}")


def _threshold(label: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidAmendmentError(f"{label}: the AI threshold must be a number 0-1 or empty")
    if not 0.0 <= float(value) <= 1.0:
        raise InvalidAmendmentError(f"{label}: the AI threshold {value} is outside 0-1")
    return float(value)


def _significance(label: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidAmendmentError(f"{label}: clinically significant must be true or false")
    return value


def _change_finding_types(study: Study, changes: Any) -> None:
    if not isinstance(changes, Mapping):
        raise InvalidAmendmentError("finding_types must map finding codes to their changes")
    existing = {ft.code: ft for ft in FindingType.objects.filter(study=study)}
    for code, change in changes.items():
        ft = existing.get(code)
        if ft is None:
            raise InvalidAmendmentError(f"study {study.slug} has no finding type {code!r}")
        if not isinstance(change, Mapping) or not change:
            raise InvalidAmendmentError(f"{code}: name what changes")
        extra = sorted(set(change) - {"clinically_significant", "ai_threshold"})
        if extra:
            raise InvalidAmendmentError(
                f"{code}: only clinically_significant and ai_threshold can be amended, "
                f"not {', '.join(map(str, extra))}"
            )
        if "clinically_significant" in change:
            ft.clinically_significant = _significance(code, change["clinically_significant"])
        if "ai_threshold" in change:
            ft.ai_threshold = _threshold(code, change["ai_threshold"])
        ft.save(update_fields=["clinically_significant", "ai_threshold"])


def _add_finding_types(study: Study, new: Any, version: int) -> None:
    if not isinstance(new, list):
        raise InvalidAmendmentError("add_finding_types must be a list of finding types")
    if new and study.truth_finalized_at is not None:
        raise InvalidAmendmentError(
            "the ground truth is finalized: a new finding type could have no truth"
        )
    codes = set(FindingType.objects.filter(study=study).values_list("code", flat=True))
    order = FindingType.objects.filter(study=study).aggregate(m=Max("order"))["m"] or 0
    for item in new:
        if not isinstance(item, Mapping):
            raise InvalidAmendmentError("a new finding type needs a code and a name")
        code, name = str(item.get("code") or "").strip(), str(item.get("name") or "").strip()
        if not code or slugify(code) != code or len(code) > 40:
            raise InvalidAmendmentError(
                f"a new finding type's code must be a short slug (letters, digits, -, _), "
                f"got {code!r}"
            )
        if not name or len(name) > 100:
            raise InvalidAmendmentError(f"{code}: a new finding type needs a name (100 characters)")
        if code in codes:
            raise InvalidAmendmentError(f"study {study.slug} already has a finding type {code!r}")
        codes.add(code)
        order += 1
        FindingType.objects.create(
            study=study,
            code=code,
            name=name,
            clinically_significant=_significance(code, item.get("clinically_significant", True)),
            ai_threshold=_threshold(code, item.get("ai_threshold")),
            order=order,
            introduced_in=version,
        )


# Study fields an amendment sets from a fixed list of choices: field -> (choices, what it is).
_CHOICE_FIELDS: dict[str, tuple[list[str], str]] = {
    "primary_endpoint": (PrimaryEndpoint.values, "primary endpoint"),
    "contradiction_rule": (ContradictionRule.values, "contradiction rule"),
    "froc_rule": (FrocRule.values, "FROC acceptance rule"),
}
# Optional numbers (empty clears them): field -> (the rule for a valid value, what it must be).
_NUMBER_FIELDS: dict[str, tuple[Callable[[float], bool], str]] = {
    "ni_margin": (
        lambda m: 0 < m < 1,
        "the non-inferiority margin must be a number between 0 and 1",
    ),
    "froc_distance_px": (
        lambda d: d > 0,
        "the FROC acceptance distance must be a positive number of pixels",
    ),
}


def _set_study_fields(study: Study, changes: Mapping[str, Any]) -> None:
    fields = []
    if "washout_days" in changes:
        days = changes["washout_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 3650:
            raise InvalidAmendmentError(f"washout days must be a whole number 0-3650, got {days!r}")
        study.washout_days = days
        fields.append("washout_days")
    for field, (choices, what) in _CHOICE_FIELDS.items():
        if field in changes:
            if changes[field] not in choices:
                raise InvalidAmendmentError(f"the {what} must be one of {', '.join(choices)}")
            setattr(study, field, changes[field])
            fields.append(field)
    for field, (valid, message) in _NUMBER_FIELDS.items():
        if field in changes:
            value = changes[field]
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not valid(value)
            ):
                raise InvalidAmendmentError(f"{message} or empty, got {value!r}")
            setattr(study, field, None if value is None else float(value))
            fields.append(field)
    if "training_shows_ai" in changes:
        shows = changes["training_shows_ai"]
        if not isinstance(shows, bool):
            raise InvalidAmendmentError(
                f"whether training shows the AI must be true or false, got {shows!r}"
            )
        study.training_shows_ai = shows
        fields.append("training_shows_ai")
    if study.froc_rule == FrocRule.DISTANCE and not study.froc_distance_px:
        raise InvalidAmendmentError("the FROC 'distance' rule needs an acceptance distance")
    if fields:
        study.save(update_fields=fields)


def apply_amendment(*, study: Study, changes: Mapping[str, Any], version: int) -> None:
    """Apply ``changes`` to the study (locked by the caller), new finding types in ``version``.

    ``changes`` holds any of :data:`AMENDABLE`::

        {"finding_types": {"nodule": {"clinically_significant": True, "ai_threshold": 0.4}},
         "add_finding_types": [{"code": "pneumothorax", "name": "Pneumothorax",
                                "clinically_significant": True, "ai_threshold": None}],
         "washout_days": 21, "primary_endpoint": "missed", "ni_margin": 0.05,
         "contradiction_rule": "confirm", "froc_rule": "distance", "froc_distance_px": 20,
         "training_shows_ai": False}

    Raises InvalidAmendmentError naming the first problem; call it in the amendment's
    transaction, so that a refusal leaves nothing changed.
    """
    if not isinstance(changes, Mapping) or not changes:
        raise InvalidAmendmentError("the amendment changes nothing")
    _refuse_not_amendable(changes)
    if "finding_types" in changes:
        _change_finding_types(study, changes["finding_types"])
    if "add_finding_types" in changes:
        _add_finding_types(study, changes["add_finding_types"], version)
    _set_study_fields(study, changes)
