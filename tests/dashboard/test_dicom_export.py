"""``manage.py export STUDY --format sr -o DIR``: reads and AI pre-reads as DICOM, read back
with pydicom and highdicom, and checked with dciodvfy (dicom3tools) where it is installed."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from highdicom.sr import ValueTypeValues
from highdicom.sr.utils import find_content_items
from pydicom.sr.codedict import codes

from studyplatform.audit.models import AuditEvent
from studyplatform.dashboard.models import ExportJob
from studyplatform.dashboard.tasks import build_export_job
from studyplatform.reading.models import Reader
from studyplatform.studies.models import Image
from tests.dashboard.dicom_builders import (
    CT_SLICES,
    ENHANCED_FRAMES,
    DicomStudy,
    build_dicom_study,
)
from tests.services import IN_CI

pytestmark = pytest.mark.django_db


@pytest.fixture
def built(tmp_path: Path) -> DicomStudy:
    return build_dicom_study(tmp_path)


def _export(slug: str, out: Path) -> list[dict[str, str]]:
    call_command("export", slug, "--format", "sr", "-o", str(out))
    with (out / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _files(rows: list[dict[str, str]], kind: str, case: str) -> list[dict[str, str]]:
    return [r for r in rows if r["kind"] == kind and r["case"] == case]


def _referenced(region: hd.sr.ImageRegion) -> str:
    return str(region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID)


def test_export_writes_read_and_ai_objects_per_dicom_case(built: DicomStudy, tmp_path: Path):
    rows = _export("dcm", tmp_path / "out")
    for case in ("CR-1", "CT-1"):
        assert len(_files(rows, "read-sr", case)) == 2
        assert len(_files(rows, "ai-sr", case)) == 1
        assert len(_files(rows, "ai-gradcam", case)) == 1
    [png] = [r for r in rows if r["case"] == "PNG-1"]
    assert png["kind"] == "case" and png["file"] == ""
    assert "png without a DICOM header" in png["note"]
    assert not (tmp_path / "out" / "PNG-1").exists()
    for row in rows:
        if row["file"]:
            ds = pydicom.dcmread(tmp_path / "out" / row["file"])
            assert ds.SOPInstanceUID == row["sop_uid"]
            assert ds.StudyInstanceUID == row["study_uid"]


def test_read_sr_holds_calls_confidence_arm_and_marks_on_the_source_instance(
    built: DicomStudy, tmp_path: Path
):
    rows = _export("dcm", tmp_path / "out")
    [row] = [r for r in _files(rows, "read-sr", "CR-1") if r["arm"] == "unassisted"]
    sr = hd.sr.srread(tmp_path / "out" / row["file"])
    image = Image.objects.get(case__case_id="CR-1")
    assert sr.StudyInstanceUID == image.series.study_uid
    observers = [
        i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "121008"
    ]
    assert [str(o.PersonName) for o in observers] == ["R07^"]
    assert b"dr.house" not in (tmp_path / "out" / row["file"]).read_bytes()
    groups = sr.content.get_planar_roi_measurement_groups()
    [mark] = groups
    region = mark.roi
    assert region.graphic_type == hd.sr.GraphicTypeValues.POINT
    assert region.value.tolist() == [[10.5, 20.5]]
    assert _referenced(region) == image.sop_instance_uid
    assert mark.get_measurements(name=codes.DCM.CertaintyOfFinding)[0].value == 90
    image_groups = sr.content.get_image_measurement_groups()
    by_finding = {g.finding_type.value: g for g in image_groups}
    assert set(by_finding) == {"nodule", "effusion"}
    nodule = by_finding["nodule"]
    assert nodule.get_measurements(name=codes.DCM.CertaintyOfFinding)[0].value == 70
    evaluations = {e.name.value: e.value.value for e in nodule.get_qualitative_evaluations()}
    assert evaluations == {"nodule": "121053", "arm": "unassisted"}
    effusion = by_finding["effusion"]
    assert {e.name.value: e.value.value for e in effusion.get_qualitative_evaluations()}[
        "effusion"
    ] == "121054"


def test_ct_marks_reference_the_marked_slice_and_the_map_has_a_frame_per_slice(
    built: DicomStudy, tmp_path: Path
):
    rows = _export("dcm", tmp_path / "out")
    [row] = [r for r in _files(rows, "read-sr", "CT-1") if r["arm"] == "assisted"]
    sr = hd.sr.srread(tmp_path / "out" / row["file"])
    marked = Image.objects.get(case__case_id="CT-1", position=4)
    [mark] = sr.content.get_planar_roi_measurement_groups()
    assert _referenced(mark.roi) == marked.sop_instance_uid
    [seg_row] = _files(rows, "ai-gradcam", "CT-1")
    seg = hd.seg.segread(tmp_path / "out" / seg_row["file"])
    assert seg.NumberOfFrames == CT_SLICES
    slices = Image.objects.filter(case__case_id="CT-1").order_by("slice_number")
    referenced = [
        f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        for f in seg.PerFrameFunctionalGroupsSequence
    ]
    assert sorted(referenced) == sorted(s.sop_instance_uid for s in slices)
    assert seg.FrameOfReferenceUID
    pixels = seg.pixel_array
    assert pixels.shape == (CT_SLICES, 32, 32) and pixels.max() > 0


def test_a_multi_frame_stack_is_referenced_frame_by_frame(built: DicomStudy, tmp_path: Path):
    rows = _export("dcm", tmp_path / "out")
    [row] = [r for r in _files(rows, "read-sr", "ECT-1") if r["arm"] == "assisted"]
    sr = hd.sr.srread(tmp_path / "out" / row["file"])
    marked = Image.objects.get(case__case_id="ECT-1", position=2)
    [mark] = sr.content.get_planar_roi_measurement_groups()
    reference = mark.roi.ContentSequence[0].ReferencedSOPSequence[0]
    assert reference.ReferencedSOPInstanceUID == marked.sop_instance_uid
    assert reference.ReferencedFrameNumber == marked.frame
    [seg_row] = _files(rows, "ai-gradcam", "ECT-1")
    seg = hd.seg.segread(tmp_path / "out" / seg_row["file"])
    assert seg.NumberOfFrames == ENHANCED_FRAMES
    # Each slice's map (slice k's map is 40 * k at most) lies on the frame that holds slice k.
    pixels = np.asarray(seg.pixel_array)
    slice_of_frame = {i.frame: i.slice_number for i in Image.objects.filter(case__case_id="ECT-1")}
    for k, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        source = item.DerivationImageSequence[0].SourceImageSequence[0]
        assert pixels[k].max() == 40 * slice_of_frame[int(source.ReferencedFrameNumber)]


def test_ai_sr_holds_probabilities_calls_and_the_model(built: DicomStudy, tmp_path: Path):
    rows = _export("dcm", tmp_path / "out")
    [row] = _files(rows, "ai-sr", "CR-1")
    sr = hd.sr.srread(tmp_path / "out" / row["file"])
    groups = {g.finding_type.value: g for g in sr.content.get_image_measurement_groups()}
    nodule = groups["nodule"]
    assert nodule.get_measurements(name=codes.DCM.Probability)[0].value == pytest.approx(0.81)
    algorithm = {
        item.ConceptNameCodeSequence[0].CodeMeaning: item.TextValue
        for item in find_content_items(nodule[0], value_type=ValueTypeValues.TEXT, recursive=True)
    }
    assert algorithm["Algorithm Name"] == "chest-ai"
    assert algorithm["Algorithm Version"] == "2.1"
    assert algorithm["Algorithm Parameters"] == f"sha256={'ab' * 32}"
    flagged = {g: groups[g].get_qualitative_evaluations()[0].value.value for g in groups}
    assert flagged == {"nodule": "121053", "effusion": "121054"}
    [seg_row] = _files(rows, "ai-gradcam", "CR-1")
    seg = hd.seg.segread(tmp_path / "out" / seg_row["file"])
    image = Image.objects.get(case__case_id="CR-1")
    assert (seg.Rows, seg.Columns) == (image.rows, image.columns)
    source = seg.SourceImageSequence[0]
    assert source.ReferencedSOPInstanceUID == image.sop_instance_uid
    assert np.asarray(seg.pixel_array).max() > 0


def test_export_again_writes_the_same_files(built: DicomStudy, tmp_path: Path):
    first = _export("dcm", tmp_path / "a")
    second = _export("dcm", tmp_path / "b")
    assert first == second
    for row in first:
        if row["file"]:
            assert (tmp_path / "a" / row["file"]).read_bytes() == (
                tmp_path / "b" / row["file"]
            ).read_bytes()
    events = AuditEvent.objects.filter(action="study.export", study=built.study)
    assert [(e.after or {})["format"] for e in events] == ["sr", "sr"]


def test_export_of_a_locked_study_works(built: DicomStudy, tmp_path: Path):
    study = built.study
    study.state, study.opened_at, study.locked_at = "locked", timezone.now(), timezone.now()
    study.save(update_fields=["state", "opened_at", "locked_at"])
    rows = _export("dcm", tmp_path / "out")
    assert len([r for r in rows if r["kind"] == "read-sr"]) == 6


def test_a_case_whose_original_is_gone_is_listed_and_the_others_written(
    built: DicomStudy, tmp_path: Path
):
    image = Image.objects.get(case__case_id="CR-1")
    image.original.storage.delete(image.original.name)
    rows = _export("dcm", tmp_path / "out")
    [gone] = [r for r in rows if r["case"] == "CR-1"]
    assert gone["file"] == "" and "cannot be read" in gone["note"]
    assert len(_files(rows, "read-sr", "CT-1")) == 2


def test_read_reports_of_either_arm_hold_nothing_from_the_ai(built: DicomStudy, tmp_path: Path):
    rows = _export("dcm", tmp_path / "out")
    for row in (r for r in rows if r["kind"] == "read-sr"):
        sr = hd.sr.srread(tmp_path / "out" / row["file"])
        assert not find_content_items(sr, name=codes.DCM.Probability, recursive=True)
        assert not find_content_items(sr, name=codes.DCM.AlgorithmName, recursive=True)
        data = (tmp_path / "out" / row["file"]).read_bytes()
        assert b"chest-ai" not in data and b"ab" * 32 not in data


def test_sr_export_needs_a_folder_not_a_file(built: DicomStudy, tmp_path: Path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    with pytest.raises(CommandError, match="folder"):
        call_command("export", "dcm", "--format", "sr", "-o", str(target))
    assert target.read_text() == "keep me"


def test_files_pass_dciodvfy(built: DicomStudy, tmp_path: Path):
    binary = shutil.which("dciodvfy")
    if binary is None:
        if IN_CI:
            pytest.fail("dciodvfy is missing; .ci/run installs dicom3tools")
        pytest.skip("dciodvfy is missing (apt-get install dicom3tools)")
    rows = _export("dcm", tmp_path / "out")
    for row in rows:
        if not row["file"]:
            continue
        result = subprocess.run(
            [binary, str(tmp_path / "out" / row["file"])], capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        output = result.stdout + result.stderr
        errors = [line for line in output.splitlines() if line.startswith("Error")]
        assert errors == [], f"{row['file']}:\n{output}"


def _post(client, user, **data):
    client.force_login(user)
    return client.post(reverse("dashboard:export", args=["dcm"]), data)


def test_dashboard_zip_is_for_the_statistician_before_the_lock(
    client, built: DicomStudy, django_capture_on_commit_callbacks
):
    client.force_login(built.coordinator)
    page = client.get(reverse("dashboard:study", args=["dcm"])).content.decode()
    assert 'value="sr"' not in page
    assert _post(client, built.coordinator, format="sr").status_code == 403
    reader = Reader.objects.get(code="R07").user
    assert _post(client, reader, format="sr").status_code == 403
    assert not AuditEvent.objects.filter(action="study.export").exists()
    assert not ExportJob.objects.exists()
    client.force_login(built.statistician)
    page = client.get(reverse("dashboard:study", args=["dcm"])).content.decode()
    assert 'value="sr"' in page and "DICOM SR (zip)" in page
    # The zip is built by the worker (tests/dashboard/test_export_jobs.py): the form queues it.
    with django_capture_on_commit_callbacks(execute=False):
        response = _post(client, built.statistician, format="sr")
    assert response.status_code == 302
    job = ExportJob.objects.get(study=built.study, format="sr")
    assert build_export_job(job_id=job.pk) == "done"
    url = reverse("dashboard:export_download", args=["dcm", job.pk])
    assert url in client.get(reverse("dashboard:study", args=["dcm"])).content.decode()
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="dcm-dicom-sr.zip"'
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        names = archive.namelist()
        rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
        files = [r for r in rows if r["file"]]
        assert sorted(names) == sorted([*(r["file"] for r in files), "manifest.csv"])
        for row in files:
            ds = pydicom.dcmread(io.BytesIO(archive.read(row["file"])))
            assert ds.SOPInstanceUID == row["sop_uid"]
    [event] = AuditEvent.objects.filter(action="study.export", actor=built.statistician)
    assert (event.after or {})["format"] == "sr" and (event.after or {})["via"] == "web"
    assert AuditEvent.objects.filter(action="analysis.interim_view").exists()
