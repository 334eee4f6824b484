"""Ground truth from CSV: validated as a whole, stored all or nothing, idempotent.

One row per case x finding type, or, for a finding with lesion locations (FROC), one row per
lesion: the optional columns ``lesion, image, x, y, radius, weight`` (see
:mod:`studyplatform.studies.lesions`) give one lesion each, and the rows of a case x finding type
must agree on ``present`` and ``source``. A JSON list in ``location`` is read as the same lesions.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Count

from studyplatform.audit.models import Action
from studyplatform.audit.services import record as audit_record
from studyplatform.jsontext import JSONTextError, parse_json
from studyplatform.studies.guards import lock_study_for_write
from studyplatform.studies.importing import Problem, csv_problem
from studyplatform.studies.lesions import lesion_problems, normalize_lesions
from studyplatform.studies.models import Case, FindingType, Image, Study, Truth, TruthSource
from studyplatform.studies.services.errors import ImportRefusedError


@dataclass(frozen=True)
class TruthReport:
    created: int
    updated: int
    unchanged: int


_TRUTH_COLUMNS = ("case_id", "finding", "present")
_LESION_COLUMNS = ("lesion", "image", "x", "y", "radius", "weight", "series", "slice", "depth")
_TRUTH_OPTIONAL = ("source", "location", *_LESION_COLUMNS)

TruthRow = tuple[Case, FindingType, bool, str, Any]


@dataclass
class _Group:
    """The rows of one case x finding type: the first gives the call, each may add a lesion."""

    case: Case
    finding: FindingType
    present: bool
    source: str
    location: Any
    lines: list[int]
    lesions: list[dict[str, Any]] = field(default_factory=list)


def _header_problem(header: list[str]) -> Problem | None:
    missing = [c for c in _TRUTH_COLUMNS if c not in header]
    unknown = [c for c in header if c not in _TRUTH_COLUMNS + _TRUTH_OPTIONAL]
    if not missing and not unknown:
        return None
    reason = "; ".join(
        part
        for part in (
            f"missing column(s): {', '.join(missing)}" if missing else "",
            f"unknown column(s): {', '.join(unknown)}" if unknown else "",
        )
        if part
    )
    return Problem("header", reason)


def _lesion_from_columns(values: dict[str, str], reasons: list[str]) -> dict[str, Any] | None:
    """The row's lesion (numbers parsed; checked with its case's other lesions), or None."""
    if not any(values.get(c) for c in _LESION_COLUMNS):
        return None
    lesion: dict[str, Any] = {}
    for column in _LESION_COLUMNS:
        raw = values.get(column, "")
        if not raw:
            continue
        try:
            lesion[column] = float(raw)
        except ValueError:
            reasons.append(f"{column} must be a number, not {raw!r}")
    absent = [c for c in ("image", "x", "y", "radius") if not values.get(c)]
    if absent:
        reasons.append(f"a lesion row needs {', '.join(absent)}")
    return lesion


def _location(values: dict[str, str], reasons: list[str]) -> Any:
    if not values.get("location"):
        return None
    try:
        location = parse_json(values["location"], what="location")
    except JSONTextError as error:
        reasons.append(str(error))
        return None
    if not isinstance(location, dict | list):
        reasons.append("location must be a JSON object or list")
    return location


def _row_reasons(
    values: dict[str, str],
    group: _Group | None,
    first_line: int | None,
    lesion: dict[str, Any] | None,
    source: str,
) -> list[str]:
    """Why a further row of an already seen case x finding type cannot be taken."""
    key = f"{values['case_id']}/{values['finding']}"
    if first_line is None:
        return []
    if group is None:
        # The first row was refused: a further lesion row is judged on its own.
        return [] if lesion is not None else [f"{key} is already on row {first_line}"]
    if lesion is None or group.location is not None or not group.lesions:
        return [f"{key} is already on row {first_line}"]
    if (group.present, group.source) != (values["present"] == "1", source):
        return [f"present or source differs from row {first_line}"]
    return []


def _parse_truth_rows(study: Study, text: str) -> tuple[list[TruthRow], list[Problem]]:
    if problem := csv_problem(text, "file"):
        return [], [problem]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = header
    if problem := _header_problem(header):
        return [], [problem]
    cases = {c.case_id: c for c in study.cases.all()}
    findings = {f.code: f for f in study.finding_types.all()}
    sources = set(TruthSource.values)
    groups: dict[tuple[str, str], _Group] = {}
    first_lines: dict[tuple[str, str], int] = {}
    problems: list[Problem] = []
    for record in reader:
        where = f"row {reader.line_num}"
        if None in record:
            problems.append(Problem(where, "more fields than columns"))
            continue
        values = {k: (v or "").strip() for k, v in record.items()}
        if not any(values.values()):
            continue
        reasons = []
        case = cases.get(values["case_id"])
        if case is None:
            reasons.append(f"unknown case {values['case_id']!r}")
        finding = findings.get(values["finding"])
        if finding is None:
            reasons.append(f"unknown finding {values['finding']!r}")
        if values["present"] not in ("0", "1"):
            reasons.append(f"present must be 0 or 1, not {values['present']!r}")
        source = values.get("source") or TruthSource.IMPORT
        if source not in sources:
            reasons.append(f"source {source!r} is not one of {', '.join(sorted(sources))}")
        location = _location(values, reasons)
        lesion = _lesion_from_columns(values, reasons)
        if lesion is not None and location is not None:
            reasons.append("give the lesion in its columns or in location, not both")
        key = (values["case_id"], values["finding"])
        group = groups.get(key)
        reasons += _row_reasons(values, group, first_lines.get(key), lesion, source)
        first_lines.setdefault(key, reader.line_num)
        if reasons or case is None or finding is None:
            problems.append(Problem(where, "; ".join(reasons)))
            continue
        if group is None:
            group = groups[key] = _Group(
                case, finding, values["present"] == "1", source, location, []
            )
        group.lines.append(reader.line_num)
        if lesion is not None:
            # Unnumbered lesions are numbered in the order of their rows.
            lesion.setdefault("lesion", len(group.lesions) + 1)
            group.lesions.append(lesion)
    return _checked_groups(study, list(groups.values()), problems)


def _checked_groups(
    study: Study, groups: list[_Group], problems: list[Problem]
) -> tuple[list[TruthRow], list[Problem]]:
    """Each case x finding type's lesions checked together: image, bounds, radius, IDs, weights."""
    sizes: dict[int, dict[int, tuple[int, int]]] = {}
    stacks: dict[int, dict[int, tuple[int, int, int]]] = {}
    for case_pk, position, rows, columns, series, number, count in (
        Image.objects.filter(case__study=study)
        .annotate(count=Count("series__slices"))
        .values_list(
            "case_id", "position", "rows", "columns", "series__position", "slice_number", "count"
        )
    ):
        sizes.setdefault(case_pk, {})[position] = (rows, columns)
        stacks.setdefault(case_pk, {})[position] = (series, number, count)
    out: list[TruthRow] = []
    for group in groups:
        lesions = group.lesions or (group.location if isinstance(group.location, list) else [])
        reasons = lesion_problems(
            lesions,
            present=group.present,
            sizes=sizes.get(group.case.pk, {}),
            stacks=stacks.get(group.case.pk, {}),
        )
        if reasons:
            lines = ", ".join(map(str, group.lines))
            where = f"row {lines}" if len(group.lines) == 1 else f"rows {lines}"
            problems.extend(Problem(where, reason) for reason in reasons)
            continue
        location = normalize_lesions(lesions) if lesions else group.location
        out.append((group.case, group.finding, group.present, group.source, location))
    return out, problems


