"""Importing a DICOMweb archive's studies as cases: one case per DICOM study.

Studies are found with QIDO-RS, their instances retrieved one request at a time with WADO-RS,
and each study is stored by the same case-import service as a folder import (de-identification,
derived images, audit). Running it again imports nothing new: a study already stored as a case
is retrieved, its instances' digests compared with the stored images' source digests, and the
study is reported unchanged, or changed (never merged into the stored case).

Instances without pixel data (structured reports, presentation states, key object selections)
are skipped and counted. Instances are retrieved one at a time, each capped at MAX_UPLOAD_MB,
and handed to the case import as it asks for them: one instance is held in memory at a time,
whatever the size of the study.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from django.conf import settings
from django.db import transaction

from studyplatform.studies.dicomweb.archive import (
    Archive,
    ArchiveError,
    ArchiveUnreachableError,
    InstanceRecord,
    StudyRecord,
)
from studyplatform.studies.dicomweb.instances import has_pixel_data
from studyplatform.studies.guards import FrozenStudyError, lock_study_for_write
from studyplatform.studies.importing import Problem, Upload, check_case_id
from studyplatform.studies.models import Case, RefusalSource, Site, Study
from studyplatform.studies.services import ImportRefusedError, import_case
from studyplatform.studies.services.refusals import record_refusals

CASE_ID_SOURCES: Final = ("accession", "patient", "study-uid")


@dataclass
class ArchiveImportReport:
    """What one run did; every study found ends in exactly one of the lists."""

    studies_found: int = 0
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    changed: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    instances: int = 0
    skipped: list[str] = field(default_factory=list)
    burned_in: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.changed

    def summary(self) -> str:
        return (
            f"{self.studies_found} stud{'y' if self.studies_found == 1 else 'ies'} found, "
            f"{len(self.created)} case(s) created, {len(self.unchanged)} unchanged, "
            f"{len(self.changed)} changed (not merged), {len(self.problems)} error(s); "
            f"{self.instances} instance(s) retrieved, {len(self.skipped)} skipped "
            "(no pixel data)"
        )


def case_id_for(record: StudyRecord, source: str) -> tuple[str | None, str]:
    """The case ID a study gets from ``source``, or None and the reason it has none."""
    if source not in CASE_ID_SOURCES:
        raise ValueError(f"case ID source {source!r} is not one of {', '.join(CASE_ID_SOURCES)}")
    value = {
        "accession": record.accession,
        "patient": record.patient_id,
        "study-uid": record.uid,
    }[source]
    if not value:
        return None, f"has no {source.replace('-', ' ')} to name its case (try --case-id-from)"
    if reason := check_case_id(value):
        return None, f"its {source.replace('-', ' ')} cannot name a case: {reason}"
    return value, ""


def _find_studies(
    archive: Archive,
    study_uids: Sequence[str],
    filters: Mapping[str, str],
    report: ArchiveImportReport,
) -> list[StudyRecord]:
    found: dict[str, StudyRecord] = {}
    if not study_uids:
        found = {record.uid: record for record in archive.search_studies(filters)}
    for uid in study_uids:
        records = list(archive.search_studies({**filters, "StudyInstanceUID": uid}))
        if not records:
            what = "not in the archive" + (" or not matching the query" if filters else "")
            report.problems.append(Problem(f"study {uid}", what))
        found.update((record.uid, record) for record in records if record.uid == uid)
    return list(found.values())


def _stored_digests(case: Case) -> list[str]:
    """The case's received files' digests (a multi-frame file once), in stored order."""
    digests = case.images.order_by("position").values_list("source_sha256", flat=True)
    return list(dict.fromkeys(digests))


def _import_study(
    *,
    study: Study,
    archive: Archive,
    record: StudyRecord,
    site: Site,
    case_id_from: str,
    report: ArchiveImportReport,
) -> None:
    """Import one study (or find it stored); its problems go to ``report``.

    Raises :class:`ArchiveUnreachableError` and ``FrozenStudyError``, which end the run.
    """
    where = f"study {record.uid}"
    case_id, reason = case_id_for(record, case_id_from)
    if case_id is None:
        report.problems.append(Problem(where, reason))
        return
    try:
        instances = archive.instances(record.uid)
    except ArchiveUnreachableError:
        raise
    except ArchiveError as exc:
        report.problems.append(Problem(where, str(exc)))
        return
    stored = Case.objects.filter(study=study, case_id=case_id).select_related("site").first()
    retrieval = _Retrieval(archive, instances, report)
    try:
        if stored is not None:  # a stored case needs only the digests: each instance dropped
            digests = [upload.sha256 for upload in retrieval]
            _compare(stored, site=site, digests=digests, where=where, report=report)
        else:
            _store(
                study=study,
                archive=archive,
                record=record,
                site=site,
                case_id=case_id,
                uploads=retrieval,
                report=report,
            )
    except ArchiveUnreachableError:
        raise
    except ArchiveError as exc:
        report.problems.append(Problem(retrieval.where, f"{exc}; study not imported"))
    except _NoImagesError:
        report.problems.append(Problem(where, "no instance with pixel data; no case"))


class _NoImagesError(Exception):
    """Every instance of the study was retrieved, and none holds an image."""


@dataclass
class _Retrieval:
    """A study's instances with pixel data, retrieved one at a time as the import asks for them
    (one instance in memory at a time); the others are counted as skipped."""

    archive: Archive
    instances: Sequence[InstanceRecord]
    report: ArchiveImportReport
    where: str = ""  # the instance being retrieved, for a failure's message
    images: int = 0

    def __iter__(self) -> Iterator[Upload]:
        for instance in self.instances:
            self.where = instance.where
            data = self.archive.retrieve(instance, max_bytes=settings.MAX_UPLOAD_SIZE)
            self.report.instances += 1
            if not has_pixel_data(data):
                self.report.skipped.append(instance.where)
                continue
            self.images += 1
            yield Upload(name=instance.where, data=data)
        if not self.images:
            raise _NoImagesError


def _compare(
    stored: Case, *, site: Site, digests: list[str], where: str, report: ArchiveImportReport
) -> None:
    have = _stored_digests(stored)
    # The same instances, whatever their order: the archive lists a series by instance number,
    # the case stores it along the normal.
    if sorted(have) == sorted(digests) and stored.site_id == site.pk:
        report.unchanged.append(stored.case_id)
        return
    if stored.site_id != site.pk:
        reason = f"case {stored.case_id} is already stored from site {stored.site.code}"
    else:
        reason = (
            f"case {stored.case_id} is already stored with other images ({len(have)} stored, "
            f"{len(digests)} in the archive now, {len(set(have) & set(digests))} identical)"
        )
    report.changed.append(
        Problem(where, f"{reason}; not merged (remove the case or import under another case ID)")
    )


def _store(
    *,
    study: Study,
    archive: Archive,
    record: StudyRecord,
    site: Site,
    case_id: str,
    uploads: Iterable[Upload],
    report: ArchiveImportReport,
) -> None:
    try:
        result = import_case(
            study=study,
            case_id=case_id,
            site_code=site.code,
            uploads=uploads,
            via=f"import_dicomweb {archive.url} study {record.uid}",
        )
    except ImportRefusedError as exc:
        report.problems.extend(
            p
            if p.where != case_id
            else Problem(f"study {record.uid}", f"case {case_id}: {p.reason}")
            for p in exc.problems
        )
        return
    if not result.created:  # stored meanwhile by another import of the same bytes
        report.unchanged.append(case_id)
        return
    report.created.append(case_id)
    report.burned_in.extend(
        f"{case_id} image {image.position}"
        for image in result.case.images.all()
        if image.burned_in_annotation == "YES"
    )


def import_from_archive(
    *,
    study: Study,
    archive: Archive,
    site_code: str,
    study_uids: Sequence[str] = (),
    filters: Mapping[str, str] | None = None,
    case_id_from: str = "accession",
) -> ArchiveImportReport:
    """:func:`import_archive_studies`, and each refused study or instance stored
    (``refusals``); a study whose stored case differs (``changed``) is refused too."""
    report = import_archive_studies(
        study=study, archive=archive, site_code=site_code, study_uids=study_uids,
        filters=filters, case_id_from=case_id_from,
    )  # fmt: skip
    record_refusals(
        study=study,
        source=RefusalSource.DICOMWEB,
        problems=[*report.problems, *report.changed],
        via="import_dicomweb",
    )
    return report


def import_archive_studies(
    *,
    study: Study,
    archive: Archive,
    site_code: str,
    study_uids: Sequence[str] = (),
    filters: Mapping[str, str] | None = None,
    case_id_from: str = "accession",
) -> ArchiveImportReport:
    """Import the archive's studies (those named, or all matching ``filters``) as cases.

    Each study is stored in its own transaction, so a bad study never undoes a good one; a
    locked study refuses the whole import before the archive is asked anything. Raises
    :class:`ArchiveError` when the search itself fails; an archive lost part-way ends the run
    with a problem, and the cases stored before it stay.
    """
    if case_id_from not in CASE_ID_SOURCES:
        raise ValueError(f"--case-id-from must be one of {', '.join(CASE_ID_SOURCES)}")
    with transaction.atomic():
        lock_study_for_write(study)
    site = Site.objects.filter(code=site_code).first()
    if site is None:
        raise ValueError(f"unknown site {site_code!r}")
    report = ArchiveImportReport()
    records = _find_studies(archive, study_uids, dict(filters or {}), report)
    report.studies_found = len(records)
    for number, record in enumerate(records, start=1):
        try:
            _import_study(
                study=study,
                archive=archive,
                record=record,
                site=site,
                case_id_from=case_id_from,
                report=report,
            )
        except (ArchiveUnreachableError, FrozenStudyError) as exc:
            left = len(records) - number
            report.problems.append(
                Problem(f"study {record.uid}", f"{exc}; stopped, {left} more stud(ies) not tried")
            )
            break
    return report
