"""Real CT and MR series imported through ``manage.py import_cases``: grouped, ordered along the
normal (or by instance number where the scanner gives no common plane), with spacing, thickness,
Hounsfield units, windows, every frame of a multi-frame object in every transfer syntax, and no
identifying value left in what is stored."""

from __future__ import annotations

import contextlib
from io import StringIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.conf import settings
from django.core import serializers
from django.core.management import CommandError, call_command

from studyplatform.studies import volumes
from studyplatform.studies.imaging import read_png
from studyplatform.studies.models import Case, Image, OrderedBy, Series
from tests.factories import SiteFactory, StudyFactory
from tests.studies.import_fixtures import pydicom_file, write_import_dir
from tests.studies.real_series import (
    CT_PARTIAL,
    CT_SERIES,
    EMRI,
    EMRI_MORE,
    ENHANCED_CT,
    MR_SERIES,
    files,
    identifying_values,
    stored_units,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    study = StudyFactory(slug="real")
    SiteFactory(code="north")
    return study


def _stored(image: Image) -> np.ndarray:
    return read_png(image.display.path).astype(np.int64) - image.display_offset


def _slices(case: Case) -> list[Image]:
    return list(case.images.order_by("position"))


def _import(study, tmp_path: Path, cases: dict[str, list[Path]]) -> tuple[str, str]:
    rows: list[dict[str, str]] = []
    data: dict[str, bytes] = {}
    for case_id, paths in cases.items():
        names = [f"{case_id}/{p.name}" for p in paths]
        rows.append({"case_id": case_id, "site": "north", "images": ";".join(names)})
        data |= {name: path.read_bytes() for name, path in zip(names, paths, strict=True)}
    folder = write_import_dir(tmp_path / "in", rows, data)
    out, err = StringIO(), StringIO()
    with contextlib.suppress(CommandError):  # a refused case: its errors are in ``err``
        call_command("import_cases", study.slug, str(folder), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_real_ct_and_mr_series_import_in_order_with_their_geometry(study, tmp_path):
    out, err = _import(
        study,
        tmp_path,
        {
            "CT-1": files(CT_SERIES),
            "MR-1": files(MR_SERIES),
            "CT-GAP": files(CT_PARTIAL),
            "CT-ENH": [pydicom_file(ENHANCED_CT)],
        },
    )

    assert "3 imported" in out
    # A real series with slices missing is refused, naming the gap.
    assert "gap of 202.50 mm between slices 1 and 2" in err
    assert not Case.objects.filter(case_id="CT-GAP").exists()

    ct = Case.objects.get(case_id="CT-1")
    series = ct.series.get()
    assert (ct.modality, ct.manufacturer, ct.manufacturer_model) == (
        "CT",
        "GE MEDICAL SYSTEMS",
        "LightSpeed Ultra",
    )
    assert series.ordered_by == OrderedBy.POSITION
    assert series.normal == [0.0, 0.0, 1.0]
    assert series.slice_spacing == pytest.approx(2.5)
    assert series.slice_thickness == pytest.approx(2.5)
    assert series.pixel_spacing == pytest.approx([0.488281, 0.488281])
    # Sent in file-name order (instance 6 to 10, z falling): stored feet to head.
    slices = _slices(ct)
    assert [s.instance_number for s in slices] == [10, 9, 8, 7, 6]
    assert [s.slice_position for s in slices] == pytest.approx(
        [-1.2375, 1.2625, 3.7625, 6.2625, 8.7625]
    )
    expected = {k: v for p in files(CT_SERIES) for k, v in stored_units(p).items()}
    for image in slices:
        hu = _stored(image)
        assert np.array_equal(hu, expected[(image.instance_number, None)])
        # The scanner's window (40/400 HU) is the slice's own.
        assert (image.window_center - image.display_offset, image.window_width) == (40, 400)
    assert _stored(slices[0]).min() < -100  # real Hounsfield units, below water

    mr = Case.objects.get(case_id="MR-1")
    series = mr.series.get()
    assert (mr.modality, mr.manufacturer) == ("MR", "Philips Medical Systems, Inc.")
    assert series.ordered_by == OrderedBy.INSTANCE_NUMBER
    assert "MR-1: series 700" in out and "ordered by InstanceNumber" in out
    assert series.slice_thickness == pytest.approx(1.2)
    slices = _slices(mr)
    assert [s.instance_number for s in slices] == list(range(1, 8))
    expected = {k: v for p in files(MR_SERIES) for k, v in stored_units(p).items()}
    for image in slices:
        assert np.array_equal(_stored(image), expected[(image.instance_number, None)])
    # MR's window comes from the series' own values: its middle slices' 1st to 99th percentile.
    middle = [expected[(i + 1, None)] for i in volumes.middle_slices(len(slices))]
    assert (series.window_center, series.window_width) == pytest.approx(
        volumes.stack_window(middle)
    )

    enhanced = Case.objects.get(case_id="CT-ENH")
    series = enhanced.series.get()
    slices = _slices(enhanced)
    assert series.ordered_by == OrderedBy.POSITION
    assert [s.frame for s in slices] == [2, 1]  # frame 2 lies 10 mm below frame 1
    assert series.slice_spacing == pytest.approx(10.0)
    assert len({s.original.name for s in slices}) == 1  # one stored file, two slices
    expected = stored_units(pydicom_file(ENHANCED_CT))
    for image in slices:
        assert np.array_equal(_stored(image), expected[(1, image.frame)])
        # The window of the frame's VOI LUT functional group (49/102 HU).
        assert (image.window_center - image.display_offset, image.window_width) == (49, 102)


def test_a_real_multi_frame_mr_imports_alike_from_every_transfer_syntax(study, tmp_path):
    names = (*EMRI, *EMRI_MORE)
    out, _ = _import(study, tmp_path, {f"E{i}": [pydicom_file(n)] for i, n in enumerate(names)})

    assert f"{len(names)} imported" in out
    expected = stored_units(pydicom_file(EMRI[0]))
    syntaxes = set()
    for i in range(len(names)):
        case = Case.objects.get(case_id=f"E{i}")
        slices = _slices(case)
        assert [s.frame for s in slices] == list(range(1, 11))
        for image in slices:
            assert np.array_equal(_stored(image), expected[(1, image.frame)]), (names[i], image)
        syntaxes.add(slices[0].transfer_syntax)
        series = case.series.get()
        assert series.modality == "MR"
        middle = [expected[(1, k + 1)] for k in volumes.middle_slices(10)]
        assert (series.window_center, series.window_width) == pytest.approx(
            volumes.stack_window(middle)
        )
    assert len(syntaxes) == len(names)  # explicit, RLE, JPEG 2000, JPEG-LS, big endian


def test_no_identifying_value_of_the_real_files_is_stored(study, tmp_path):
    received = [*files(CT_SERIES), *files(MR_SERIES), pydicom_file(ENHANCED_CT)]
    _import(
        study,
        tmp_path,
        {
            "CT-1": files(CT_SERIES),
            "MR-1": files(MR_SERIES),
            "CT-ENH": [pydicom_file(ENHANCED_CT)],
        },
    )
    tokens = identifying_values(received)
    assert {"Doe^Peter", "98890234", "Smith^John"} <= tokens  # what the real files carry

    stored = [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]
    assert len(stored) == 5 + 5 + 7 + 7 + 1 + 2  # originals and derivatives
    # Searched byte for byte where long enough to mean something (the enhanced CT's patient ID
    # is "0010", which any file may hold by chance); the headers are checked below.
    long_tokens = [t for t in tokens if len(t) >= 6]
    for path in stored:
        data = path.read_bytes()
        assert [t for t in long_tokens if t.encode() in data] == [], path
    for image in Image.objects.all():
        ds = pydicom.dcmread(image.original.path)
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.PatientName == ds.PatientID == image.case.case_id
        assert not [e.tag for e in ds.iterall() if e.tag.is_private]  # GE's private groups
    dump = serializers.serialize(
        "json", [*Case.objects.all(), *Series.objects.all(), *Image.objects.all()]
    )
    assert [t for t in tokens if t in dump] == []
