"""Reader subgroups (specialty, experience band, role) of the demo study: through
``manage.py analyze``, the report page, and ``python -m analysis report`` on the long export."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from analysis.cli import main
from analysis.longreads import READER_COLUMNS
from analysis.mrmc import or_analysis
from analysis.report import check_long_frame, mrmc_frame
from analysis.subgroups import TOO_FEW
from studyplatform.dashboard.selectors import long_reads_frame
from studyplatform.reading.models import Reader
from studyplatform.studies.models import Study
from tests.report_tables import table_texts

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(settings, roles) -> Study:
    """``manage.py demo --simulate-reads``: R02-R04 have read every case in both arms."""
    settings.DEBUG = True
    call_command("demo", cases=24, simulate_reads=True, stdout=StringIO())
    return Study.objects.get(slug="demo")


def _analysis(study: Study) -> dict[str, Any]:
    out = StringIO()
    call_command("analyze", study.slug, "--json", stdout=out)
    data: dict[str, Any] = json.loads(out.getvalue())
    return dict(data["analysis"])


def _subgroup(a: dict[str, Any], grouping: str, level: str) -> dict[str, Any]:
    [found] = [
        s for s in a["subgroups"]["subgroups"] if s["grouping"] == grouping and s["level"] == level
    ]
    return dict(found)


def test_demo_subgroups_by_specialty_experience_and_role(client, demo) -> None:
    a = _analysis(demo)
    sg = a["subgroups"]
    assert [r["reader"] for r in sg["readers"]] == ["R02", "R03", "R04"]  # complete case
    assert {r["reader"]: r["experience_band"] for r in sg["readers"]} == {
        "R02": "> 10 years", "R03": "5-10 years", "R04": "< 5 years"
    }  # fmt: skip
    levels = [(s["grouping"], s["level"], s["readers"]) for s in sg["subgroups"]]
    assert levels == [
        ("specialty", "general radiology", ["R03"]),
        ("specialty", "thoracic radiology", ["R02", "R04"]),
        ("experience", "< 5 years", ["R04"]),
        ("experience", "5-10 years", ["R03"]),
        ("experience", "> 10 years", ["R02"]),
        ("role", "attending", ["R02", "R03"]),
        ("role", "resident", ["R04"]),
    ]
    assert any("5-10 years (5 to 10 inclusive)" in n for n in sg["notes"])

    # Two readers: the OR MRMC analysis of those readers' reads alone, as the engine gives it.
    thoracic = _subgroup(a, "specialty", "thoracic radiology")
    assert thoracic["n_readers"] == 2 and thoracic["notes"] == []
    long = check_long_frame(long_reads_frame(demo))
    theirs = long[long["reader"].isin(["R02", "R04"])]
    for fs in thoracic["findings"]:
        expected = or_analysis(mrmc_frame(theirs, fs["finding"])).to_dict()
        assert fs["mrmc"]["differences"] == expected["differences"]
        assert [x["estimate"] for x in fs["auc"]] == [
            expected["single_treatment"][arm]["estimate"] for arm in ("unassisted", "assisted")
        ]
        assert {x["estimand"] for x in fs["auc"]} == {"reader-averaged"}
        for metric in ("sensitivity", "specificity"):
            assert len(fs[metric]) == 2
            assert all(x["ci_lower"] <= x["estimate"] <= x["ci_upper"] for x in fs[metric])

    # One reader: no MRMC, said as a note; the reader's own AUC with a DeLong interval.
    general = _subgroup(a, "specialty", "general radiology")
    assert general["notes"] == [TOO_FEW]
    for fs in general["findings"]:
        assert fs["mrmc"] is None
        assert [x["estimand"] for x in fs["auc"]] == ["single reader", "single reader"]
        assert all(x["ci_lower"] <= x["estimate"] <= x["ci_upper"] for x in fs["auc"])
    assert not any("skipped" in n for n in a["notes"]), a["notes"]

    text = StringIO()
    call_command("analyze", demo.slug, stdout=text)
    assert "Reader subgroups: specialty, experience and role" in text.getvalue()
    assert "specialty = general radiology" in text.getvalue()

    client.force_login(get_user_model().objects.get(username="statistician"))
    page = client.get(reverse("dashboard:report", args=[demo.slug])).content.decode()
    tables = table_texts(page)
    auc = next(t for t in tables if t[0][:2] == ["subgroup", "readers"])
    assert {row[0] for row in auc[1:]} >= {"specialty = thoracic radiology", "role = attending"}
    one = [row for row in auc[1:] if row[0] == "experience = > 10 years"]
    assert one and all(row[-1] == TOO_FEW for row in one)
    quals = next(t for t in tables if t[0][:2] == ["reader", "specialty"])
    assert ["R04", "thoracic radiology", "3", "< 5 years", "resident"] in quals


def test_a_changed_qualification_makes_a_new_analysis(demo) -> None:
    before = _analysis(demo)
    Reader.objects.filter(code="R04").update(years_experience=9)
    after = _analysis(demo)
    assert _subgroup(before, "experience", "5-10 years")["readers"] == ["R03"]
    assert _subgroup(after, "experience", "5-10 years")["readers"] == ["R03", "R04"]
    assert _subgroup(after, "experience", "5-10 years")["findings"][0]["mrmc"] is not None


def test_the_command_line_has_the_subgroups_with_the_qualification_columns_only(
    demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long = long_reads_frame(demo)
    assert list(long.columns[-3:]) == list(READER_COLUMNS)
    with_columns, without = tmp_path / "long.csv", tmp_path / "bare.csv"
    long.to_csv(with_columns, index=False)
    long.drop(columns=list(READER_COLUMNS)).to_csv(without, index=False)

    assert main(["report", str(with_columns), "--out", str(tmp_path / "a.html"), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["analysis"]["subgroups"]
    assert cli == _analysis(demo)["subgroups"]

    assert main(["report", str(without), "--out", str(tmp_path / "b.html"), "--json"]) == 0
    bare = json.loads(capsys.readouterr().out)["analysis"]["subgroups"]
    assert bare["subgroups"] == [] and bare["notes"][0].startswith("reader subgroups absent")
    assert "reader subgroups absent" in (tmp_path / "b.html").read_text()
