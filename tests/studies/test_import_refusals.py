"""Inputs refused at import are stored once each, audited, shown to the study's coordinators,
and counted in the submission checklist and its flow diagram."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from studyplatform.audit.models import Action, AuditEvent
from studyplatform.dashboard.exports.checklist import build_checklist
from studyplatform.dashboard.exports.flow_svg import flow_svg
from studyplatform.dashboard.selectors.flow import study_flow
from studyplatform.studies.models import ImportRefusal, SiteToken, Study
from studyplatform.studies.services import issue_site_token
from tests.dashboard.builders import build_study
from tests.dicomweb.builders import synthetic_study
from tests.dicomweb.test_stow import _body, _post
from tests.factories import FindingTypeFactory, SiteFactory, StudyFactory, UserFactory
from tests.signing import coordinator
from tests.studies.import_fixtures import pydicom_file, write_import_dir

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(roles):
    study = StudyFactory(slug="lung")
    FindingTypeFactory(study=study, code="nodule", name="Nodule")
    SiteFactory(code="north")
    return study


def _import(study, folder) -> str:
    err = StringIO()
    with pytest.raises(CommandError, match="not imported"):
        call_command("import_cases", study.slug, str(folder), stdout=StringIO(), stderr=err)
    return err.getvalue()


def test_a_malformed_dicom_and_a_bad_manifest_row_are_stored_once(client, study, tmp_path):
    rows = [
        {"case_id": "G1", "site": "north", "images": "good.dcm", "truth_nodule": "1"},
        {"case_id": "B1", "site": "north", "images": "truncated.dcm", "truth_nodule": "0"},
        {"case_id": "B2", "site": "north", "images": "good.dcm", "truth_nodule": "yes"},
    ]
    files = {
        "good.dcm": pydicom_file("MR_small.dcm").read_bytes(),
        "truncated.dcm": pydicom_file("MR_truncated.dcm").read_bytes(),
    }
    folder = write_import_dir(tmp_path / "in", rows, files)
    err = _import(study, folder)

    refusals = {r.item: r for r in ImportRefusal.objects.filter(study=study)}
    assert set(refusals) == {"truncated.dcm", "manifest.csv line 4"}
    assert refusals["truncated.dcm"].reason.startswith("cannot decode pixel data")
    assert refusals["manifest.csv line 4"].reason == "truth_nodule must be 0, 1 or empty, not 'yes'"
    assert {(r.source, r.via, r.actor) for r in refusals.values()} == {
        ("file", "import_cases", None)
    }
    assert "truncated.dcm: cannot decode pixel data" in err  # still reported as before
    events = AuditEvent.objects.filter(action=Action.IMPORT_REFUSED)
    assert sorted((e.after or {})["item"] for e in events) == sorted(refusals)

    _import(study, folder)  # the same refusals again: nothing new
    assert ImportRefusal.objects.filter(study=study).count() == 2
    assert AuditEvent.objects.filter(action=Action.IMPORT_REFUSED).count() == 2

    # The study's coordinator sees them in the admin, read-only; another study's does not.
    client.force_login(coordinator(study))
    listing = client.get(reverse("admin:studies_importrefusal_changelist"))
    assert listing.status_code == 200 and "truncated.dcm" in listing.content.decode()
    one = refusals["truncated.dcm"]
    page = client.get(reverse("admin:studies_importrefusal_change", args=[one.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert (
        client.post(
            reverse("admin:studies_importrefusal_delete", args=[one.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    client.force_login(coordinator(StudyFactory(slug="other"), username="other-coord"))
    listing = client.get(reverse("admin:studies_importrefusal_changelist"))
    assert listing.status_code == 200 and "truncated.dcm" not in listing.content.decode()

    # The checklist's flow diagram and input-quality item count them.
    flow = study_flow(study)
    assert flow.refused == 2 and flow.refused_inputs == {"File import (import_cases)": 2}
    assert "Inputs refused at import: n = 2" in flow_svg(flow)


def test_a_stow_part_that_is_no_dicom_is_stored_once_per_instance(client, study):
    token = issue_site_token(study=study, site=SiteFactory(code="south"), name="router")
    synthetic = synthetic_study(images=1)
    body = _body(synthetic.encoded()[0], b"this is no DICOM")
    assert _post(client, body, token=token).status_code == 202
    [refusal] = ImportRefusal.objects.filter(study=study)
    assert (refusal.source, refusal.item) == ("stow", "part 2")
    assert refusal.reason.startswith("not a readable DICOM instance")
    assert refusal.via.startswith("STOW-RS site token")
    assert _post(client, body, token=token).status_code == 202  # the same push again
    assert ImportRefusal.objects.filter(study=study).count() == 1


def test_the_checklist_reports_the_stored_refusals(study, tmp_path):
    built = build_study("sub", n_readers=2, n_cases=4, findings=("nodule",))
    folder = write_import_dir(
        tmp_path / "in",
        [{"case_id": "B1", "site": "nowhere", "images": "a.dcm"}],
        {"a.dcm": pydicom_file("MR_small.dcm").read_bytes()},
    )
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_cases", "sub", str(folder), stdout=StringIO(), stderr=err)
    items = {i.topic: i for i in build_checklist(built.study).items}
    quality = items["Poor-quality and unavailable inputs"]
    assert not quality.needs_human
    assert any(
        line.startswith("Inputs refused at import")
        and ": 1 (File import (import_cases): 1)" in line
        for line in quality.answer
    )
    # The checklist goes into the submission package: the input is named by its refusal number,
    # never by the file name a site gave it (which may identify a patient).
    [refusal] = ImportRefusal.objects.filter(study=built.study)
    assert refusal.item == "manifest.csv line 2"
    assert quality.tables[0].rows[0][:2] == ["File import (import_cases)", f"#{refusal.pk}"]
    assert "manifest.csv line 2" not in str(quality.tables) + " ".join(quality.answer)


def _arrive(client, slug, case_id, images, *, token=None, **metadata):
    data = {"metadata": json.dumps({"case_id": case_id, **metadata}), "images": images}
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(f"/api/studies/{slug}/cases/", data, **headers)


def _file(name, data):
    return SimpleUploadedFile(name, data, content_type="application/dicom")


def test_arrivals_the_api_refuses_are_stored_once_and_counted(client):
    built = build_study("sub", n_readers=2, n_cases=4, findings=("nodule",))
    staff = coordinator(built.study, "arrivals-coord")
    site = SiteFactory(code="arrivals")
    token = issue_site_token(study=built.study, site=site, name="PACS router")
    good = pydicom_file("MR_small.dcm").read_bytes()
    other_token = issue_site_token(
        study=StudyFactory(slug="elsewhere"), site=SiteFactory(code="east"), name="east router"
    )

    def bogus():
        return _file("scan.dcm", b"not dicom at all" * 20)

    bad = _arrive(client, "sub", "P-1", [_file("a.dcm", good), bogus()], token=token)
    assert bad.status_code == 400  # the answer is the API's, as before
    assert bad.json()["problems"] == [
        {"where": "scan.dcm", "reason": "not a DICOM, PNG or JPEG file"}
    ]
    assert _arrive(client, "sub", "P-2", [_file("a.dcm", good)], token=token).status_code == 201
    taken = _arrive(client, "sub", "P-2", [_file("b.dcm", bogus().read())], token=token)
    assert taken.status_code == 409
    unknown = _arrive(client, "sub", "P-3", [_file("a.dcm", good)], token=token, colour="red")
    assert unknown.json() == {"error": "unknown metadata field(s): colour", "field": "colour"}
    # A token of this study sent to another one: kept with the token's study.
    assert _arrive(client, "elsewhere", "P-4", [bogus()], token=token).status_code == 403
    # ... and the other study's token sent here: kept with the other study, not this one.
    assert _arrive(client, "sub", "P-5", [bogus()], token=other_token).status_code == 403
    # Nobody known sent this: nothing is kept.
    assert _arrive(client, "sub", "P-6", [bogus()], token="not-a-token").status_code == 401
    # The study's coordinator, logged in, is the actor of what they send.
    client.force_login(staff)
    by_hand = _arrive(client, "sub", "bad id!", [_file("a.dcm", good)], site="arrivals")
    assert by_hand.status_code == 400
    client.logout()

    def stored():
        return {
            (r.item, r.reason, r.actor_id, r.via)
            for r in ImportRefusal.objects.filter(study=built.study, source="api")
        }

    rows = stored()
    token_via = f"site token {SiteToken.objects.get(study=built.study).pk}"
    assert rows == {
        ("case P-1, scan.dcm", "not a DICOM, PNG or JPEG file", None, token_via),
        ("case P-2", "case already exists in sub with other images", None, token_via),
        ("case P-3", "unknown metadata field(s): colour", None, token_via),
        (
            "case P-4",
            "this site token is for another study (sent to study elsewhere)",
            None,
            token_via,
        ),
        (
            "metadata",
            "case_id 'bad id!' must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            staff.pk,
            "arrival API (session)",
        ),
    }
    elsewhere = ImportRefusal.objects.exclude(study=built.study).values_list("item", "reason")
    assert list(elsewhere) == [
        ("case P-5", "this site token is for another study (sent to study sub)")
    ]
    assert AuditEvent.objects.filter(action=Action.IMPORT_REFUSED).count() == 6

    # The same bad input again adds nothing.
    again = _arrive(client, "sub", "P-1", [_file("a.dcm", good), bogus()], token=token)
    assert again.status_code == 400 and again.json() == bad.json()
    assert _arrive(client, "elsewhere", "P-4", [bogus()], token=token).status_code == 403
    assert stored() == rows

    # Listed in the admin for the study's coordinator, and counted by the checklist's flow
    # diagram and its input-quality item.
    client.force_login(staff)
    listing = client.get(reverse("admin:studies_importrefusal_changelist")).content.decode()
    assert "case P-1, scan.dcm" in listing and "Arrival API" in listing
    first = ImportRefusal.objects.filter(study=built.study).earliest("pk")
    assert f"#{first.pk}" in listing  # the number the checklist names it by
    client.force_login(built.statistician)
    response = client.post(reverse("dashboard:export", args=["sub"]), {"format": "checklist"})
    assert response.status_code == 200
    checklist = b"".join(response.streaming_content).decode()
    assert "Inputs refused at import: n = 5" in checklist
    assert ": 5 (Arrival API: 5)" in checklist
    assert "scan.dcm" not in checklist  # the sender's file names stay in the admin


def _refused_arrival(client, study) -> ImportRefusal:
    token = issue_site_token(study=study, site=SiteFactory(code="arrivals"), name="router")
    bogus = _file("scan.dcm", b"not dicom at all" * 20)
    assert _arrive(client, study.slug, "P-1", [bogus], token=token).status_code == 400
    return ImportRefusal.objects.get(study=study)


postgresql_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="the trigger is PostgreSQL's"
)


@postgresql_only
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE studies_importrefusal SET reason = 'edited'",
        "DELETE FROM studies_importrefusal",
    ],
)
def test_postgresql_refuses_to_change_or_delete_a_refusal(client, study, sql):
    refusal = _refused_arrival(client, study)
    stored = (refusal.study_id, refusal.item, refusal.reason)
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ImportRefusal.objects.filter(pk=refusal.pk).update(reason="edited")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        refusal.reason = "edited"
        refusal.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ImportRefusal.objects.all().delete()
    # As with reads, a study with refusals is not deleted: not by the ORM's cascade, and the
    # admin says why.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Study.objects.get(pk=study.pk).delete()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    url = reverse("admin:studies_study_delete", args=[study.pk])
    page = client.get(url).content.decode()
    assert "Cannot delete study" in page and "import refusal" in page
    assert client.post(url, {"post": "yes"}).status_code == 403
    kept = ImportRefusal.objects.get(pk=refusal.pk)
    assert (kept.study_id, kept.item, kept.reason) == stored


@pytest.mark.slow
def test_the_demo_rebuilds_its_own_study_with_its_refusals(client, settings, roles):
    settings.DEBUG = True
    call_command("demo", cases=3, stdout=StringIO())
    _refused_arrival(client, Study.objects.get(slug="demo"))
    call_command("demo", cases=3, stdout=StringIO())  # discards the old study, refusals and all
    assert not ImportRefusal.objects.exists()
    assert Study.objects.filter(slug="demo").count() == 1
