"""Pre-read use cases: request pre-reads for cases, and run a batch of them.

Exactly one PreRead per (case, model) exists (a unique constraint) and a done one is never
redone, so requesting twice, a redelivered message, or two workers on the same batch add nothing.
A batch claims its rows (status running, one more attempt), computes in chunks, and commits each
case on its own in a short transaction that re-checks the row under a lock: a worker killed in
the middle of a batch leaves every finished case done and the rest pending or running, and the
redelivered batch skips the done ones and finishes the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from studyplatform.celery import enqueue
from studyplatform.prereads import gradcam
from studyplatform.prereads.inference import (
    LoadedModel,
    ModelRefusedError,
    cached_model,
    preprocess,
)
from studyplatform.prereads.models import AIModel, PreRead, PreReadFinding, PreReadStatus
from studyplatform.prereads.spec import SpecError, parse_spec
from studyplatform.studies.imaging import ImageError, read_dicom_pixels, read_png
from studyplatform.studies.models import Case, FindingType, Image, Study

logger = logging.getLogger(__name__)

BATCH_SIZE = 16  # cases per task message
CPU_CHUNK = 4  # cases per forward pass on the CPU; a GPU takes larger chunks
GPU_CHUNK = 32
STAGES = ("decode", "preprocess", "forward", "gradcam", "encode", "database")


def batched(items: Iterable[int], size: int) -> Iterable[list[int]]:
    """Consecutive lists of ``size`` items (the last may be shorter); itertools has it in 3.12."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def default_model() -> AIModel | None:
    """The most recently registered model: what a study is pre-read with unless told otherwise."""
    return AIModel.objects.order_by("-registered_at", "-pk").first()


def _cases(*, study: Study | None, case_ids: Iterable[int] | None) -> QuerySet[Case]:
    if study is None and case_ids is None:
        raise ValueError("give a study, case IDs, or both")
    cases = Case.objects.all()
    if study is not None:
        cases = cases.filter(study=study)
    if case_ids is not None:
        cases = cases.filter(pk__in=list(case_ids))
    return cases


def _ensure_prereads(*, cases: QuerySet[Case], model: AIModel) -> list[int]:
    """Create the missing pre-reads, reopen failed ones, return the IDs of those not done."""
    have = set(
        PreRead.objects.filter(model=model, case__in=cases).values_list("case_id", flat=True)
    )
    PreRead.objects.bulk_create(
        [
            PreRead(case_id=pk, model=model)
            for pk in cases.values_list("pk", flat=True)
            if pk not in have
        ],
        ignore_conflicts=True,  # a concurrent request created it first: fine, it exists once
    )
    todo = PreRead.objects.filter(model=model, case__in=cases).exclude(status=PreReadStatus.DONE)
    todo.filter(status=PreReadStatus.FAILED).update(status=PreReadStatus.PENDING, error="")
    return list(todo.order_by("case__study_id", "case__case_id").values_list("pk", flat=True))


def request_prereads(
    *,
    study: Study | None = None,
    case_ids: Iterable[int] | None = None,
    model: AIModel | None = None,
    batch_size: int = BATCH_SIZE,
    chunk_size: int | None = None,
) -> int:
    """Create pending pre-reads and queue them in batches on the inference queue after commit.

    ``case_ids`` are Case primary keys. Pre-reads already done are left alone; failed ones are
    tried again. Returns how many were queued (0 when no model is registered yet).
    """
    from studyplatform.prereads.tasks import run_preread_batch  # the task module imports us

    model = model or default_model()
    if model is None:
        logger.warning("no AI model is registered: no pre-reads requested")
        return 0
    with transaction.atomic():
        todo = _ensure_prereads(cases=_cases(study=study, case_ids=case_ids), model=model)
        for batch in batched(todo, max(1, batch_size)):
            enqueue(run_preread_batch, preread_ids=batch, chunk_size=chunk_size)
    return len(todo)


