"""The CT demo model: a 2.5-D spec, training that runs, and the pre-read of a CT case, which
reads every slice, takes the case's probability as the maximum over them, and stores a heatmap
per slice."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from studyplatform.prereads import demo_model_ct
from studyplatform.prereads.demo_model_ct.training import demo_ct_spec, train
from studyplatform.prereads.heatmaps import slice_heatmap
from studyplatform.prereads.inference import load_model, preprocess_stack, slice_inputs
from studyplatform.prereads.models import PreRead, PreReadStatus
from studyplatform.prereads.registry import register_demo_ct_model
from studyplatform.prereads.services import pin_model, run_prereads_now
from studyplatform.prereads.spec import SpecError, parse_spec
from studyplatform.studies.importing import Upload
from studyplatform.studies.phantoms_ct import generate_ct_phantom
from studyplatform.studies.phantoms_ct_dicom import ct_series_files
from studyplatform.studies.services import import_case
from tests.factories import SiteFactory, StudyFactory


def test_a_slices_spec_takes_odd_channels_and_keeps_image_specs_as_they_were():
    spec = demo_ct_spec()
    assert (spec.input_kind, spec.channels, spec.neighbours) == ("slices", 3, 1)
    assert parse_spec(spec.as_json()) == spec
    image = parse_spec({"finding_codes": ["nodule"], "input_size": [64, 64]})
    assert image.input_kind == "image" and "input_kind" not in image.as_json()
    with pytest.raises(SpecError, match="channels"):
        parse_spec(spec.as_json() | {"channels": 2})
    with pytest.raises(SpecError, match=r"'volume' input must be \[depth, rows, columns\]"):
        parse_spec(spec.as_json() | {"input_kind": "volume"})
    with pytest.raises(SpecError, match="input_kind"):
        parse_spec(spec.as_json() | {"input_kind": "movie"})


def test_a_slice_has_its_neighbours_as_channels_repeated_at_the_ends():
    stack = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 2, 2), np.float32)
    x = slice_inputs(stack, range(4), 1)
    assert x.shape == (4, 3, 2, 2)
    assert [list(x[k, :, 0, 0]) for k in range(4)] == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]


def test_training_a_tiny_model_for_one_epoch_writes_weights_and_spec(tmp_path: Path):
    torch.set_num_threads(1)
    report = train(out_dir=tmp_path, n_train=3, n_held_out=4, epochs=1, log=lambda _: None)
    assert report.n_samples > 0 and report.weights.stat().st_size < 1_000_000
    assert parse_spec(__import__("json").loads(report.spec.read_text())) == demo_ct_spec()
    state = torch.load(report.weights, weights_only=True)
    assert set(state) == set(demo_model_ct.DemoCtCNN().state_dict())


def test_the_shipped_weights_are_small_and_fit_their_spec():
    assert demo_model_ct.WEIGHTS.stat().st_size < 1_000_000
    load_model(
        path=demo_model_ct.WEIGHTS,
        fmt="factory",
        spec=parse_spec(demo_model_ct.spec()),
        factory=demo_model_ct.FACTORY,
    )


@pytest.mark.django_db
def test_the_preread_of_a_ct_case_reads_every_slice_and_stores_a_heatmap_per_slice():
    study = StudyFactory(slug="ct-preread")
    SiteFactory(code="north")
    study.finding_types.create(code="nodule", name="Lung nodule", order=1)
    phantom = generate_ct_phantom(seed=4_100_000_001, n_nodules=2, vendor=0, size=96, slices=10)
    files = ct_series_files(phantom, patient_id="CT-P1")
    case = import_case(
        study=study, case_id="CT-P1", site_code="north",
        uploads=[Upload(f.name, f.data) for f in files],
    ).case  # fmt: skip
    model = register_demo_ct_model()
    pin_model(study=study, model=model)

    outcome = run_prereads_now(study=study)
    again = run_prereads_now(study=study)

    assert (outcome.done, outcome.failed, again.done) == (1, 0, 0)
    preread = PreRead.objects.get(case=case)
    assert preread.status == PreReadStatus.DONE and preread.heatmap_slices == 10
    stacked = preread.heatmap.open("rb").read()
    with PILImage.open(io.BytesIO(stacked)) as image:
        assert image.size == (128, 10 * 128)
    one = slice_heatmap(stacked, slices=10, index=3)
    with PILImage.open(io.BytesIO(one)) as image:
        assert image.size == (128, 128)
    # The case's probability is the maximum of the slices' (computed here independently).
    spec = parse_spec(model.spec)
    loaded = load_model(path=model.path, fmt="factory", spec=spec, factory=model.factory)
    x = slice_inputs(preprocess_stack(phantom.volume, spec), range(10), spec.neighbours)
    with torch.no_grad():
        per_slice = torch.sigmoid(loaded.module(torch.from_numpy(x))).numpy()[:, 0]
    stored = preread.findings.get().probability
    assert stored == pytest.approx(float(per_slice.max()), abs=1e-4)
    assert set(preread.timings) >= {"decode", "forward", "gradcam", "encode"}
