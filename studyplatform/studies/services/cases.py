"""Storing cases, whatever brought them: the import_cases command or the arrival API.

Files are de-identified in memory, the case, its images and its truth are written in one
transaction, and a case that is already stored with the same files is left as it is, so every
import can be run again safely.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from studyplatform.audit.services import record
from studyplatform.studies.guards import FrozenStudyError, lock_study_for_write
from studyplatform.studies.importing import (
    MANIFEST_NAME,
    MODALITIES,
    PreparedImage,
    Problem,
    Upload,
    check_case_id,
    read_manifest,
)
from studyplatform.studies.models import (
    Case,
    Design,
    FindingType,
    Image,
    OrderedBy,
    RefusalSource,
    Site,
    Study,
    Truth,
    TruthSource,
)
from studyplatform.studies.services.errors import CaseConflictError, ImportRefusedError
from studyplatform.studies.services.refusals import record_refusals
from studyplatform.studies.services.slices import (
    PreparedCase,
    create_series,
    prepare_case,
)

logger = logging.getLogger(__name__)

CASE_IMPORT = "case.import"  # an audit action: a case and its de-identified images stored


@dataclass(frozen=True)
class CaseImport:
    case: Case
    created: bool
    notes: tuple[str, ...] = ()  # worth telling, not wrong (slices ordered by InstanceNumber)


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    burned_in: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_truth(study: Study, truth: Mapping[str, bool], where: str) -> dict[str, FindingType]:
    findings = {f.code: f for f in study.finding_types.all()}
    unknown = sorted(set(truth) - set(findings))
    if unknown:
        raise ImportRefusedError([Problem(where, f"unknown finding(s): {', '.join(unknown)}")])
    return findings


def _check_resend(case: Case, *, site: Site, hashes: list[str], truth: Mapping[str, bool]) -> None:
    """Raise :class:`CaseConflictError` unless the stored case is what was sent again."""
    rows = case.images.order_by("position").values_list(
        "source_sha256", "series_id", "series__ordered_by"
    )
    # A multi-frame file is several slices. Slices ordered by their headers may come in any
    # order; images kept in the order received (radiographs, PNGs) must come in the same one.
    stored = list(dict.fromkeys(sha for sha, _, _ in rows))
    counts = Counter(series for _, series, _ in rows)
    in_order = any(how == OrderedBy.RECEIVED and counts[s] > 1 for _, s, how in rows)
    same = stored == hashes if in_order else sorted(stored) == sorted(set(hashes))
    if case.site_id != site.pk or not same:
        what = "site" if case.site_id != site.pk else "images"
        raise CaseConflictError(
            [Problem(case.case_id, f"case already exists in {case.study.slug} with other {what}")]
        )
    stored_truth = {t.finding_type.code: t.present for t in case.truths.select_related()}
    differ = sorted(c for c, present in truth.items() if stored_truth.get(c, present) != present)
    if differ:
        raise CaseConflictError(
            [
                Problem(
                    case.case_id,
                    f"truth for {', '.join(differ)} differs from the stored truth "
                    "(correct it with import_truth)",
                )
            ]
        )


def _modality(prepared: Sequence[PreparedImage], override: str | None, case_id: str) -> str:
    if override:
        if override not in MODALITIES:
            raise ImportRefusedError(
                [Problem(case_id, f"modality {override!r} not in {MODALITIES}")]
            )
        return override
    found = sorted({p.modality for p in prepared if p.modality})
    if not found:
        raise ImportRefusedError(
            [Problem(case_id, "no modality in the headers; give one (manifest column modality)")]
        )
    if len(found) > 1:
        raise ImportRefusedError([Problem(case_id, f"images disagree on modality: {found}")])
    if found[0] not in MODALITIES:
        raise ImportRefusedError(
            [
                Problem(
                    case_id,
                    f"modality {found[0]} is not one of {', '.join(MODALITIES)} "
                    "(override it with the modality column if that is right)",
                )
            ]
        )
    return found[0]


def _store(
    *,
    study: Study,
    case_id: str,
    site: Site,
    modality: str,
    prepared: PreparedCase,
    truth: Mapping[str, bool],
    findings: Mapping[str, FindingType],
) -> Case:
    items = prepared.slices
    case = Case.objects.create(
        study=study,
        case_id=case_id,
        site=site,
        modality=modality,
        manufacturer=next((p.image.manufacturer for p in items if p.image.manufacturer), ""),
        manufacturer_model=next((p.image.model_name for p in items if p.image.model_name), ""),
    )
    written: list[str] = []
    originals: dict[Path, str] = {}  # spooled original -> stored name: a multi-frame file once
    position = 0
    try:
        for number, plan in enumerate(prepared.layout.plans, start=1):
            series = create_series(case, number, plan, prepared)
            for slice_number, (index, z) in enumerate(
                zip(plan.slices, plan.positions, strict=True), start=1
            ):
                spooled, position = items[index], position + 1
                item, header = spooled.image, spooled.image.slice
                image = Image(
                    case=case,
                    series=series,
                    position=position,
                    slice_number=slice_number,
                    instance_number=header.instance_number if header else None,
                    sop_instance_uid=header.sop_uid if header else "",
                    frame=header.frame if header else None,
                    slice_position=z,
                    sha256=spooled.sha256,
                    rows=item.rows,
                    columns=item.columns,
                    bits_stored=item.bits_stored,
                    window_center=item.window_center,
                    window_width=item.window_width,
                    display_offset=item.display_offset,
                    source_sha256=item.source_sha256,
                    source_format=item.source_format,
                    transfer_syntax=item.transfer_syntax,
                    burned_in_annotation=item.burned_in_annotation,
                )
                # Stored names derive from the position only: received names may identify
                # people. The spooled files are copied in chunks, one slice at a time.
                if spooled.original_path in originals:
                    image.original.name = originals[spooled.original_path]
                else:
                    with spooled.original_path.open("rb") as original:
                        image.original.save(
                            f"{position}{item.original_suffix}", File(original), save=False
                        )
                    written.append(str(image.original.name))
                    originals[spooled.original_path] = str(image.original.name)
                with spooled.display_path.open("rb") as display:
                    image.display.save(f"{position}.png", File(display), save=False)
                written.append(str(image.display.name))
                image.save()
    except BaseException:
        for name in written:
            default_storage.delete(name)
        raise
    Truth.objects.bulk_create(
        [
            Truth(
                case=case, finding_type=findings[code], present=present, source=TruthSource.IMPORT
            )
            for code, present in truth.items()
        ]
    )
    return case


def import_case(
    *,
    study: Study,
    case_id: str,
    site_code: str,
    uploads: Iterable[Upload],
    truth: Mapping[str, bool] | None = None,
    modality: str | None = None,
    actor: AbstractBaseUser | None = None,
    via: str = "",
) -> CaseImport:
    """Store one case with its images (de-identified) and optional truth; idempotent.

    ``uploads`` is iterated once, and may be a generator that reads (or retrieves) each file
    only when asked: a case is imported holding one file in memory at a time.

    Sending the same case again (same ID, site and file bytes) returns the stored case with
    ``created=False``. Raises :class:`~studyplatform.studies.guards.FrozenStudyError` (a locked
    study, or final truth for a case sent with truth), :class:`CaseConflictError` (the ID is
    taken by different content) or :class:`ImportRefusedError` (bad input, every bad file listed).
    """
    truth = dict(truth or {})
    if reason := check_case_id(case_id):
        raise ImportRefusedError([Problem("case_id", reason)])
    with transaction.atomic():
        # Refused before any file is read: a locked study (or final truth, for a case with
        # truth) takes no case.
        lock_study_for_write(study, truth=bool(truth))
        site = Site.objects.filter(code=site_code).first()
        if site is None:
            raise ImportRefusedError([Problem(case_id, f"unknown site {site_code!r}")])
        findings = _check_truth(study, truth, case_id)
        stored = Case.objects.filter(study=study, case_id=case_id).exists()
    if stored:
        # Only the digests are needed: each file is read (or retrieved) and dropped in turn,
        # outside the study's row lock.
        hashes = [upload.sha256 for upload in uploads]
        if not hashes:
            raise ImportRefusedError([Problem(case_id, "no image files")])
        return _resend(study, case_id, site=site, hashes=hashes, truth=truth, findings=findings)

    # De-identification is the slow part: done outside the study's row lock, one file at a
    # time, its outputs spooled to a private folder removed whatever happens.
    with tempfile.TemporaryDirectory(prefix="studyplatform-import-") as folder:
        prepared = prepare_case(study, case_id, uploads, folder=Path(folder))
        chosen = _modality([s.image for s in prepared.slices], modality, case_id)
        try:
            with transaction.atomic():
                # Checked again where it is written: the study may have been locked meanwhile.
                lock_study_for_write(study, truth=bool(truth))
                case = _store(
                    study=study,
                    case_id=case_id,
                    site=site,
                    modality=chosen,
                    prepared=prepared,
                    truth=truth,
                    findings=findings,
                )
                record(
                    actor=actor,
                    action=CASE_IMPORT,
                    obj=case,
                    after={
                        "case_id": case.case_id,
                        "site": site.code,
                        "modality": case.modality,
                        "images": prepared.source_hashes,
                        "truth": truth,
                    },
                    reason=via,
                )
        except IntegrityError:
            # Sent twice at the same moment: the other request stored it first.
            if not Case.objects.filter(study=study, case_id=case_id).exists():
                raise
            return _resend(
                study,
                case_id,
                site=site,
                hashes=prepared.source_hashes,
                truth=truth,
                findings=findings,
            )
    return CaseImport(case, created=True, notes=prepared.layout.notes)


def _resend(
    study: Study,
    case_id: str,
    *,
    site: Site,
    hashes: list[str],
    truth: Mapping[str, bool],
    findings: Mapping[str, FindingType],
) -> CaseImport:
    """The stored case, if ``hashes`` are its files (adding truth it lacks), else a conflict."""
    with transaction.atomic():
        lock_study_for_write(study, truth=bool(truth))
        existing = Case.objects.get(study=study, case_id=case_id)
        _check_resend(existing, site=site, hashes=hashes, truth=truth)
        _add_missing_truth(existing, truth, findings)
    return CaseImport(existing, created=False)


def receive_case(
    *,
    study: Study,
    case_id: str,
    site_code: str,
    uploads: Iterable[Upload],
    truth: Mapping[str, bool] | None = None,
    modality: str | None = None,
    actor: AbstractBaseUser | None = None,
    via: str = "",
) -> CaseImport:
    """A case arriving from a hospital system: store it, then queue its pre-read and, in a
    prospective study, randomize it, once the case is committed.

    A resend of the same case queues the follow-ups again: both are idempotent, so a resend
    also repairs a follow-up that failed the first time.
    """
    with transaction.atomic():
        result = import_case(
            study=study,
            case_id=case_id,
            site_code=site_code,
            uploads=uploads,
            truth=truth,
            modality=modality,
            actor=actor,
            via=via,
        )
        case = result.case
        # robust: the case is stored whatever happens to a follow-up; errors are logged.
        transaction.on_commit(lambda: _request_preread(case), robust=True)
        if study.design == Design.PROSPECTIVE:
            transaction.on_commit(lambda: _allocate(case), robust=True)
    return result


def _request_preread(case: Case) -> None:
    """Queue the arriving case's pre-read with the current model (none registered: nothing)."""
    from studyplatform.prereads.services import request_prereads  # torch-free: only queues

    request_prereads(case_ids=[case.pk])