@dataclass
class BatchOutcome:
    """What one run did, with the time spent per stage summed over its cases (milliseconds)."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    stage_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def add(self, other: BatchOutcome) -> None:
        self.done += other.done
        self.failed += other.failed
        self.skipped += other.skipped
        for stage, ms in other.stage_ms.items():
            self.stage_ms[stage] += ms

    def as_json(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()},
        }


def run_prereads_now(
    *,
    study: Study | None = None,
    case_ids: Iterable[int] | None = None,
    model: AIModel | None = None,
    batch_size: int = BATCH_SIZE,
    chunk_size: int | None = None,
    progress: Callable[[BatchOutcome], None] | None = None,
) -> BatchOutcome:
    """Run the pre-reads in this process, batch by batch (the demo and ``preread --sync``)."""
    model = model or default_model()
    total = BatchOutcome()
    if model is None:
        return total
    with transaction.atomic():
        todo = _ensure_prereads(cases=_cases(study=study, case_ids=case_ids), model=model)
    for batch in batched(todo, max(1, batch_size)):
        total.add(run_batch(preread_ids=batch, chunk_size=chunk_size))
        if progress is not None:
            progress(total)
    return total


def _claim(preread_ids: Sequence[int]) -> list[PreRead]:
    with transaction.atomic():
        rows = list(
            PreRead.objects.select_for_update()
            .filter(pk__in=list(preread_ids))
            .exclude(status=PreReadStatus.DONE)
            .select_related("model", "case")
            .order_by("pk")
        )
        now = timezone.now()
        for row in rows:
            row.status = PreReadStatus.RUNNING
            row.attempts += 1
            row.started_at = now
        PreRead.objects.bulk_update(rows, ["status", "attempts", "started_at"])
    return rows


def _fail(rows: Iterable[PreRead], error: str) -> int:
    ids = [row.pk for row in rows]
    with transaction.atomic():
        count = (
            PreRead.objects.filter(pk__in=ids)
            .exclude(status=PreReadStatus.DONE)
            .update(status=PreReadStatus.FAILED, error=error[:4000], finished_at=timezone.now())
        )
    for row in rows:
        logger.warning("pre-read %s failed: %s", row, error)
    return count


def run_batch(*, preread_ids: Sequence[int], chunk_size: int | None = None) -> BatchOutcome:
    """Compute the given pre-reads (those not done), committing each case as it finishes."""
    outcome = BatchOutcome()
    started = time.perf_counter()
    rows = _claim(preread_ids)
    outcome.skipped = len(preread_ids) - len(rows)
    if not rows:
        return outcome
    images = _first_images(row.case_id for row in rows)
    findings = {
        (ft.study_id, ft.code): ft
        for ft in FindingType.objects.filter(study_id__in={row.case.study_id for row in rows})
    }
    outcome.stage_ms["database"] += (time.perf_counter() - started) * 1000
    by_model: dict[int, list[PreRead]] = {}
    for row in rows:
        by_model.setdefault(row.model_id, []).append(row)
    for group in by_model.values():
        ai = group[0].model
        try:
            loaded = cached_model(
                key=ai.pk,
                path=ai.path,
                fmt=ai.format,
                spec=parse_spec(ai.spec),
                factory=ai.factory,
                sha256=ai.sha256,
            )
        except (ModelRefusedError, SpecError) as exc:
            outcome.failed += _fail(group, f"model {ai} refused: {exc}")
            continue
        size = max(1, chunk_size or (GPU_CHUNK if loaded.device.type == "cuda" else CPU_CHUNK))
        for start in range(0, len(group), size):
            outcome.add(_run_chunk(loaded, group[start : start + size], images, findings))
    return outcome


def _first_images(case_ids: Iterable[int]) -> dict[int, Image]:
    first: dict[int, Image] = {}
    for image in Image.objects.filter(case_id__in=list(case_ids)).order_by("case_id", "position"):
        first.setdefault(image.case_id, image)
    return first


def decode(image: Image) -> np.ndarray[Any, Any]:
    """The displayed image's pixels (what the reader sees, so the heatmap lines up with it)."""
    field_file = image.display or image.original
    if not field_file:
        raise ImageError(f"image {image}: no stored file")
    path = Path(field_file.path)
    if path.suffix.lower() in {".dcm", ".dicom", ""}:
        return read_dicom_pixels(path).pixels
    return read_png(path)


@dataclass
class _Prepared:
    row: PreRead
    image: Image
    x: np.ndarray[Any, Any]
    timings: dict[str, float]


