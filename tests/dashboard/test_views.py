"""Dashboard, report and export pages end to end, with their forbidden cases."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from django.urls import reverse

from studyplatform.audit.models import AuditEvent
from studyplatform.dashboard.models import AnalysisResult
from studyplatform.studies.models import Truth
from tests.dashboard.builders import build_study

pytestmark = pytest.mark.django_db


def _get(client, user, name, *args, **query):
    client.force_login(user)
    url = reverse(name, args=args)
    return client.get(url, query)


def _export(client, user, fmt, **data):
    client.force_login(user)
    return client.post(reverse("dashboard:export", args=["sim"]), {"format": fmt, **data})


def test_coordinator_sees_progress_washout_prereads_and_balance(client, built) -> None:
    response = _get(client, built.coordinator, "dashboard:study", "sim")
    assert response.status_code == 200
    text = response.content.decode()
    for section in ("progress", "washout", "prereads", "balance", "alerts", "exports"):
        assert f'id="{section}"' in text
    overview = response.context["overview"]
    assert overview.done == overview.total == 4 * 30 * 2
    assert {r.session for r in overview.progress} == {1, 2}
    assert overview.prereads["done"] == 30


def test_coordinator_sees_no_outcome_by_arm_before_the_lock(client, built) -> None:
    response = _get(client, built.coordinator, "dashboard:study", "sim")
    text = response.content.decode()
    overview = response.context["overview"]
    assert not overview.results and 'id="blinded"' in text
    assert all(r.arm == "" and r.median_seconds is None for r in overview.progress)
    assert "Median time" not in text and reverse("dashboard:report", args=["sim"]) not in text
    # The one export offered is the audit trail (seeds and arms concealed, as in the admin).
    assert text.count(reverse("dashboard:export", args=["sim"])) == 1
    assert 'name="format" value="audit"' in text and 'value="long"' not in text
    refusals = [_get(client, built.coordinator, name, "sim") for name in ("dashboard:report",
                "dashboard:report_status")]  # fmt: skip
    refusals += [
        _export(client, built.coordinator, f) for f in ("long", "json", "mrmcaov", "checklist", "?")
    ]
    for refused in refusals:
        assert refused.status_code == 403
        assert b"statistician until the study is locked" in refused.content
    assert not AuditEvent.objects.filter(action="analysis.interim_view").exists()


def test_statistician_sees_reading_times_by_arm_and_each_look_is_audited(client, built) -> None:
    response = _get(client, built.statistician, "dashboard:study", "sim")
    overview = response.context["overview"]
    assert overview.results and {r.arm for r in overview.progress} == {"unassisted", "assisted"}
    assert all(r.median_seconds for r in overview.progress)
    assert _get(client, built.statistician, "dashboard:report", "sim").status_code == 200
    event = AuditEvent.objects.filter(action="analysis.interim_view").get()
    assert event.actor_id == built.statistician.pk and event.study_id == built.study.pk
    assert isinstance(event.after, dict) and event.after["what"] == "analysis report"


def test_after_the_lock_coordinators_see_results_without_an_interim_record(client, built) -> None:
    from django.utils import timezone

    built.study.state = "locked"
    built.study.locked_at = timezone.now()
    built.study.save(update_fields=["state", "locked_at"])
    response = _get(client, built.coordinator, "dashboard:study", "sim")
    assert response.context["overview"].results
    assert _get(client, built.coordinator, "dashboard:report", "sim").status_code == 200
    assert _export(client, built.coordinator, "long").status_code == 200
    assert not AuditEvent.objects.filter(action="analysis.interim_view").exists()


def test_study_list_shows_only_the_users_studies(client, built) -> None:
    build_study("other", n_readers=2, n_cases=6, findings=("nodule",))
    response = _get(client, built.statistician, "dashboard:studies")
    assert response.status_code == 200
    assert [s.slug for s in response.context["studies"]] == ["sim"]


@pytest.mark.parametrize(
    "name,args",
    [
        ("dashboard:study", ("sim",)),
        ("dashboard:report", ("sim",)),
        ("dashboard:report_status", ("sim",)),
        ("dashboard:studies", ()),
    ],
)
def test_readers_are_forbidden(client, built, name, args) -> None:
    assert _get(client, built.reader_users[0], name, *args).status_code == 403


@pytest.mark.parametrize("fmt", ["long", "mrmcaov", "nonsense"])
def test_readers_are_forbidden_to_export(client, built, fmt) -> None:
    before = AuditEvent.objects.count()
    assert _export(client, built.reader_users[0], fmt, finding="nodule").status_code == 403
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize(
    "name,args",
    [
        ("dashboard:study", ("sim",)),
        ("dashboard:report", ("sim",)),
    ],
)
def test_staff_of_another_study_are_forbidden(client, built, name, args) -> None:
    other = build_study("other", n_readers=2, n_cases=6, findings=("nodule",))
    assert _get(client, other.coordinator, name, *args).status_code == 403


@pytest.mark.parametrize("fmt", ["long", "json"])
def test_staff_of_another_study_are_forbidden_to_export(client, built, fmt) -> None:
    other = build_study("other", n_readers=2, n_cases=6, findings=("nodule",))
    assert _export(client, other.statistician, fmt).status_code == 403


def test_anonymous_users_are_sent_to_login(client, built) -> None:
    response = client.get(reverse("dashboard:study", args=["sim"]))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_report_shows_every_endpoint_and_is_cached(client, built) -> None:
    response = _get(client, built.statistician, "dashboard:report", "sim")
    assert response.status_code == 200
    text = response.content.decode()
    for key in ("mrmc", "missed", "standalone", "drift", "agreement", "time"):
        assert f'id="section-{key}"' in text
    assert "plotly-" in text and "cdn" not in text.lower()
    assert AnalysisResult.objects.filter(study=built.study, status="done").count() == 1
    _get(client, built.statistician, "dashboard:report", "sim")
    assert AnalysisResult.objects.filter(study=built.study).count() == 1


def test_report_recomputes_when_truth_moves_between_cases_of_equal_count_and_id_sum(
    client, built
) -> None:
    finding = built.study.finding_types.order_by("pk").first()
    truths = list(Truth.objects.filter(finding_type=finding).order_by("case_id")[:4])
    ids = [t.case_id for t in truths]
    assert ids[0] + ids[3] == ids[1] + ids[2]  # cases {1, 4} and {2, 3}
    for truth, present in zip(truths, (True, False, False, True), strict=True):
        Truth.objects.filter(pk=truth.pk).update(present=present)
    first = _get(client, built.statistician, "dashboard:report", "sim")
    assert first.status_code == 200
    version = AnalysisResult.objects.get(study=built.study).data_version
    for truth, present in zip(truths, (False, True, True, False), strict=True):
        Truth.objects.filter(pk=truth.pk).update(present=present)

    second = _get(client, built.statistician, "dashboard:report", "sim")

    row = AnalysisResult.objects.get(study=built.study)  # the old one is dropped
    assert row.data_version != version
    assert f'data-version="{row.data_version}"' in second.content.decode()
    assert f'data-version="{version}"' in first.content.decode()
    before = first.context["row"].result["analysis"]
    assert second.context["row"].result["analysis"] != before  # the new truth's numbers


def test_long_export_streams_csv_and_is_audited(client, built) -> None:
    before = AuditEvent.objects.count()
    response = _export(client, built.statistician, "long")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    frame = pd.read_csv(io.BytesIO(b"".join(response.streaming_content)))
    assert len(frame) == 4 * 30 * 2 * 2
    event = AuditEvent.objects.order_by("-sequence").first()
    assert AuditEvent.objects.count() == before + 2  # the interim look, then the export
    assert event.action == "study.export"
    interim = AuditEvent.objects.get(sequence=event.sequence - 1)
    assert interim.action == "analysis.interim_view" and isinstance(interim.after, dict)
    assert interim.after["what"] == "export long"


def test_export_refuses_get_and_a_post_without_the_csrf_token(built) -> None:
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(built.statistician)
    url = reverse("dashboard:export", args=["sim"])
    before = AuditEvent.objects.count()
    assert browser.get(url, {"format": "long"}).status_code == 405
    assert browser.post(url, {"format": "long"}).status_code == 403
    assert AuditEvent.objects.count() == before
    page = browser.get(reverse("dashboard:study", args=["sim"]))
    token = page.cookies["csrftoken"].value
    response = browser.post(url, {"format": "long", "csrfmiddlewaretoken": token})
    assert response.status_code == 200 and response.streaming
    assert AuditEvent.objects.count() == before + 2


@pytest.mark.parametrize(
    "data,message",
    [
        ({"format": "xlsx"}, b"format: Select a valid choice"),
        ({}, b"format: This field is required"),
        ({"format": "mrmcaov", "finding": "effusion"}, b"no finding type 'effusion'"),
        ({"format": "imrmc", "finding": "x" * 41}, b"finding: Ensure this value"),
        ({"format": "imrmc", "finding": "nod\x00ule"}, b"finding: Null characters"),
        ({"format": "long", "finding": "nodule"}, b"format long takes no finding type"),
        ({"format": "mrmcaov"}, b"choose one of"),
    ],
)
def test_bad_export_parameters_are_a_400_that_records_nothing(client, built, data, message):
    before = AuditEvent.objects.count()
    client.force_login(built.statistician)
    response = client.post(reverse("dashboard:export", args=["sim"]), data)
    assert response.status_code == 400 and message in response.content
    assert response["Content-Type"].startswith("text/plain")
    assert AuditEvent.objects.count() == before


def test_per_finding_export_needs_a_known_finding(client, built) -> None:
    response = _export(client, built.statistician, "mrmcaov")
    assert response.status_code == 400 and b"nodule" in response.content
    response = _export(client, built.statistician, "imrmc", finding="x")
    assert response.status_code == 400


def test_json_export_is_the_analysis_without_figures(client, built) -> None:
    response = _export(client, built.statistician, "json")
    data = json.loads(b"".join(response.streaming_content))
    assert set(data) >= {"analysis", "drift", "data_version"} and "figures" not in data


def test_plotly_js_is_served_locally(client, built) -> None:
    client.force_login(built.coordinator)
    response = client.get(reverse("dashboard:plotly_js", args=["x"]))
    assert response.status_code == 200 and b"plotly" in response.content[:2000].lower()


def test_admin_index_and_home_link_to_the_dashboard(client, built) -> None:
    built.coordinator.is_staff = True
    built.coordinator.save()
    client.force_login(built.coordinator)
    dashboard = reverse("dashboard:studies")
    assert dashboard in client.get(reverse("admin:index")).content.decode()
    assert reverse("dashboard:study", args=["sim"]) in client.get("/").content.decode()


def test_a_large_studys_report_shows_progress_until_the_worker_is_done(
    client, built, monkeypatch
) -> None:
    from studyplatform.dashboard import services
    from studyplatform.dashboard.tasks import analyze_study

    sent = []
    monkeypatch.setattr(services, "INLINE_ROWS", 0)
    monkeypatch.setattr("studyplatform.celery.enqueue", lambda task, **kw: sent.append(kw))
    response = _get(client, built.statistician, "dashboard:report", "sim")
    assert b'id="analysis-progress"' in response.content and len(sent) == 1
    status = _get(client, built.statistician, "dashboard:report_status", "sim").json()
    assert status["status"] == "pending"
    assert _export(client, built.statistician, "json").status_code == 409
    analyze_study(**sent[0])
    assert _get(client, built.statistician, "dashboard:report_status", "sim").json() == {
        "status": "done", "progress": 100, "stage": "done", "error": "",
    }  # fmt: skip
    response = _get(client, built.statistician, "dashboard:report", "sim")
    assert b'id="section-mrmc"' in response.content and len(sent) == 1


def test_analyze_and_export_commands_before_the_lock_are_audited_as_interim_views(
    built, tmp_path
) -> None:
    from io import StringIO

    from django.core.management import call_command

    call_command("analyze", "sim", "--json", stdout=StringIO())
    out = tmp_path / "reads.csv"
    call_command("export", "sim", "--format", "long", "-o", str(out), stdout=StringIO())
    events = AuditEvent.objects.filter(action="analysis.interim_view").order_by("sequence")
    assert [(e.actor_id, (e.after or {})["what"]) for e in events] == [
        (None, "manage.py analyze"),
        (None, "manage.py export long"),
    ]
