"""A small study with DICOM cases (a radiograph, a CT stack), a PNG case, reads and pre-reads,
for the DICOM export tests. Cases go in through the import service (de-identified, as users
send them); reads and pre-reads are stored rows, as the reading page and the worker store them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from PIL import Image as PILImage
from pydicom.uid import generate_uid

from studyplatform.accounts.roles import COORDINATOR, STATISTICIAN, ensure_roles
from studyplatform.prereads.models import AIModel, PreRead, PreReadFinding, PreReadStatus
from studyplatform.reading.models import ReadingSession
from studyplatform.studies.imaging import write_dicom
from studyplatform.studies.importing import Upload
from studyplatform.studies.models import MemberRole, Study, StudyMembership
from studyplatform.studies.services import import_case
from tests.factories import (
    AIModelFactory,
    ArmFactory,
    AssignmentFactory,
    FindingTypeFactory,
    ReaderFactory,
    ReadFactory,
    ReadFindingFactory,
    SiteFactory,
    StudyFactory,
    UserFactory,
)
from tests.reading.helpers import png16
from tests.studies.volume_fixtures import ct_series, enhanced_ct

CT_SLICES = 6
ENHANCED_FRAMES = 4
SUBMITTED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@dataclass
class DicomStudy:
    study: Study
    model: AIModel
    coordinator: Any
    statistician: Any


def _cr_bytes(tmp: Path) -> bytes:
    pixels = (np.arange(48 * 40).reshape(48, 40) * 2 % 4096).astype(np.uint16)
    path = write_dicom(tmp / "cr.dcm", pixels, patient_id="PAT-1", modality="CR",
                       manufacturer="Acme", model_name="CR-1", window_center=2048,
                       window_width=4096, extra={"PatientName": "Doe^Jane"})  # fmt: skip
    return path.read_bytes()


def _enhanced(slug: str) -> bytes:
    """A multi-frame Enhanced CT whose frames are not in slice order (frame f: slice order[f])."""
    return enhanced_ct(
        ENHANCED_FRAMES,
        study_uid=generate_uid(entropy_srcs=["ect", slug]),
        series_uid=generate_uid(entropy_srcs=["ect series", slug]),
        frame_order=[2, 0, 3, 1],
    )


def _heatmap(rows: int, columns: int, *, stacked: int = 1) -> bytes:
    values = np.zeros((rows * stacked, columns), dtype=np.uint8)
    for k in range(stacked):
        values[k * rows + rows // 4 : k * rows + rows // 2, columns // 4 : columns // 2] = 40 * (
            k + 1
        )
    buffer = io.BytesIO()
    PILImage.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


def _staff(study: Study, username: str, role: str, member: str) -> Any:
    user = UserFactory(username=username)
    user.groups.set([Group.objects.get(name=role)])
    StudyMembership.objects.create(study=study, user=user, role=member)
    return user


def build_dicom_study(tmp: Path, *, slug: str = "dcm") -> DicomStudy:
    ensure_roles()
    study = StudyFactory(slug=slug)
    unassisted = ArmFactory(study=study, name="unassisted", order=1)
    assisted = ArmFactory(study=study, name="assisted", order=2)
    nodule = FindingTypeFactory(study=study, code="nodule", name="Lung nodule", order=1)
    effusion = FindingTypeFactory(study=study, code="effusion", name="Pleural effusion", order=2)
    model = AIModelFactory(name="chest-ai", version="2.1", sha256="ab" * 32,
                           finding_codes=["nodule", "effusion"], threshold=0.5)  # fmt: skip
    study.ai_model_name, study.ai_model_version = model.name, model.version
    study.ai_model_sha256 = model.sha256
    study.save(update_fields=["ai_model_name", "ai_model_version", "ai_model_sha256"])
    SiteFactory(code="north")
    uid = generate_uid(entropy_srcs=["ct", slug])
    slices = ct_series(
        CT_SLICES, study_uid=uid, series_uid=generate_uid(entropy_srcs=["ct series", slug]), size=32
    )
    cases = {
        "CR-1": import_case(study=study, case_id="CR-1", site_code="north",
                            uploads=[Upload("cr.dcm", _cr_bytes(tmp))]).case,
        "CT-1": import_case(study=study, case_id="CT-1", site_code="north", modality="CT",
                            uploads=[Upload(f"s{i}.dcm", d) for i, d in enumerate(slices)]).case,
        "ECT-1": import_case(study=study, case_id="ECT-1", site_code="north", modality="CT",
                             uploads=[Upload("e.dcm", _enhanced(slug))]).case,
        "PNG-1": import_case(study=study, case_id="PNG-1", site_code="north", modality="CR",
                             uploads=[Upload("p.png", png16())]).case,
    }  # fmt: skip
    heatmaps = {
        "CR-1": (_heatmap(16, 16), 0),
        "CT-1": (_heatmap(8, 8, stacked=CT_SLICES), CT_SLICES),
        "ECT-1": (_heatmap(8, 8, stacked=ENHANCED_FRAMES), ENHANCED_FRAMES),
    }
    for case_id, case in cases.items():
        preread = PreRead.objects.create(case=case, model=model, status=PreReadStatus.DONE,
                                         finished_at=SUBMITTED)  # fmt: skip
        if case_id in heatmaps:
            png, stacked = heatmaps[case_id]
            preread.heatmap.save(f"{case_id}.png", ContentFile(png), save=False)
            preread.heatmap_slices = stacked
            preread.save()
        PreReadFinding.objects.create(preread=preread, finding_type=nodule, probability=0.81)
        PreReadFinding.objects.create(preread=preread, finding_type=effusion, probability=0.12)
    reader = ReaderFactory(code="R07", user=UserFactory(username="dr.house@example.org"))
    sessions = {
        n: ReadingSession.objects.create(study=study, reader=reader, number=n) for n in (1, 2)
    }
    marks = {"CR-1": [{"image": 1, "x": 10, "y": 20, "confidence": 90}],
             "CT-1": [{"image": 4, "x": 5, "y": 7, "series": 1, "slice": 4}],
             "ECT-1": [{"image": 2, "x": 3, "y": 3, "series": 1, "slice": 2}]}  # fmt: skip
    for case_id, case in cases.items():
        for number, arm in ((1, unassisted), (2, assisted)):
            assignment = AssignmentFactory(session=sessions[number], case=case, arm=arm)
            read = ReadFactory(assignment=assignment, submitted_at=SUBMITTED,
                               started_at=SUBMITTED.replace(minute=29))  # fmt: skip
            ReadFindingFactory(read=read, finding_type=nodule, present=True, confidence=70,
                               marks=marks.get(case_id, []))  # fmt: skip
            ReadFindingFactory(read=read, finding_type=effusion, present=False, confidence=15)
    coordinator = _staff(study, "coord", COORDINATOR, MemberRole.COORDINATOR)
    statistician = _staff(study, "stats", STATISTICIAN, MemberRole.STATISTICIAN)
    return DicomStudy(study, model, coordinator, statistician)
