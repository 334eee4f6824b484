"""A case is imported one file at a time: its peak memory is that of one slice, not the series.

The folder import reads each listed file when it comes to it, and the case import spools each
file's de-identified original and derivative to a temporary folder before the next is read, so
the Python heap's high-water mark (tracemalloc, which numpy's buffers report to) stays far
below the case's size. The temporary folder is gone afterwards, whether the case was stored or
refused.
"""

from __future__ import annotations

import tempfile
import tracemalloc
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from studyplatform.studies.models import Case, Series
from tests.factories import SiteFactory, StudyFactory
from tests.studies.volume_fixtures import ct_series, write_files

pytestmark = pytest.mark.django_db

STUDY_UID = "1.2.826.0.1.3680043.8.498.78.1"
SIZE = 256  # 128 KiB of pixels a slice


@pytest.fixture(autouse=True)
def site():
    return SiteFactory(code="north")


@pytest.fixture
def study():
    return StudyFactory(slug="stream")


def _folder(tmp_path: Path, slices: int) -> tuple[Path, int]:
    """An import folder of one case, one CT series of ``slices`` slices, and the case's bytes."""
    files = {
        f"s/{i:03d}.dcm": data
        for i, data in enumerate(
            ct_series(slices, study_uid=STUDY_UID, series_uid=f"{STUDY_UID}.2", size=SIZE)
        )
    }
    folder = tmp_path / "in"
    write_files(folder, files)
    (folder / "manifest.csv").write_text(f"case_id,site,images\nS-1,north,{';'.join(files)}\n")
    return folder, sum(len(data) for data in files.values())


def _peak_importing(study, folder: Path) -> int:
    tracemalloc.start()
    try:
        call_command("import_cases", study.slug, str(folder), stdout=StringIO(), stderr=StringIO())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def _spool_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("studyplatform-import-*")}


def test_the_peak_memory_of_an_import_does_not_grow_with_the_slices(tmp_path):
    # A first import loads the decoders and fills caches: not part of what is compared.
    call_command(
        "import_cases", StudyFactory().slug, str(_folder(tmp_path / "warm", 2)[0]),
        stdout=StringIO(), stderr=StringIO(),
    )  # fmt: skip
    peaks, sizes = [], []
    # Both counts past the five middle slices the series' window is computed from.
    for slices in (16, 48):
        study = StudyFactory()
        small, size = _folder(tmp_path / str(slices), slices)
        before = _spool_folders()
        peaks.append(_peak_importing(study, small))
        sizes.append(size)
        assert Series.objects.get(case__study=study).slices.count() == slices
        assert _spool_folders() == before
    # Three times the slices: holding the case would add three times the 4 MiB more it weighs
    # (received bytes, de-identified copies, derivatives); one slice at a time adds nothing.
    assert sizes[1] - sizes[0] > 4 * 2**20
    assert peaks[1] < peaks[0] + 2**20, (peaks, sizes)


def test_a_refused_case_leaves_no_spooled_files(study, tmp_path):
    folder, _ = _folder(tmp_path, 4)
    (folder / "s/002.dcm").write_bytes(b"not a DICOM file at all")
    before = _spool_folders()

    with pytest.raises(CommandError, match="not imported"):
        call_command("import_cases", study.slug, str(folder), stdout=StringIO(), stderr=StringIO())

    assert not Case.objects.exists()
    assert _spool_folders() == before
