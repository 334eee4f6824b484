"""Pre-reads decode stored images under the same decoded-size limit as the import."""

from __future__ import annotations

import pytest

from studyplatform.prereads.models import PreRead, PreReadStatus
from studyplatform.prereads.services import request_prereads
from studyplatform.prereads.tasks import run_preread_batch

pytestmark = pytest.mark.django_db


def test_an_image_over_the_limit_fails_its_preread_with_the_reason(
    study_factory, ai_model, settings
):
    study = study_factory(2)
    request_prereads(study=study, model=ai_model)
    ids = list(PreRead.objects.values_list("pk", flat=True))
    settings.IMAGE_MAX_DECODED_BYTES = 100  # lowered after import: the stored files are larger

    first = run_preread_batch(preread_ids=ids)
    second = run_preread_batch(preread_ids=ids)

    assert (first["done"], first["failed"]) == (0, 2)
    assert second["done"] == 0
    for preread in PreRead.objects.select_related("case"):
        assert preread.status == PreReadStatus.FAILED
        assert preread.case.case_id in preread.error
        assert "over the limit of 100 bytes (IMAGE_MAX_DECODED_MB)" in preread.error

    settings.IMAGE_MAX_DECODED_BYTES = 128 * 1024 * 1024
    request_prereads(study=study, model=ai_model)
    assert run_preread_batch(preread_ids=ids)["done"] == 2
