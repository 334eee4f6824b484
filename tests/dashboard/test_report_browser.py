"""The command line's one-file report in headless Chromium: opened from disk, no network,
every chart drawn and no JavaScript error."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.report_html import write_html
from analysis.simulate import simulate_long_frame
from analysis.study import analyze_file

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_command_lines_report_file_draws_every_chart_offline(tmp_path: Path, page) -> None:
    path = write_html(
        analyze_file(simulate_long_frame(3, n_readers=3, n_cases=30)), tmp_path / "r.html"
    )
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    n_plots = page.locator("#report div.plot").count()
    assert n_plots >= 6
    page.wait_for_function(
        f"() => document.querySelectorAll('#report div.plot .main-svg').length >= {n_plots}",
        timeout=60_000,
    )
    assert "AI score drift" in page.inner_text("#section-drift")
    assert errors == [] and requests == [path.as_uri()]
