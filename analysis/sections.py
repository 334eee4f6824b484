"""The analysis report as sections of tables and figures, and its one-file HTML rendering.

:func:`sections` turns the analysis object of :func:`analysis.study.analyze_study` into a list of
:class:`Section`: plain tables of formatted strings, notes, and plotly figures (as JSON). Every
rendering of the report renders this one list, so the numbers read the same everywhere: the
platform's page and its one-file export (a Django template), and :func:`render_html`, the
command line's self-contained HTML file (plotly's JavaScript inlined once, no network needed).

Every rate or AUC with an interval is shown with what it estimates and how its interval is made
(reader-averaged with the OR interval, or pooled with a case-clustered one), and every analysis
involving readers names the readers it includes.
"""

from __future__ import annotations

from typing import Any

from analysis.behaviour_section import INTRO as BEHAVIOUR_INTRO
from analysis.behaviour_section import TITLE as BEHAVIOUR_TITLE
from analysis.behaviour_section import behaviour_tables
from analysis.subgroup_tables import subgroups_section
from analysis.tables import DASH, Section, Table
from analysis.tables import auc_row as _auc_row
from analysis.tables import interval as _ci
from analysis.tables import num as _f
from analysis.tables import pvalue as _p

__all__ = ["DASH", "Section", "Table", "sections"]


def _readers_line(a: dict[str, Any]) -> str:
    readers = a.get("readers") or {}
    included = readers.get("included") or []
    return f"Readers: {', '.join(included) or 'none'} ({a.get('label', '')})."


def _mrmc(a: dict[str, Any]) -> Table:
    rows = []
    available = (a.get("all_available") or {}).get("mrmc") or {}
    all_label = (a.get("all_available") or {}).get("label", "all available data")
    for finding in a["findings"]:
        notes = list((a.get("mrmc_notes") or {}).get(finding, []))
        r = a["mrmc"].get(finding)
        if r is not None:
            g = r["global_test"]
            test = f"{g['statistic_name']} = {_f(g['statistic'], 3)}"
            rows.append(
                _auc_row(
                    finding, a.get("label", ""), r, test, "; ".join(notes + r.get("notes", []))
                )
            )
        else:
            rows.append([finding, a.get("label", ""), DASH, DASH, DASH, DASH, DASH, DASH,
                         "; ".join(notes) or "not computed"])  # fmt: skip
        said = list(((a.get("all_available") or {}).get("notes") or {}).get(finding, []))
        u = available.get(finding)
        if u is not None:
            rows.append(_auc_row(finding, all_label, u, "t", "; ".join(said + u.get("notes", []))))
        elif said:
            rows.append([finding, all_label, DASH, DASH, DASH, DASH, DASH, DASH, "; ".join(said)])
    return Table(
        ["finding", "analysis", "AUC unassisted (95% CI)", "AUC assisted (95% CI)",
         "assisted \u2212 unassisted (95% CI)", "test", "df", "p", "notes"],
        rows,
        "Reader-averaged empirical AUC. Complete case (primary): Obuchowski-Rockette as MRMCaov "
        "0.3.0, jackknife covariance, Hillis df. All available data: iMRMC 2.1.2's U-statistic "
        "variance, BDG df, intervals and p from a t with floor(df) as iMRMC. With missing reads "
        "the two programs differ (MRMCaov averages readers equally, iMRMC weights each reader by "
        "the case pairs it read); the primary analysis follows MRMCaov because it is the "
        "protocol's model and kept its type I error with missing reads in simulation, where "
        "iMRMC's test was liberal (benchmarks/validate_or_typeI.md, validate_imrmc.md).",
    )  # fmt: skip