def _run_chunk(
    loaded: LoadedModel,
    rows: Sequence[PreRead],
    images: dict[int, Image],
    findings: dict[tuple[int, str], FindingType],
) -> BatchOutcome:
    outcome = BatchOutcome()
    prepared: list[_Prepared] = []
    for row in rows:
        image = images.get(row.case_id)
        try:
            if image is None:
                raise ImageError(f"case {row.case.case_id} has no image")
            t0 = time.perf_counter()
            pixels = decode(image)
            t1 = time.perf_counter()
            x = preprocess(pixels, loaded.spec, window=(image.window_center, image.window_width))
            t2 = time.perf_counter()
        except (ImageError, ValueError, OSError) as exc:
            outcome.failed += _fail([row], f"case {row.case.case_id}: {exc}")
            continue
        timings = {"decode": (t1 - t0) * 1000, "preprocess": (t2 - t1) * 1000}
        prepared.append(_Prepared(row, image, x, timings))
    if not prepared:
        return outcome

    n = len(prepared)
    try:
        t0 = time.perf_counter()
        batch = torch.from_numpy(np.stack([p.x for p in prepared])).to(loaded.device)
        batch.requires_grad_(True)  # so the map has a gradient even with frozen weights
        with torch.enable_grad():
            logits, fmap = loaded.forward(batch)
            probabilities = torch.sigmoid(logits).detach().double().cpu().numpy()
            t1 = time.perf_counter()
            cams = gradcam.grad_cam(logits, fmap).float().cpu().numpy()
        t2 = time.perf_counter()
    except (RuntimeError, ModelRefusedError) as exc:
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            raise  # transient: the task retries
        outcome.failed += _fail([p.row for p in prepared], f"model failed on this batch: {exc}")
        return outcome
    for i, item in enumerate(prepared):
        item.timings["forward"] = (t1 - t0) * 1000 / n
        item.timings["gradcam"] = (t2 - t1) * 1000 / n
        t3 = time.perf_counter()
        codes = loaded.spec.finding_codes
        study_id = item.row.case.study_id
        shown = [k for k, code in enumerate(codes) if (study_id, code) in findings] or list(
            range(len(codes))
        )
        combined = gradcam.combine(cams[i][shown], probabilities[i][shown])
        png = gradcam.encode_png(
            gradcam.heatmap_image(combined, (item.image.rows, item.image.columns))
        )
        t4 = time.perf_counter()
        item.timings["encode"] = (t4 - t3) * 1000
        stored = _store(item, probabilities[i], png, findings)
        item.timings["database"] = (time.perf_counter() - t4) * 1000
        for stage, ms in item.timings.items():
            outcome.stage_ms[stage] += ms
        if stored:
            outcome.done += 1
        else:
            outcome.skipped += 1
    return outcome


def _store(
    item: _Prepared,
    probabilities: np.ndarray[Any, Any],
    png: bytes,
    findings: dict[tuple[int, str], FindingType],
) -> bool:
    """Write one case's result, unless another run finished it first. True when written."""
    with transaction.atomic():
        row = PreRead.objects.select_for_update().select_related("case").get(pk=item.row.pk)
        if row.status == PreReadStatus.DONE:
            return False
        name = f"case-{row.case_id}.png"
        # A deterministic name, overwritten: a run killed after writing the file but before
        # committing leaves no second copy behind.
        path = PreRead._meta.get_field("heatmap").generate_filename(row, name)
        row.heatmap.storage.delete(path)
        row.heatmap.save(name, ContentFile(png), save=False)
        PreReadFinding.objects.filter(preread=row).delete()
        PreReadFinding.objects.bulk_create(
            [
                PreReadFinding(
                    preread=row,
                    finding_type=findings[(row.case.study_id, code)],
                    probability=float(np.clip(probabilities[k], 0.0, 1.0)),
                )
                for k, code in enumerate(item.row.model.finding_codes)
                if (row.case.study_id, code) in findings
            ]
        )
        row.status = PreReadStatus.DONE
        row.error = ""
        row.finished_at = timezone.now()
        row.timings = {k: round(v, 3) for k, v in item.timings.items()}
        row.duration_ms = round(sum(item.timings.values()), 3)
        row.save(
            update_fields=["heatmap", "status", "error", "finished_at", "timings", "duration_ms"]
        )
    return True
