"""Running a batch of pre-reads: decode, preprocess, forward, Grad-CAM, encode, store.

A batch claims its rows (status running, one more attempt, its claim token and a heartbeat),
computes in chunks, beats before each chunk, and commits each case on its own in a short
transaction that re-checks the row under a lock: a worker killed in the middle of a batch leaves
every finished case done and the rest pending or running, and the redelivered batch (same claim)
skips the done ones and finishes the others. Rows that another live run holds (another claim, a
fresh heartbeat) are skipped, so a second message for the same cases (the sweeper re-queued them)
computes nothing twice.

Every one of those transactions first takes ``lock_study_for_write`` on the cases' studies: the
cases of a study locked since they were queued are refused (counted, logged): nothing is stored
and nothing is marked, so the locked study's data stays as it was signed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from studyplatform.prereads import gradcam
from studyplatform.prereads.inference import (
    LoadedModel,
    ModelRefusedError,
    cached_model,
    preprocess,
)
from studyplatform.prereads.models import PreRead, PreReadFinding, PreReadStatus
from studyplatform.prereads.runner_slices import SlicesResult, run_slices
from studyplatform.prereads.runner_volume import VolumeResult, run_volume
from studyplatform.prereads.services import BatchOutcome, TransientInferenceError
from studyplatform.prereads.spec import SLICES, VOLUME, SpecError, parse_spec
from studyplatform.studies.guards import StudyLockedError, lock_study_for_write
from studyplatform.studies.imaging import ImageError, read_dicom_pixels, read_png
from studyplatform.studies.models import FindingType, Image

logger = logging.getLogger(__name__)

CPU_CHUNK = 8  # cases per forward pass on the CPU; a GPU takes larger chunks
GPU_CHUNK = 32


def _writable_studies(study_ids: Iterable[int]) -> set[int]:
    """Lock each study for the caller's transaction; return those that may still be written."""
    writable = set()
    for pk in sorted(set(study_ids)):  # one order everywhere: no deadlock between two batches
        try:
            lock_study_for_write(pk)
        except StudyLockedError as error:
            logger.warning("pre-reads refused: %s", error)
        else:
            writable.add(pk)
    return writable


def _claim(preread_ids: Sequence[int], claim: str) -> tuple[list[PreRead], int]:
    """Mark the batch's unfinished pre-reads running; returns them and how many were refused."""
    with transaction.atomic():
        now = timezone.now()
        alive = now - timedelta(seconds=settings.PREREAD_STALE_AFTER)
        held_by_another = (
            Q(status=PreReadStatus.RUNNING) & Q(heartbeat_at__gt=alive) & ~Q(claim=claim)
        )
        unfinished = PreRead.objects.filter(pk__in=list(preread_ids)).exclude(
            status=PreReadStatus.DONE
        )
        studies = set(unfinished.values_list("case__study_id", flat=True))
        writable = _writable_studies(studies)
        refused = unfinished.exclude(case__study_id__in=writable).count()
        rows = list(
            PreRead.objects.select_for_update()
            .filter(pk__in=list(preread_ids), case__study_id__in=writable)
            .exclude(status=PreReadStatus.DONE)
            .exclude(held_by_another)
            .select_related("model", "case")
            .order_by("pk")
        )
        # One plain UPDATE: every claimed row gets the same values (bulk_update's CASE per row
        # cost more Python time than the model's forward pass).
        PreRead.objects.filter(pk__in=[row.pk for row in rows]).update(
            status=PreReadStatus.RUNNING,
            attempts=F("attempts") + 1,
            started_at=now,
            claim=claim,
            heartbeat_at=now,
        )
        for row in rows:
            row.status = PreReadStatus.RUNNING
            row.attempts += 1
            row.started_at = now
    return rows, refused


