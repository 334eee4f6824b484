"""The report's section of reader subgroups (:mod:`analysis.subgroups`) as tables."""

from __future__ import annotations

from typing import Any

from analysis.longreads import ARMS
from analysis.tables import DASH, Section, Table, auc_row, interval, num

INTRO = (
    "The complete-case readers by specialty, experience band and role (a reader without a "
    "stated value is in 'not stated'). Per subgroup: the number of readers, the reader-averaged "
    "AUC with its OR interval and, with two readers or more, the OR MRMC comparison of the arms "
    "restricted to the subgroup's readers (one reader: that reader's AUC with a DeLong "
    "interval, no MRMC); sensitivity and specificity of the calls with the estimand and "
    "interval of the main results. Descriptive: the study is not powered for subgroups and no "
    "multiplicity adjustment is made."
)


def _arms(values: list[dict[str, Any]]) -> list[str]:
    by_arm = {x["arm"]: x for x in values}
    return [
        interval(by_arm[arm]["estimate"], by_arm[arm]["ci_lower"], by_arm[arm]["ci_upper"])
        if arm in by_arm
        else DASH
        for arm in ARMS
    ]


def _methods(fs: dict[str, Any]) -> str:
    said = {f"{x['estimand']}; {x['method']}" for k in ("sensitivity", "specificity")
            for x in fs[k]}  # fmt: skip
    return " | ".join(sorted(said)) or DASH


def _auc_rows(s: dict[str, Any]) -> list[list[str]]:
    rows = []
    who = f"{s['grouping']} = {s['level']}"
    n = f"{s['n_readers']} ({', '.join(s['readers'])})"
    for fs in s["findings"]:
        notes = "; ".join([*s["notes"], *fs["notes"]])
        r = fs["mrmc"]
        if r is not None:
            g = r["global_test"]
            test = f"{g['statistic_name']} = {num(g['statistic'], 3)}"
            finding, _, *values = auc_row(fs["finding"], "", r, test, notes)
            rows.append([who, n, finding, *values])
        else:
            rows.append([who, n, fs["finding"], *_arms(fs["auc"]), DASH, DASH, DASH, DASH,
                         notes])  # fmt: skip
    return rows


def subgroups_section(a: dict[str, Any]) -> Section:
    """The section of the analysis object ``a``: its subgroups, or why there are none."""
    title = "Reader subgroups: specialty, experience and role"
    sg = a.get("subgroups") or {"subgroups": [], "notes": ["no reader subgroups"]}
    if not sg["subgroups"]:
        return Section("subgroups", title, "", notes=list(sg["notes"]))
    readers = Table(
        ["reader", "specialty", "years of experience", "experience band", "role"],
        [[r["reader"], r["specialty"] or DASH,
          DASH if r["years_experience"] is None else str(r["years_experience"]),
          r["experience_band"], r["role"] or DASH] for r in sg["readers"]],
        "Qualifications of the complete-case readers",
    )  # fmt: skip
    auc = Table(
        ["subgroup", "readers", "finding", "AUC unassisted (95% CI)", "AUC assisted (95% CI)",
         "assisted \u2212 unassisted (95% CI)", "test", "df", "p", "notes"],
        [row for s in sg["subgroups"] for row in _auc_rows(s)],
        "Empirical AUC of the probability ratings; MRMC: Obuchowski-Rockette, RRRC, jackknife "
        "covariance, Hillis df, on the subgroup's readers only",
    )  # fmt: skip
    rates = Table(
        ["subgroup", "finding", "sensitivity unassisted", "sensitivity assisted",
         "specificity unassisted", "specificity assisted", "estimand; interval"],
        [[f"{s['grouping']} = {s['level']}", fs["finding"], *_arms(fs["sensitivity"]),
          *_arms(fs["specificity"]), _methods(fs)]
         for s in sg["subgroups"] for fs in s["findings"]],
        "Sensitivity and specificity of the calls (95% CI)",
    )  # fmt: skip
    return Section("subgroups", title, INTRO, [readers, auc, rates], notes=list(sg["notes"]))
