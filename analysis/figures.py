"""Plotly figure builders from the analysis results.

Every builder imports plotly inside the function, so importing this module (and starting
``python -m analysis``) stays fast. Each returns a ``plotly.graph_objects.Figure``.

The averaged ROC curve of an arm is the vertical average (mean true-positive fraction over readers
at each false-positive fraction of a common grid) of the readers' empirical ROC curves, which are
step-free polylines through their operating points; its area equals the mean of the readers'
empirical AUCs up to the grid resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from analysis.agreement import AgreementRow
    from analysis.binormal import BinormalFit
    from analysis.missed import MissedFindingsResult
    from analysis.mrmc import ORResult
    from analysis.standalone import StandaloneResult

Figure = Any  # plotly.graph_objects.Figure; plotly ships no type information

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
_GRID = np.linspace(0.0, 1.0, 201)


def _add_binormal_reader(
    fig: Figure,
    treatment: object,
    reader: object,
    ratings: NDArray[np.float64],
    truth: NDArray[np.int64],
    color: str,
) -> BinormalFit | None:
    """One reader's fitted binormal curve, dashed; None (no trace) where the fit needs a note."""
    from analysis.binormal import fit_binormal_ratings

    fit = fit_binormal_ratings(ratings[truth == 0], ratings[truth == 1])
    if fit.note is not None:
        return None
    fig.add_trace(
        _go().Scatter(
            x=_GRID,
            y=fit.tpr(_GRID),
            mode="lines",
            line={"width": 1, "color": color, "dash": "dash"},
            opacity=0.35,
            legendgroup=str(treatment),
            showlegend=False,
            name=f"{treatment}, reader {reader} (binormal, AUC {fit.auc:.3f})",
        )
    )
    return fit


def _add_binormal_average(
    fig: Figure, treatment: object, fits: list[BinormalFit], n_readers: int, color: str
) -> None:
    """The reader-averaged binormal curve of a treatment (see :func:`roc_curves_figure`)."""
    from scipy.special import ndtri

    from analysis.binormal import BinormalFit

    b = float(np.mean([fit.b for fit in fits]))
    mean_auc = float(np.mean([fit.auc for fit in fits]))
    a = float(np.sqrt(1.0 + b * b) * ndtri(mean_auc))
    average = BinormalFit(a=a, b=b, cutoffs=(), labels=(), converged=True)
    readers = f"{len(fits)} of {n_readers} readers" if len(fits) < n_readers else "readers"
    fig.add_trace(
        _go().Scatter(
            x=_GRID,
            y=average.tpr(_GRID),
            mode="lines",
            line={"width": 3, "color": color, "dash": "dash"},
            legendgroup=str(treatment),
            name=f"{treatment} (binormal average of {readers}, AUC {average.auc:.3f})",
        )
    )


def _go() -> Any:
    import plotly.graph_objects as go

    return go


def roc_curves_figure(
    frame: pd.DataFrame, *, title: str = "ROC curves", binormal: bool = True
) -> Figure:
    """ROC curves per treatment: thin lines per reader, a thick vertical average per treatment.

    With ``binormal``, each reader's maximum-likelihood binormal curve
    (:func:`analysis.binormal.fit_binormal_ratings`) is drawn dashed beside its empirical
    curve, and each treatment gets a dashed reader-averaged binormal curve. That average is
    MRMCaov's ``mean(curves, method = "parameters")``: the binormal curve with
    ``b = mean(b_j)`` and ``a = sqrt(1 + b^2) Phi^-1(mean(AUC_j))``, so its area is the mean of
    the readers' binormal AUCs. Readers whose fit is degenerate or did not converge
    (:attr:`analysis.binormal.BinormalFit.note`) get no binormal curve and do not enter the
    average; the average's legend says how many readers it holds.

    Parameters
    ----------
    frame
        ``reader, treatment, case, truth, rating`` (the MRMC shape).
    title
        The figure title.
    binormal
        Add the fitted binormal curves.
    """
    from analysis.roc import roc_curve

    missing = [c for c in ("reader", "treatment", "truth", "rating") if c not in frame.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    go = _go()
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            line={"dash": "dot", "color": "grey"},
            name="chance",
            hoverinfo="skip",
        )
    )
    for t_idx, (treatment, g) in enumerate(frame.groupby("treatment", sort=False)):
        color = _PALETTE[t_idx % len(_PALETTE)]
        curves = []
        fits: list[BinormalFit] = []
        for reader, r in g.groupby("reader", sort=False):
            truth = r["truth"].to_numpy(dtype=np.int64)
            if truth.min() == truth.max():
                continue
            ratings = r["rating"].to_numpy(dtype=np.float64)
            if binormal:
                fit = _add_binormal_reader(fig, treatment, reader, ratings, truth, color)
                if fit is not None:
                    fits.append(fit)
            c = roc_curve(truth, ratings)
            curves.append(np.interp(_GRID, c.fpr, c.tpr))
            fig.add_trace(
                go.Scatter(
                    x=c.fpr,
                    y=c.tpr,
                    mode="lines",
                    line={"width": 1, "color": color},
                    opacity=0.35,
                    legendgroup=str(treatment),
                    showlegend=False,
                    name=f"{treatment} / {reader}",
                )
            )
        if curves:
            mean = np.mean(curves, axis=0)
            auc = float(np.trapezoid(mean, _GRID))
            fig.add_trace(
                go.Scatter(
                    x=_GRID,
                    y=mean,
                    mode="lines",
                    line={"width": 3, "color": color},
                    legendgroup=str(treatment),
                    name=f"{treatment} (reader average, AUC {auc:.3f})",
                )
            )
        if fits:
            _add_binormal_average(fig, treatment, fits, len(curves), color)
    fig.update_layout(
        title=title,
        xaxis={"title": "False-positive fraction", "range": [-0.01, 1.01]},
        yaxis={"title": "True-positive fraction", "range": [-0.01, 1.01]},
        legend={"x": 0.98, "y": 0.02, "xanchor": "right", "yanchor": "bottom"},
        template="plotly_white",
        width=640,
        height=600,
    )
    return fig


