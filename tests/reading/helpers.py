"""A small study built from factories, ready to randomize (shared by reading and readers tests)."""

from __future__ import annotations

import io
from typing import cast

import numpy as np
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image as PILImage

from studyplatform.prereads.models import AIModel, PreReadFinding, PreReadStatus
from studyplatform.reading.models import Enrolment
from studyplatform.studies.models import Image, Series, Study
from tests.factories import (
    AIModelFactory,
    ArmFactory,
    CaseFactory,
    FindingTypeFactory,
    PreReadFactory,
    ReaderFactory,
    SiteFactory,
    StudyFactory,
    TruthFactory,
    UserFactory,
)

PASSWORD = "correct horse battery staple"  # the factories' password


def png16(rows: int = 32, columns: int = 40, top: int = 4095) -> bytes:
    """A 16-bit grayscale PNG whose value at (y, x) is (y * columns + x) mod (top + 1)."""
    values = (np.arange(rows * columns).reshape(rows, columns) % (top + 1)).astype(np.uint16)
    buffer = io.BytesIO()
    PILImage.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


def heatmap_png(rows: int = 32, columns: int = 40) -> bytes:
    values = np.zeros((rows, columns), dtype=np.uint8)
    values[rows // 4 : rows // 2, columns // 4 : columns // 2] = 230
    buffer = io.BytesIO()
    PILImage.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


def make_study(
    *,
    n_cases: int = 8,
    n_readers: int = 2,
    design: str = "crossover",
    images_per_case: int = 1,
    with_images: bool = False,
    with_prereads: bool = False,
    probabilities: tuple[float, ...] = (0.8731, 0.1234),
    slug: str | None = None,
    pin: bool = True,
) -> Study:
    """A draft study: two arms, two finding types, cases over two sites with truth, readers.

    With ``pin`` the study pins a registered model (the one that pre-read it, with
    ``with_prereads``), as a study with an assisted arm must before it opens.
    """
    kwargs = {"design": design}
    if slug:
        kwargs["slug"] = slug
    study = cast(Study, StudyFactory(**kwargs))
    ArmFactory(study=study, name="unassisted", order=1)
    ArmFactory(study=study, name="assisted", order=2)
    findings = [
        FindingTypeFactory(study=study, code="nodule", name="Lung nodule", order=1),
        FindingTypeFactory(study=study, code="effusion", name="Pleural effusion", order=2),
    ]
    sites = [SiteFactory(code="north"), SiteFactory(code="south")]
    model = (
        cast(AIModel, AIModelFactory(finding_codes=["nodule", "effusion"], threshold=0.5))
        if with_prereads or pin
        else None
    )
    if pin and model is not None:  # as pin_model does, without its audit event
        study.ai_model_name, study.ai_model_version = model.name, model.version
        study.ai_model_sha256 = model.sha256
        study.save(update_fields=["ai_model_name", "ai_model_version", "ai_model_sha256"])
    for i in range(n_cases):
        case = CaseFactory(study=study, case_id=f"C{i:03d}", site=sites[i % 2])
        for j, finding in enumerate(findings):
            TruthFactory(case=case, finding_type=finding, present=(i + j) % 3 == 0)
        if with_images:
            for position in range(1, images_per_case + 1):
                image = Image(
                    case=case,
                    series=Series.objects.first_of(case),
                    position=position,
                    slice_number=position,
                    sha256="0" * 64,
                    rows=32,
                    columns=40,
                    bits_stored=12,
                    window_center=2048,
                    window_width=4096,
                )
                image.original.save(f"{case.case_id}-{position}.dcm", ContentFile(b"x"), save=False)
                image.display.save(
                    f"{case.case_id}-{position}.png", ContentFile(png16()), save=False
                )
                image.save()
        if with_prereads and model is not None:
            preread = PreReadFactory(
                case=case, model=model, status=PreReadStatus.DONE, finished_at=timezone.now()
            )
            preread.heatmap.save(f"{case.case_id}-heatmap.png", ContentFile(heatmap_png()))
            for finding, probability in zip(findings, probabilities, strict=True):
                PreReadFinding.objects.create(
                    preread=preread, finding_type=finding, probability=probability
                )
    for i in range(n_readers):
        user = UserFactory(username=f"{study.slug}-reader{i + 1}")
        reader = ReaderFactory(user=user, code=f"{study.slug}-R{i + 1}")
        Enrolment.objects.create(study=study, reader=reader)
    return study