def _noninferiority(a: dict[str, Any]) -> list[Table]:
    """The non-inferiority decision of each finding's primary MRMC analysis, when tested."""
    rows, one_sided = [], 0.025
    for finding in a["findings"]:
        tests = (a["mrmc"].get(finding) or {}).get("non_inferiority")
        if tests is None:
            continue
        one_sided = tests["one_sided_alpha"]
        for c in tests["comparisons"]:
            decision = "non-inferior" if c["non_inferior"] else "not shown"
            rows.append([finding, c["pair"], _f(tests["margin"]), _f(c["estimate"]),
                         _f(c["lower"]), _p(c["p_value"]), decision])  # fmt: skip
    if not rows:
        return []
    level = f"{100 * (1 - 2 * one_sided):g}%"
    return [
        Table(["finding", "difference", "margin", "estimate", f"lower {level} limit",
               "p (one-sided)", "decision"], rows,
              "Non-inferiority of the reader-averaged AUC (the protocol's margin, complete "
              f"case): shown when the lower limit of the two-sided {level} interval of the "
              "difference exceeds \u2212margin, a one-sided test at "
              f"{100 * one_sided:g}%: p = P(T > (estimate + margin) / SE) on the difference's "
              "Hillis df.")
    ]  # fmt: skip


def _method(arms: list[dict[str, Any]]) -> str:
    """What an arm rate estimates and how its interval is made, as the missed module says."""

    def one(x: dict[str, Any]) -> str:
        estimand = x.get("estimand") or "reader-averaged"
        method = x.get("method") or x.get("ci_method") or DASH
        return f"{estimand}; {method}"

    said = [one(x) for x in arms]
    if len(set(said)) == 1:
        return said[0]
    return "; ".join(f"{x['arm']}: {s}" for x, s in zip(arms, said, strict=True))


def _or_difference(d: dict[str, Any] | None) -> str:
    if d is None:
        return DASH
    return f"{_ci(d['estimate'], d['ci_lower'], d['ci_upper'])}, p {_p(d['p_value'])}"


def _gee(g: dict[str, Any] | None) -> str:
    if g is None:
        return DASH
    return f"OR {_ci(g['odds_ratio'], g['or_ci_lower'], g['or_ci_upper'], 2)}, p {_p(g['p_value'])}"


def _rate_rows(label: str, missed: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    rate_rows, sens_rows = [], []
    for fm in missed["findings"]:
        for kind, metric in (("missed", "sensitivity"), ("false_positive", "specificity")):
            part = fm[kind]
            arms = part["arms"]
            rate_rows.append(
                [
                    fm["finding"],
                    "missed" if kind == "missed" else "false positive",
                    label,
                    *(
                        f"{_ci(x['rate'], x['ci_lower'], x['ci_upper'])} [{x['events']}/{x['n']}]"
                        for x in arms
                    ),
                    _method(arms),
                    _or_difference(part["or_difference"]) if part["or_difference"]
                    else f"{DASH} ({part.get('or_error') or 'not computed'})",
                    _gee(part["gee"]) if part["gee"]
                    else f"{DASH} ({part.get('gee_error') or 'not computed'})",
                ]
            )  # fmt: skip
            sens_rows.append(
                [
                    fm["finding"],
                    metric,
                    label,
                    *(
                        _ci(
                            None if x["rate"] is None else 1 - x["rate"],
                            None if x["ci_upper"] is None else 1 - x["ci_upper"],
                            None if x["ci_lower"] is None else 1 - x["ci_lower"],
                        )
                        for x in arms
                    ),
                    _method(arms),
                ]
            )
    return rate_rows, sens_rows


def _rates(a: dict[str, Any]) -> list[Table]:
    analyses = [(a.get("label", ""), a.get("missed"))]
    every_read = a.get("missed_all_available")
    if every_read:
        analyses.append((every_read["label"], every_read))
    rate_rows, sens_rows = [], []
    for label, missed in analyses:
        if missed:
            rates, sens = _rate_rows(label, missed)
            rate_rows += rates
            sens_rows += sens
    if not rate_rows:
        return []
    split_from = a.get("missed") or every_read or {"findings": []}
    split_label = a.get("label", "") if a.get("missed") else (every_read or {}).get("label", "")
    split_rows = [
        [fm["finding"], s["arm"], str(s["missed"]), str(s["ai_flagged_reader_dismissed"]),
         str(s["ai_missed_too"]), str(s["ai_unavailable"])]
        for fm in split_from["findings"]
        for s in fm["split"]
    ]  # fmt: skip
    return [
        Table(
            ["finding", "rate", "analysis", "unassisted (95% CI) [events/n]",
             "assisted (95% CI) [events/n]", "estimate; interval",
             "difference, OR MRMC (primary)", "GEE logistic (sensitivity analysis)"],
            rate_rows,
        ),
        Table(["finding", "metric", "analysis", "unassisted (95% CI)", "assisted (95% CI)",
               "estimate; interval"], sens_rows,
              "Sensitivity and specificity of the readers' calls (1 \u2212 the rates above)"),
        Table(["finding", "arm", "missed", "AI flagged, reader dismissed", "AI missed too",
               "AI unavailable"], split_rows,
              f"Misses: did the AI flag them? ({split_label})"),
    ]  # fmt: skip


def _standalone(a: dict[str, Any]) -> list[Table]:
    standalone = a.get("standalone")
    if not standalone:
        return []
    rows, vs_rows = [], []
    for fs in standalone["findings"]:
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
              "AI standalone, one score per case, overall and by site, manufacturer and modality"),
        Table(["finding", "threshold", "AI AUC", "readers' AUC (unassisted, reader-averaged)",
               "AI \u2212 readers (95% CI, 2T-RRRC)", "p"], vs_rows,
              f"AI against the readers. {_readers_line(a)}"),
    ]  # fmt: skip


