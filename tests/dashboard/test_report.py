"""The report at an interim look: the demo study with reader1 part-way, on the page, through
``manage.py analyze`` and through ``python -m analysis report`` on the exported long frame."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from analysis.cli import main
from analysis.report import ALL_AVAILABLE, ALL_READS, COMPLETE_CASE
from studyplatform.dashboard.selectors import long_reads_frame, protocol_in_force
from studyplatform.dashboard.services import analysis_for
from studyplatform.reading.models import Assignment, Read, ReadFinding, ReadingSession
from studyplatform.studies.models import Study, Truth
from tests.report_tables import table_texts

pytestmark = pytest.mark.django_db

READ_BY_R01 = 6
_CI = re.compile(r"^(?:OR )?(-?\d+\.\d+) \((-?\d+\.\d+), (-?\d+\.\d+)\)")


@pytest.fixture
def part_way(settings, roles) -> Study:
    """``manage.py demo --simulate-reads`` (R02-R04 have read everything), then reader1 (R01)
    submits the first cases of session 1, as the README invites."""
    settings.DEBUG = True
    call_command("demo", cases=24, simulate_reads=True, stdout=StringIO())
    study = Study.objects.get(slug="demo")
    truth = {(t.case_id, t.finding_type_id): t.present for t in Truth.objects.all()}
    types = list(study.finding_types.all())
    mine = Assignment.objects.filter(session__study=study, reader__code="R01", session__number=1)
    now = timezone.now()
    for a in mine.select_related("reader__user").order_by("position", "step")[:READ_BY_R01]:
        read = Read.objects.create(
            assignment=a, started_at=now, submitted_at=now + timezone.timedelta(seconds=40),
            idempotency_key=f"r01-{a.pk:06d}", submitted_by=a.reader.user,
        )  # fmt: skip
        ReadFinding.objects.bulk_create(
            ReadFinding(read=read, finding_type=ft, present=truth[(a.case_id, ft.pk)],
                        confidence=85 if truth[(a.case_id, ft.pk)] else 10)
            for ft in types
        )  # fmt: skip
    return study


def _analyze_json(study: Study) -> dict[str, Any]:
    out = StringIO()
    call_command("analyze", study.slug, "--json", stdout=out)
    data: dict[str, Any] = json.loads(out.getvalue())
    return data


def _page(client, study: Study) -> str:
    client.force_login(get_user_model().objects.get(username="statistician"))
    response = client.get(reverse("dashboard:report", args=[study.slug]))
    assert response.status_code == 200
    return str(response.content.decode())


def test_a_reader_part_way_leaves_the_protocol_analysis_answering(client, part_way) -> None:
    a = _analyze_json(part_way)["analysis"]
    assert a["label"] == COMPLETE_CASE
    assert a["readers"]["included"] == ["R02", "R03", "R04"]
    [r01] = a["readers"]["excluded"]
    assert r01["reader"] == "R01" and r01["reason"].startswith("has not finished both arms")
    findings = a["findings"]
    assert set(a["mrmc"]) == set(findings) and len(findings) == 3
    assert all(v is not None for r in a["mrmc"].values() for v in r["treatment_value"].values())
    for fm in a["missed"]["findings"]:
        assert fm["missed"]["or_difference"] is not None, fm["missed"]["or_error"]
        assert fm["false_positive"]["or_difference"] is not None
    assert all(fs["versus_readers"] is not None for fs in a["standalone"]["findings"])
    assert {r["rater_a"] for r in a["agreement"] if r["comparison"] == "reader-truth"} == {
        "R02", "R03", "R04"
    }  # fmt: skip
    assert not any("skipped" in n for n in a["notes"]), a["notes"]

    text = StringIO()
    call_command("analyze", part_way.slug, stdout=text)
    assert "left out: R01 has not finished both arms" in text.getvalue()
    assert f"MRMC ROC, {ALL_AVAILABLE}" in text.getvalue()

    page = _page(client, part_way)
    assert "R01" in page and "has not finished both arms" in page
    mrmc = next(t for t in table_texts(page) if "AUC unassisted (95% CI)" in t[0])
    primary = [row for row in mrmc[1:] if row[1] == COMPLETE_CASE]
    assert {row[0] for row in primary} == set(findings)
    assert all(_CI.match(row[2]) and _CI.match(row[3]) for row in primary)
    assert "Readers: R02, R03, R04 (complete-case (protocol))." in page
    every_read = [row for row in mrmc[1:] if row[1] == ALL_AVAILABLE]
    assert {row[0] for row in every_read} == set(findings)
    assert all(_CI.match(row[2]) and _CI.match(row[3]) for row in every_read)
    for finding in findings:
        u = a["all_available"]["mrmc"][finding]
        assert u["n_readers"] == 4 or "R01 left out" in a["all_available"]["notes"][finding][0]


def test_every_estimate_on_the_page_lies_inside_its_interval_next_to_its_method(
    client, part_way
) -> None:
    checked = 0
    for table in table_texts(_page(client, part_way)):
        header, rows = table[0], table[1:]
        for row in rows:
            for cell in row:
                m = _CI.match(cell)
                if m:
                    est, lo, hi = (float(x) for x in m.groups())
                    assert lo <= est <= hi, row
                    checked += 1
        if "estimate; interval" in header:
            col, by = header.index("estimate; interval"), header.index("analysis")
            for row in rows:  # the complete case by OR; every read pooled, clustered on cases
                want = "reader-averaged; OR" if row[by] == COMPLETE_CASE else "pooled; Wilson"
                assert row[col].startswith(want), row
            assert {row[by] for row in rows} == {COMPLETE_CASE, ALL_READS}
    assert checked > 100


def test_the_command_line_prints_and_shows_what_the_platform_does(
    client, part_way, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    platform = _analyze_json(part_way)
    protocol = protocol_in_force(part_way)
    thresholds = set(protocol.thresholds(part_way).values())
    assert len(thresholds) == 1  # the command line takes one threshold for every type
    csv = tmp_path / "long.csv"
    long_reads_frame(part_way).to_csv(csv, index=False)
    html = tmp_path / "report.html"
    argv = ["report", str(csv), "--out", str(html), "--json",
            "--ai-threshold", str(thresholds.pop())]  # fmt: skip
    if protocol.significant():
        argv += ["--significant", ",".join(protocol.significant())]
    assert main(argv) == 0
    cli = json.loads(capsys.readouterr().out)
    assert set(cli) == {"protocol", "analysis", "drift", "thresholds", "behaviour"}
    for key in ("analysis", "drift", "thresholds", "behaviour"):
        assert cli[key] == platform[key], key
    assert cli["drift"] is not None and cli["drift"]["rows"]
    assert cli["analysis"]["all_available"]["label"] == ALL_AVAILABLE

    # the tables as the page shows them, and as the command line's file does; only the
    # protocol's table differs: a file has no protocol (its order, "the model's" threshold),
    # the FROC tables: a long file has no marks, and the readers' training: nor training
    froc_headers = ("wAFROC unassisted (95% CI)", "a mark localizes a lesion when")

    def results(page: str) -> list[list[list[str]]]:
        return [
            t for t in table_texts(page)
            if "in the protocol since" not in t[0] and not set(froc_headers) & set(t[0])
            and t[0][:2] != ["Reader", "Training"]
        ]  # fmt: skip

    shown = _page(client, part_way)
    assert results(html.read_text()) == results(shown)
    assert 'id="section-training"' in shown and "demo: a simulated reader" in shown
    assert len(results(html.read_text())) >= 9


def test_a_new_assignment_that_leaves_a_reader_unfinished_makes_a_new_analysis(built) -> None:
    first = analysis_for(study=built.study)
    assert first.result is not None and first.result["analysis"]["readers"]["excluded"] == []
    done = Assignment.objects.filter(session__study=built.study).first()
    assert done is not None
    extra = ReadingSession.objects.create(study=built.study, reader=done.reader, number=3)
    Assignment.objects.create(
        session=extra, reader=done.reader, case=done.case, arm=done.arm, position=1
    )
    second = analysis_for(study=built.study)
    assert second.pk != first.pk and second.result is not None
    [left_out] = second.result["analysis"]["readers"]["excluded"]
    assert left_out["reader"] == done.reader.code