def auc_forest_figure(result: ORResult, *, title: str = "Reader AUC") -> Figure:
    """Per-reader metric by treatment, with each treatment's mean and its single-treatment CI."""
    go = _go()
    fig = go.Figure()
    treatments = list(result.treatment_value)
    readers = list(dict.fromkeys(rv.reader for rv in result.reader_value))
    labels = [str(r) for r in readers] + ["reader mean"]
    for t_idx, t in enumerate(treatments):
        color = _PALETTE[t_idx % len(_PALETTE)]
        vals = {rv.reader: rv.value for rv in result.reader_value if rv.treatment == t}
        s = result.single_treatment[t]
        fig.add_trace(
            go.Scatter(
                x=[vals.get(r, np.nan) for r in readers] + [s.estimate],
                y=labels,
                mode="markers",
                marker={
                    "color": color,
                    "size": [8] * len(readers) + [12],
                    "symbol": ["circle"] * len(readers) + ["diamond"],
                },
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [0] * len(readers) + [s.ci_upper - s.estimate],
                    "arrayminus": [0] * len(readers) + [s.estimate - s.ci_lower],
                },
                name=f"{t}: {s.estimate:.3f} ({s.ci_lower:.3f}, {s.ci_upper:.3f})",
            )
        )
    fig.update_layout(
        title=f"{title} ({result.metric}, {result.factors}, {result.cov})",
        xaxis={"title": result.metric},
        yaxis={"autorange": "reversed"},
        template="plotly_white",
        height=max(300, 40 * len(labels) + 150),
    )
    return fig


def missed_rates_figure(result: MissedFindingsResult, *, kind: str = "missed") -> Figure:
    """Missed-finding (or false-positive) rate per finding type and arm, with its CI."""
    if kind not in ("missed", "false_positive"):
        raise ValueError(f"kind must be 'missed' or 'false_positive', not {kind!r}")
    go = _go()
    fig = go.Figure()
    findings = [f.finding for f in result.findings]
    arms = [a.arm for a in getattr(result.findings[0], kind).arms] if result.findings else []
    for a_idx, arm in enumerate(arms):
        rates = [getattr(f, kind).arms[a_idx] for f in result.findings]
        fig.add_trace(
            go.Bar(
                x=findings,
                y=[r.rate for r in rates],
                name=arm,
                marker_color=_PALETTE[a_idx % len(_PALETTE)],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [r.ci_upper - r.rate for r in rates],
                    "arrayminus": [r.rate - r.ci_lower for r in rates],
                },
                hovertext=[r.ci_method for r in rates],
            )
        )
    label = "Missed-finding rate" if kind == "missed" else "False-positive rate"
    fig.update_layout(
        title=f"{label} by arm (95% CI)",
        barmode="group",
        yaxis={"title": label, "rangemode": "tozero"},
        template="plotly_white",
    )
    return fig


def standalone_subgroups_figure(result: StandaloneResult) -> Figure:
    """AI AUC with its DeLong CI overall and per subgroup, one panel row per finding type."""
    go = _go()
    fig = go.Figure()
    for f_idx, f in enumerate(result.findings):
        rows = [f.overall, *f.subgroups]
        fig.add_trace(
            go.Scatter(
                x=[r.auc for r in rows],
                y=[f"{f.finding}: {r.group}={r.level}" for r in rows],
                mode="markers",
                marker={"color": _PALETTE[f_idx % len(_PALETTE)], "size": 9},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [r.auc_ci_upper - r.auc for r in rows],
                    "arrayminus": [r.auc - r.auc_ci_lower for r in rows],
                },
                name=f.finding,
            )
        )
    n_rows = sum(1 + len(f.subgroups) for f in result.findings)
    fig.update_layout(
        title="AI standalone AUC by subgroup (95% DeLong CI)",
        xaxis={"title": "AUC"},
        yaxis={"autorange": "reversed"},
        template="plotly_white",
        height=max(300, 28 * n_rows + 150),
    )
    return fig


def agreement_table_figure(rows: Sequence[AgreementRow]) -> Figure:
    """Agreement (kappa) table: arm, finding, comparison, raters, n, % agreement, kappa, CI."""
    go = _go()

    def fmt(x: float, digits: int = 3) -> str:
        return "" if not np.isfinite(x) else f"{x:.{digits}f}"

    header = [
        "arm",
        "finding",
        "comparison",
        "rater A",
        "rater B",
        "n",
        "% agree",
        "kappa",
        "95% CI",
    ]
    cells = [
        [r.arm for r in rows],
        [r.finding for r in rows],
        [r.comparison for r in rows],
        [r.rater_a for r in rows],
        [r.rater_b for r in rows],
        [r.n for r in rows],
        [fmt(r.percent_agreement, 1) for r in rows],
        [fmt(r.estimate.kappa) for r in rows],
        [
            f"({fmt(r.estimate.ci_lower)}, {fmt(r.estimate.ci_upper)})"
            if np.isfinite(r.estimate.ci_lower)
            else ""
            for r in rows
        ],
    ]
    fig = go.Figure(
        go.Table(
            header={"values": header, "fill_color": "#e8eef7", "align": "left"},
            cells={"values": cells, "align": "left"},
        )
    )
    fig.update_layout(
        title="Agreement (Cohen's / Fleiss' kappa)", height=min(1200, 120 + 24 * len(rows))
    )
    return fig
