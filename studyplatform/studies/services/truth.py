"""Ground truth from CSV: validated as a whole, stored all or nothing, idempotent."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction

from studyplatform.audit.models import Action
from studyplatform.audit.services import record as audit_record
from studyplatform.jsontext import JSONTextError, parse_json
from studyplatform.studies.guards import lock_study_for_write
from studyplatform.studies.importing import Problem, csv_problem
from studyplatform.studies.models import Case, FindingType, Study, Truth, TruthSource
from studyplatform.studies.services.errors import ImportRefusedError


@dataclass(frozen=True)
class TruthReport:
    created: int
    updated: int
    unchanged: int


_TRUTH_COLUMNS = ("case_id", "finding", "present")
_TRUTH_OPTIONAL = ("source", "location")


def _parse_truth_rows(
    study: Study, text: str
) -> tuple[list[tuple[Case, FindingType, bool, str, Any]], list[Problem]]:
    if problem := csv_problem(text, "file"):
        return [], [problem]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [c for c in _TRUTH_COLUMNS if c not in header]
    unknown = [c for c in header if c not in _TRUTH_COLUMNS + _TRUTH_OPTIONAL]
    if missing or unknown:
        reason = "; ".join(
            part
            for part in (
                f"missing column(s): {', '.join(missing)}" if missing else "",
                f"unknown column(s): {', '.join(unknown)}" if unknown else "",
            )
            if part
        )
        return [], [Problem("header", reason)]
    cases = {c.case_id: c for c in study.cases.all()}
    findings = {f.code: f for f in study.finding_types.all()}
    sources = set(TruthSource.values)
    rows: list[tuple[Case, FindingType, bool, str, Any]] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, str], int] = {}
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
        location: Any = None
        if values.get("location"):
            try:
                location = parse_json(values["location"], what="location")
            except JSONTextError as error:
                reasons.append(str(error))
            else:
                if not isinstance(location, dict | list):
                    reasons.append("location must be a JSON object or list")
        key = (values["case_id"], values["finding"])
        if key in seen:
            reasons.append(f"{key[0]}/{key[1]} is already on row {seen[key]}")
        seen.setdefault(key, reader.line_num)
        if reasons:
            problems.append(Problem(where, "; ".join(reasons)))
            continue
        assert case is not None and finding is not None
        rows.append((case, finding, values["present"] == "1", source, location))
    return rows, problems


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
