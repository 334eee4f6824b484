"""``volume`` (3-D) models: registered through the command (bad models refused, naming why),
pre-read through the Celery task on an imported CT series, each slice's heatmap where the
model looked; the resampling policy's grid and its inverse."""

from __future__ import annotations

import dataclasses
import io
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from studyplatform.prereads.heatmaps import slice_heatmap
from studyplatform.prereads.models import AIModel, PreRead, PreReadStatus
from studyplatform.prereads.services import pin_model, request_prereads
from studyplatform.prereads.spec import SpecError, parse_spec
from studyplatform.prereads.tasks import run_preread_batch
from studyplatform.prereads.volume import fit, plan_grid, to_slices
from studyplatform.studies.importing import Upload
from studyplatform.studies.models import Case, Study
from studyplatform.studies.phantoms_ct import generate_ct_phantom
from studyplatform.studies.phantoms_ct_dicom import ct_series_files
from studyplatform.studies.services import import_case
from tests.factories import SiteFactory, StudyFactory
from tests.prereads import volume_models
from tests.prereads.volume_models import SPEC, FlatMapCNN, PlaneCNN, TinyVolumeCNN

SLICES, SIZE = 12, 32
CUBE = (slice(6, 11), slice(20, 28), slice(4, 12))  # slices 7-11 (from 1), rows, columns


def register(folder: Path, module, name: str = "tiny-volume", spec=None) -> str:
    path = volume_models.save(module, folder, name, spec)
    out = StringIO()
    call_command(
        "register_model", name, "1", str(path), "--format", "torchscript",
        "--spec", str(folder / f"{name}.json"), stdout=out,
    )  # fmt: skip
    return out.getvalue()


def ct_case(study: Study, case_id: str, *, cube: bool) -> Case:
    """An imported CT series of air, with a +200 HU cube in ``CUBE`` if ``cube``."""
    phantom = generate_ct_phantom(seed=4_200_000_001, n_nodules=0, size=SIZE, slices=SLICES)
    volume = np.full((SLICES, SIZE, SIZE), -1000, dtype=np.int16)
    if cube:
        volume[CUBE] = 200
    files = ct_series_files(dataclasses.replace(phantom, volume=volume), patient_id=case_id)
    return import_case(
        study=study, case_id=case_id, site_code="north",
        uploads=[Upload(f.name, f.data) for f in files],
    ).case  # fmt: skip


def test_a_volume_spec_takes_depth_rows_columns_and_its_own_window():
    spec = parse_spec(SPEC | {"spacing": [5, 1.5, 1.5]})
    assert (spec.grid, spec.input_size, spec.spacing) == ((8, 16, 16), (16, 16), (5.0, 1.5, 1.5))
    assert parse_spec(spec.as_json()) == spec
    assert spec.as_json()["input_size"] == [8, 16, 16]
    with pytest.raises(SpecError, match=r"'volume' input must be \[depth, rows, columns\]"):
        parse_spec(SPEC | {"input_size": [16, 16]})
    with pytest.raises(SpecError, match="spacing applies to a 'volume' input only"):
        parse_spec({"finding_codes": ["nodule"], "input_size": [16, 16], "spacing": [1, 1, 1]})
    with pytest.raises(SpecError, match="spacing must be"):
        parse_spec(SPEC | {"spacing": [5, 0, 1]})
    with pytest.raises(SpecError, match="'hu_window' needs a positive width"):
        parse_spec(SPEC | {"normalization": {"mode": "hu_window", "center": 40}})


@pytest.mark.django_db
def test_register_model_refuses_volume_models_of_the_wrong_shape_naming_it(tmp_path: Path):
    with pytest.raises(CommandError, match=r"shape \(2, 1, 8, 16, 16\).*rank 5"):
        register(tmp_path, PlaneCNN(), "plane")
    with pytest.raises(CommandError, match=r"outputs shape \(2, 3\).*expected \(2, 1\)"):
        register(tmp_path, TinyVolumeCNN(findings=3), "three")
    with pytest.raises(CommandError, match=r"map of a 'volume' model .*rank 5.*\(2, 2, 16, 16\)"):
        register(tmp_path, FlatMapCNN(), "flat")
    assert not AIModel.objects.exists()

    assert "Registered tiny-volume 1 (torchscript" in register(tmp_path, TinyVolumeCNN())
    assert AIModel.objects.get().spec["input_kind"] == "volume"


