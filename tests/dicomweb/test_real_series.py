"""Real CT and MR series and a real multi-frame MR from a real Orthanc: imported as from files,
and a second run finds them unchanged, although the archive lists slices in another order."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from django.core.management import call_command

from studyplatform.studies.imaging import read_png
from studyplatform.studies.models import Case
from tests.factories import SiteFactory, StudyFactory
from tests.studies.import_fixtures import pydicom_file
from tests.studies.real_series import CT_SERIES, EMRI, MR_SERIES, files, stored_units

pytestmark = pytest.mark.django_db


@pytest.fixture
def archive(settings, orthanc):
    settings.DICOMWEB_USERNAME, settings.DICOMWEB_PASSWORD = orthanc.auth
    settings.DICOMWEB_TOKEN = ""
    StudyFactory(slug="real")
    SiteFactory(code="north")
    for path in [*files(CT_SERIES), *files(MR_SERIES), pydicom_file(EMRI[1])]:
        orthanc.upload(path.read_bytes())
    return orthanc


def _run(capsys, orthanc) -> str:
    call_command(
        "import_dicomweb", "real", "--url", orthanc.dicomweb, "--site", "north",
        "--case-id-from", "study-uid",
    )  # fmt: skip
    return str(capsys.readouterr().out)


def test_real_series_import_from_the_archive_and_a_rerun_changes_nothing(archive, capsys):
    out = _run(capsys, archive)

    # Three DICOM studies: the CT series, the MR series, the enhanced MR object.
    assert "3 case(s) created" in out
    ct_uid = str(pydicom.dcmread(files(CT_SERIES)[0]).StudyInstanceUID)
    ct = Case.objects.get(case_id=ct_uid)
    slices = list(ct.images.order_by("position"))
    # The archive lists instance 6 to 10; the case stores them along the normal.
    assert [s.instance_number for s in slices] == [10, 9, 8, 7, 6]
    expected = {k: v for p in files(CT_SERIES) for k, v in stored_units(p).items()}
    for image in slices:
        hu = read_png(image.display.path).astype(np.int64) - image.display_offset
        assert np.array_equal(hu, expected[(image.instance_number, None)])
    enhanced = Case.objects.get(
        case_id=str(pydicom.dcmread(pydicom_file(EMRI[1])).StudyInstanceUID)
    )
    assert enhanced.images.count() == 10 and enhanced.series.get().modality == "MR"

    again = _run(capsys, archive)

    assert "0 case(s) created, 3 unchanged, 0 changed" in again
