"""Send a DICOM export to an archive with STOW-RS, one request per DICOM study.

Credentials are the archive's (DICOMWEB_USERNAME and DICOMWEB_PASSWORD, or DICOMWEB_TOKEN), as
for ``import_dicomweb``; the URL is the archive's DICOMweb root.
"""

from __future__ import annotations

from collections import defaultdict

from django.conf import settings
from pydicom.dataset import Dataset

from studyplatform.dashboard.exports.dicom import DicomExport
from studyplatform.studies.dicomweb.archive import Archive


def send(export: DicomExport, url: str) -> int:
    """Store every file of ``export`` in the archive at ``url``; the number of instances sent.

    Raises :class:`~studyplatform.studies.dicomweb.archive.ArchiveError` naming the study and
    the archive when a request fails or the archive refuses an instance.
    """
    by_study: dict[str, list[Dataset]] = defaultdict(list)
    for f in export.files:
        by_study[str(f.dataset.StudyInstanceUID)].append(f.dataset)
    archive = Archive(
        url,
        username=settings.DICOMWEB_USERNAME,
        password=settings.DICOMWEB_PASSWORD,
        token=settings.DICOMWEB_TOKEN,
        timeout=settings.DICOMWEB_TIMEOUT,
    )
    try:
        return sum(archive.store(uid, datasets) for uid, datasets in by_study.items())
    finally:
        archive.close()