@pytest.mark.django_db
def test_the_task_preread_of_a_ct_series_lights_the_slices_where_the_model_looked(
    tmp_path: Path,
):
    study = StudyFactory(slug="volume-preread")
    SiteFactory(code="north")
    study.finding_types.create(code="nodule", name="Lung nodule", order=1)
    with_cube, empty = ct_case(study, "V1", cube=True), ct_case(study, "V2", cube=False)
    register(tmp_path, TinyVolumeCNN())
    model = AIModel.objects.get(name="tiny-volume")
    pin_model(study=study, model=model)
    request_prereads(study=study, model=model)  # queued after commit: the test runs the task
    ids = list(PreRead.objects.values_list("pk", flat=True))

    first = run_preread_batch(preread_ids=ids)
    second = run_preread_batch(preread_ids=ids)

    assert (first["done"], first["failed"], second["done"], second["skipped"]) == (2, 0, 0, 2)
    cube_read, empty_read = (PreRead.objects.get(case=c) for c in (with_cube, empty))
    assert {cube_read.status, empty_read.status} == {PreReadStatus.DONE}
    assert cube_read.heatmap_slices == empty_read.heatmap_slices == SLICES
    assert cube_read.findings.get().probability > empty_read.findings.get().probability
    assert set(cube_read.timings) >= {"decode", "preprocess", "forward", "gradcam", "encode"}
    stacked = cube_read.heatmap.open("rb").read()
    maps = []
    for k in range(SLICES):
        with PILImage.open(io.BytesIO(slice_heatmap(stacked, slices=SLICES, index=k))) as one:
            assert one.size == (16, 16)  # the spec's rows and columns, stretched by the viewer
            maps.append(np.asarray(one))
    peaks = [int(m.max()) for m in maps]
    # Lit on the cube's slices (7-11), dark far from it: the 3-D map is back on its slices.
    assert min(peaks[7:10]) > 150 and min(peaks[6:11]) > 0 and max(peaks[:4]) == 0, peaks
    row, column = np.unravel_index(np.argmax(maps[8]), maps[8].shape)
    assert 10 <= row < 14 and 2 <= column < 6  # the cube's rows 20-27, columns 4-11, halved
    with PILImage.open(empty_read.heatmap.open("rb")) as image:
        assert np.asarray(image).max() == 0


def test_a_fixed_spacing_resamples_then_crops_and_maps_back_zero_where_cropped():
    spec = parse_spec(SPEC | {"spacing": [5.0, 1.0, 1.0], "input_size": [16, 16, 16]})
    # 40 slices 2.5 mm apart, 0.5 mm pixels: 20 x 16 x 16 at the spec's spacing, 2 cropped each end.
    plan = plan_grid((40, 32, 32), spec, spacing=(2.5, 0.5, 0.5))
    assert (plan.scaled, plan.grid) == ((20, 16, 16), (16, 16, 16))
    back = to_slices(np.ones((4, 4, 4), np.float32), plan, (16, 16))
    assert back.shape == (40, 16, 16)
    assert back[:3].max() == 0 and back[-3:].max() == 0 and back[12:28].min() == 1
    # A short series is padded: the padding holds the fill, the series sits in the middle.
    short = plan_grid((8, 16, 16), spec, spacing=(5.0, 1.0, 1.0))
    padded = fit(np.zeros(short.scaled, np.float32), short, fill=-1.0)
    assert padded[:4].min() == -1 and padded[4:12].max() == 0 and padded[12:].min() == -1
    with pytest.raises(ValueError, match="the series has no slice spacing"):
        plan_grid((40, 32, 32), spec, spacing=(None, 0.5, 0.5))
    with pytest.raises(ValueError, match="the series has no pixel spacing"):
        plan_grid((40, 32, 32), spec, spacing=None)
