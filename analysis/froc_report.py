"""The report's FROC section: the readers' marks scored, wAFROC per arm and its OR analysis.

For each finding type whose truth carries lesion locations and whose readers marked, the marks
of the complete-case readers are scored under the protocol's acceptance rule
(:func:`analysis.froc.marks.finding_froc`) and the weighted AFROC figure of merit (wAFROC, the
area under the weighted AFROC curve; Chakraborty and Zhai 2016) is analysed by
Obuchowski-Rockette with random readers and cases (RRRC), jackknife covariance and Hillis df, as
RJafroc 2.1.3 ``St(dataset, FOM = "wAFROC", method = "OR", analysisOption = "RRRC")``
(:func:`analysis.froc.analysis.froc_analysis`). Arms are the treatments, ``unassisted`` first.

The figure shows each arm's empirical wAFROC curves, one per reader: the fraction of normal
cases with an NL mark rated at or above a threshold (FPF) against the weighted fraction of
lesions localized at or above it (wLLF), joined to (1, 1) by a straight line, as RJafroc's
``PlotEmpiricalOperatingCharacteristics(opChType = "wAFROC")``; its area is the reader's wAFROC.

References
----------
Chakraborty DP, Zhai X (2016). On the meaning of the weighted alternative free-response
operating characteristic figure of merit. Medical Physics 43(5):2548-2557. doi:10.1118/1.4947125
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from analysis.froc.analysis import froc_analysis
from analysis.froc.data import FrocData
from analysis.froc.marks import FindingFroc, MarkTables, finding_froc

__all__ = ["froc_section", "wafroc_points"]

FOM = "wAFROC"
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def wafroc_points(data: FrocData, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """The empirical wAFROC operating points of treatment ``i``, reader ``j``, from (0, 0)
    to (1, 1): FPF and wLLF at each distinct rating, highest first."""
    fp = data.nl[i, j, : data.n_normal].max(axis=1)  # each normal case's highest NL
    ll = data.ll[i, j]
    weights = np.nan_to_num(data.lesion_weights)
    z = np.unique(np.concatenate([fp[np.isfinite(fp)], ll[np.isfinite(ll)]]))[::-1]
    fpf = (fp[None, :] >= z[:, None]).mean(axis=1) if data.n_normal else np.zeros(len(z))
    wllf = ((ll[None] >= z[:, None, None]) * weights[None]).sum(axis=(1, 2)) / data.n_abnormal
    return np.concatenate([[0.0], fpf, [1.0]]), np.concatenate([[0.0], wllf, [1.0]])


def _figure(data: FrocData, finding: str, who: str) -> dict[str, Any]:
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, arm in enumerate(data.treatments):
        for j, reader in enumerate(data.readers):
            x, y = wafroc_points(data, i, j)
            fig.add_trace(
                go.Scatter(
                    x=x, y=y, mode="lines", name=f"{arm}: {reader}", legendgroup=arm,
                    line={"color": _PALETTE[i % len(_PALETTE)], "width": 1.5},
                )
            )  # fmt: skip
    title = f"wAFROC curves, {finding} ({who})"
    fig.update_layout(
        title=title,
        xaxis={"title": "FPF (normal cases with a non-lesion mark)", "range": [0, 1]},
        yaxis={"title": "wLLF (weighted lesions localized)", "range": [0, 1]},
        template="plotly_white",
    )
    return {"section": "froc", "title": title, "figure": json.loads(fig.to_json())}


def _summary(froc: FindingFroc, tables: MarkTables) -> dict[str, Any]:
    kinds = froc.scored.marks["kind"].value_counts()
    rule = (
        "inside the lesion's radius"
        if tables.rule == "inside"
        else f"within {tables.distance:g} pixels of the lesion's centre"
    )
    return {
        "fom": FOM,
        "rule": rule,
        "n_normal": froc.data.n_normal,
        "n_abnormal": froc.data.n_abnormal,
        "n_lesions": int(froc.data.lesions_per_case.sum()),
        "n_ll": int(kinds.get("LL", 0)),
        "n_nl": int(kinds.get("NL", 0)),
        "n_unscored": int(kinds.get("", 0)),
        "readers": list(froc.data.readers),
    }


def froc_section(
    included: pd.DataFrame, tables: MarkTables, *, alpha: float = 0.05, who: str = "readers"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The FROC part of the analysis object and its figures.

    ``included`` is the long frame of the complete-case readers; ``tables`` the study's marks
    and lesions. Returns ``{"fom", "findings": {code: {..., "result": OR JSON}}, "notes"}`` and
    the figures (section ``froc``); a finding type that cannot be analysed gets a note instead.
    """
    findings: dict[str, Any] = {}
    notes: list[str] = []
    figures: list[dict[str, Any]] = []
    marked = set(tables.marks["finding"].astype(str))
    for finding in tables.located_findings():
        if finding not in marked:
            notes.append(f"{finding}: the truth has lesion locations but no reader marked")
            continue
        try:
            froc = finding_froc(
                included,
                tables.marks,
                tables.lesions,
                finding,
                rule=tables.rule,
                distance=tables.distance,
            )
            result = froc_analysis(froc.data, fom=FOM, method="OR", factors="RRRC", alpha=alpha)
        except ValueError as error:
            notes.append(f"{finding}: FROC analysis skipped: {error}")
            continue
        notes.extend(froc.notes)
        findings[finding] = {**_summary(froc, tables), "result": result.to_dict()}
        figures.append(_figure(froc.data, finding, who))
    return {"fom": FOM, "findings": findings, "notes": notes}, figures
