"""Exports against the formats' published descriptions, and the MRMCaov round trip.

* MRMCaov: ``reader,treatment,case,truth,rating`` (MRMCaov's VanDyke data; tests/data/vandyke.csv).
* RJafroc (JAFROC Excel format, DfReadDataFile): sheets TRUTH (CaseID, LesionID, Weight),
  NL/FP (ReaderID, ModalityID, CaseID, NL_Rating), LL/TP (ReaderID, ModalityID, CaseID,
  LesionID, LL_Rating); ROC data: one lesion per abnormal case, LesionID 0 for normal cases,
  NL ratings only on normal cases.
* iMRMC (user manual 4.1.1 "Study Raw Data"): free text, lines ``NR:``, ``N0:``, ``N1:``,
  ``NM:``, then ``BEGIN DATA:`` and ``readerID,caseID,modalityID,score`` rows, commas without
  spaces, a truth row per case with reader -1 (modality 0, score 0/1).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import call_command
from openpyxl import load_workbook

from studyplatform.dashboard.exports import build_export, neutralize
from studyplatform.dashboard.exports.formats import long_csv_chunks
from studyplatform.dashboard.services import analysis_for
from studyplatform.studies.models import Case
from tests.services import ROOT

pytestmark = pytest.mark.django_db


def _body(export) -> bytes:
    return b"".join(c.encode() if isinstance(c, str) else c for c in export.chunks)


@pytest.mark.parametrize("value", ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_formula_like_text_is_neutralized(value) -> None:
    assert neutralize(value) == "'" + value


def test_numbers_and_plain_text_are_untouched() -> None:
    assert neutralize(-2) == -2 and neutralize(0.5) == 0.5 and neutralize("C001") == "C001"


def test_csv_and_xlsx_cells_are_neutralized(built, tmp_path: Path) -> None:
    Case.objects.filter(study=built.study, case_id="case-001").update(
        case_id='=HYPERLINK("http://x","y")', manufacturer="@evil"
    )
    text = "".join(long_csv_chunks([("s", "=r", "c", "a", 1, "f", 1, 1, 5, None, "s", "CR",
                                     "+m", "t0", "t1", 1.0)]))  # fmt: skip
    assert "'=r" in text and "'+m" in text
    long = _body(build_export(built.study, "long")).decode()
    assert "'=HYPERLINK" in long and "'@evil" in long
    assert "\n=HYPERLINK" not in long and ",=HYPERLINK" not in long
    mrmc = _body(build_export(built.study, "mrmcaov", finding="nodule")).decode()
    assert "'=HYPERLINK" in mrmc
    book = load_workbook(io.BytesIO(_body(build_export(built.study, "rjafroc", finding="nodule"))))
    cases = [c.value for c in book["CASES"]["B"]]
    assert '\'=HYPERLINK("http://x","y")' in cases
    assert all(c.data_type != "f" for ws in book.worksheets for row in ws.iter_rows() for c in row)


def test_mrmcaov_round_trip_gives_the_reports_numbers(built, tmp_path: Path) -> None:
    path = tmp_path / "nodule.csv"
    call_command("export", "sim", "--format", "mrmcaov", "--finding", "nodule", "-o", str(path))
    header = path.read_text().splitlines()[0]
    assert header == (ROOT / "tests/data/vandyke.csv").read_text().splitlines()[0]
    completed = subprocess.run(
        [sys.executable, "-m", "analysis", "mrmc", str(path), "--json"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    cli = json.loads(completed.stdout)
    shown = (analysis_for(study=built.study).result or {})["analysis"]["mrmc"]["nodule"]
    assert cli["treatment_value"] == pytest.approx(shown["treatment_value"], rel=1e-12)
    assert cli["global_test"]["p_value"] == pytest.approx(shown["global_test"]["p_value"])
    assert cli["differences"][0]["pair"] == shown["differences"][0]["pair"]
    assert cli["differences"][0]["ci_lower"] == pytest.approx(shown["differences"][0]["ci_lower"])


def test_rjafroc_workbook_has_truth_nl_ll_sheets_as_jafroc_reads_them(built) -> None:
    body = _body(build_export(built.study, "rjafroc", finding="nodule"))
    book = load_workbook(io.BytesIO(body))
    assert book.sheetnames[:3] == ["TRUTH", "NL", "LL"]
    rows = {name: list(book[name].values) for name in ("TRUTH", "NL", "LL")}
    assert rows["TRUTH"][0] == ("CaseID", "LesionID", "Weight")
    assert rows["NL"][0] == ("ReaderID", "ModalityID", "CaseID", "NL_Rating")
    assert rows["LL"][0] == ("ReaderID", "ModalityID", "CaseID", "LesionID", "LL_Rating")
    truth = {case: lesion for case, lesion, _ in rows["TRUTH"][1:]}
    assert len(truth) == 30 and all(isinstance(c, int) for c in truth)
    assert set(truth.values()) == {0, 1}
    assert all(truth[r[2]] == 0 for r in rows["NL"][1:])  # ROC: NL marks on normal cases only
    assert all(truth[r[2]] == 1 and r[3] == 1 for r in rows["LL"][1:])
    n_normal = sum(v == 0 for v in truth.values())
    assert len(rows["NL"]) - 1 == n_normal * 4 * 2  # every reader x arm rated every case
    assert len(rows["LL"]) - 1 == (30 - n_normal) * 4 * 2
    assert {r[1] for r in rows["NL"][1:]} == {"unassisted", "assisted"}


def test_imrmc_file_follows_the_user_manual(built) -> None:
    text = _body(build_export(built.study, "imrmc", finding="pneumothorax")).decode()
    lines = text.splitlines()
    begin = lines.index("BEGIN DATA:")
    header = dict(
        line.split(": ", 1) for line in lines[:begin] if line[:3] in {"NR:", "N0:", "N1:", "NM:"}
    )
    data = [line.split(",") for line in lines[begin + 1 :]]
    assert all(len(row) == 4 and " " not in ",".join(row) for row in data)
    truth = [row for row in data if row[0] == "-1"]
    scores = [row for row in data if row[0] != "-1"]
    assert {row[2] for row in truth} == {"0"} and {row[3] for row in truth} <= {"0", "1"}
    assert len(truth) == 30 == int(header["N0"]) + int(header["N1"])
    assert int(header["N1"]) == sum(row[3] == "1" for row in truth)
    assert header["NR"] == "4" and header["NM"] == "2"
    assert len(scores) == 4 * 30 * 2


def test_export_command_writes_every_format(built, tmp_path: Path) -> None:
    for fmt in ("long", "json", "html"):
        out = tmp_path / f"x.{fmt}"
        call_command("export", "sim", "--format", fmt, "-o", str(out))
        assert out.stat().st_size > 0
    html = (tmp_path / "x.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script src=" not in html
    assert len(pd.read_csv(tmp_path / "x.long")) == 4 * 30 * 2 * 2
    assert json.loads((tmp_path / "x.json").read_text())["analysis"]["n_readers"] == 4


def test_export_command_names_the_findings_when_one_is_needed(built, tmp_path: Path) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="nodule, pneumothorax"):
        call_command("export", "sim", "--format", "imrmc", "-o", str(tmp_path / "x"))
