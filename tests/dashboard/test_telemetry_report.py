"""Reading telemetry in the long export, the per-series export, `analyze --json` and the report."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from analysis.behaviour import NO_TELEMETRY
from analysis.longreads import (
    CORRECTION_COLUMNS,
    DESIGN_COLUMNS,
    READER_COLUMNS,
    TELEMETRY_COLUMNS,
)
from analysis.sections import sections
from analysis.study import analyze_file
from studyplatform.reading.models import Read, ReadTelemetry
from tests.dashboard.builders import BuiltStudy, build_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(db) -> BuiltStudy:
    """3 readers x 16 cases x 2 arms; telemetry on every read but the last four."""
    built = build_study("tel", n_readers=3, n_cases=16)
    reads = list(
        Read.objects.filter(assignment__session__study=built.study)
        .select_related("assignment__arm")
        .order_by("pk")
    )
    records = []
    for i, read in enumerate(reads[:-4]):
        assisted = read.assignment.arm.name == "assisted"
        on = assisted and i % 3 != 0
        records.append(
            ReadTelemetry(
                read=read, slices_viewed=10 + i % 30, slices_total=48,
                series=[{"series": 1, "slices_total": 48,
                         "slices_viewed": list(range(1, 11 + i % 30)), "time_s": 20.0 + i % 7}],
                series_time_s=20.0 + i % 7, ai_panel_shown=assisted, ai_overlay_on=on,
                ai_overlay_s=5.5 if on else 0.0, ai_first_view_s=2.0 if assisted else None,
            )
        )  # fmt: skip
    ReadTelemetry.objects.bulk_create(records)
    return built


def test_long_export_keeps_the_contract_columns_first_and_appends_telemetry(study, tmp_path):
    out = tmp_path / "long.csv"
    call_command("export", "tel", "--format", "long", "-o", str(out))
    with out.open() as handle:
        header = next(csv.reader(handle))
    assert header == [*DESIGN_COLUMNS, *CORRECTION_COLUMNS, *TELEMETRY_COLUMNS, *READER_COLUMNS]
    assert header[-9:-3] == [
        "slices_viewed", "slices_total", "series_time_s", "ai_overlay_on", "ai_overlay_s",
        "ai_first_view_s",
    ]  # fmt: skip
    frame = pd.read_csv(out)
    reads = frame.drop_duplicates(["reader", "case", "arm"])
    assert reads["slices_total"].notna().sum() == 3 * 16 * 2 - 4
    assisted = reads[(reads["arm"] == "assisted") & reads["slices_total"].notna()]
    assert set(assisted["ai_overlay_on"]) == {0, 1}
    assert (assisted.loc[assisted["ai_overlay_on"] == 1, "ai_overlay_s"] == 5.5).all()
    unassisted = reads[reads["arm"] == "unassisted"]
    assert (unassisted["ai_overlay_on"].dropna() == 0).all()
    assert unassisted["ai_first_view_s"].isna().all()


def test_telemetry_export_has_one_row_per_series_of_each_read(study, tmp_path):
    out = tmp_path / "telemetry.csv"
    call_command("export", "tel", "--format", "telemetry", "-o", str(out))
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3 * 16 * 2 - 4
    first = rows[0]
    assert list(first) == [
        "study", "reader", "case", "arm", "session", "series", "slices_total", "slices_viewed",
        "viewed_slices", "time_s", "ai_overlay_on", "ai_overlay_s", "ai_first_view_s",
    ]  # fmt: skip
    assert first["viewed_slices"] == f"1-{first['slices_viewed']}"
    assert first["slices_total"] == "48"


def test_analyze_json_describes_reading_behaviour_per_arm(study):
    out = io.StringIO()
    call_command("analyze", "tel", "--json", stdout=out)
    behaviour = json.loads(out.getvalue())["behaviour"]
    arms = {a["arm"]: a for a in behaviour["arms"]}
    assert set(arms) == {"unassisted", "assisted"}
    assert sum(a["n_with_telemetry"] for a in arms.values()) == 3 * 16 * 2 - 4
    assert arms["unassisted"]["overlay_on"] is None
    overlay = arms["assisted"]["overlay_on"]
    stored = ReadTelemetry.objects.filter(read__assignment__arm__name="assisted")
    assert overlay["n"] == stored.count()
    assert overlay["events"] == stored.filter(ai_overlay_on=True).count()
    assert overlay["ci_lower"] <= overlay["estimate"] <= overlay["ci_upper"]
    assert arms["assisted"]["overlay_s"]["median"] == 5.5
    fractions = [t.slices_viewed / t.slices_total for t in ReadTelemetry.objects.all()]
    both = arms["assisted"]["slices_fraction"]["n"] + arms["unassisted"]["slices_fraction"]["n"]
    assert both == len(fractions)
    groups = {(r["group"], r["ai"]) for r in behaviour["automation_bias"]}
    assert {("unassisted", "wrong"), ("assisted", "right"), ("assisted, overlay on", "wrong"),
            ("assisted, overlay off", "right")} <= groups  # fmt: skip
    assert any("telemetry for 92 of 96 reads" in note for note in behaviour["notes"])
    text = io.StringIO()
    call_command("analyze", "tel", stdout=text)
    printed = text.getvalue()
    assert f"overlay on in {overlay['events']} of {overlay['n']} reads" in printed
    assert "accuracy where the AI was wrong: unassisted" in printed


def test_report_sections_show_reading_behaviour(study, tmp_path):
    out = tmp_path / "report.html"
    call_command("export", "tel", "--format", "html", "-o", str(out))
    html = out.read_text()
    assert "Reading behaviour" in html and "overlay on (share, 95% CI)" in html
    assert "assisted, overlay off" in html


def test_reads_without_telemetry_give_a_note_not_an_error(db):
    build_study("old", n_readers=3, n_cases=12)
    out = io.StringIO()
    call_command("analyze", "old", "--json", stdout=out)
    behaviour = json.loads(out.getvalue())["behaviour"]
    assert behaviour["arms"] == [] and behaviour["notes"][0] == NO_TELEMETRY
    assert behaviour["automation_bias"]  # by arm, without telemetry


def test_a_long_csv_without_telemetry_columns_is_analysed_with_a_note(study, tmp_path):
    path = tmp_path / "long.csv"
    call_command("export", "tel", "--format", "long", "-o", str(path))
    old = pd.read_csv(path).drop(columns=list(TELEMETRY_COLUMNS))
    payload = analyze_file(old, ai_threshold=0.5)
    assert payload["behaviour"]["notes"] == [NO_TELEMETRY]
    section = {s.key: s for s in sections(payload)}["behaviour"]
    assert section.notes == [NO_TELEMETRY] and len(section.tables) == 1
    full = analyze_file(pd.read_csv(path), ai_threshold=0.5)["behaviour"]
    assert [a["arm"] for a in full["arms"]] == ["unassisted", "assisted"]
    assert np.isfinite(full["arms"][1]["time_s"]["median"])


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("series_time_s", "-3", "series_time_s must be a number 0 or more, got '-3'"),
        ("ai_overlay_on", "2", "ai_overlay_on must be 0 or 1, got '2'"),
        ("slices_viewed", "abc", "slices_viewed must be a number 0 or more, got 'abc'"),
        ("slices_viewed", "999", "slices_viewed is more than slices_total in data row 1"),
    ],
)
def test_a_long_csv_with_impossible_telemetry_is_refused_naming_it(
    study, tmp_path, column, value, message
):
    path = tmp_path / "long.csv"
    call_command("export", "tel", "--format", "long", "-o", str(path))
    frame = pd.read_csv(path, dtype={column: str})
    frame.loc[0, column] = value
    with pytest.raises(ValueError, match=re.escape(message)):
        analyze_file(frame, ai_threshold=0.5)