def _psi_interval(r: dict[str, Any]) -> str:
    # Shown apart from the estimate: PSI is biased upward in small samples and its percentile
    # bootstrap interval may lie wholly above it (analysis.drift).
    if r.get("psi_ci_lower") is None or r.get("psi_ci_upper") is None:
        return DASH
    return f"{_f(r['psi_ci_lower'])}{DASH}{_f(r['psi_ci_upper'])}"


def _drift(drift: dict[str, Any] | None) -> list[Table]:
    if drift is None:
        return []
    adjusted = any("ks_p_adjusted" in r for r in drift["rows"])
    interval = any("psi_ci_lower" in r for r in drift["rows"])
    rows = [
        [r["finding"], r.get("stratum", "all"), r["site"], str(r["n"]), _f(r.get("mean")),
         _f(r.get("median")), _f(r.get("ks_statistic")), _p(r["ks_p_value"]),
         *([_p(r.get("ks_p_adjusted"))] if adjusted else []), _f(r["psi"]),
         *([_psi_interval(r)] if interval else []), r["level"]]
        for r in drift["rows"]
    ]  # fmt: skip
    return [
        Table(
            ["finding", "cases", "site", "n", "mean score", "median score", "KS D", "KS p",
             *(["KS p (adjusted)"] if adjusted else []), "PSI",
             *(["PSI bootstrap interval"] if interval else []), "shift"],
            rows,
            f"Each site against the reference site {drift['reference']}",
        )
    ]  # fmt: skip


def _drift_intro(drift: dict[str, Any] | None) -> str:
    said = (drift or {}).get("method")
    if said:
        return f"The AI probability, one value per case. {said}"
    return (
        "Two-sample Kolmogorov-Smirnov test and population stability index (PSI) of the AI "
        "probability, one value per case."
    )


def _agreement(a: dict[str, Any]) -> list[Table]:
    rows = [
        [r["arm"], r["finding"], r["comparison"], r["rater_a"], r["rater_b"], str(r["n"]),
         _f(r["percent_agreement"], 1), _ci(r["kappa"], r["ci_lower"], r["ci_upper"])]
        for r in a["agreement"]
    ]  # fmt: skip
    return [
        Table(
            ["arm", "finding", "comparison", "rater A", "rater B", "n", "% agreement",
             "kappa (95% CI)"],
            rows,
            _readers_line(a),
        )
    ]  # fmt: skip


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
        Table(["arm", "reads", "median (s)", "IQR (s)", "geometric mean (s)"], rows,
              "Every submitted read, all readers"),
        Table(["ratio", "estimate (95% CI)", "p", "model"], ratio),
    ]  # fmt: skip


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


