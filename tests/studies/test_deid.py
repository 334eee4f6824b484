"""De-identification to the PS3.15 Basic Profile, on real pydicom files with planted PHI."""

import io

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from studyplatform.studies.deid import METHOD, DeidentificationError, deidentify
from tests.studies.import_fixtures import PHI_TOKENS, leaked_tokens, pydicom_file, with_phi


def _deid(data: bytes, *, salt: str = "salt", pseudonym: str = "CASE-1"):
    ds = pydicom.dcmread(io.BytesIO(data))
    result = deidentify(ds, pseudonym=pseudonym, salt=salt)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return ds, result, buffer.getvalue()


def test_planted_identifiers_are_gone_from_the_written_file():
    source = with_phi("CT_small.dcm")
    assert set(leaked_tokens(source)) == set(PHI_TOKENS)  # the plant worked

    ds, _, written = _deid(source)

    assert leaked_tokens(written) == []
    assert ds.preamble == b"\0" * 128
    assert not any(element.tag.is_private for element in ds.iterall())
    assert "RequestAttributesSequence" not in ds
    assert "ImageComments" not in ds and "OtherPatientIDs" not in ds


def test_patient_becomes_the_case_pseudonym_and_the_method_is_recorded():
    ds, _, _ = _deid(with_phi("CT_small.dcm"), pseudonym="LUNG-0007")

    assert (ds.PatientName, ds.PatientID) == ("LUNG-0007", "LUNG-0007")
    assert ds.PatientIdentityRemoved == "YES"
    assert list(ds.DeidentificationMethod) == list(METHOD)
    assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert ds.PatientBirthDate in ("", "00010101")
    assert ds.StudyDate in ("", "00010101")


def test_what_the_study_needs_is_kept():
    original = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds, _, _ = _deid(with_phi("CT_small.dcm"))

    assert (ds.Modality, ds.Manufacturer, ds.ManufacturerModelName) == (
        "CT",
        "GE MEDICAL SYSTEMS",
        "RHAPSODE",
    )
    assert np.array_equal(ds.pixel_array, original.pixel_array)


def test_uids_are_replaced_reproducibly_per_salt_and_consistently_within_a_file():
    original = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    first, _, _ = _deid(with_phi("CT_small.dcm"), salt="study-a")
    again, _, _ = _deid(with_phi("CT_small.dcm"), salt="study-a")
    other, _, _ = _deid(with_phi("CT_small.dcm"), salt="study-b")

    assert first.SOPInstanceUID != original.SOPInstanceUID
    assert first.StudyInstanceUID != original.StudyInstanceUID
    assert first.SOPInstanceUID == again.SOPInstanceUID
    assert first.SOPInstanceUID != other.SOPInstanceUID
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID


def test_compressed_pixel_data_stays_compressed_and_decodes_the_same():
    source = with_phi("MR_small_jp2klossless.dcm")
    original = pydicom.dcmread(pydicom_file("MR_small_jp2klossless.dcm"))

    _, _, written = _deid(source)

    stored = pydicom.dcmread(io.BytesIO(written))
    assert stored.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert np.array_equal(stored.pixel_array, original.pixel_array)
    assert leaked_tokens(written) == []


def test_burned_in_annotation_is_reported():
    _, result, _ = _deid(pydicom_file("JPGLosslessP14SV1_1s_1f_8b.dcm").read_bytes())
    assert result.burned_in_annotation == "NO"

    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    ds.BurnedInAnnotation = "YES"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    _, result, _ = _deid(buffer.getvalue())
    assert result.burned_in_annotation == "YES"


def test_a_name_left_where_the_profile_does_not_look_stops_the_file():
    ds = pydicom.dcmread(io.BytesIO(with_phi("MR_small.dcm")))
    ds.BodyPartExamined = "QUIXOTE"  # retained by the profile: the check must catch it
    with pytest.raises(DeidentificationError, match="BodyPartExamined"):
        deidentify(ds, pseudonym="CASE-1", salt="salt")


def test_a_name_word_that_is_also_an_image_type_term_does_not_stop_a_real_file():
    # NEMA's enhanced CT sample: patient "Perfusion^MCA Stroke", ImageType ...PERFUSION, RCBF.
    ds, _, written = _deid(pydicom_file("eCT_Supplemental.dcm").read_bytes())
    assert "PERFUSION" in ds.ImageType
    assert ds.PatientName == "CASE-1"
    assert b"Stroke" not in written


def test_names_inside_nested_sequences_are_removed():
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    inner = Dataset()
    inner.PatientName = "Quixote^Alonso"
    outer = Dataset()
    outer.ReferencedPatientSequence = [inner]
    ds.ReferencedStudySequence = [outer]

    deidentify(ds, pseudonym="CASE-1", salt="salt")

    buffer = io.BytesIO()
    ds.save_as(buffer)
    assert leaked_tokens(buffer.getvalue()) == []
