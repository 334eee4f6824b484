"""``demo --ct`` builds the CT demo study beside the radiograph one: DICOM series through the
import, truth with 3-D lesion locations, the CT model's per-slice pre-reads, readers enrolled."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from analysis.froc.marks import score_marks
from studyplatform.dashboard.selectors.marks import study_marks
from studyplatform.prereads.models import PreRead, PreReadStatus
from studyplatform.reading.models import Assignment, Enrolment
from studyplatform.studies.demo_ct import DEMO_CT_SLUG, build_demo_ct_study, case_plan
from studyplatform.studies.models import Case, OrderedBy, Series, Study, Truth

pytestmark = pytest.mark.django_db


SLICES = 24  # the demo has 48 slices of 128 x 128: smaller here, for speed


def test_demo_ct_builds_the_ct_study_with_lesion_locations(roles):
    summary = build_demo_ct_study(n_cases=4, simulate_reads=True, size=64, slices=SLICES)

    study = Study.objects.get(slug=DEMO_CT_SLUG)
    assert (summary.study, summary.cases, summary.images) == (study, 4, 4 * SLICES)
    assert sorted(study.arms.values_list("name", "shows_ai")) == [
        ("assisted", True), ("unassisted", False)
    ]  # fmt: skip
    cases = list(Case.objects.filter(study=study).order_by("case_id"))
    assert [c.modality for c in cases] == ["CT"] * 4
    assert {c.manufacturer for c in cases} == {"Acme Imaging", "Borealis Medical"}
    for case in cases:
        series = Series.objects.get(case=case)
        assert series.ordered_by == OrderedBy.POSITION and series.slices.count() == SLICES
    plan = {p.case_id: p.nodules for p in case_plan(n_cases=4, seed=study.seed)}
    for truth in Truth.objects.filter(case__study=study).select_related("case"):
        assert truth.present == (plan[truth.case.case_id] > 0)
        if truth.present:
            assert len(truth.location) == plan[truth.case.case_id]
            for lesion in truth.location:
                assert lesion["series"] == 1 and lesion["image"] == lesion["slice"]
                assert lesion["slice"] - lesion["depth"] >= 1
                assert lesion["slice"] + lesion["depth"] <= SLICES
        else:
            assert truth.location is None
    assert sorted(Enrolment.objects.filter(study=study).values_list("reader__code", flat=True)) == [
        "R01", "R02", "R03", "R04"
    ]  # fmt: skip
    prereads = PreRead.objects.filter(case__study=study)
    assert [p.status for p in prereads] == [PreReadStatus.DONE] * 4
    assert {p.heatmap_slices for p in prereads} == {SLICES}
    # Crossover: every reader reads every case once per arm.
    assert Assignment.objects.filter(session__study=study).count() == 4 * 4 * 2
    # The simulated readers' marks are scored against the lesions' extents.
    tables = study_marks(study)
    marks = tables.marks.rename(columns={"arm": "treatment"})
    marks = marks[marks["finding"] == "nodule"]
    lesions = tables.lesions[tables.lesions["finding"] == "nodule"]
    scored = score_marks(marks, lesions, [c.case_id for c in cases])
    assert (scored.marks["kind"] == "LL").sum() > 0


def test_the_demo_command_with_ct_builds_both_studies_and_points_to_both(roles, settings):
    settings.DEBUG = True
    out = StringIO()
    call_command("demo", cases=6, ct=True, ct_cases=4, stdout=out)
    assert set(Study.objects.values_list("slug", flat=True)) >= {"demo", DEMO_CT_SLUG}
    assert Case.objects.filter(study__slug=DEMO_CT_SLUG, modality="CT").count() == 4
    printed = out.getvalue()
    for slug in ("demo", DEMO_CT_SLUG):
        assert f"/dashboard/{slug}/ " in printed or f"/dashboard/{slug}/\n" in printed
        assert f"/dashboard/{slug}/report/" in printed
