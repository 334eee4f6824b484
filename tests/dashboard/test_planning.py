"""The power planning page end to end: built-in, uploaded and interim pilots, errors, access."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from analysis.io import read_mrmc_csv
from analysis.power import pilot_components, power_given
from studyplatform.audit.models import AuditEvent
from tests.dashboard.builders import build_study

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[1] / "data"
URL = reverse("dashboard:planning", args=["sim"])
PLAN = {
    "metric": "empirical_auc",
    "effect": "0.05",
    "alpha": "0.05",
    "factors": "RRRC",
    "reader_groups": "1",
    "max_readers": "10",
    "max_cases": "200",
}


def _post(client, user, **data):
    client.force_login(user)
    return client.post(URL, {**PLAN, **data})


def _upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


@pytest.fixture
def built(db):
    """A small study (3 readers x 10 cases, one finding type, every read submitted): the page
    needs staff and, for the interim pilot, a few finished readers, not the full fixture."""
    return build_study("sim", n_readers=3, n_cases=10, findings=("nodule",))


def _interim_views() -> int:
    return AuditEvent.objects.filter(action="analysis.interim_view").count()


def test_statistician_sees_the_built_in_pilots_grid(client, built) -> None:
    client.force_login(built.statistician)
    response = client.get(URL)
    text = response.content.decode()
    assert response.status_code == 200
    assert 'id="power-grid"' in text and "Van Dyke" in text
    grid = response.context["plan"].grid
    assert grid.readers[0] == 2 and grid.readers[-1] == 20 and grid.cases[-1] == 400
    # A cell of the page is the command line's power for the same plan.
    vandyke = pilot_components(read_mrmc_csv(DATA / "vandyke.csv"))
    j, k = grid.readers.index(6), grid.cases.index(120)
    want = power_given(vandyke, readers=6, cases=120, effect=0.05).power
    assert grid.power[j, k] == pytest.approx(want, rel=1e-12)
    assert _interim_views() == 0


def test_the_dashboard_links_the_planning_page(client, built) -> None:
    client.force_login(built.statistician)
    response = client.get(reverse("dashboard:study", args=["sim"]))
    assert URL in response.content.decode()


def test_uploaded_pilot_gives_its_grid(client, built) -> None:
    pilot = _upload("franken.csv", (DATA / "franken.csv").read_bytes())
    response = _post(client, built.statistician, source="upload", pilot=pilot, factors="FRRC")
    assert response.status_code == 200
    plan = response.context["plan"]
    assert "uploaded pilot franken.csv" in response.content.decode()
    assert plan.grid.components.n_cases == 100 and plan.grid.factors == "FRRC"


def test_split_plot_grid_keeps_multiples_of_the_groups(client, built) -> None:
    response = _post(client, built.statistician, source="builtin", reader_groups="2")
    grid = response.context["plan"].grid
    assert response.status_code == 200
    assert all(j % 2 == 0 for j in grid.readers) and all(k % 2 == 0 for k in grid.cases)


BAD_UPLOADS = (
    (b"reader,case,rating\n1,1,3\n", "missing column(s): treatment, truth"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (
        b"reader,treatment,case,truth,rating\n1,A,1,0,1\n1,A,2,1,3\n2,A,1,0,2\n2,A,2,1,4\n",
        "exactly 2 treatments",
    ),
)


def test_bad_upload_is_a_page_that_says_why(client, built) -> None:
    for content, message in BAD_UPLOADS:
        pilot = _upload("p.csv", content)
        response = _post(client, built.statistician, source="upload", pilot=pilot)
        assert response.status_code == 400
        assert message in response.content.decode()
        assert response.context["plan"] is None


def test_upload_without_a_file_is_refused_on_the_page(client, built) -> None:
    response = _post(client, built.statistician, source="upload")
    assert response.status_code == 400
    assert "choose a pilot CSV to upload" in response.content.decode()


def test_bad_plan_is_a_page_that_says_why(client, built) -> None:
    response = _post(client, built.statistician, source="builtin", effect="0")
    assert response.status_code == 400
    assert "non-zero difference" in response.content.decode()


def test_study_interim_data_is_the_pilot_and_the_look_is_recorded(client, built) -> None:
    response = _post(client, built.statistician, source="study", finding="nodule")
    assert response.status_code == 200
    plan = response.context["plan"]
    assert "interim data of sim, finding type nodule, 3 complete-case reader(s)" in (
        response.content.decode()
    )
    assert plan.grid.components.n_readers == 3
    assert plan.grid.components.treatments == ("unassisted", "assisted")
    assert _interim_views() == 1


def test_missed_findings_endpoint_plans_on_the_sensitivity_of_the_calls(client, built) -> None:
    built.study.primary_endpoint = "missed"
    built.study.save(update_fields=["primary_endpoint"])
    response = _post(client, built.statistician, source="study", finding="nodule")
    assert response.status_code == 200
    assert response.context["plan"].grid.components.metric == "sensitivity"


def test_study_with_no_finished_reader_says_so(client, db) -> None:
    part_way = build_study("sim", n_readers=3, n_cases=10, findings=("nodule",), sessions_read=(1,))
    response = _post(client, part_way.statistician, source="study", finding="nodule")
    assert response.status_code == 400
    assert "has finished both arms yet" in response.content.decode()
    assert _interim_views() == 0


def test_coordinator_is_refused_before_the_lock(client, built) -> None:
    client.force_login(built.coordinator)
    refused = client.get(URL)
    assert refused.status_code == 403
    assert b"statistician until the study is locked" in refused.content
    assert _post(client, built.coordinator, source="study", finding="nodule").status_code == 403


def test_readers_and_other_studies_staff_are_forbidden(client, built) -> None:
    other = build_study("other", n_readers=2, n_cases=6, findings=("nodule",))
    for user in (built.reader_users[0], other.statistician):
        client.force_login(user)
        assert client.get(URL).status_code == 403
    assert _interim_views() == 0


def test_anonymous_users_are_sent_to_login(client, built) -> None:
    response = client.get(URL)
    assert response.status_code == 302 and "/login/" in response["Location"]
