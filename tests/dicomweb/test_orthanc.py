"""The test archive itself: a private Orthanc that serves DICOMweb and wants credentials."""

from __future__ import annotations

import requests
from dicomweb_client.api import DICOMwebClient

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