def _allocate(case: Case) -> None:
    from studyplatform.reading.services import allocate_arriving_case

    allocate_arriving_case(case=case)


def _add_missing_truth(
    case: Case, truth: Mapping[str, bool], findings: Mapping[str, FindingType]
) -> None:
    have = set(case.truths.values_list("finding_type__code", flat=True))
    Truth.objects.bulk_create(
        [
            Truth(
                case=case, finding_type=findings[code], present=present, source=TruthSource.IMPORT
            )
            for code, present in truth.items()
            if code not in have
        ]
    )


def _unlisted_files(directory: Path, listed: set[str]) -> list[str]:
    found = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if (
            path.is_file()
            and relative != MANIFEST_NAME
            and not any(part.startswith(".") for part in path.relative_to(directory).parts)
            and relative not in listed
        ):
            found.append(relative)
    return found


def _read_files(paths: Mapping[str, Path]) -> Iterator[Upload]:
    """Each listed file's bytes, read when the import comes to it (one file held at a time)."""
    for name, path in paths.items():
        yield Upload(name=name, data=path.read_bytes())


def import_cases(*, study: Study, directory: Path) -> ImportReport:
    """:func:`import_files`, and each refused file or manifest row stored (``refusals``)."""
    report = import_files(study=study, directory=directory)
    record_refusals(
        study=study, source=RefusalSource.FILE, problems=report.problems, via="import_cases"
    )
    return report


