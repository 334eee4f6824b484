"""Every analysis of a reader study's long reads frame, as a JSON-able dict and one HTML file.

:func:`analyze_long_frame` runs, on the long reads frame of DESIGN.md:

* per finding type, the Obuchowski-Rockette MRMC ROC analysis of the readers' confidence
  (0-100) as the rating, arms as treatments (``unassisted`` first, so the difference is
  ``unassisted - assisted``), empirical AUC, jackknife covariance, random readers and cases
  (:func:`analysis.mrmc.or_analysis`);
* missed findings and false positives (:mod:`analysis.missed`);
* agreement of the calls: reader pairs, Fleiss, reader vs truth, reader vs AI, per arm
  (:mod:`analysis.agreement`);
* AI standalone performance, per subgroup and against the unassisted readers
  (:mod:`analysis.standalone`);
* reading time per arm (:mod:`analysis.readtime`).

An analysis that the data cannot support (for example OR on a design that is not fully crossed)
is skipped with its reason in ``notes``; input that is wrong as a whole (missing column,
non-numeric confidence, truth not 0/1, an arm missing) raises ``ValueError``.
:func:`render_html` turns the result into one self-contained HTML page (plotly's JavaScript
inlined once), and :func:`write_report` does both.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from analysis.agreement import AgreementRow
    from analysis.missed import MissedFindingsResult
    from analysis.mrmc import ORResult
    from analysis.readtime import ReadingTimeResult
    from analysis.standalone import StandaloneResult

DESIGN_COLUMNS: tuple[str, ...] = (
    "study", "reader", "case", "arm", "session", "finding", "truth", "call", "confidence",
    "ai_probability", "site", "modality", "manufacturer", "started_at", "submitted_at",
    "duration_s",
)  # fmt: skip
# A corrected read's row carries the corrected call and confidence; these say that it was
# corrected (0/1), what the reader first submitted, and when the latest correction was made.
CORRECTION_COLUMNS: tuple[str, ...] = (
    "corrected", "original_call", "original_confidence", "corrected_at",
)  # fmt: skip
LONG_COLUMNS: tuple[str, ...] = DESIGN_COLUMNS + CORRECTION_COLUMNS
ARMS: tuple[str, str] = ("unassisted", "assisted")


@dataclass(frozen=True)
class ReportResult:
    """All results of :func:`analyze_long_frame`."""

    study: str
    n_readers: int
    n_cases: int
    n_rows: int
    findings: tuple[str, ...]
    mrmc: dict[str, ORResult]
    missed: MissedFindingsResult
    agreement: tuple[AgreementRow, ...]
    standalone: StandaloneResult
    reading_time: ReadingTimeResult | None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (no NaN: missing numbers are ``None``); the web app reuses it."""
        return {
            "study": self.study,
            "n_readers": self.n_readers,
            "n_cases": self.n_cases,
            "n_rows": self.n_rows,
            "findings": list(self.findings),
            "mrmc": {f: r.to_dict() for f, r in self.mrmc.items()},
            "missed": self.missed.to_dict(),
            "agreement": [r.to_dict() for r in self.agreement],
            "standalone": self.standalone.to_dict(),
            "reading_time": None if self.reading_time is None else self.reading_time.to_dict(),
            "notes": list(self.notes),
        }


def check_long_frame(long: pd.DataFrame) -> pd.DataFrame:
    """Validate the long reads frame; return a copy with typed columns.

    Raises
    ------
    ValueError
        Missing columns, no rows, an empty ID, ``truth``/``call`` not 0/1, a non-numeric or
        out-of-range ``confidence``, a non-numeric ``ai_probability``, an arm missing.
    """
    needed = ("reader", "case", "arm", "finding", "truth", "call", "confidence", "ai_probability")
    missing = [c for c in needed if c not in long.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    if len(long) == 0:
        raise ValueError("no data rows")
    f = long.copy()
    for col in ("reader", "case", "arm", "finding"):
        empty = f[col].isna() | (f[col].astype(str).str.strip() == "")
        if empty.any():
            raise ValueError(f"empty {col} in data row {int(np.flatnonzero(empty)[0]) + 1}")
        f[col] = f[col].astype(str).str.strip()
    for col in ("truth", "call"):
        values = pd.to_numeric(f[col], errors="coerce")
        bad = ~values.isin([0, 1])
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{col} must be 0 or 1, got {f[col].iloc[row]!r} in data row {row + 1}"
            )
        f[col] = values.astype(np.int64)
    conf = pd.to_numeric(f["confidence"], errors="coerce")
    bad = ~conf.between(0, 100)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"non-numeric or out-of-range confidence {f['confidence'].iloc[row]!r} "
            f"in data row {row + 1} (need 0-100)"
        )
    f["confidence"] = conf.astype(np.float64)
    prob = pd.to_numeric(f["ai_probability"], errors="coerce")
    bad = prob.isna() & f["ai_probability"].notna() & (f["ai_probability"].astype(str) != "")
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"non-numeric ai_probability {f['ai_probability'].iloc[row]!r} in data row {row + 1}"
        )
    f["ai_probability"] = prob
    arms = set(f["arm"])
    if not set(ARMS) <= arms:
        raise ValueError(f"need both arms {ARMS[0]!r} and {ARMS[1]!r}, got {sorted(arms)}")
    return f


