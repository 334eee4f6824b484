"""Chest CT phantoms: deterministic, in Hounsfield units, nodules where they are said to be,
and written as a DICOM series that the ordinary import stores as one ordered stack."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from studyplatform.studies.imaging import read_png
from studyplatform.studies.importing import Upload
from studyplatform.studies.models import Image, OrderedBy, Series
from studyplatform.studies.phantoms_ct import VENDORS, generate_ct_phantom
from studyplatform.studies.phantoms_ct_dicom import ct_series_files
from studyplatform.studies.services import import_case
from tests.factories import SiteFactory, StudyFactory


def test_a_seed_gives_the_same_volume_and_nodules():
    a = generate_ct_phantom(seed=5, n_nodules=2, vendor=1, size=64, slices=16)
    b = generate_ct_phantom(seed=5, n_nodules=2, vendor=1, size=64, slices=16)
    other = generate_ct_phantom(seed=6, n_nodules=2, vendor=1, size=64, slices=16)
    assert np.array_equal(a.volume, b.volume) and a.nodules == b.nodules
    assert not np.array_equal(a.volume, other.volume)


def test_tissues_have_their_hounsfield_units():
    phantom = generate_ct_phantom(seed=3, n_nodules=0, vendor=0, size=128, slices=24)
    middle = phantom.volume[12].astype(np.float64)
    assert phantom.volume.dtype == np.int16
    assert np.median(middle[:4, :]) == pytest.approx(-1000, abs=40)  # air above the patient
    assert middle.max() >= 700  # cortical bone (spine, ribs)
    centre = middle[64 - 8 : 64 + 8, 64 - 8 : 64 + 8]  # the mediastinum: soft tissue, blood
    assert 0 < np.median(centre) < 80
    # A lung: the left half of the body's middle row, mostly parenchyma near -850 HU.
    lung = middle[60:68, 30:42]
    assert -900 < np.median(lung) < -780


def test_nodules_are_solid_spheroids_inside_the_lungs_with_their_stated_size():
    phantom = generate_ct_phantom(seed=11, n_nodules=3, vendor=1, size=256, slices=64)
    assert len(phantom.nodules) == 3
    for nodule in phantom.nodules:
        assert 2.0 <= nodule.radius_mm <= 11.5  # 4-20 mm across, a little ovoid
        assert nodule.radius_px == pytest.approx(nodule.radius_mm / phantom.pixel_spacing, 0.01)
        plane = phantom.volume[nodule.slice].astype(np.float64)
        row, col = round(nodule.y), round(nodule.x)
        assert -150 < plane[row, col] < 220  # solid (0-100 HU) plus noise
        # Around it, at twice its radius, lung parenchyma.
        ring = [
            plane[round(nodule.y + 2.5 * nodule.radius_px * np.sin(a)),
                  round(nodule.x + 2.5 * nodule.radius_px * np.cos(a))]
            for a in np.linspace(0, 2 * np.pi, 16, endpoint=False)
        ]  # fmt: skip
        assert np.median(ring) < -500
        # Beyond its depth it is gone: the slice after its extent shows lung at its centre.
        after = nodule.slice + nodule.depth + 2
        if after < phantom.volume.shape[0]:
            assert phantom.volume[after, row, col] < -400
    labels = phantom.nodule_slices()
    assert labels.sum() >= 3 and not labels.all()


def test_vendors_differ_in_noise_thickness_and_spacing():
    soft = generate_ct_phantom(seed=2, n_nodules=0, vendor=0, size=128, slices=16)
    sharp = generate_ct_phantom(seed=2, n_nodules=0, vendor=1, size=128, slices=16)
    assert (soft.slice_thickness, sharp.slice_thickness) == (2.5, 1.25)
    assert soft.pixel_spacing != sharp.pixel_spacing
    air = (slice(None), slice(0, 6), slice(None))
    assert np.std(sharp.volume[air]) > 1.5 * np.std(soft.volume[air])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="n_nodules"):
        generate_ct_phantom(seed=1, n_nodules=4)
    with pytest.raises(ValueError, match="vendor"):
        generate_ct_phantom(seed=1, n_nodules=0, vendor=len(VENDORS))


@pytest.mark.django_db
def test_the_dicom_series_goes_through_the_import_as_one_ordered_stack():
    phantom = generate_ct_phantom(seed=8, n_nodules=1, vendor=1, size=64, slices=12)
    files = ct_series_files(phantom, patient_id="PHANTOM-8")
    header = pydicom.dcmread(__import__("io").BytesIO(files[0].data))
    assert header.SOPClassUID == pydicom.uid.CTImageStorage
    assert (header.RescaleIntercept, header.RescaleSlope) == (-1024, 1)
    assert header.Manufacturer == VENDORS[1].manufacturer and header.BodyPartExamined == "CHEST"
    study = StudyFactory(slug="ct-phantom")
    SiteFactory(code="north")
    shuffled = [Upload(f.name, f.data) for f in reversed(files)]

    result = import_case(study=study, case_id="CT-8", site_code="north", uploads=shuffled)

    series = Series.objects.get(case=result.case)
    assert result.case.modality == "CT" and result.case.manufacturer == VENDORS[1].manufacturer
    assert series.ordered_by == OrderedBy.POSITION
    assert series.slice_spacing == pytest.approx(1.25) and series.slice_thickness == 1.25
    assert series.pixel_spacing == pytest.approx([phantom.pixel_spacing] * 2, abs=1e-5)
    slices: list[Image] = list(series.slices.order_by("slice_number"))
    assert [s.slice_number for s in slices] == list(range(1, 13))
    # Slice k of the phantom is slice number k + 1 of the stored stack, value for value.
    for k, image in enumerate(slices):
        hu = read_png(image.display.path).astype(np.int64) - image.display_offset
        assert np.array_equal(hu, np.clip(phantom.volume[k], -1024, None))