def import_files(*, study: Study, directory: Path) -> ImportReport:
    """Import every case of ``directory/manifest.csv``; bad files are reported, not fatal.

    Each case is stored in its own transaction, so a bad case never undoes a good one. A locked
    study refuses the whole import (``FrozenStudyError``) before any file is read; a study
    locked part-way refuses the cases after it, and the cases stored before stay.
    """
    with transaction.atomic():
        lock_study_for_write(study)
    report = ImportReport()
    codes = set(study.finding_types.values_list("code", flat=True))
    rows, problems = read_manifest(directory / MANIFEST_NAME, finding_codes=codes)
    report.problems.extend(problems)
    if problems and not rows:
        return report
    root = directory.resolve()
    listed: set[str] = set()
    for row in rows:
        paths: dict[str, Path] = {}
        missing = []
        for name in row.images:
            listed.add(Path(name).as_posix())
            path = (directory / name).resolve()
            if not path.is_relative_to(root) or not path.is_file():
                missing.append(Problem(name, f"listed for case {row.case_id} but not found"))
                continue
            paths[name] = path
        if missing:
            report.problems.extend(missing)
            continue
        try:
            result = import_case(
                study=study,
                case_id=row.case_id,
                site_code=row.site,
                uploads=_read_files(paths),
                truth=row.truth,
                modality=row.modality,
                via=f"import_cases {MANIFEST_NAME} line {row.line}",
            )
        except FrozenStudyError as exc:
            # Locked (or truth finalized) part-way: this case and the rest are not stored.
            report.problems.append(
                Problem(f"{MANIFEST_NAME} line {row.line}", f"case {row.case_id}: {exc}")
            )
            break
        except ImportRefusedError as exc:
            report.problems.extend(
                Problem(
                    p.where if p.where != row.case_id else f"{MANIFEST_NAME} line {row.line}",
                    p.reason if p.where != row.case_id else f"case {row.case_id}: {p.reason}",
                )
                for p in exc.problems
            )
            continue
        (report.imported if result.created else report.unchanged).append(row.case_id)
        report.notes.extend(f"case {row.case_id}: {note}" for note in result.notes)
        if result.created:
            report.burned_in.extend(
                f"{row.case_id} image {image.position}"
                for image in result.case.images.all()
                if image.burned_in_annotation == "YES"
            )
    report.problems.extend(
        Problem(name, "not listed in manifest.csv") for name in _unlisted_files(directory, listed)
    )
    return report