def read_long_csv(path: str | Path) -> pd.DataFrame:
    """Read a long reads frame CSV (IDs as strings) and validate it (:func:`check_long_frame`)."""
    ids = {c: str for c in ("study", "reader", "case", "arm", "finding", "site", "modality",
                            "manufacturer")}  # fmt: skip
    try:
        frame = pd.read_csv(path, dtype=ids, skipinitialspace=True)
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "empty file"
        raise ValueError(f"cannot parse {path} as CSV: {first}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return check_long_frame(frame)


def mrmc_frame(long: pd.DataFrame, finding: str) -> pd.DataFrame:
    """The MRMC frame (``reader,treatment,case,truth,rating``) of one finding type.

    Rating = confidence; treatments are the arms, ``unassisted`` first.
    """
    g = long[(long["finding"] == finding) & long["arm"].isin(ARMS)]
    frame = pd.DataFrame(
        {
            "reader": g["reader"].to_numpy(),
            "treatment": g["arm"].to_numpy(),
            "case": g["case"].to_numpy(),
            "truth": g["truth"].to_numpy(),
            "rating": g["confidence"].to_numpy(dtype=np.float64),
        }
    )
    order = frame["treatment"].map(ARMS.index)
    return frame.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)


def analyze_long_frame(
    long: pd.DataFrame,
    *,
    significant: Sequence[str] | None = None,
    ai_threshold: float | dict[str, float] = 0.5,
    alpha: float = 0.05,
) -> ReportResult:
    """Run every analysis of the reader study on its long reads frame.

    Parameters
    ----------
    long
        The long reads frame of DESIGN.md.
    significant
        Clinically significant finding types pooled in the missed-finding analysis (``None``:
        all types); those without reads are left out of the pool, with a note.
    ai_threshold
        The AI model's operating threshold (one, or one per finding type).
    alpha
        Two-sided level of every interval.

    Returns
    -------
    ReportResult
        See the module docstring; ``to_dict()`` gives the JSON-able form.
    """
    from analysis.agreement import long_frame_agreement
    from analysis.missed import missed_findings
    from analysis.mrmc import or_analysis
    from analysis.readtime import reading_time
    from analysis.standalone import ai_standalone

    f = check_long_frame(long)
    notes: list[str] = []
    findings = tuple(str(x) for x in pd.unique(f["finding"]))
    mrmc: dict[str, ORResult] = {}
    for finding in findings:
        try:
            mrmc[finding] = or_analysis(mrmc_frame(f, finding), alpha=alpha)
        except ValueError as error:
            notes.append(f"MRMC ROC analysis of {finding} skipped: {error}")
    if significant is not None:
        # A significant type no read has asked yet (added by an amendment, say) is left out of
        # the pool, with a note; the rest of the analysis does not depend on it.
        absent = [s for s in significant if s not in findings]
        if absent:
            notes.append(
                f"clinically significant finding type(s) with no reads left out of the pooled "
                f"missed-finding analysis: {', '.join(absent)}"
            )
        significant = [s for s in significant if s in findings]
    missed = missed_findings(f, significant=significant, ai_threshold=ai_threshold, alpha=alpha)
    for fm in missed.findings:
        for part in (fm.missed, fm.false_positive):
            if part.or_error:
                notes.append(f"OR {part.kind} analysis of {fm.finding} skipped: {part.or_error}")
    agreement = long_frame_agreement(f, ai_threshold=ai_threshold, alpha=alpha)
    standalone = ai_standalone(f, ai_threshold=ai_threshold, alpha=alpha)
    for fs in standalone.findings:
        if fs.versus_readers_error:
            notes.append(f"AI vs readers for {fs.finding} skipped: {fs.versus_readers_error}")
    rt: ReadingTimeResult | None = None
    if "duration_s" in f.columns:
        try:
            rt = reading_time(f, alpha=alpha)
        except ValueError as error:
            notes.append(f"reading time skipped: {error}")
        else:
            if rt.model_error:
                notes.append(f"reading-time model not fitted: {rt.model_error}")
    else:
        notes.append("reading time skipped: no duration_s column")
    study = str(f["study"].iloc[0]) if "study" in f.columns else ""
    return ReportResult(
        study=study,
        n_readers=int(f["reader"].nunique()),
        n_cases=int(f["case"].nunique()),
        n_rows=len(f),
        findings=findings,
        mrmc=mrmc,
        missed=missed,
        agreement=agreement,
        standalone=standalone,
        reading_time=rt,
        notes=tuple(notes),
    )