def _fail(rows: Iterable[PreRead], error: str) -> int:
    rows = list(rows)
    with transaction.atomic():
        writable = _writable_studies(row.case.study_id for row in rows)
        ids = [row.pk for row in rows if row.case.study_id in writable]
        count = (
            PreRead.objects.filter(pk__in=ids)
            .exclude(status=PreReadStatus.DONE)
            .update(status=PreReadStatus.FAILED, error=error[:4000], finished_at=timezone.now())
        )
    for row in rows:
        logger.warning("pre-read %s failed: %s", row, error)
    return count


def _beat(rows: Sequence[PreRead], claim: str) -> None:
    """Show the rows' run is alive (those still running under this claim)."""
    PreRead.objects.filter(
        pk__in=[row.pk for row in rows], status=PreReadStatus.RUNNING, claim=claim
    ).update(heartbeat_at=timezone.now())


def run_batch(
    *, preread_ids: Sequence[int], chunk_size: int | None = None, claim: str | None = None
) -> BatchOutcome:
    """Compute the given pre-reads (those not done), committing each case as it finishes.

    ``claim`` names this run (the task's ID, which a redelivered message keeps); without one the
    run gets a fresh name.
    """
    outcome = BatchOutcome()
    started = time.perf_counter()
    claim = claim or uuid.uuid4().hex
    rows, outcome.refused = _claim(preread_ids, claim)
    outcome.skipped = len(preread_ids) - len(rows) - outcome.refused
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
        if loaded.spec.input_kind in (SLICES, VOLUME):
            outcome.add(_run_series(loaded, group, findings, lambda: _beat(rows, claim)))
            continue
        size = max(1, chunk_size or (GPU_CHUNK if loaded.device.type == "cuda" else CPU_CHUNK))
        chunks = [group[start : start + size] for start in range(0, len(group), size)]
        outcome.add(_run_pipeline(loaded, chunks, images, findings, lambda: _beat(rows, claim)))
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
        return read_dicom_pixels(path, max_decoded_bytes=settings.IMAGE_MAX_DECODED_BYTES).pixels
    return read_png(path, max_decoded_bytes=settings.IMAGE_MAX_DECODED_BYTES)


@dataclass
class _Prepared:
    row: PreRead
    image: Image
    x: np.ndarray[Any, Any]
    timings: dict[str, float]
    slices: int = 0  # a slices model's stacked heatmap holds this many maps


def _run_series(
    loaded: LoadedModel,
    rows: Sequence[PreRead],
    findings: dict[tuple[int, str], FindingType],
    beat: Callable[[], None],
) -> BatchOutcome:
    """A ``slices`` or ``volume`` model, case by case, on the case's first series: every slice
    in turn (batched), or the whole series at once."""
    outcome = BatchOutcome()
    codes = loaded.spec.finding_codes
    for row in rows:
        beat()
        study_id = row.case.study_id
        shown = [k for k, c in enumerate(codes) if (study_id, c) in findings] or list(
            range(len(codes))
        )
        slices = list(
            Image.objects.filter(case_id=row.case_id, series__position=1)
            .select_related("series")
            .order_by("slice_number")
        )
        try:
            if not slices:
                raise ImageError(f"case {row.case.case_id} has no series to read")
            t0 = time.perf_counter()
            # The stored values (HU for CT): the derivative less its offset.
            stack = np.stack([decode(im).astype(np.float32) - im.display_offset for im in slices])
            decoded = (time.perf_counter() - t0) * 1000
            series = slices[0].series
            window = (
                (series.window_center, series.window_width)
                if series.window_center is not None and series.window_width is not None
                else None
            )
            result: SlicesResult | VolumeResult
            if loaded.spec.input_kind == VOLUME:
                rows_cols = series.pixel_spacing
                spacing = (
                    (series.slice_spacing, float(rows_cols[0]), float(rows_cols[1]))
                    if isinstance(rows_cols, list) and len(rows_cols) == 2
                    else None
                )
                result = run_volume(loaded, stack, shown=shown, window=window, spacing=spacing)
            else:
                result = run_slices(loaded, stack, shown=shown, window=window)
        except (ImageError, ValueError, OSError) as exc:
            outcome.failed += _fail([row], f"case {row.case.case_id}: {exc}")
            continue
        except RuntimeError as exc:
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                raise TransientInferenceError(f"GPU out of memory: {exc}") from exc
            outcome.failed += _fail([row], f"model failed on this case: {exc}")
            continue
        timings = {"decode": decoded, **result.timings}
        item = _Prepared(row, slices[0], stack[:0], timings, slices=result.slices)
        t1 = time.perf_counter()
        stored, refused = _store([item], result.probabilities[None], [result.heatmaps], findings)
        timings["database"] = (time.perf_counter() - t1) * 1000
        for stage, ms in timings.items():
            outcome.stage_ms[stage] += ms
        outcome.done += stored
        outcome.refused += refused
        outcome.skipped += 1 - stored - refused
    return outcome


