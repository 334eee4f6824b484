"""A study's reads and AI pre-reads as DICOM (``export --format sr``).

Per case, in a folder named after the case: one SR per effective read
(``read-READER-ARM-sSESSION.dcm``, :mod:`.reads`), the pinned model's pre-read as an SR
(``ai-MODEL-VERSION-sr.dcm``) and its Grad-CAM map as a Segmentation
(``ai-MODEL-VERSION-gradcam.dcm``, :mod:`.ai`), all in the case's de-identified DICOM study and
referencing its de-identified instances. ``manifest.csv`` lists every file (with its UIDs and
sha256) and every case or object left out, with the reason. File names, UIDs and bytes depend
only on stored data, so exporting again writes the same files.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import BinaryIO, Final

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO

from studyplatform.dashboard.exports.dicom.ai import ai_map, ai_sr
from studyplatform.dashboard.exports.dicom.common import load_sources, safe_name
from studyplatform.dashboard.exports.dicom.reads import read_sr
from studyplatform.dashboard.selectors.dicom import CaseRecord, dicom_export_cases
from studyplatform.prereads.models import AIModel
from studyplatform.studies.models import Study

MANIFEST: Final = "manifest.csv"
MANIFEST_COLUMNS: Final = (
    "file", "case", "kind", "reader", "arm", "session", "study_uid", "series_uid", "sop_uid",
    "sop_class_uid", "sha256", "note",
)  # fmt: skip
_ZIP_TIME: Final = (2000, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class DicomFile:
    path: str  # relative, with forward slashes
    case: str
    kind: str  # read-sr, ai-sr, ai-gradcam
    data: bytes
    dataset: Dataset
    reader: str = ""
    arm: str = ""
    session: str = ""


@dataclass(frozen=True)
class Skipped:
    case: str
    kind: str
    note: str


@dataclass
class DicomExport:
    files: list[DicomFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def manifest(self) -> str:
        return _manifest([_manifest_row(f) for f in self.files], self.skipped)

    def write(self, directory: Path) -> None:
        """Write every file and the manifest under ``directory`` (created when missing)."""
        directory.mkdir(parents=True, exist_ok=True)
        for f in self.files:
            target = directory / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.data)
        (directory / MANIFEST).write_text(self.manifest(), encoding="utf-8")


def _manifest_row(f: DicomFile) -> list[str]:
    ds = f.dataset
    return [f.path, f.case, f.kind, f.reader, f.arm, f.session, ds.StudyInstanceUID,
            ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.SOPClassUID,
            sha256(f.data).hexdigest(), ""]  # fmt: skip


def _manifest(rows: list[list[str]], skipped: list[Skipped]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(rows)
    for s in skipped:
        writer.writerow(["", s.case, s.kind, "", "", "", "", "", "", "", "", s.note])
    return buffer.getvalue()


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    archive.writestr(
        zipfile.ZipInfo(name, date_time=_ZIP_TIME), data, compress_type=zipfile.ZIP_DEFLATED
    )


def _encode(ds: Dataset) -> bytes:
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _case_files(record: CaseRecord, out: DicomExport) -> None:
    case_id = record.case.case_id
    folder = safe_name(case_id)
    reason = record.not_dicom
    if reason:
        what = f"{len(record.reads)} read(s)" + (", the AI pre-read" if record.ai else "")
        out.skipped.append(Skipped(case_id, "case", f"not exported ({what}): {reason}"))
        return
    try:
        sources = load_sources(record.images)
    except (OSError, InvalidDicomError) as error:
        note = f"not exported: a stored original of the case cannot be read ({error})"
        out.skipped.append(Skipped(case_id, "case", note))
        return
    for read in record.reads:
        step = f"-step{read.step}" if read.step > 1 else ""
        name = f"read-{safe_name(read.reader)}-{safe_name(read.arm)}-s{read.session}{step}.dcm"
        ds = read_sr(record, read, sources)
        out.files.append(
            DicomFile(f"{folder}/{name}", case_id, "read-sr", _encode(ds), ds, read.reader,
                      read.arm, str(read.session))
        )  # fmt: skip
    ai = record.ai
    if ai is None:
        return
    stem = f"ai-{safe_name(ai.model.name)}-{safe_name(ai.model.version)}"
    ds = ai_sr(record, ai, sources)
    out.files.append(DicomFile(f"{folder}/{stem}-sr.dcm", case_id, "ai-sr", _encode(ds), ds))
    if not ai.preread.heatmap:
        out.skipped.append(Skipped(case_id, "ai-gradcam", "the pre-read stored no heatmap"))
        return
    try:
        seg = ai_map(record, ai, sources)
    except (OSError, ValueError) as error:  # an unreadable file, or a map that does not fit
        out.skipped.append(Skipped(case_id, "ai-gradcam", f"not exported: {error}"))
        return
    out.files.append(
        DicomFile(f"{folder}/{stem}-gradcam.dcm", case_id, "ai-gradcam", _encode(seg), seg)
    )


def _export_case(model: AIModel | None, record: CaseRecord, out: DicomExport) -> None:
    if model is not None and record.ai is None and not record.not_dicom:
        out.skipped.append(Skipped(record.case.case_id, "ai-sr", f"no done pre-read by {model}"))
    _case_files(record, out)


_NO_MODEL: Final = Skipped("", "ai-sr", "the study pins no AI model: no AI pre-read")


def build_dicom_export(study: Study) -> DicomExport:
    """Every case's read SRs, AI SR and Grad-CAM map, and what was left out and why."""
    model, cases = dicom_export_cases(study)
    out = DicomExport()
    if model is None:
        out.skipped.append(_NO_MODEL)
    for record in cases:
        _export_case(model, record, out)
    return out


def write_dicom_zip(
    study: Study, target: BinaryIO, *, progress: Callable[[int, int], None] | None = None
) -> None:
    """Write the export (every file and the manifest) as one zip to ``target``, one case at a
    time: only one case's objects are held in memory, however large the study. Fixed
    timestamps: the same data, the same zip.

    ``progress(done, total)`` is called after each case.
    """
    model, cases = dicom_export_cases(study)
    rows: list[list[str]] = []
    skipped = [_NO_MODEL] if model is None else []
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for done, record in enumerate(cases, start=1):
            part = DicomExport()
            _export_case(model, record, part)
            for f in part.files:
                _add(archive, f.path, f.data)
                rows.append(_manifest_row(f))
            skipped.extend(part.skipped)
            if progress is not None:
                progress(done, len(cases))
        _add(archive, MANIFEST, _manifest(rows, skipped).encode("utf-8"))


__all__ = [
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "DicomExport",
    "DicomFile",
    "Skipped",
    "build_dicom_export",
    "write_dicom_zip",
]