def report_dict(long: pd.DataFrame, **options: Any) -> dict[str, Any]:
    """``analyze_long_frame(long, **options).to_dict()``: every result as a JSON-able dict."""
    return analyze_long_frame(long, **options).to_dict()


# -- HTML ---------------------------------------------------------------------------------------


def _f(x: float | None, digits: int = 3) -> str:
    return "&ndash;" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "&ndash;"
    return "&lt; 0.0001" if x < 1e-4 else f"{x:.4f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _mrmc_section(result: ReportResult) -> str:
    rows = []
    for finding, r in result.mrmc.items():
        st = r.single_treatment
        d = r.differences[0]
        rows.append(
            [
                html.escape(finding),
                *(
                    f"{_f(st[a].estimate)} ({_f(st[a].ci_lower)}, {_f(st[a].ci_upper)})"
                    for a in ARMS
                ),
                f"{_f(-d.estimate)} ({_f(-d.ci_upper)}, {_f(-d.ci_lower)})",
                _p(d.p_value),
            ]
        )
    return _table(
        ["finding", "AUC unassisted (95% CI)", "AUC assisted (95% CI)",
         "assisted &minus; unassisted (95% CI)", "p"],
        rows,
    )  # fmt: skip


def _missed_section(result: ReportResult) -> str:
    rows = []
    for fm in result.missed.findings:
        for part in (fm.missed, fm.false_positive):
            u, a = part.arms
            d = part.or_difference
            g = part.gee
            rows.append(
                [
                    html.escape(fm.finding),
                    "missed" if part.kind == "missed" else "false positive",
                    f"{_f(u.rate)} ({_f(u.ci_lower)}, {_f(u.ci_upper)})",
                    f"{_f(a.rate)} ({_f(a.ci_lower)}, {_f(a.ci_upper)})",
                    "&ndash;"
                    if d is None
                    else f"{_f(d.estimate)} ({_f(d.ci_lower)}, {_f(d.ci_upper)}), "
                    f"p {_p(d.p_value)}",
                    "&ndash;"
                    if g is None
                    else f"OR {_f(g.odds_ratio, 2)} ({_f(g.or_ci_lower, 2)}, "
                    f"{_f(g.or_ci_upper, 2)}), p {_p(g.p_value)}",
                ]
            )
    split_rows = [
        [html.escape(fm.finding), s.arm, str(s.missed), str(s.ai_flagged), str(s.ai_missed),
         str(s.ai_unavailable)]
        for fm in result.missed.findings
        for s in fm.split
    ]  # fmt: skip
    return _table(
        ["finding", "rate", "unassisted (95% CI)", "assisted (95% CI)",
         "difference, OR MRMC (primary)", "GEE logistic (sensitivity analysis)"],
        rows,
    ) + "<h3>Misses: did the AI flag them?</h3>" + _table(
        ["finding", "arm", "missed", "AI flagged, reader dismissed", "AI missed too",
         "AI unavailable"],
        split_rows,
    )  # fmt: skip


def _standalone_section(result: ReportResult) -> str:
    rows = []
    for fs in result.standalone.findings:
        o = fs.overall
        v = fs.versus_readers
        rows.append(
            [
                html.escape(fs.finding),
                _f(fs.threshold, 2),
                f"{_f(o.auc)} ({_f(o.auc_ci_lower)}, {_f(o.auc_ci_upper)})",
                f"{_f(o.sensitivity.estimate)} ({_f(o.sensitivity.ci_lower)}, "
                f"{_f(o.sensitivity.ci_upper)})",
                f"{_f(o.specificity.estimate)} ({_f(o.specificity.ci_lower)}, "
                f"{_f(o.specificity.ci_upper)})",
                "&ndash;"
                if v is None
                else f"{_f(v.estimate)} ({_f(v.ci_lower)}, {_f(v.ci_upper)}), p {_p(v.p_value)}",
            ]
        )
    return _table(
        ["finding", "threshold", "AUC (95% DeLong CI)", "sensitivity (Wilson CI)",
         "specificity (Wilson CI)", "AI AUC &minus; readers' mean AUC (2T-RRRC)"],
        rows,
    )  # fmt: skip


