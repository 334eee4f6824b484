"""import_truth with lesion locations: one row per lesion, checked against the case's images."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command

from studyplatform.studies.models import Image, Series, Truth
from tests.factories import CaseFactory, FindingTypeFactory, StudyFactory

pytestmark = pytest.mark.django_db

HEADER = "case_id,finding,present,lesion,image,x,y,radius,weight\n"


@pytest.fixture
def study():
    study = StudyFactory(slug="froc")
    FindingTypeFactory(study=study, code="nodule")
    for case_id in ("A1", "A2"):
        case = CaseFactory(study=study, case_id=case_id)
        image = Image(case=case, series=Series.objects.first_of(case), position=1,
                      sha256="0" * 64, rows=100, columns=200,
                      window_center=2048, window_width=4096)  # fmt: skip
        image.original.save(f"{case_id}.dcm", ContentFile(b"x"), save=False)
        image.display.save(f"{case_id}.png", ContentFile(b"x"), save=False)
        image.save()
    return study


def _run(study, tmp_path, text: str) -> tuple[str, str]:
    path = tmp_path / "truth.csv"
    path.write_text(text, encoding="utf-8")
    out, err = StringIO(), StringIO()
    call_command("import_truth", study.slug, str(path), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_lesion_rows_are_stored_as_the_case_findings_lesion_list(study, tmp_path):
    out, _ = _run(
        study,
        tmp_path,
        HEADER + "A1,nodule,1,2,1,150,40,8,0.25\nA1,nodule,1,1,1,30.5,60,12,0.75\n"
        "A2,nodule,0,,,,,,\n",
    )

    assert "2 created" in out
    assert Truth.objects.get(case__case_id="A1").location == [
        {"lesion": 1, "image": 1, "x": 30.5, "y": 60.0, "radius": 12.0, "weight": 0.75},
        {"lesion": 2, "image": 1, "x": 150.0, "y": 40.0, "radius": 8.0, "weight": 0.25},
    ]
    assert Truth.objects.get(case__case_id="A2").location is None


def test_unnumbered_lesions_are_numbered_in_row_order_and_reimport_changes_nothing(study, tmp_path):
    text = (
        "case_id,finding,present,image,x,y,radius\nA1,nodule,1,1,10,10,5\nA1,nodule,1,1,90,20,5\n"
    )
    _run(study, tmp_path, text)
    assert [lesion["lesion"] for lesion in Truth.objects.get().location] == [1, 2]

    out, _ = _run(study, tmp_path, text)

    assert "0 created, 0 updated, 1 unchanged" in out


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("A2,nodule,0,1,1,10,10,5,\n", "row 2: a lesion on an absent finding"),
        ("A1,nodule,1,1,1,200,10,5,\n", "row 2: lesion 1: (200, 10) is off image 1"),
        ("A1,nodule,1,1,1,10,-1,5,\n", "is off image 1 (200 x 100 pixels)"),
        ("A1,nodule,1,1,1,10,10,-3,\n", "the radius must be a positive number"),
        ("A1,nodule,1,1,2,10,10,5,\n", "unknown image position 2 (the case has 1)"),
        ("A1,nodule,1,1,1,10,10,,\n", "a lesion row needs radius"),
        ("A1,nodule,1,1,1,ten,10,5,\n", "x must be a number, not 'ten'"),
        ("A1,nodule,1,1,1,10,10,5,\nA1,nodule,1,1,1,20,10,5,\n", "lesion 1 appears twice"),
        ("A1,nodule,1,1,1,10,10,5,0.5\nA1,nodule,1,2,1,20,10,5,\n", "for every lesion"),
        ("A1,nodule,1,1,1,10,10,5,0.5\nA1,nodule,1,2,1,20,10,5,0.2\n", "sum to 0.7, not 1"),
        ("A1,nodule,1,1,1,10,10,5,\nA1,nodule,0,2,1,20,10,5,\n", "row 3: present or source"),
        ("A1,nodule,1,,,,,,\nA1,nodule,1,2,1,20,10,5,\n", "A1/nodule is already on row 2"),
    ],
)
def test_bad_lesions_are_named_by_row_and_nothing_is_saved(study, tmp_path, rows, message):
    path = tmp_path / "truth.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    err = StringIO()

    with pytest.raises(CommandError, match="no truth was imported"):
        call_command("import_truth", study.slug, str(path), stdout=StringIO(), stderr=err)

    assert message in err.getvalue()
    assert not Truth.objects.exists()


def test_a_lesion_list_in_the_location_column_is_checked_the_same_way(study, tmp_path):
    text = (
        "case_id,finding,present,location\n"
        'A1,nodule,1,"[{""lesion"": 1, ""image"": 1, ""x"": 500, ""y"": 5, ""radius"": 4}]"\n'
    )
    err = StringIO()
    path = tmp_path / "truth.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CommandError):
        call_command("import_truth", study.slug, str(path), stdout=StringIO(), stderr=err)
    assert "(500, 5) is off image 1" in err.getvalue()
    assert not Truth.objects.exists()


def test_lesions_after_the_truth_is_final_are_refused(study, tmp_path, roles):
    from tests.signing import sign_final_truth

    _run(study, tmp_path, HEADER + "A1,nodule,1,,,,,,\nA2,nodule,0,,,,,,\n")
    sign_final_truth(study)

    with pytest.raises(CommandError, match="final"):
        _run(study, tmp_path, HEADER + "A1,nodule,1,1,1,10,10,5,\nA2,nodule,0,,,,,,\n")
    assert Truth.objects.get(case__case_id="A1").location is None


def test_the_truth_admin_checks_a_lesion_list_as_the_import_does(client, study):
    from django.urls import reverse

    from tests.factories import TruthFactory, UserFactory

    truth = TruthFactory(case=study.cases.get(case_id="A1"),
                         finding_type=study.finding_types.get(), present=True)  # fmt: skip
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    url = reverse("admin:studies_truth_change", args=[truth.pk])
    data = {"case": truth.case_id, "finding_type": truth.finding_type_id, "present": "on",
            "source": "import"}  # fmt: skip

    off = client.post(url, data | {"location": '[{"lesion": 1, "image": 1, "x": 250, "y": 5, '
                                                '"radius": 4}]'})  # fmt: skip
    client.post(url, data | {"location": '[{"lesion": 1, "image": 1, "x": 25, "y": 5, '
                                         '"radius": 4}]'})  # fmt: skip

    assert off.status_code == 200 and "(250, 5) is off image 1" in off.content.decode()
    truth.refresh_from_db()
    assert truth.location == [{"lesion": 1, "image": 1, "x": 25.0, "y": 5.0, "radius": 4.0}]
