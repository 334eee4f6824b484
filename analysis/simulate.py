"""Roe-Metz simulation of multireader multicase (MRMC) rating data, and a long reads frame.

The Roe & Metz (1997) model gives the latent confidence-of-disease rating of reader ``j`` in
treatment ``i`` for case ``k`` of truth class ``t`` (0 = non-diseased, 1 = diseased) as::

    X_ijk^t = t mu_i + R_j^t + (TR)_ij^t + C_k^t + (TC)_ik^t + (RC)_jk^t + E_ijk^t

with independent zero-mean normal effects of variances ``var_R, var_TR`` (reader effects, drawn
independently for the two truth classes) and ``var_C, var_TC, var_RC, var_error`` (case effects,
which sum to 1 in the published structures). The population (reader- and case-averaged) AUC of
treatment ``i`` is therefore ``Phi(mu_i / sqrt(2 (var_R + var_TR + var_C + var_TC + var_RC +
var_error)))``, see :func:`population_auc` and Hillis (2018).

Named variance structures: the four of Roe & Metz (1997, Table 1), also used by Hillis (2007,
2008), named by *data correlation* (first letter) and *reader variability* (second letter):

* data correlation high: ``var_C = 0.3, var_TC = 0.3, var_RC = 0.2, var_error = 0.2``;
  low: ``var_C = 0.1, var_TC = 0.1, var_RC = 0.2, var_error = 0.6``;
* reader variability (``var_R = var_TR``) low: 0.0055 at every level; high: 0.011, 0.03, 0.056
  for ``mu = 0.75, 1.5, 2.5`` (population AUC about 0.70, 0.85, 0.96).

The values were read from the Roe-Metz configuration files that FDA's iMRMC ships to replicate
the original simulations (github.com/DIDSR/iMRMC, ``*/RMconfigurations/{HH,HL,LH,LL}{0p75,1p50,
2p50}_050n0_050n1_5nr.irm``; there ``R, AR, C, AC, RC, ARC`` are our ``var_R, var_TR, var_C,
var_TC, var_RC, var_error``), not from the paper itself. A few of those files disagree between
truth classes (``LL0p75`` and ``LL2p50`` swap ``RC`` and ``ARC`` for the diseased class); we take
the version that is the same for both classes, as in the others. :func:`roe_metz_params` returns
a structure for a given ``mu``; ``ROE_METZ_STRUCTURES`` holds the ``mu = 0.75`` ones.

References
----------
Roe CA, Metz CE (1997). Dorfman-Berbaum-Metz method for statistical analysis of multireader,
multimodality receiver operating characteristic data: validation with computer simulation.
Acad Radiol 4(4):298-303. doi:10.1016/S1076-6332(97)80032-3
Hillis SL (2007). A comparison of denominator degrees of freedom methods for multiple observer
ROC analysis. Stat Med 26(3):596-619. doi:10.1002/sim.2532
Hillis SL, Berbaum KS, Metz CE (2008). Recent developments in the Dorfman-Berbaum-Metz procedure
for multireader ROC study analysis. Acad Radiol 15(5):647-661. doi:10.1016/j.acra.2007.12.015
Hillis SL (2018). Relationship between Roe and Metz simulation model for multireader diagnostic
data and Obuchowski-Rockette model parameters. Stat Med 37(13):2067-2093. doi:10.1002/sim.7616
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import special


@dataclass(frozen=True)
class RoeMetzParams:
    """Variance components of the Roe-Metz model (same for both truth classes)."""

    var_R: float
    var_TR: float
    var_C: float
    var_TC: float
    var_RC: float
    var_error: float

    def __post_init__(self) -> None:
        bad = [k for k, v in asdict(self).items() if not (v >= 0 and math.isfinite(v))]
        if bad:
            raise ValueError(f"variance components must be finite and >= 0: {', '.join(bad)}")

    @property
    def total(self) -> float:
        """Variance of one latent rating."""
        return float(sum(asdict(self).values()))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


_CORRELATION = {
    "H": {"var_C": 0.3, "var_TC": 0.3, "var_RC": 0.2, "var_error": 0.2},
    "L": {"var_C": 0.1, "var_TC": 0.1, "var_RC": 0.2, "var_error": 0.6},
}
_READER_VARIANCE = {"H": {0.75: 0.011, 1.5: 0.03, 2.5: 0.056}, "L": {0.75: 0.0055, 1.5: 0.0055,
                                                                     2.5: 0.0055}}  # fmt: skip
ROE_METZ_MUS: tuple[float, ...] = (0.75, 1.5, 2.5)


def roe_metz_params(structure: str, mu: float = 0.75) -> RoeMetzParams:
    """The Roe & Metz (1997) variance structure ``HH``, ``HL``, ``LH`` or ``LL`` at level ``mu``.

    First letter: data correlation; second: reader variability (see the module docstring).

    Raises
    ------
    ValueError
        Unknown structure name, or ``mu`` not one of the published levels 0.75, 1.5, 2.5.
    """
    if len(structure) != 2 or structure[0] not in "HL" or structure[1] not in "HL":
        raise ValueError(f"unknown variance structure {structure!r}: use HH, HL, LH or LL")
    if mu not in ROE_METZ_MUS:
        raise ValueError(f"Roe & Metz tabulate mu = 0.75, 1.5 and 2.5 only, not {mu}")
    var_reader = _READER_VARIANCE[structure[1]][mu]
    return RoeMetzParams(var_R=var_reader, var_TR=var_reader, **_CORRELATION[structure[0]])


ROE_METZ_STRUCTURES: dict[str, RoeMetzParams] = {
    name: roe_metz_params(name) for name in ("HH", "HL", "LH", "LL")
}


def _params(structure: str | RoeMetzParams) -> RoeMetzParams:
    if isinstance(structure, RoeMetzParams):
        return structure
    if structure not in ROE_METZ_STRUCTURES:
        raise ValueError(
            f"unknown variance structure {structure!r}: use one of "
            f"{', '.join(ROE_METZ_STRUCTURES)} or a RoeMetzParams"
        )
    return ROE_METZ_STRUCTURES[structure]


def population_auc(mu: float, structure: str | RoeMetzParams = "HH") -> float:
    """Reader- and case-averaged AUC of a treatment with separation ``mu``.

    ``P(X^1 > X^0) = Phi(mu / sqrt(2 * total variance))`` for a random reader and random cases:
    the estimand of the OR single-treatment interval (Hillis 2018, doi:10.1002/sim.7616).
    """
    p = _params(structure)
    return float(special.ndtr(mu / math.sqrt(2.0 * p.total)))


def simulate_roe_metz(
    *,
    n_readers: int,
    n_positive: int,
    n_negative: int,
    mu: float | Sequence[float] = (0.75, 0.75),
    structure: str | RoeMetzParams = "HH",
    seed: int | np.random.Generator = 0,
) -> pd.DataFrame:
    """Simulate a fully crossed MRMC study from the Roe-Metz (1997) model.

    Parameters
    ----------
    n_readers, n_positive, n_negative
        Numbers of readers and of diseased and non-diseased cases (each at least 1).
    mu
        Separation of the diseased mean per treatment; its length is the number of treatments
        (a float gives two treatments with the same ``mu``: the null hypothesis).
    structure
        ``"HH"``, ``"HL"``, ``"LH"``, ``"LL"`` (see the module docstring) or explicit components.
    seed
        Seed or generator; the output is identical for the same seed.

    Returns
    -------
    pandas.DataFrame
        Columns ``reader, treatment, case, truth, rating`` (IDs are 1-based integers; the
        negative cases come first), sorted by treatment, reader, case: the shape of
        ``vandyke.csv``. Ratings are continuous.
    """
    if min(n_readers, n_positive, n_negative) < 1:
        raise ValueError("n_readers, n_positive and n_negative must each be at least 1")
    mus = np.atleast_1d(np.asarray([mu, mu] if np.isscalar(mu) else mu, dtype=np.float64))
    if mus.ndim != 1 or mus.size < 1 or not np.all(np.isfinite(mus)):
        raise ValueError("mu must be a finite number or a sequence of them, one per treatment")
    p = _params(structure)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n_t, n_r, n_c = mus.size, n_readers, n_negative + n_positive
    truth = np.r_[np.zeros(n_negative, np.int64), np.ones(n_positive, np.int64)]
    sd = {k: math.sqrt(v) for k, v in p.to_dict().items()}
    # reader effects per truth class, then picked by each case's class
    r = rng.standard_normal((2, n_r)) * sd["var_R"]
    tr = rng.standard_normal((2, n_t, n_r)) * sd["var_TR"]
    c = rng.standard_normal(n_c) * sd["var_C"]
    tc = rng.standard_normal((n_t, n_c)) * sd["var_TC"]
    rc = rng.standard_normal((n_r, n_c)) * sd["var_RC"]
    e = rng.standard_normal((n_t, n_r, n_c)) * sd["var_error"]
    x = (
        mus[:, None, None] * truth[None, None, :]
        + r[truth].T[None, :, :]
        + np.moveaxis(tr[truth], 0, -1)
        + c[None, None, :]
        + tc[:, None, :]
        + rc[None, :, :]
        + e
    )
    t_idx, r_idx, c_idx = np.indices(x.shape).reshape(3, -1)
    return pd.DataFrame(
        {
            "reader": r_idx + 1,
            "treatment": t_idx + 1,
            "case": c_idx + 1,
            "truth": truth[c_idx],
            "rating": x.reshape(-1),
        }
    )


LONG_COLUMNS: tuple[str, ...] = (
    "study", "reader", "case", "arm", "session", "finding", "truth", "call", "confidence",
    "ai_probability", "site", "modality", "manufacturer", "started_at", "submitted_at",
    "duration_s",
)  # fmt: skip


def simulate_long_frame(
    seed: int = 0,
    *,
    n_readers: int = 5,
    n_cases: int = 80,
    findings: Sequence[str] = ("pneumothorax", "nodule"),
    prevalence: float = 0.4,
    mu_unassisted: float = 1.2,
    mu_assisted: float = 1.6,
    ai_mu: float = 2.0,
    structure: str | RoeMetzParams = "HL",
    time_ratio: float = 0.85,
    study: str = "demo",
) -> pd.DataFrame:
    """A synthetic long reads frame (DESIGN.md contract) from the Roe-Metz model.

    Crossover design: every reader reads every case in both arms, half of the cases assisted in
    session 1 and unassisted in session 2, the other half the reverse. Per finding type, a
    Roe-Metz dataset with treatments (unassisted, assisted) gives the latent rating; the
    confidence is ``round(100 Phi(latent - mu / 2))`` and the call is ``confidence >= 50``. The AI
    probability is ``Phi`` of an AI latent score that shares the case effect. Reading time is
    log-normal with a reader effect and the ratio ``time_ratio`` assisted / unassisted.
    Deterministic given ``seed``; meant for tests and the web app's demo.
    """
    if not 0 < prevalence < 1:
        raise ValueError("prevalence must be strictly between 0 and 1")
    if n_cases < 2 or n_readers < 1 or not findings:
        raise ValueError("need at least 2 cases, 1 reader and 1 finding type")
    rng = np.random.default_rng(seed)
    sites = np.array(["site-A", "site-B", "site-C"])
    modality = np.array(["CR", "DX"])
    maker = np.array(["Acme", "Borealis", "Cygnus"])
    case_site = sites[rng.integers(0, sites.size, n_cases)]
    case_mod = modality[rng.integers(0, modality.size, n_cases)]
    case_maker = maker[rng.integers(0, maker.size, n_cases)]
    arms = np.array(["unassisted", "assisted"])
    first_assisted = rng.random((n_readers, n_cases)) < 0.5
    reader_speed = rng.normal(0.0, 0.25, n_readers)
    # one read covers every finding type: its time is drawn once per reader x case x arm
    read_log_t = (
        math.log(60.0)
        + reader_speed[:, None, None]
        + math.log(time_ratio) * np.arange(2)[None, None, :]
        + rng.normal(0.0, 0.3, (n_readers, n_cases, 2))
    )
    start = np.datetime64("2026-01-05T08:00:00")
    frames = []
    for finding in findings:
        n_pos = max(1, min(n_cases - 1, round(prevalence * n_cases)))
        sim = simulate_roe_metz(
            n_readers=n_readers,
            n_positive=n_pos,
            n_negative=n_cases - n_pos,
            mu=(mu_unassisted, mu_assisted),
            structure=structure,
            seed=rng,
        )
        truth = sim["truth"].to_numpy()
        mu_arm = np.where(sim["treatment"].to_numpy() == 1, mu_unassisted, mu_assisted)
        latent = sim["rating"].to_numpy() - mu_arm / 2.0
        confidence = np.rint(100.0 * special.ndtr(latent)).astype(np.int64)
        # the case order is shuffled per finding so that truth is not tied to the case ID
        case_map = rng.permutation(n_cases)
        case = case_map[sim["case"].to_numpy() - 1]
        ai_case = special.ndtr(
            ai_mu * np.r_[np.zeros(n_cases - n_pos), np.ones(n_pos)]
            + rng.normal(0, 1, n_cases)
            - ai_mu / 2.0
        )
        reader = sim["reader"].to_numpy() - 1
        arm = sim["treatment"].to_numpy() - 1
        session = np.where((arm == 1) == first_assisted[reader, case], 1, 2)
        duration = np.round(np.exp(read_log_t[reader, case, arm]), 1)
        started = (
            start
            + np.timedelta64(14, "D") * (session - 1)
            + (case * 97 + reader * 13).astype("timedelta64[s]")
        )
        frames.append(
            pd.DataFrame(
                {
                    "study": study,
                    "reader": [f"reader-{j + 1}" for j in reader],
                    "case": [f"case-{k + 1:03d}" for k in case],
                    "arm": arms[arm],
                    "session": session,
                    "finding": finding,
                    "truth": truth,
                    "call": (confidence >= 50).astype(np.int64),
                    "confidence": confidence,
                    "ai_probability": np.round(ai_case[sim["case"].to_numpy() - 1], 4),
                    "site": case_site[case],
                    "modality": case_mod[case],
                    "manufacturer": case_maker[case],
                    "started_at": pd.to_datetime(started).astype(str),
                    "submitted_at": pd.to_datetime(
                        started + (duration * 1000).astype("timedelta64[ms]")
                    ).astype(str),
                    "duration_s": duration,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[list(LONG_COLUMNS)]