def _time_section(result: ReportResult) -> str:
    rt = result.reading_time
    if rt is None:
        return "<p>Not available.</p>"
    rows = [
        [a.arm, str(a.n_reads), _f(a.median, 1), f"{_f(a.q1, 1)}&ndash;{_f(a.q3, 1)}",
         _f(a.geometric_mean, 1)]
        for a in rt.arms
    ]  # fmt: skip
    ratio = (
        f"<p>Assisted / unassisted reading time (mixed model {html.escape(rt.model)}): "
        f"<b>{_f(rt.ratio)}</b> (95% CI {_f(rt.ci_lower)}&ndash;{_f(rt.ci_upper)}), "
        f"p {_p(rt.p_value)}.</p>"
    )
    return _table(["arm", "reads", "median (s)", "IQR (s)", "geometric mean (s)"], rows) + ratio


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left}th{background:#f2f5fa}
.notes li{color:#8a4b00}.figure{margin:1em 0}
"""


def render_html(result: ReportResult, long: pd.DataFrame) -> str:
    """One self-contained HTML page: tables, and plotly figures with the JS inlined once."""
    from analysis import figures

    f = check_long_frame(long)
    figs = []
    for finding in result.findings:
        figs.append((f"ROC curves: {finding}", figures.roc_curves_figure(
            mrmc_frame(f, finding), title=f"ROC curves, {finding} (probability)")))  # fmt: skip
        if finding in result.mrmc:
            figs.append((f"Reader AUC: {finding}", figures.auc_forest_figure(
                result.mrmc[finding], title=f"Reader AUC, {finding}")))  # fmt: skip
    blocks: dict[str, list[str]] = {"roc": [], "missed": [], "standalone": [], "agreement": []}
    first = True

    def embed(fig: Any) -> str:
        nonlocal first
        out = fig.to_html(full_html=False, include_plotlyjs=first)
        first = False
        return f'<div class="figure">{out}</div>'

    blocks["roc"] = [embed(fig) for _, fig in figs]
    if result.missed.findings:
        blocks["missed"] = [
            embed(figures.missed_rates_figure(result.missed)),
            embed(figures.missed_rates_figure(result.missed, kind="false_positive")),
        ]
    if result.standalone.findings:
        blocks["standalone"] = [embed(figures.standalone_subgroups_figure(result.standalone))]
    if result.agreement:
        blocks["agreement"] = [embed(figures.agreement_table_figure(result.agreement))]
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    title = html.escape(f"Reader study report: {result.study}" if result.study else "Reader study")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{_CSS}</style></head><body>
<h1>{title}</h1>
<p>{result.n_readers} readers, {result.n_cases} cases, {len(result.findings)} finding types
({html.escape(", ".join(result.findings))}), {result.n_rows} rows.</p>
{f'<h2>Notes</h2><ul class="notes">{notes}</ul>' if notes else ""}
<h2>MRMC ROC analysis (Obuchowski-Rockette, random readers and cases)</h2>
<p>Rating: the reader's probability that the finding is present, 0&ndash;100. Empirical AUC,
jackknife covariance, Hillis df.</p>
{_mrmc_section(result)}
{"".join(blocks["roc"])}
<h2>Missed findings and false positives</h2>
<p>Primary: OR MRMC analysis of the binary call (sensitivity / specificity, random readers and
cases). Sensitivity analysis: GEE logistic model, clusters = cases, exchangeable correlation.</p>
{_missed_section(result)}
{"".join(blocks["missed"])}
<h2>AI standalone</h2>
{_standalone_section(result)}
{"".join(blocks["standalone"])}
<h2>Agreement</h2>
{"".join(blocks["agreement"])}
<h2>Reading time</h2>
{_time_section(result)}
</body></html>
"""


def write_report(long: pd.DataFrame, out: str | Path, **options: Any) -> tuple[ReportResult, Path]:
    """Analyse ``long`` and write the HTML report to ``out``; return the result and the path."""
    result = analyze_long_frame(long, **options)
    path = Path(out)
    try:
        path.write_text(render_html(result, long), encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot write {path}: {error.strerror or error}") from None
    return result, path
