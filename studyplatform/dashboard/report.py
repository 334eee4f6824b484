"""The analysis report as a page and as one HTML file, from the cached analysis object.

The sections (tables, notes, figures) come from :func:`analysis.sections.sections`, the same list
the command line's HTML file renders; ``dashboard/report_body.html`` renders them. The one-file
export inlines plotly's JavaScript once, so the file opens anywhere without a network.
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string

from analysis.report_html import CSS, PLOT_SCRIPT, plotly_js
from analysis.sections import sections
from studyplatform.dashboard.selectors.training import (
    TRAINING_HEADER,
    training_rows,
    training_summary,
    training_table,
)
from studyplatform.studies.models import Study

__all__ = ["plotly_js", "plotly_version", "render_report"]


def plotly_version() -> str:
    import plotly

    return str(plotly.__version__)


def render_report(*, study: Study, payload: dict[str, Any], standalone: bool) -> str:
    """The report's HTML: the page's body, or (``standalone``) one self-contained file.

    The readers' training is read at render time (it is not an input of the analysis).
    """
    rows = training_rows(study)
    context = {
        "training": {
            "summary": training_summary(rows),
            "header": TRAINING_HEADER,
            "rows": training_table(rows),
        },
        "study": study,
        "payload": payload,
        "analysis": payload["analysis"],
        "sections": sections(payload),
        "standalone": standalone,
        "plotly_js": plotly_js() if standalone else "",
        "css": CSS,
        "plot_script": PLOT_SCRIPT,
    }
    template = "dashboard/report_file.html" if standalone else "dashboard/report_body.html"
    return render_to_string(template, context)
