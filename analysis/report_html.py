"""The report as one self-contained HTML file, without Django: the command line's rendering.

:func:`render_html` renders the sections of :func:`analysis.sections.sections` as the platform's
template does (the same tables, notes and figures), with plotly's JavaScript inlined once, so the
file opens anywhere without a network; the platform's one-file export uses the same style sheet
and drawing script.
"""

from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path
from typing import Any

from analysis.sections import sections
from analysis.tables import Section, Table


@cache
def plotly_js() -> str:
    """plotly.js as bundled with the plotly package (no CDN: there may be no internet)."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left}th{background:#f2f5fa}
.notes li{color:#8a4b00}
"""

# Draws every figure from its JSON; the platform's one-file export runs the same script.
PLOT_SCRIPT = """(function () {
  document.querySelectorAll("#report div.plot").forEach(function (el) {
    var fig = JSON.parse(document.getElementById(el.id + "-data").textContent);
    Plotly.newPlot(el, fig.data, fig.layout || {}, {responsive: true, displaylogo: false});
  });
})();"""

_JSON_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}


def _table_html(t: Table) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in t.rows)
    caption = f"<h3>{e(t.caption)}</h3>" if t.caption else ""
    return (
        f'{caption}<table class="report-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _section_html(s: Section) -> str:
    e = html.escape
    parts = [f'<section id="section-{e(s.key)}">', f"<h2>{e(s.title)}</h2>"]
    if s.intro:
        parts.append(f"<p>{e(s.intro)}</p>")
    if s.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in s.notes) + "</ul>")
    parts.extend(_table_html(t) for t in s.tables)
    for f in s.figures:
        data = json.dumps(f["figure"]).translate(_JSON_ESCAPES)
        parts.append(
            f'<div class="plot" id="{e(f["id"])}" title="{e(f["title"])}"></div>'
            f'<script id="{e(f["data_id"])}" type="application/json">{data}</script>'
        )
    parts.append("</section>")
    return "\n".join(parts)


def render_html(payload: dict[str, Any], *, title: str = "") -> str:
    """One self-contained HTML page of :func:`sections`: plotly.js inlined once, no network."""
    study = payload["analysis"].get("study") or ""
    heading = html.escape(title or (f"Reader study report: {study}" if study else "Reader study"))
    body = "\n".join(_section_html(s) for s in sections(payload))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{heading}</title>
<style>{CSS}</style>
<script>{plotly_js()}</script>
</head><body>
<h1>{heading}</h1>
<div id="report">
{body}
</div>
<script>
{PLOT_SCRIPT}
</script>
</body></html>
"""


def write_html(payload: dict[str, Any], out: str | Path) -> Path:
    """Write :func:`render_html` to ``out``; a one-line ``ValueError`` when it cannot be written."""
    path = Path(out)
    try:
        path.write_text(render_html(payload), encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot write {path}: {error.strerror or error}") from None
    return path
