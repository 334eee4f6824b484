"""The submission package through its doors: ``manage.py export --format checklist|audit`` and
the dashboard's export POST, on a study built in the test."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from studyplatform.audit.models import AuditEvent
from studyplatform.audit.services import record
from studyplatform.dashboard.exports.audit import audit_csv
from studyplatform.dashboard.exports.checklist import NEEDS_HUMAN, build_checklist
from studyplatform.dashboard.selectors.flow import study_flow
from studyplatform.dashboard.selectors.submission import ai_failures
from studyplatform.dashboard.services import analysis_for
from studyplatform.prereads.models import AIModel, PreRead, PreReadStatus
from studyplatform.reading.models import AllocationRecord, Assignment, Read, Reader
from studyplatform.studies.concealment import CONCEALED, seed_commitment
from studyplatform.studies.models import Case, Study
from tests.dashboard.builders import BuiltStudy, build_study

pytestmark = pytest.mark.django_db

SHA = "ab" * 32


@pytest.fixture
def sub() -> BuiltStudy:
    """3 readers x 12 cases x 2 arms x 2 finding types, one reader a read short of the end, a late
    case without truth or assignment, a failed pre-read, and a pinned model with its sha256."""
    built = build_study(
        "sub", n_readers=3, n_cases=12, findings=("nodule", "effusion"), read_fraction=71 / 72
    )
    study = built.study
    AIModel.objects.filter(name="sub-model").update(sha256=SHA)
    Study.objects.filter(pk=study.pk).update(ai_model_sha256=SHA)
    study.refresh_from_db()
    late = Case.objects.create(
        study=study, case_id="late-1", site=Case.objects.filter(study=study).first().site,
        modality="DX",
    )  # fmt: skip
    PreRead.objects.filter(case__study=study, case__case_id="case-003").update(
        status=PreReadStatus.FAILED, error="Traceback ...\nImageError: unreadable pixel data"
    )
    del late
    AllocationRecord.objects.create(
        study=study, design="crossover", seed=study.seed, arms=["unassisted", "assisted"],
        fingerprint="f" * 64, rows=72,
    )  # fmt: skip
    record(
        actor=None, action="allocation.create", object_type="study.allocation",
        object_id=study.pk, study=study, after={"seed_sha256": seed_commitment(study.seed)},
    )  # fmt: skip
    for i, reader in enumerate(Reader.objects.filter(code__startswith="sub-r").order_by("code")):
        reader.specialty = "thoracic radiology"
        reader.years_experience = 5 + i
        reader.save(update_fields=["specialty", "years_experience"])
    return built


def _svg_number(html: str, pattern: str) -> list[int]:
    return [int(n) for n in re.findall(pattern, html)]


def _unfinished(study: Study) -> str:
    unread = Assignment.objects.filter(session__study=study, reads__isnull=True)
    (code,) = set(unread.values_list("reader__code", flat=True))
    return code


def test_flow_counts_equal_the_database_counts(sub) -> None:
    study = sub.study
    late = _unfinished(study)
    flow = study_flow(study)
    assert flow.received == Case.objects.filter(study=study).count() == 13
    assert flow.allocated == 12 and flow.excluded == 1
    assert flow.not_allocated == {"no assignment, no ground truth": 1}
    assert flow.incomplete_readers == [late]
    for arm in flow.arms:
        assigned = Assignment.objects.filter(session__study=study, arm__name=arm.arm)
        read = assigned.filter(reads__isnull=False).distinct()
        assert arm.assignments == assigned.count() == 36
        assert arm.reads == read.count()
        assert arm.reads_per_reader == {
            code: read.filter(reader__code=code).count() for code in ("sub-r1", "sub-r2", "sub-r3")
        }
        assert arm.analysed_reads == read.exclude(reader__code=late).count() == 24
        assert arm.analysed_cases == 12 and arm.analysed_readers == 2
    assert sum(a.reads for a in flow.arms) == 71
    assert flow.left_out_reads == {"reader did not finish every assignment": 23}


def test_failure_analysis_lists_the_ai_errors_with_the_readers_calls_per_arm(sub) -> None:
    from studyplatform.dashboard.selectors import long_reads_frame

    long = long_reads_frame(sub.study)
    failures = ai_failures(sub.study, long)
    sim = sub.long
    wrong = sim[(sim["ai_probability"] >= 0.5) != (sim["truth"] == 1)]
    assert {(f.case, f.finding) for f in failures} == set(
        zip(wrong["case"], wrong["finding"], strict=True)
    )
    for f in failures:
        rows = long[(long["case"] == f.case) & (long["finding"] == f.finding)]
        assert f.kind == ("missed" if int(rows["truth"].iloc[0]) else "false flag")
        for arm in ("unassisted", "assisted"):
            mine = rows[rows["arm"] == arm]
            right = int((mine["call"] == mine["truth"].astype(int)).sum())
            assert f.correct[arm] == (right, len(mine))


def test_checklist_command_fills_the_items_from_stored_facts(sub, tmp_path: Path) -> None:
    out = tmp_path / "checklist.html"
    call_command("export", "sub", "--format", "checklist", "-o", str(out), stdout=io.StringIO())
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html and "<link" not in html and "src=" not in html
    # The pinned model, its version and sha256.
    assert f"File sha256: {SHA}." in html and "Model sub-model, version 1" in html
    # Readers' qualifications by pseudonym.
    assert re.search(r"<td>sub-r2</td><td>thoracic radiology</td><td>6</td>", html)
    # Inputs: the failed pre-read and why; the late case excluded with its reason.
    assert "case-003: ImageError: unreadable pixel data" in html
    assert "no assignment, no ground truth: 1" in html
    # Human-AI interaction and thresholds.
    assert "Operating thresholds: effusion 0.5, nodule 0.5." in html
    # The flow diagram's counts are the database's.
    assert _svg_number(html, r"Cases received: n = (\d+)") == [13]
    assert _svg_number(html, r"Excluded before allocation: n = (\d+)") == [1]
    assert _svg_number(html, r"Randomized / allocated cases: n = (\d+)") == [12]
    reads = [
        Assignment.objects.filter(session__study=sub.study, arm__name=arm, reads__isnull=False)
        .distinct()
        .count()
        for arm in ("unassisted", "assisted")
    ]
    assert _svg_number(html, r"Read: (\d+) reads by 3 readers") == reads
    assert _svg_number(html, r"(\d+) reads, 12 cases,") == [24, 24]
    # Summary and the items a human must answer.
    assert "Seed commitment (sha256 of the seed) recorded before reading: " in html
    assert seed_commitment(sub.study.seed) in html
    assert "Seed: concealed until the study is locked." in html
    analysis = analysis_for(study=sub.study, inline=True).result
    assert analysis is not None
    checklist = build_checklist(sub.study, analysis=analysis)
    human = [item for item in checklist.items if item.needs_human]
    assert {item.topic for item in human} == {
        "Intended use",
        "Reference standard",
        "Sample size",
        "Registration and access to the AI",
        "Funding",
    }
    summary = f"<strong>{checklist.answered}</strong> items answered from stored facts, "
    assert summary + f"<strong>{len(human)}</strong> need a human answer." in html
    assert html.count(f'class="missing">{NEEDS_HUMAN}:') == len(human)
    assert "the stored intended use of the model lacks: intended use, target population" in html
    # The analysis ran (complete case): its estimate is quoted.
    nodule = analysis["analysis"]["mrmc"]["nodule"]["differences"][0]
    assert (
        f"unassisted - assisted = {nodule['estimate']:.3f} (95% CI {nodule['ci_lower']:.3f} to "
        f"{nodule['ci_upper']:.3f}, p = {nodule['p_value']:.4f})." in html
    )
    assert AuditEvent.objects.filter(action="study.export", after__format="checklist").exists()


def test_checklist_marks_unstored_qualifications_as_needing_a_human(sub) -> None:
    Reader.objects.filter(code="sub-r3").update(specialty="", years_experience=None)
    items = {item.topic: item for item in build_checklist(sub.study).items}
    assert items["Readers"].missing == "qualifications not stored for sub-r3"


def test_checklist_escapes_stored_text(sub, tmp_path: Path) -> None:
    from studyplatform.studies.models import Arm

    Arm.objects.filter(study=sub.study, name="assisted").update(label="<script>x()</script>")
    Case.objects.filter(study=sub.study, case_id="late-1").update(manufacturer="<b>maker</b>")
    out = tmp_path / "checklist.html"
    call_command("export", "sub", "--format", "checklist", "-o", str(out), stdout=io.StringIO())
    html = out.read_text()
    assert "<script" not in html and "<b>maker" not in html
    assert "Allocated to &lt;script&gt;x()&lt;/script&gt;:" in html  # the flow diagram's box


def _post(client, user, **data):
    client.force_login(user)
    return client.post(reverse("dashboard:export", args=["sub"]), data)


def _page(client, user) -> str:
    client.force_login(user)
    return str(client.get(reverse("dashboard:study", args=["sub"])).content.decode())


def _lock(study: Study) -> None:
    study.state = "locked"
    study.locked_at = timezone.now()
    study.save(update_fields=["state", "locked_at"])


def test_checklist_is_for_the_statistician_before_the_lock_and_coordinators_after(
    client, sub
) -> None:
    assert 'value="checklist"' not in _page(client, sub.coordinator)
    assert 'value="checklist"' in _page(client, sub.statistician)
    response = _post(client, sub.coordinator, format="checklist")
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="study.export").exists()
    response = _post(client, sub.statistician, format="checklist")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="sub-checklist.html"'
    assert SHA in b"".join(response.streaming_content).decode()
    interim = AuditEvent.objects.get(action="analysis.interim_view")
    assert interim.after == {"what": "export checklist", "state": "open"}
    _lock(sub.study)
    response = _post(client, sub.coordinator, format="checklist")
    assert response.status_code == 200
    assert AuditEvent.objects.filter(action="study.export", actor=sub.coordinator).count() == 1


def _events(sub: BuiltStudy) -> tuple[Case, Read]:
    case = Case.objects.get(study=sub.study, case_id="case-002")
    read = Read.objects.filter(assignment__session__study=sub.study).order_by("pk")[0]
    record(actor=None, action="case.import", obj=case, after={"case_id": case.case_id})
    record(actor=None, action="read.submit", obj=read, after={"arm": "assisted", "seed": 7})
    record(actor=None, action="study.update", obj=sub.study, after={"washout_days": 14})
    return case, read


def test_audit_export_filters_by_object(sub, tmp_path: Path) -> None:
    case, read = _events(sub)
    out = tmp_path / "audit.csv"
    for selected, expected in (
        ("case:case-002", [("studies.case", str(case.pk))]),
        (f"case:{case.pk}", [("studies.case", str(case.pk))]),
        (f"read:{read.pk}", [("reading.read", str(read.pk))]),
        ("study", [("studies.study", str(sub.study.pk))]),
        (f"study.allocation:{sub.study.pk}", [("study.allocation", str(sub.study.pk))]),
    ):
        call_command(
            "export", "sub", "--format", "audit", "--object", selected, "-o", str(out),
            stdout=io.StringIO(),
        )  # fmt: skip
        rows = list(csv.DictReader(out.read_text().splitlines()))
        # The study's own events include the exports recorded meanwhile.
        assert [(r["object_type"], r["object_id"]) for r in rows][: len(expected)] == expected
        assert {(r["object_type"], r["object_id"]) for r in rows} == set(expected), selected
    call_command("export", "sub", "--format", "audit", "-o", str(out), stdout=io.StringIO())
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [r["action"] for r in rows] == [
        "allocation.create", "case.import", "read.submit", "study.update", *["study.export"] * 5
    ]  # fmt: skip
    chunks = list(audit_csv(sub.study, None, rows_per_chunk=2))  # the trail streams
    assert len(chunks) > 2 and "".join(chunks) == "".join(audit_csv(sub.study, None))
    # Seeds and arms stay concealed until the lock; the hashes are the stored ones.
    assert f'"arm": "{CONCEALED}"' in rows[2]["after"] and '"seed": 7' not in rows[2]["after"]
    assert rows[2]["hash"] == AuditEvent.objects.get(sequence=int(rows[2]["sequence"])).hash


def test_audit_export_as_html_and_after_the_lock_shows_the_arms(sub, tmp_path: Path) -> None:
    _events(sub)
    _lock(sub.study)
    out = tmp_path / "audit.html"
    call_command("export", "sub", "--format", "audit", "-o", str(out), stdout=io.StringIO())
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html
    assert "read.submit" in html and "&quot;arm&quot;: &quot;assisted&quot;" in html


@pytest.mark.parametrize(
    ("selected", "message"),
    [
        ("widget:1", "unknown object type 'widget'"),
        ("case:nope", "no studies.case 'nope' exists"),
        ("case", "write 'study' or TYPE:ID"),
    ],
)
def test_audit_export_of_an_unknown_object_is_a_clear_error(
    sub, tmp_path: Path, selected, message
) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command(
            "export", "sub", "--format", "audit", "--object", selected,
            "-o", str(tmp_path / "a.csv"),
        )  # fmt: skip


def test_audit_export_refuses_an_object_of_another_study(sub, tmp_path: Path) -> None:
    other = build_study("other", n_readers=2, n_cases=4, findings=("nodule",), staff=False)
    case = Case.objects.filter(study=other.study).first()
    with pytest.raises(CommandError, match="is not part of study sub"):
        call_command(
            "export", "sub", "--format", "audit", "--object", f"case:{case.pk}",
            "-o", str(tmp_path / "a.csv"),
        )  # fmt: skip


def test_coordinator_exports_the_audit_trail_before_the_lock_concealed(client, sub) -> None:
    case, _ = _events(sub)
    response = _post(client, sub.coordinator, format="audit", object="case:case-002")
    assert response.status_code == 200
    rows = list(csv.DictReader(b"".join(response.streaming_content).decode().splitlines()))
    assert [r["object_id"] for r in rows] == [str(case.pk)]
    event = AuditEvent.objects.filter(action="study.export").latest("sequence")
    assert event.after == {"format": "audit", "finding": None, "via": "web",
                           "object": "case:case-002"}  # fmt: skip
    assert not AuditEvent.objects.filter(action="analysis.interim_view").exists()
    page = _post(client, sub.coordinator, format="audit", file="html")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    bad = _post(client, sub.coordinator, format="audit", object="widget:1")
    assert bad.status_code == 400 and b"unknown object type" in bad.content
    assert _post(client, sub.coordinator, format="long", object="study").status_code == 403
    assert _post(client, sub.statistician, format="long", object="study").status_code == 400
    assert _post(client, sub.reader_users[0], format="audit").status_code == 403