@dataclass
class _Computed:
    items: list[_Prepared]
    probabilities: np.ndarray[Any, Any]
    cams: np.ndarray[Any, Any]


def _run_pipeline(
    loaded: LoadedModel,
    chunks: Sequence[Sequence[PreRead]],
    images: dict[int, Image],
    findings: dict[tuple[int, str], FindingType],
    beat: Callable[[], None],
) -> BatchOutcome:
    """Chunk by chunk, overlapping file work with the model and the database.

    One helper thread decodes the next chunk and encodes the previous chunk's heatmaps (Pillow
    and zlib release the GIL) while this thread runs the model and writes results; the database
    is only touched from this thread, inside its own transactions.
    """
    outcome = BatchOutcome()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="preread-io") as pool:
        next_prepared = pool.submit(_prepare, loaded, chunks[0], images)
        pending: tuple[_Computed, Future[list[bytes]]] | None = None
        for i in range(len(chunks)):
            beat()
            prepared, failures = next_prepared.result()
            if i + 1 < len(chunks):
                next_prepared = pool.submit(_prepare, loaded, chunks[i + 1], images)
            for row, error in failures:
                outcome.failed += _fail([row], error)
            computed = _compute(loaded, prepared, outcome) if prepared else None
            if pending is not None:
                outcome.add(_finish(*pending, findings))
                pending = None
            if computed is not None:
                pending = (computed, pool.submit(_encode, loaded, computed, findings))
        if pending is not None:
            outcome.add(_finish(*pending, findings))
    return outcome


def _prepare(
    loaded: LoadedModel, rows: Sequence[PreRead], images: dict[int, Image]
) -> tuple[list[_Prepared], list[tuple[PreRead, str]]]:
    """Decode and preprocess (no database access: this runs on the helper thread)."""
    prepared: list[_Prepared] = []
    failures: list[tuple[PreRead, str]] = []
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
            failures.append((row, f"case {row.case.case_id}: {exc}"))
            continue
        timings = {"decode": (t1 - t0) * 1000, "preprocess": (t2 - t1) * 1000}
        prepared.append(_Prepared(row, image, x, timings))
    return prepared, failures


def _compute(
    loaded: LoadedModel, prepared: list[_Prepared], outcome: BatchOutcome
) -> _Computed | None:
    """Forward and Grad-CAM for one chunk; a model error fails the chunk's cases."""
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
            raise TransientInferenceError(f"GPU out of memory: {exc}") from exc
        outcome.failed += _fail([p.row for p in prepared], f"model failed on this batch: {exc}")
        return None
    for item in prepared:
        item.timings["forward"] = (t1 - t0) * 1000 / n
        item.timings["gradcam"] = (t2 - t1) * 1000 / n
    return _Computed(prepared, probabilities, cams)


