"""CT and MR series: slices grouped into series, put in order along the normal, checked for gaps
and duplicates; multi-frame objects as one series; de-identified UIDs; re-imports unchanged."""

from __future__ import annotations

import io
import random
from io import StringIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.management import CommandError, call_command

from studyplatform.studies.imaging import read_png
from studyplatform.studies.importing import Upload
from studyplatform.studies.models import Case, Image, OrderedBy, Series
from studyplatform.studies.services import CaseConflictError, ImportRefusedError, import_case
from tests.factories import SiteFactory, StudyFactory
from tests.studies.import_fixtures import png_with_phi
from tests.studies.volume_fixtures import (
    ROD_START,
    ct_series,
    ct_slice,
    enhanced_ct,
    rod_column,
    write_files,
)

pytestmark = pytest.mark.django_db

STUDY_UID = "1.2.826.0.1.3680043.8.498.77.1"
CHEST = "1.2.826.0.1.3680043.8.498.77.1.2"
LUNG = "1.2.826.0.1.3680043.8.498.77.1.3"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The import folder (media are stored beside it, in tmp_path/media)."""
    path = tmp_path / "import"
    path.mkdir()
    return path


@pytest.fixture
def study():
    study = StudyFactory(slug="ct")
    SiteFactory(code="north")
    return study


def _manifest(folder: Path, names: list[str]) -> None:
    (folder / "manifest.csv").write_text(f"case_id,site,images\nCT-1,north,{';'.join(names)}\n")


def _hu(image: Image) -> np.ndarray:
    return read_png(image.display.path).astype(np.int64) - image.display_offset


def _import(study, files: dict[str, bytes], modality: str | None = None):
    uploads = [Upload(name, data) for name, data in files.items()]
    return import_case(
        study=study, case_id="CT-1", site_code="north", uploads=uploads, modality=modality
    )


def test_shuffled_files_of_two_series_are_stored_as_two_ordered_stacks(study, folder):
    files = {
        f"chest/{i:03d}.dcm": d
        for i, d in enumerate(ct_series(12, study_uid=STUDY_UID, series_uid=CHEST))
    }
    lung = ct_series(5, study_uid=STUDY_UID, series_uid=LUNG, series_number=3, spacing=5.0)
    files |= {f"lung/{i}.dcm": d for i, d in enumerate(lung)}
    names = list(files)
    random.Random(7).shuffle(names)
    write_files(folder, files)
    _manifest(folder, names)

    call_command("import_cases", study.slug, str(folder), stdout=StringIO(), stderr=StringIO())

    case = Case.objects.get()
    chest, lung_series = Series.objects.filter(case=case).order_by("position")
    assert (chest.number, lung_series.number) == (2, 3)
    assert chest.ordered_by == OrderedBy.POSITION
    assert chest.normal == [0.0, 0.0, 1.0]
    assert chest.slice_spacing == pytest.approx(2.5)
    assert lung_series.slice_spacing == pytest.approx(5.0)
    assert chest.pixel_spacing == [0.7, 0.7] and chest.slice_thickness == 2.5
    assert (chest.modality, chest.body_part) == ("CT", "CHEST")
    slices = list(chest.slices.order_by("slice_number"))
    assert [s.slice_number for s in slices] == list(range(1, 13))
    assert [s.slice_position for s in slices] == pytest.approx([-50 + 2.5 * i for i in range(12)])
    # The pixels prove the order: slice k shows the rod at column ROD_START + k.
    assert [rod_column(_hu(s)) - ROD_START for s in slices] == list(range(12))
    assert _hu(slices[0]).min() == -1000 and _hu(slices[0]).max() == 1000
    # Positions in the case run series by series.
    assert [im.position for im in case.images.order_by("position")][:13] == list(range(1, 14))
    assert case.images.get(position=13).series == lung_series


def test_uids_are_replaced_consistently_and_never_the_originals(study, folder):
    files = {
        f"{i}.dcm": d for i, d in enumerate(ct_series(3, study_uid=STUDY_UID, series_uid=CHEST))
    }
    files["lung.dcm"] = ct_slice(0, study_uid=STUDY_UID, series_uid=LUNG, series_number=3)
    _import(study, files)

    chest, lung = Series.objects.order_by("position")
    originals = {STUDY_UID, CHEST, LUNG}
    assert chest.study_uid == lung.study_uid  # one study, replaced the same way
    assert {chest.study_uid, chest.series_uid, lung.series_uid}.isdisjoint(originals)
    assert chest.series_uid != lung.series_uid
    image = chest.slices.get(slice_number=1)
    stored = pydicom.dcmread(image.original.path)
    assert stored.SeriesInstanceUID == chest.series_uid
    assert stored.StudyInstanceUID == chest.study_uid
    assert stored.SOPInstanceUID == image.sop_instance_uid
    assert "VOL-PATIENT-1" not in image.original.open("rb").read().decode("latin-1")


def test_a_multi_frame_object_is_one_series_ordered_by_its_frames_positions(study):
    order = [3, 0, 5, 1, 4, 2]  # frame f holds slice order[f]
    data = enhanced_ct(6, study_uid=STUDY_UID, series_uid=CHEST, frame_order=order)
    _import(study, {"enhanced.dcm": data})

    series = Series.objects.get()
    slices = list(series.slices.order_by("slice_number"))
    assert series.ordered_by == OrderedBy.POSITION
    assert series.slice_spacing == pytest.approx(1.25)
    assert series.pixel_spacing == [0.5, 0.5]
    assert [s.frame for s in slices] == [order.index(k) + 1 for k in range(6)]
    assert [rod_column(_hu(s)) - ROD_START for s in slices] == list(range(6))
    # Rescaled by the shared functional groups: air is -1000 HU.
    assert _hu(slices[0]).min() == -1000
    # The de-identified file is stored once, however many frames refer to it.
    assert len({s.original.name for s in slices}) == 1


def test_a_gap_in_a_series_is_refused_naming_the_series_and_the_slices(study):
    slices = ct_series(8, study_uid=STUDY_UID, series_uid=CHEST)
    del slices[4]
    with pytest.raises(ImportRefusedError) as refused:
        _import(study, {f"s{i}.dcm": d for i, d in enumerate(slices)})

    (problem,) = refused.value.problems
    assert problem.where == "series 2 (from s0.dcm)"
    assert "gap of 5.00 mm between slices 4 and 5 (s3.dcm, s4.dcm)" in problem.reason
    assert "spacing is 2.50 mm" in problem.reason
    assert not Case.objects.exists()


def test_a_slice_sent_twice_is_refused_as_a_duplicate(study):
    slices = ct_series(4, study_uid=STUDY_UID, series_uid=CHEST)
    copy = ct_slice(2, study_uid=STUDY_UID, series_uid=CHEST, instance_number=99)
    with pytest.raises(ImportRefusedError, match=r"slices 3 and 4 .* same position"):
        _import(study, {**{f"s{i}.dcm": d for i, d in enumerate(slices)}, "copy.dcm": copy})


def test_without_positions_slices_are_ordered_by_instance_number_and_the_import_says_so(
    study, folder
):
    files = {
        f"{i}.dcm": ct_slice(i, study_uid=STUDY_UID, series_uid=CHEST, position=False)
        for i in (2, 0, 3, 1)
    }
    write_files(folder, files)
    _manifest(folder, list(files))
    out = StringIO()
    call_command("import_cases", study.slug, str(folder), stdout=out, stderr=StringIO())

    series = Series.objects.get()
    assert series.ordered_by == OrderedBy.INSTANCE_NUMBER
    assert series.slice_spacing is None
    assert "case CT-1: series 2 (from 2.dcm): slices ordered by InstanceNumber" in out.getvalue()
    slices = series.slices.order_by("slice_number")
    assert [s.instance_number for s in slices] == [1, 2, 3, 4]


def test_importing_the_series_again_in_another_order_changes_nothing(study, folder):
    files = {
        f"{i}.dcm": d for i, d in enumerate(ct_series(6, study_uid=STUDY_UID, series_uid=CHEST))
    }
    write_files(folder, files)
    names = list(files)
    _manifest(folder, names)
    call_command("import_cases", study.slug, str(folder), stdout=StringIO(), stderr=StringIO())
    _manifest(folder, names[::-1])
    out = StringIO()
    call_command("import_cases", study.slug, str(folder), stdout=out, stderr=StringIO())

    assert "0 imported, 1 unchanged" in out.getvalue()
    assert Image.objects.count() == 6 and Series.objects.count() == 1


def test_an_mr_series_gets_its_own_window_from_its_middle_slices(study):
    files = {
        f"{i}.dcm": ct_slice(i, study_uid=STUDY_UID, series_uid=CHEST, modality="MR", size=40)
        for i in range(9)
    }
    _import(study, files)

    series = Series.objects.get()
    assert series.modality == "MR"
    middle = [series.slices.get(slice_number=n) for n in (4, 5, 6)]
    values = np.concatenate([_hu(s).ravel() for s in middle])
    low, high = np.percentile(values, [1, 99])
    assert series.window_center == pytest.approx((low + high) / 2)
    assert series.window_width == pytest.approx(high - low)


def test_a_radiograph_is_a_series_of_one_slice(study):
    data = pydicom.dcmread(io.BytesIO(ct_slice(0, study_uid=STUDY_UID, series_uid=CHEST)))
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "InstanceNumber"):
        delattr(data, keyword)
    data.ViewPosition = "LL"  # what a hanging protocol's rule can place by
    buffer = io.BytesIO()
    data.save_as(buffer, enforce_file_format=True)
    _import(study, {"one.dcm": buffer.getvalue()})

    series = Series.objects.get()
    assert series.slices.count() == 1
    assert series.ordered_by == OrderedBy.RECEIVED
    assert series.view_position == "LL"


def test_a_refused_case_reports_through_the_command(study, folder):
    slices = ct_series(5, study_uid=STUDY_UID, series_uid=CHEST)
    files = {f"{i}.dcm": d for i, d in enumerate(slices) if i != 2}
    write_files(folder, files)
    _manifest(folder, list(files))
    err = StringIO()
    with pytest.raises(CommandError, match="not imported"):
        call_command("import_cases", study.slug, str(folder), stdout=StringIO(), stderr=err)
    assert "series 2 (from 0.dcm): gap of 5.00 mm between slices 2 and 3" in err.getvalue()


def test_images_kept_in_the_order_received_must_come_again_in_that_order(study):
    first, second = png_with_phi(np.full((8, 8), 10, np.uint16)), png_with_phi()
    _import(study, {"a.png": first, "b.png": second}, "DX")
    assert Series.objects.get().ordered_by == OrderedBy.RECEIVED

    assert not _import(study, {"a.png": first, "b.png": second}, "DX").created
    with pytest.raises(CaseConflictError, match="with other images"):
        _import(study, {"b.png": second, "a.png": first}, "DX")
