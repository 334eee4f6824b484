"""import_truth: validated, all-or-nothing, idempotent ground truth from CSV."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from studyplatform.studies.models import StudyState, Truth
from tests.factories import CaseFactory, FindingTypeFactory, StudyFactory, TruthFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    study = StudyFactory(slug="lung")
    FindingTypeFactory(study=study, code="nodule")
    FindingTypeFactory(study=study, code="effusion", name="Effusion")
    CaseFactory(study=study, case_id="A1")
    CaseFactory(study=study, case_id="A2")
    return study


def _csv(tmp_path, text: str):
    path = tmp_path / "truth.csv"
    path.write_text(text, encoding="utf-8")
    return path


def _import(study, path) -> str:
    out = StringIO()
    call_command("import_truth", study.slug, str(path), stdout=out, stderr=StringIO())
    return out.getvalue()


def _truth():
    return sorted(
        Truth.objects.values_list(
            "case__case_id", "finding_type__code", "present", "source", "location"
        )
    )


GOOD = (
    "case_id,finding,present,source,location\n"
    'A1,nodule,1,adjudication,"{""image"": 1, ""row"": 40, ""col"": 52}"\n'
    "A1,effusion,0,,\n"
    "A2,nodule,0,follow_up,\n"
)


def test_truth_is_imported_with_source_and_location(study, tmp_path):
    out = _import(study, _csv(tmp_path, GOOD))

    assert "3 created, 0 updated, 0 unchanged" in out
    assert _truth() == [
        ("A1", "effusion", False, "import", None),
        ("A1", "nodule", True, "adjudication", {"image": 1, "row": 40, "col": 52}),
        ("A2", "nodule", False, "follow_up", None),
    ]


def test_importing_the_same_file_again_changes_nothing(study, tmp_path):
    path = _csv(tmp_path, GOOD)
    _import(study, path)
    before = sorted(Truth.objects.values_list("pk", "recorded_at"))

    out = _import(study, path)

    assert "0 created, 0 updated, 3 unchanged" in out
    assert sorted(Truth.objects.values_list("pk", "recorded_at")) == before


def test_a_changed_row_updates_the_stored_truth(study, tmp_path):
    TruthFactory(case=study.cases.get(case_id="A2"), finding_type=study.finding_types.get(
        code="nodule"), present=True)  # fmt: skip

    out = _import(study, _csv(tmp_path, "case_id,finding,present\nA2,nodule,0\n"))

    assert "0 created, 1 updated, 0 unchanged" in out
    assert Truth.objects.get(case__case_id="A2").present is False


def test_unknown_cases_and_findings_are_refused_by_row_and_nothing_is_written(study, tmp_path):
    text = (
        "case_id,finding,present\n"
        "A1,nodule,1\n"
        "Z9,nodule,1\n"
        "A2,fracture,0\n"
        "A2,effusion,maybe\n"
        "A1,nodule,0\n"
    )
    err = StringIO()
    with pytest.raises(CommandError, match="4 problem"):
        call_command(
            "import_truth", study.slug, str(_csv(tmp_path, text)), stdout=StringIO(), stderr=err
        )

    assert "truth.csv row 3: unknown case 'Z9'" in err.getvalue()
    assert "truth.csv row 4: unknown finding 'fracture'" in err.getvalue()
    assert "truth.csv row 5: present must be 0 or 1, not 'maybe'" in err.getvalue()
    assert "truth.csv row 6: A1/nodule is already on row 2" in err.getvalue()
    assert not Truth.objects.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("case_id,present\nA1,1\n", "missing column"),
        ("case_id,finding,present,reader\nA1,nodule,1,x\n", "unknown column"),
        ("case_id,finding,present,location\nA1,nodule,1,{oops\n", "not valid JSON"),
        ("case_id,finding,present,source\nA1,nodule,1,guess\n", "source 'guess'"),
    ],
)
def test_malformed_files_are_refused(study, tmp_path, text, message):
    err = StringIO()
    with pytest.raises(CommandError):
        call_command(
            "import_truth", study.slug, str(_csv(tmp_path, text)), stdout=StringIO(), stderr=err
        )
    assert message in err.getvalue()
    assert not Truth.objects.exists()


def test_a_locked_study_refuses_truth(study, tmp_path):
    study.state = StudyState.LOCKED
    study.opened_at = study.locked_at = timezone.now()
    study.save()

    with pytest.raises(CommandError, match="locked"):
        _import(study, _csv(tmp_path, GOOD))
    assert not Truth.objects.exists()


def test_truth_import_after_the_truth_is_signed_final_is_refused_and_changes_nothing(
    study, tmp_path, roles
):
    from studyplatform.audit.models import AuditEvent
    from tests.signing import sign_final_truth

    study.finding_types.filter(code="effusion").delete()
    _import(study, _csv(tmp_path, "case_id,finding,present\nA1,nodule,1\nA2,nodule,0\n"))
    signature = sign_final_truth(study)
    before, events = _truth(), AuditEvent.objects.count()

    err = StringIO()
    with pytest.raises(CommandError) as refused:
        call_command(
            "import_truth",
            study.slug,
            str(_csv(tmp_path, "case_id,finding,present\nA2,nodule,1\n")),
            stdout=StringIO(),
            stderr=err,
        )

    message = str(refused.value)
    assert "finalized by electronic signature" in message
    assert f"{signature.signed_at:%Y-%m-%d %H:%M} UTC" in message
    assert "no truth was imported" in message
    assert _truth() == before and AuditEvent.objects.count() == events


def test_a_truth_correction_is_audited_with_before_and_after(study, tmp_path):
    from studyplatform.audit.models import AuditEvent

    _import(study, _csv(tmp_path, "case_id,finding,present\nA2,nodule,1\n"))
    _import(study, _csv(tmp_path, "case_id,finding,present\nA2,nodule,0\n"))
    _import(study, _csv(tmp_path, "case_id,finding,present\nA2,nodule,0\n"))  # no change

    events = [
        e.after or {} for e in AuditEvent.objects.filter(action="truth.import").order_by("sequence")
    ]
    assert [(e["created"], e["updated"]) for e in events] == [(1, 0), (0, 1)]
    assert events[1]["changes"] == [
        {
            "case": "A2",
            "finding": "nodule",
            "before": [True, "import", None],
            "after": [False, "import", None],
        }
    ]
