"""The test archive itself: a private Orthanc that serves DICOMweb and wants credentials."""

from __future__ import annotations

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from tests import orthanc as orthanc_module
from tests.dicomweb.builders import synthetic_study
from tests.orthanc import Orthanc


def test_the_test_orthanc_serves_uploaded_studies_over_dicomweb(orthanc: Orthanc):
    synthetic = synthetic_study(images=2)
    for data in synthetic.encoded():
        orthanc.upload(data)
    session = requests.Session()
    session.auth = orthanc.auth
    client = DICOMwebClient(orthanc.dicomweb, session=session)

    studies = client.search_for_studies()
    instances = client.search_for_instances(study_instance_uid=synthetic.uid)

    assert [s["0020000D"]["Value"][0] for s in studies] == [synthetic.uid]
    assert len(instances) == 2
    assert requests.get(f"{orthanc.dicomweb}/studies", timeout=10).status_code == 401


def test_a_missing_orthanc_skips_locally_and_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(orthanc_module.shutil, "which", lambda *args, **kwargs: None)
    monkeypatch.setattr(orthanc_module, "IN_CI", False)
    with (
        pytest.raises(pytest.skip.Exception, match="Orthanc is not installed"),
        orthanc_module.running_orthanc(tmp_path / "local"),
    ):
        pass
    monkeypatch.setattr(orthanc_module, "IN_CI", True)
    with (
        pytest.raises(pytest.fail.Exception, match=r"\.ci/run installs both packages"),
        orthanc_module.running_orthanc(tmp_path / "ci"),
    ):
        pass