def _froc(froc: dict[str, Any]) -> list[Table]:
    rows, counts = [], []
    for finding, f in froc["findings"].items():
        r = f["result"]
        g = r["global_test"]
        test = f"{g['statistic_name']} = {_f(g['statistic'], 3)}"
        rows.append(_auc_row(finding, "complete case", r, test, "; ".join(r.get("notes", []))))
        counts.append([finding, f["rule"], str(f["n_normal"]), str(f["n_abnormal"]),
                       str(f["n_lesions"]), str(f["n_ll"]), str(f["n_nl"]),
                       ", ".join(f["readers"])])  # fmt: skip
    if not rows:
        return []
    return [
        Table(["finding", "analysis", "wAFROC unassisted (95% CI)", "wAFROC assisted (95% CI)",
               "assisted \u2212 unassisted (95% CI)", "test", "df", "p", "notes"], rows,
              "Reader-averaged wAFROC (weighted AFROC figure of merit), Obuchowski-Rockette with "
              "random readers and cases, jackknife covariance, Hillis df, as RJafroc 2.1.3 St()."),
        Table(["finding", "a mark localizes a lesion when", "normal cases", "abnormal cases",
               "lesions", "lesion localizations (LL)", "non-lesion marks (NL)", "readers"],
              counts, "The readers' marks, scored under the protocol's acceptance rule."),
    ]  # fmt: skip


def _summary(a: dict[str, Any]) -> Section:
    readers = a.get("readers") or {"included": [], "excluded": [], "rule": ""}
    rows = [[r, a.get("label", ""), "finished both arms"] for r in readers["included"]] + [
        [x["reader"], "reading time and the all-available-data analysis only", x["reason"]]
        for x in readers["excluded"]
    ]
    findings = a["findings"]
    intro = (
        f"{a['n_readers']} readers, {a['n_cases']} cases, {len(findings)} finding types "
        f"({', '.join(findings)}), {a['n_rows']} rows."
    )
    table = Table(["reader", "in the analyses", "why"], rows,
                  f"Readers ({readers.get('rule', '')})")  # fmt: skip
    return Section("summary", "Summary", intro, [table], notes=list(a.get("notes", [])))


def sections(payload: dict[str, Any]) -> list[Section]:
    """The report's sections from an analysis object (:func:`analysis.study.analyze_study`)."""
    a = payload["analysis"]
    figs: dict[str, list[dict[str, Any]]] = {}
    for i, fig in enumerate(payload.get("figures", [])):
        figs.setdefault(fig["section"], []).append(
            {"id": f"figure-{i}", "data_id": f"figure-{i}-data", **fig}
        )
    protocol = payload.get("protocol") or {}
    version = protocol.get("version")
    froc = payload.get("froc")
    froc_sections = (
        [
            Section(
                "froc",
                "FROC analysis of the readers' marks (wAFROC)",
                "Each reader's marks, scored against the truth's lesion locations: a mark that "
                "localizes a lesion is a lesion localization (its highest-rated mark), any other "
                "a non-lesion localization; rating: the mark's confidence, else the finding's. "
                "Marks of a read whose call is absent are not scored. " + _readers_line(a),
                _froc(froc),
                figs.get("froc", []),
                list(froc.get("notes", [])),
            )
        ]
        if froc
        else []
    )
    return [
        _summary(a),
        Section("protocol", f"Protocol version {DASH if version is None else version}",
                "Significance and AI thresholds as this version of the protocol sets them; each "
                "finding type is analysed over the reads that asked it.",
                _protocol(protocol)),
        Section("mrmc", "MRMC ROC analysis (random readers and cases)",
                "Rating: the reader's probability that the finding is present, 0\u2013100. "
                f"{_readers_line(a)} The all-available-data analysis uses every read.",
                [_mrmc(a), *_noninferiority(a)], figs.get("mrmc", [])),
        *froc_sections,
        subgroups_section(a),
        Section("missed", "Missed findings, false positives, sensitivity and specificity",
                "Primary: OR MRMC analysis of the binary calls; sensitivity analysis: GEE logistic "
                f"model with cases as clusters. {_readers_line(a)}", _rates(a),
                figs.get("missed", [])),
        Section("standalone", "AI standalone", "", _standalone(a), figs.get("standalone", [])),
        Section("drift", "AI score drift between sites", _drift_intro(payload.get("drift")),
                _drift(payload.get("drift")), figs.get("drift", [])),
        Section("agreement", "Agreement (Cohen's and Fleiss' kappa of the calls)", "",
                _agreement(a)),
        Section("time", "Reading time", "", _time(a)),
        Section("behaviour", BEHAVIOUR_TITLE, BEHAVIOUR_INTRO,
                [Table(*t) for t in behaviour_tables(payload.get("behaviour"))],
                notes=list((payload.get("behaviour") or {}).get("notes", []))),
    ]  # fmt: skip
