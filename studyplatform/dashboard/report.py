"""The analysis report as tables and figures, for the page and the one-file HTML export.

The cached analysis (a JSON dict) becomes sections of plain tables (formatted strings) plus
plotly figures; ``dashboard/report_body.html`` renders them. The standalone export inlines
plotly's JavaScript once, so the file opens anywhere without a network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.template.loader import render_to_string

from studyplatform.studies.models import Study

DASH = "\u2013"


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)


def _f(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return DASH
    return f"{x:.{digits}f}"


def _p(x: Any) -> str:
    if x is None:
        return DASH
    return "< 0.0001" if x < 1e-4 else f"{x:.4f}"


def _ci(est: Any, lo: Any, hi: Any, digits: int = 3) -> str:
    if est is None:
        return DASH
    return f"{_f(est, digits)} ({_f(lo, digits)}, {_f(hi, digits)})"


def _mrmc(a: dict[str, Any]) -> Table:
    rows = []
    for finding, r in a["mrmc"].items():
        st = r["single_treatment"]
        d = r["differences"][0]
        arms = list(st)
        rows.append(
            [
                finding,
                *(
                    _ci(st[arm]["estimate"], st[arm]["ci_lower"], st[arm]["ci_upper"])
                    for arm in arms[:2]
                ),
                _ci(
                    None if d["estimate"] is None else -d["estimate"],
                    None if d["ci_upper"] is None else -d["ci_upper"],
                    None if d["ci_lower"] is None else -d["ci_lower"],
                ),
                f"{r['global_test']['statistic_name']} = {_f(r['global_test']['statistic'], 3)}",
                _f(d["df"], 2),
                _p(d["p_value"]),
            ]
        )
    return Table(
        ["finding", "AUC unassisted (95% CI)", "AUC assisted (95% CI)",
         "assisted \u2212 unassisted (95% CI)", "test", "df", "p"],
        rows,
    )  # fmt: skip


def _or_difference(d: dict[str, Any] | None) -> str:
    if d is None:
        return DASH
    return f"{_ci(d['estimate'], d['ci_lower'], d['ci_upper'])}, p {_p(d['p_value'])}"


def _gee(g: dict[str, Any] | None) -> str:
    if g is None:
        return DASH
    return f"OR {_ci(g['odds_ratio'], g['or_ci_lower'], g['or_ci_upper'], 2)}, p {_p(g['p_value'])}"


def _rates(a: dict[str, Any]) -> list[Table]:
    sens_rows, rate_rows = [], []
    for fm in a["missed"]["findings"]:
        for kind, label in (("missed", "sensitivity"), ("false_positive", "specificity")):
            part = fm[kind]
            arms = part["arms"]
            d = part["or_difference"]
            g = part["gee"]
            rate_rows.append(
                [
                    fm["finding"],
                    "missed" if kind == "missed" else "false positive",
                    *(
                        f"{_ci(x['rate'], x['ci_lower'], x['ci_upper'])} [{x['events']}/{x['n']}]"
                        for x in arms
                    ),
                    _or_difference(d),
                    _gee(g),
                ]
            )  # fmt: skip
            sens_rows.append(
                [
                    fm["finding"],
                    label,
                    *(
                        _ci(
                            None if x["rate"] is None else 1 - x["rate"],
                            None if x["ci_upper"] is None else 1 - x["ci_upper"],
                            None if x["ci_lower"] is None else 1 - x["ci_lower"],
                        )
                        for x in arms
                    ),
                ]
            )
    split_rows = [
        [fm["finding"], s["arm"], str(s["missed"]), str(s["ai_flagged_reader_dismissed"]),
         str(s["ai_missed_too"]), str(s["ai_unavailable"])]
        for fm in a["missed"]["findings"]
        for s in fm["split"]
    ]  # fmt: skip
    return [
        Table(
            ["finding", "rate", "unassisted (95% CI) [events/n]", "assisted (95% CI) [events/n]",
             "difference, OR MRMC (primary)", "GEE logistic (sensitivity analysis)"],
            rate_rows,
        ),
        Table(["finding", "metric", "unassisted (95% CI)", "assisted (95% CI)"], sens_rows,
              "Sensitivity and specificity of the readers' calls (1 \u2212 the rates above)"),
        Table(["finding", "arm", "missed", "AI flagged, reader dismissed", "AI missed too",
               "AI unavailable"], split_rows, "Misses: did the AI flag them?"),
    ]  # fmt: skip


def _standalone(a: dict[str, Any]) -> list[Table]:
    rows, vs_rows = [], []
    for fs in a["standalone"]["findings"]:
        for perf in (fs["overall"], *fs["subgroups"]):
            rows.append(
                [
                    fs["finding"],
                    "overall" if perf["group"] == "all" else f"{perf['group']} = {perf['level']}",
                    f"{perf['n_positive']} / {perf['n_negative']}",
                    _ci(perf["auc"], perf["auc_ci_lower"], perf["auc_ci_upper"]),
                    _ci(perf["sensitivity"]["estimate"], perf["sensitivity"]["ci_lower"],
                        perf["sensitivity"]["ci_upper"]),
                    _ci(perf["specificity"]["estimate"], perf["specificity"]["ci_lower"],
                        perf["specificity"]["ci_upper"]),
                ]
            )  # fmt: skip
        v = fs["versus_readers"]
        vs_rows.append(
            [
                fs["finding"],
                _f(fs["threshold"], 2),
                DASH if v is None else _f(v["ai_auc"]),
                DASH if v is None else _f(v["readers_auc"]),
                fs["versus_readers_error"] or _ci(v["estimate"], v["ci_lower"], v["ci_upper"]),
                DASH if v is None else _p(v["p_value"]),
            ]
        )
    return [
        Table(["finding", "cases", "positive / negative", "AUC (95% DeLong CI)",
               "sensitivity (Wilson CI)", "specificity (Wilson CI)"], rows,
              "AI standalone, overall and by site, manufacturer and modality"),
        Table(["finding", "threshold", "AI AUC", "readers' AUC (unassisted)",
               "AI \u2212 readers (95% CI, 2T-RRRC)", "p"], vs_rows, "AI against the readers"),
    ]  # fmt: skip


def _drift(drift: dict[str, Any] | None) -> list[Table]:
    if drift is None:
        return []
    rows = [
        [r["finding"], r["stratum"], r["site"], str(r["n"]), _f(r["mean"]), _f(r["median"]),
         _f(r["ks_statistic"]), _p(r["ks_p_value"]), _f(r["psi"]), r["level"]]
        for r in drift["rows"]
    ]  # fmt: skip
    return [
        Table(
            ["finding", "cases", "site", "n", "mean score", "median score", "KS D", "KS p", "PSI",
             "shift"],
            rows,
            f"Each site against the reference site {drift['reference']}",
        )
    ]  # fmt: skip


def _agreement(a: dict[str, Any]) -> Table:
    rows = [
        [r["arm"], r["finding"], r["comparison"], r["rater_a"], r["rater_b"], str(r["n"]),
         _f(r["percent_agreement"], 1), _ci(r["kappa"], r["ci_lower"], r["ci_upper"])]
        for r in a["agreement"]
    ]  # fmt: skip
    return Table(
        ["arm", "finding", "comparison", "rater A", "rater B", "n", "% agreement",
         "kappa (95% CI)"],
        rows,
    )  # fmt: skip


def _time(a: dict[str, Any]) -> list[Table]:
    rt = a["reading_time"]
    if rt is None:
        return []
    rows = [
        [x["arm"], str(x["n_reads"]), _f(x["median"], 1), f"{_f(x['q1'], 1)}{DASH}{_f(x['q3'], 1)}",
         _f(x["geometric_mean"], 1)]
        for x in rt["arms"]
    ]  # fmt: skip
    model = rt["model_error"] or rt["model"]
    ratio = [["assisted / unassisted", _ci(rt["ratio"], rt["ci_lower"], rt["ci_upper"]),
              _p(rt["p_value"]), model]]  # fmt: skip
    return [
        Table(["arm", "reads", "median (s)", "IQR (s)", "geometric mean (s)"], rows),
        Table(["ratio", "estimate (95% CI)", "p", "model"], ratio),
    ]


def _protocol(protocol: dict[str, Any] | None) -> list[Table]:
    if not protocol:
        return []
    rows = [
        [ft["code"], f"v{ft.get('introduced_in') or 1}",
         "yes" if ft.get("clinically_significant") else "no",
         DASH if ft.get("ai_threshold") is None else _f(ft["ai_threshold"], 2),
         f"{ft.get('reads', 0)} of {ft.get('reads_total', 0)}"]
        for ft in protocol.get("finding_types", [])
    ]  # fmt: skip
    return [
        Table(["finding", "in the protocol since", "clinically significant",
               "AI threshold (empty: the model's)", "reads that asked it"], rows)
    ]  # fmt: skip


def sections(payload: dict[str, Any]) -> list[Section]:
    """The report's sections from a cached analysis payload."""
    a = payload["analysis"]
    figs: dict[str, list[dict[str, Any]]] = {}
    for i, fig in enumerate(payload.get("figures", [])):
        figs.setdefault(fig["section"], []).append(
            {"id": f"figure-{i}", "data_id": f"figure-{i}-data", **fig}
        )
    protocol = payload.get("protocol") or {}
    return [
        Section("protocol", f"Protocol version {protocol.get('version', DASH)}",
                "Significance and AI thresholds as this version of the protocol sets them; each "
                "finding type is analysed over the reads that asked it.",
                _protocol(protocol)),
        Section("mrmc", "MRMC ROC analysis (Obuchowski-Rockette, random readers and cases)",
                "Rating: the reader's probability that the finding is present, 0\u2013100; "
                "empirical AUC, jackknife covariance, Hillis degrees of freedom.",
                [_mrmc(a)], figs.get("mrmc", [])),
        Section("missed", "Missed findings, false positives, sensitivity and specificity",
                "Primary: OR MRMC analysis of the binary calls; sensitivity analysis: GEE logistic "
                "model with cases as clusters.", _rates(a), figs.get("missed", [])),
        Section("standalone", "AI standalone", "", _standalone(a), figs.get("standalone", [])),
        Section("drift", "AI score drift between sites",
                "Two-sample Kolmogorov-Smirnov test and population stability index (PSI < 0.1 "
                "stable, 0.1\u20130.25 moderate, > 0.25 major shift) of the AI probability, one "
                "value per case.", _drift(payload.get("drift")), figs.get("drift", [])),
        Section("agreement", "Agreement (Cohen's and Fleiss' kappa of the calls)", "",
                [_agreement(a)]),
        Section("time", "Reading time", "", _time(a)),
    ]  # fmt: skip


@cache
def plotly_js() -> str:
    """plotly.js as bundled with the plotly package (no CDN: there may be no internet)."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def plotly_version() -> str:
    import plotly

    return str(plotly.__version__)


def render_report(*, study: Study, payload: dict[str, Any], standalone: bool) -> str:
    """The report's HTML: the page's body, or (``standalone``) one self-contained file."""
    context = {
        "study": study,
        "payload": payload,
        "analysis": payload["analysis"],
        "sections": sections(payload),
        "standalone": standalone,
        "plotly_js": plotly_js() if standalone else "",
    }
    template = "dashboard/report_file.html" if standalone else "dashboard/report_body.html"
    return render_to_string(template, context)