def import_truth(*, study: Study, path: Path) -> TruthReport:
    """Import ground truth from CSV; all rows or none (every bad row named by its number).

    Refused (``FrozenStudyError``) once the study is locked or its truth finalized: the check
    and the write happen under the study's row lock, so a finalization cannot slip between them.
    """
    with transaction.atomic():
        lock_study_for_write(study, truth=True)
        return _import_truth_locked(study=study, path=path)


def _import_truth_locked(*, study: Study, path: Path) -> TruthReport:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportRefusedError([Problem(path.name, f"cannot be read ({exc})")]) from exc
    rows, problems = _parse_truth_rows(study, text)
    if problems:
        raise ImportRefusedError([Problem(f"{path.name} {p.where}", p.reason) for p in problems])
    created = updated = unchanged = 0
    changes: list[dict[str, Any]] = []
    stored = {
        (t.case_id, t.finding_type_id): t
        for t in Truth.objects.select_for_update().filter(case__study=study)
    }
    for case, finding, present, source, location in rows:
        truth = stored.get((case.pk, finding.pk))
        if truth is None:
            Truth.objects.create(
                case=case,
                finding_type=finding,
                present=present,
                source=source,
                location=location,
            )
            created += 1
        elif (truth.present, truth.source, truth.location) != (present, source, location):
            changes.append(
                {
                    "case": case.case_id,
                    "finding": finding.code,
                    "before": [truth.present, truth.source, truth.location],
                    "after": [present, source, location],
                }
            )
            truth.present, truth.source, truth.location = present, source, location
            truth.save(update_fields=["present", "source", "location"])
            updated += 1
        else:
            unchanged += 1
    if created or updated:
        # One event per import: the counts and every changed row (corrections matter most).
        audit_record(
            actor=None,
            action=Action.TRUTH_IMPORT,
            obj=study,
            after={
                "file": path.name,
                "created": created,
                "updated": updated,
                "changes": changes,
            },
        )
    return TruthReport(created=created, updated=updated, unchanged=unchanged)
