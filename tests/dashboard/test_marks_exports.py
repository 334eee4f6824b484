"""The marks CSV and the RJafroc workbook of real marks, through the export command and page."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import call_command
from django.urls import reverse

from analysis.froc import read_workbook
from studyplatform.studies.models import Truth
from tests.dashboard.builders import BuiltStudy
from tests.dashboard.froc import CENTRE, build_froc_study, marks_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def froc(db, settings) -> BuiltStudy:
    return build_froc_study(settings)


def _export(fmt: str, tmp_path: Path) -> Path:
    path = tmp_path / f"out.{fmt}"
    call_command("export", "sim", "--format", fmt, "--finding", "nodule", "-o", str(path))
    return path


def _expected(built: BuiltStudy) -> pd.DataFrame:
    """The marks the builder wrote, from the long frame."""
    rows = []
    for r in built.long.itertuples():
        for n, mark in enumerate(marks_of(r), start=1):
            ll = bool(r.truth) and mark["x"] == CENTRE["x"]
            rows.append((r.reader, r.case, r.arm, n, mark.get("confidence", r.confidence),
                         "LL" if ll else "NL", "1" if ll else ""))  # fmt: skip
    return pd.DataFrame(rows, columns=["reader", "case", "arm", "mark", "rating", "kind", "lesion"])


def test_the_marks_csv_has_one_row_per_mark_scored_as_ll_or_nl(froc, tmp_path):
    path = tmp_path / "marks.csv"
    call_command("export", "sim", "--format", "marks", "-o", str(path))

    text = path.read_text()
    got = pd.read_csv(io.StringIO(text), dtype={"lesion": str}, keep_default_na=False)
    assert text.splitlines()[0] == (
        "study,reader,case,arm,session,finding,mark,image,x,y,rating,lesion,kind"
    )
    key = ["reader", "case", "arm", "mark"]
    merged = got.merge(_expected(froc), on=key, suffixes=("", "_expected"), validate="1:1")
    assert len(merged) == len(got) == len(_expected(froc)) > 50
    assert (merged["kind"] == merged["kind_expected"]).all()
    assert (merged["lesion"] == merged["lesion_expected"]).all()
    assert (merged["rating"] == merged["rating_expected"]).all()
    assert set(got["kind"]) == {"LL", "NL"}


def test_marks_of_a_finding_without_lesion_locations_are_listed_unscored(froc, tmp_path):
    Truth.objects.filter(case__study=froc.study).update(location=None)
    path = tmp_path / "marks.csv"
    call_command("export", "sim", "--format", "marks", "-o", str(path))

    got = pd.read_csv(path, keep_default_na=False)

    assert len(got) == len(_expected(froc)) and set(got["kind"]) == {""}


def test_the_rjafroc_export_writes_the_real_lesions_and_marks(froc, tmp_path):
    data = read_workbook(_export("rjafroc", tmp_path))
    expected = _expected(froc)

    abnormal = froc.long.drop_duplicates("case").query("truth == 1")
    assert data.n_abnormal == len(abnormal) and data.n_normal == 24 - len(abnormal)
    assert sum(len(ids) for ids in data.lesion_ids) == len(abnormal) + sum(
        int(c.split("-")[-1]) % 2 == 0 for c in abnormal["case"]
    )
    assert data.treatments == ("unassisted", "assisted") and len(data.readers) == 3
    assert int((data.ll > -1).sum()) == int((expected["kind"] == "LL").sum())
    assert int((data.nl > -1).sum()) == int((expected["kind"] == "NL").sum())


def test_the_rjafroc_export_without_locations_keeps_one_pseudo_lesion_per_case(froc, tmp_path):
    Truth.objects.filter(case__study=froc.study).update(location=None)

    data = read_workbook(_export("rjafroc", tmp_path))

    assert all(ids == ("1",) for ids in data.lesion_ids)
    assert int((data.ll > -1).sum()) == len(froc.long.query("truth == 1"))


def test_the_marks_csv_downloads_for_the_statistician_and_not_the_coordinator(client, froc):
    url = reverse("dashboard:export", args=["sim"])
    client.force_login(froc.coordinator)
    refused = client.post(url, {"format": "marks"})
    client.force_login(froc.statistician)
    response = client.post(url, {"format": "marks"})

    assert refused.status_code == 403
    assert response.status_code == 200
    body = b"".join(response.streaming_content if response.streaming else [response.content])
    assert body.decode().startswith("study,reader,case,arm,session,finding,mark,")
    assert 'filename="sim-marks.csv"' in response["Content-Disposition"]
