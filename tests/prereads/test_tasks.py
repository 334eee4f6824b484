"""Pre-read tasks and services: results stored once, idempotent, failures recorded."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from studyplatform.prereads.demo_model import DemoCNN
from studyplatform.prereads.models import PreRead, PreReadFinding, PreReadStatus
from studyplatform.prereads.runner import run_batch
from studyplatform.prereads.selectors import case_preread, preread_progress
from studyplatform.prereads.services import request_prereads, run_prereads_now
from studyplatform.prereads.tasks import run_preread_batch
from studyplatform.studies.models import Image


def pending_ids(study, model):
    return list(PreRead.objects.filter(case__study=study, model=model).values_list("pk", flat=True))


def test_request_creates_pending_prereads_and_queues_batches_after_commit(
    study_factory, ai_model, django_capture_on_commit_callbacks
):
    study = study_factory(5, model=ai_model)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queued = request_prereads(study=study, model=ai_model, batch_size=2)

    assert queued == 5
    assert len(callbacks) == 3  # batches of 2, 2 and 1, sent only once the rows are committed
    assert set(PreRead.objects.values_list("status", flat=True)) == {PreReadStatus.PENDING}
    progress = preread_progress(study)
    assert (progress.cases, progress.pending, progress.done) == (5, 5, 0)


def test_task_run_twice_stores_each_result_once(study_factory, ai_model):
    study = study_factory(3)
    request_prereads(study=study, model=ai_model)  # outside a transaction: enqueue is deferred
    ids = pending_ids(study, ai_model)

    first = run_preread_batch(preread_ids=ids)
    second = run_preread_batch(preread_ids=ids)

    assert first["done"] == 3 and second == {**second, "done": 0, "skipped": 3}
    assert PreRead.objects.count() == 3
    assert PreReadFinding.objects.count() == 9
    assert set(PreRead.objects.values_list("status", "attempts")) == {("done", 1)}
    assert request_prereads(study=study, model=ai_model) == 0  # nothing left to do


def test_done_preread_has_probabilities_heatmap_and_timings(study_factory, ai_model):
    study = study_factory(2, model=ai_model)
    run_prereads_now(study=study, model=ai_model)
    case = study.cases.first()

    preread = case_preread(case)

    assert preread is not None and preread.status == PreReadStatus.DONE
    probabilities = {f.finding_type.code: f.probability for f in preread.findings.all()}
    assert set(probabilities) == {"nodule", "pneumothorax", "effusion"}
    assert all(0.0 <= p <= 1.0 for p in probabilities.values())
    with preread.heatmap.open("rb") as handle:
        heatmap = PILImage.open(io.BytesIO(handle.read()))
    image = Image.objects.get(case=case)
    # On the model's input grid, which covers the whole displayed image (the viewer stretches it).
    rows, columns = ai_model.spec["input_size"]
    assert image.rows != rows and heatmap.mode == "L" and heatmap.size == (columns, rows)
    assert set(preread.timings) == {"decode", "preprocess", "forward", "gradcam", "encode"}
    assert preread.duration_ms is not None and preread.duration_ms > 0
    assert preread.finished_at is not None and preread.started_at is not None
    assert preread.finished_at >= preread.started_at


def test_probabilities_match_the_model_run_by_hand(study_factory, ai_model):
    from studyplatform.prereads.inference import preprocess
    from studyplatform.prereads.spec import parse_spec
    from studyplatform.studies.imaging import read_png

    study = study_factory(1, model=ai_model)
    run_prereads_now(study=study, model=ai_model)
    case = study.cases.get()
    net = DemoCNN().eval()
    net.load_state_dict(torch.load(ai_model.path))
    x = preprocess(read_png(Image.objects.get(case=case).display.path), parse_spec(ai_model.spec))

    expected = torch.sigmoid(net(torch.from_numpy(x)[None]))[0].detach().numpy()

    stored = [f.probability for f in case_preread(case).findings.order_by("finding_type__order")]
    np.testing.assert_allclose(stored, expected, rtol=1e-5)


def test_corrupt_image_fails_its_case_with_the_error_and_the_rest_are_done(study_factory, ai_model):
    study = study_factory(3, model=ai_model)
    broken = study.cases.order_by("case_id").first()
    Path(Image.objects.get(case=broken).display.path).write_bytes(b"\x89PNG truncated")

    outcome = run_prereads_now(study=study, model=ai_model)

    assert (outcome.done, outcome.failed) == (2, 1)
    failed = PreRead.objects.get(case=broken)
    assert failed.status == PreReadStatus.FAILED
    assert broken.case_id in failed.error and "not a readable image" in failed.error
    assert preread_progress(study).as_dict() == {
        "cases": 3, "pending": 0, "running": 0, "done": 2, "failed": 1, "missing": 0,
    }  # fmt: skip


def test_model_file_changed_since_registration_fails_the_batch_with_the_reason(
    study_factory, ai_model
):
    study = study_factory(2)
    torch.manual_seed(5)
    torch.save(DemoCNN().state_dict(), ai_model.path)

    outcome = run_prereads_now(study=study, model=ai_model)

    assert outcome.failed == 2
    errors = set(PreRead.objects.values_list("error", flat=True))
    assert len(errors) == 1 and "changed since registration" in errors.pop()


def test_failed_prereads_are_tried_again_on_the_next_request(study_factory, ai_model):
    study = study_factory(2, model=ai_model)
    broken = study.cases.order_by("case_id").first()
    path = Path(Image.objects.get(case=broken).display.path)
    good = path.read_bytes()
    path.write_bytes(b"junk")
    run_prereads_now(study=study, model=ai_model)
    path.write_bytes(good)

    outcome = run_prereads_now(study=study, model=ai_model)

    assert outcome.done == 1
    assert PreRead.objects.get(case=broken).attempts == 2
    assert preread_progress(study).done == 2


def test_batch_skips_cases_another_run_finished(study_factory, ai_model):
    study = study_factory(3)
    request_prereads(study=study, model=ai_model)
    ids = pending_ids(study, ai_model)
    run_batch(preread_ids=ids[:1])

    outcome = run_batch(preread_ids=ids, chunk_size=1)

    assert (outcome.done, outcome.skipped) == (2, 1)
    assert PreRead.objects.get(pk=ids[0]).attempts == 1


@pytest.mark.parametrize("status", [PreReadStatus.RUNNING, PreReadStatus.PENDING])
def test_interrupted_preread_is_finished_by_the_next_run(study_factory, ai_model, status):
    study = study_factory(1)
    request_prereads(study=study, model=ai_model)
    PreRead.objects.update(status=status, attempts=1)  # as a killed worker leaves it

    run_preread_batch(preread_ids=pending_ids(study, ai_model))

    assert list(PreRead.objects.values_list("status", "attempts")) == [("done", 2)]
    assert PreReadFinding.objects.count() == 3


def test_model_thresholds_come_from_the_spec_per_finding(ai_model):
    from studyplatform.prereads.selectors import model_thresholds

    ai_model.spec = {**ai_model.spec, "thresholds": {"nodule": 0.3, "pneumothorax": 0.6}}

    assert model_thresholds(ai_model) == {"nodule": 0.3, "pneumothorax": 0.6, "effusion": 0.5}