def _encode(
    loaded: LoadedModel, computed: _Computed, findings: dict[tuple[int, str], FindingType]
) -> list[bytes]:
    """Heatmap PNGs on the model's input grid (no database: helper thread).

    The input is the whole displayed image resized, so the map covers the image exactly; the
    viewer stretches it over the image. Grad-CAM's map is coarser still (the target layer's
    grid), so storing it at the image's own size would add bytes and encoding time, not detail.
    """
    pngs = []
    codes = loaded.spec.finding_codes
    for i, item in enumerate(computed.items):
        t0 = time.perf_counter()
        study_id = item.row.case.study_id
        shown = [k for k, code in enumerate(codes) if (study_id, code) in findings] or list(
            range(len(codes))
        )
        combined = gradcam.combine(computed.cams[i][shown], computed.probabilities[i][shown])
        pngs.append(gradcam.encode_png(gradcam.heatmap_image(combined, loaded.spec.input_size)))
        item.timings["encode"] = (time.perf_counter() - t0) * 1000
    return pngs


def _finish(
    computed: _Computed, pngs: Future[list[bytes]], findings: dict[tuple[int, str], FindingType]
) -> BatchOutcome:
    outcome = BatchOutcome()
    encoded = pngs.result()
    n = len(computed.items)
    t0 = time.perf_counter()
    stored, refused = _store(computed.items, computed.probabilities, encoded, findings)
    database = (time.perf_counter() - t0) * 1000 / n
    for item in computed.items:
        for stage, ms in item.timings.items():
            outcome.stage_ms[stage] += ms
        outcome.stage_ms["database"] += database
    outcome.done += stored
    outcome.refused += refused
    outcome.skipped += n - stored - refused
    return outcome


def _store(
    items: Sequence[_Prepared],
    probabilities: np.ndarray[Any, Any],
    pngs: Sequence[bytes],
    findings: dict[tuple[int, str], FindingType],
) -> tuple[int, int]:
    """Write a chunk's results in one transaction, skipping cases another run finished first.

    The studies are locked first (a study locked since the claim gets nothing), then the rows
    are locked and re-read, so a redelivered or concurrent batch never writes a case twice;
    returns how many were written and how many refused.
    """
    with transaction.atomic():
        writable = _writable_studies(item.row.case.study_id for item in items)
        refused = sum(1 for item in items if item.row.case.study_id not in writable)
        rows = PreRead.objects.select_for_update().in_bulk(
            [item.row.pk for item in items if item.row.case.study_id in writable]
        )
        written: list[PreRead] = []
        results: list[PreReadFinding] = []
        now = timezone.now()
        for item, p, png in zip(items, probabilities, pngs, strict=True):
            row = rows.get(item.row.pk)
            if row is None or row.status == PreReadStatus.DONE:
                continue
            row.case = item.row.case  # already loaded: the upload path needs its study
            study_id = row.case.study_id
            name = f"case-{row.case_id}.png"
            # A deterministic name, overwritten: a run killed after writing the file but before
            # committing leaves no second copy behind.
            path = PreRead._meta.get_field("heatmap").generate_filename(row, name)
            row.heatmap.storage.delete(path)
            row.heatmap.save(name, ContentFile(png), save=False)
            results += [
                PreReadFinding(
                    preread=row,
                    finding_type=findings[(study_id, code)],
                    probability=float(np.clip(p[k], 0.0, 1.0)),
                )
                for k, code in enumerate(item.row.model.finding_codes)
                if (study_id, code) in findings
            ]
            row.status = PreReadStatus.DONE
            row.error = ""
            row.finished_at = now
            row.timings = {k: round(v, 3) for k, v in item.timings.items()}
            row.duration_ms = round(sum(item.timings.values()), 3)
            row.heatmap_slices = item.slices
            written.append(row)
        PreReadFinding.objects.filter(preread__in=written).delete()
        PreReadFinding.objects.bulk_create(results)
        # A small UPDATE per row: cheaper than bulk_update's CASE expressions for a chunk.
        for row in written:
            PreRead.objects.filter(pk=row.pk).update(
                heatmap=row.heatmap.name,
                status=row.status,
                error="",
                finished_at=now,
                timings=row.timings,
                duration_ms=row.duration_ms,
                heatmap_slices=row.heatmap_slices,
            )
    return len(written), refused
