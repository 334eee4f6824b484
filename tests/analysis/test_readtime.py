"""Tests of analysis.readtime against lme4/lmerTest, statsmodels and a dense REML computation.

Golden values: R 4.2.2, lme4 1.1-31, lmerTest 3.1-3 (Debian bookworm; the call and its full
output are in ``tests/data/readtime_crossed.md``), on the reads in
``tests/data/readtime_crossed.csv`` (8 readers x 30 cases x 2 arms, crossover sessions, 25 reads
removed at random) and on the reads of ``simulate_long_frame(6, n_readers=6, n_cases=40,
time_ratio=0.8)``::

    library(lmerTest)
    d <- read.csv(FILE)
    d$arm01 <- as.numeric(d$arm == "assisted"); d$session <- factor(d$session)
    m <- lmer(log(duration_s) ~ arm01 + session + (1 | case) + (1 + arm01 || reader), data = d,
              REML = TRUE, control = lmerControl(optimizer = "bobyqa",
                                                 optCtrl = list(rhoend = 1e-12, maxfun = 1e5)))
    fixef(m); sqrt(diag(vcov(m))); as.data.frame(VarCorr(m)); REMLcrit(m)
    summary(m)$coefficients   # Satterthwaite df and p-values
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from analysis.crossed_reml import CrossedReml
from analysis.readtime import reading_time, reads_with_duration
from analysis.simulate import simulate_long_frame

DATA = Path(__file__).resolve().parents[1] / "data" / "readtime_crossed.csv"

# lme4 on readtime_crossed.csv
CROSSED = {
    "beta_arm": -0.23012217567676,
    "se_arm": 0.0680780802325,
    "df_arm": 7.03401592847,
    "p_arm": 1.16690951641e-02,
    "case": 0.0703633592630,
    "reader": 0.0918164745400,
    "reader_arm": 0.0305655807929,
    "residual": 0.0921266532351,
    "remlcrit": 334.447517541,
}
# lme4 on the simulated frame: a singular fit, case and reader-arm variances 0 (boundary)
SIMULATED = {
    "beta_arm": -0.2596531566346,
    "se_arm": 0.0268784336492,
    "df_arm": 471.99999975564,
    "reader": 5.64761160237e-02,
    "residual": 8.63990229555e-02,
}


def reml_inputs(frame: pd.DataFrame, *, session: bool = False) -> tuple[np.ndarray, ...]:
    """``y, x, case, reader, arm`` of :class:`CrossedReml` for a frame's reads (log durations).

    ``x`` is the intercept and the arm, and the session-2 indicator with ``session``.
    """
    reads, _ = reads_with_duration(frame)
    y = np.log(reads["duration_s"].to_numpy(dtype=np.float64))
    a = (reads["arm"] == "assisted").to_numpy(dtype=np.float64)
    columns = [np.ones(y.size), a]
    if session:
        columns.append((reads["session"] == "2").to_numpy(dtype=np.float64))
    reader, _ = pd.factorize(reads["reader"])
    case, _ = pd.factorize(reads["case"])
    return y, np.column_stack(columns), case, reader, a


@pytest.fixture(scope="module")
def long() -> pd.DataFrame:
    return simulate_long_frame(6, n_readers=6, n_cases=40, time_ratio=0.8)


@pytest.fixture(scope="module")
def crossed() -> pd.DataFrame:
    return pd.read_csv(DATA)


def test_crossed_fit_matches_lme4_and_lmertest(crossed: pd.DataFrame) -> None:
    res = reading_time(crossed)
    vc = res.variance_components
    assert vc is not None and res.model_error is None
    assert math.log(res.ratio) == pytest.approx(CROSSED["beta_arm"], rel=1e-4)
    assert res.se_log_ratio == pytest.approx(CROSSED["se_arm"], rel=1e-4)
    assert vc.case == pytest.approx(CROSSED["case"], rel=1e-4)
    assert vc.reader == pytest.approx(CROSSED["reader"], rel=1e-4)
    assert vc.reader_arm == pytest.approx(CROSSED["reader_arm"], rel=1e-4)
    assert vc.residual == pytest.approx(CROSSED["residual"], rel=1e-4)
    assert res.df == pytest.approx(CROSSED["df_arm"], rel=1e-4)
    assert res.p_value == pytest.approx(CROSSED["p_arm"], rel=1e-3)
    half = (math.log(res.ci_upper) - math.log(res.ci_lower)) / 2
    assert half == pytest.approx(stats.t.ppf(0.975, CROSSED["df_arm"]) * CROSSED["se_arm"], 1e-4)
    assert (res.n_readers, res.n_cases, res.n_reads) == (8, 30, 455)


def test_reml_criterion_matches_lme4(crossed: pd.DataFrame) -> None:
    model = CrossedReml(*reml_inputs(crossed, session=True))
    assert model.profiled_deviance(model.fit()) == pytest.approx(CROSSED["remlcrit"], abs=1e-6)


def test_boundary_fit_matches_lme4_singular_fit(long: pd.DataFrame) -> None:
    res = reading_time(long)
    vc = res.variance_components
    assert vc is not None and vc.case is not None
    assert vc.case == pytest.approx(0.0, abs=1e-8) and vc.reader_arm == pytest.approx(0, abs=1e-8)
    assert math.log(res.ratio) == pytest.approx(SIMULATED["beta_arm"], rel=1e-6)
    assert res.se_log_ratio == pytest.approx(SIMULATED["se_arm"], rel=1e-4)
    assert vc.reader == pytest.approx(SIMULATED["reader"], rel=1e-4)
    assert vc.residual == pytest.approx(SIMULATED["residual"], rel=1e-4)
    assert res.df == pytest.approx(SIMULATED["df_arm"], rel=1e-3)
    assert res.ci_lower < 0.8 / 0.9 and res.ci_upper > 0.8 * 0.9  # near the simulated 0.8


def test_crossed_fit_agrees_with_statsmodels_variance_components(crossed: pd.DataFrame) -> None:
    d = crossed.assign(
        y=np.log(crossed["duration_s"]), arm01=(crossed["arm"] == "assisted") * 1.0, g=1
    )
    vcf = {"case": "0 + C(case)", "reader": "0 + C(reader)", "reader_arm": "0 + C(reader):arm01"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = smf.mixedlm("y ~ arm01 + C(session)", d, groups="g", re_formula="0", vc_formula=vcf)
        fit = sm.fit(reml=True, method=["lbfgs"], gtol=1e-10)
    res = reading_time(crossed)
    vc = res.variance_components
    assert vc is not None
    # statsmodels' optimiser stops about 3e-4 short of lme4 on the reader variance
    assert math.log(res.ratio) == pytest.approx(fit.params["arm01"], rel=1e-4)
    assert res.se_log_ratio == pytest.approx(fit.bse["arm01"], rel=1e-3)
    assert [vc.case, vc.reader, vc.reader_arm] == pytest.approx(list(fit.vcomp * 1.0), rel=1e-3)
    assert vc.residual == pytest.approx(fit.scale, rel=1e-3)


def test_absorbed_deviance_equals_the_dense_reml_formula(crossed: pd.DataFrame) -> None:
    # -2 l_R = log|V| + log|X'V^-1X| + r'V^-1 r + (n - p) log(2 pi), V built densely
    y, x, case, reader, a = reml_inputs(crossed)
    model = CrossedReml(y, x, case, reader, a)
    phi = np.array([0.7, 0.9, 0.4, 0.35])
    zc = (case[:, None] == np.arange(case.max() + 1)).astype(float)
    zr = (reader[:, None] == np.arange(reader.max() + 1)).astype(float)
    s2 = phi[3] ** 2
    v = s2 * (np.eye(y.size) + phi[0] ** 2 * zc @ zc.T + phi[1] ** 2 * zr @ zr.T
              + phi[2] ** 2 * (zr * a[:, None]) @ (zr * a[:, None]).T)  # fmt: skip
    vinv = np.linalg.inv(v)
    xvx = x.T @ vinv @ x
    beta = np.linalg.solve(xvx, x.T @ vinv @ y)
    r = y - x @ beta
    dense = (
        np.linalg.slogdet(v)[1] + np.linalg.slogdet(xvx)[1] + r @ vinv @ r
        + (y.size - 2) * math.log(2 * math.pi)
    )  # fmt: skip
    assert model.deviance(phi) == pytest.approx(dense, rel=1e-10)
    b, inv = model.fixed(phi[:3])
    assert b == pytest.approx(beta, rel=1e-10)
    assert s2 * inv == pytest.approx(np.linalg.inv(xvx), rel=1e-8)


def test_case_blocks_built_in_pieces_give_the_same_deviance(
    crossed: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = reml_inputs(crossed)
    phi = np.array([0.7, 0.9, 0.4, 0.35])
    whole = CrossedReml(*inputs).deviance(phi)
    monkeypatch.setattr(CrossedReml, "block_cells", 7 * (2 * 8 + 3))  # 7 cases at a time
    assert CrossedReml(*inputs).deviance(phi) == pytest.approx(whole, rel=1e-12)


def test_arm_summaries_count_reads_not_finding_rows(long: pd.DataFrame) -> None:
    res = reading_time(long)
    assert [a.n_reads for a in res.arms] == [6 * 40, 6 * 40]
    un = long[long["arm"] == "unassisted"].drop_duplicates(["reader", "case"])["duration_s"]
    assert res.arms[0].median == pytest.approx(np.median(un))
    assert res.arms[0].geometric_mean == pytest.approx(np.exp(np.log(un).mean()))


def test_non_positive_durations_are_dropped_and_counted(long: pd.DataFrame) -> None:
    bad = long.copy()
    row = bad.iloc[0]
    same_read = (bad["reader"] == row["reader"]) & (bad["case"] == row["case"])
    first = bad.index[same_read & (bad["arm"] == row["arm"])]
    bad.loc[first, "duration_s"] = 0.0
    assert reading_time(bad).n_dropped == 1


def test_missing_arm_or_column_rejected(long: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="missing column"):
        reading_time(long.drop(columns="duration_s"))
    with pytest.raises(ValueError, match="assisted"):
        reading_time(long[long["arm"] == "unassisted"])


def test_to_dict_keeps_its_keys_and_names_the_model(long: pd.DataFrame) -> None:
    d = reading_time(long).to_dict()
    assert set(d) >= {
        "arms", "ratio", "ci_lower", "ci_upper", "p_value", "reader_sd", "residual_sd",
        "n_readers", "n_dropped", "model", "model_error", "df", "variance_components",
    }  # fmt: skip
    assert d["model"].startswith(
        "log(duration_s) ~ arm + session + (1 | case) + (1 + arm || reader), REML"
    )
    assert set(d["variance_components"]) == {"case", "reader", "reader_arm", "residual"}


def test_a_read_keeps_its_duration_when_one_finding_row_lacks_it(long: pd.DataFrame) -> None:
    partial = long.copy()
    partial.loc[partial.index[0], "duration_s"] = np.nan  # one finding's row of one read
    res = reading_time(partial)
    assert res.n_dropped == 0
    assert [a.n_reads for a in res.arms] == [6 * 40, 6 * 40]


def test_one_reader_gives_a_model_error_but_keeps_the_summaries(long: pd.DataFrame) -> None:
    res = reading_time(long[long["reader"] == "reader-1"])
    assert math.isnan(res.ratio) and res.model_error is not None
    assert "2 readers" in res.model_error
    assert [a.n_reads for a in res.arms] == [40, 40]


def test_constant_durations_give_a_model_error(long: pd.DataFrame) -> None:
    res = reading_time(long.assign(duration_s=30.0))
    assert res.model_error is not None and "no variation" in res.model_error


def test_arm_confounded_with_session_gives_a_model_error(long: pd.DataFrame) -> None:
    res = reading_time(long.assign(session=np.where(long["arm"] == "assisted", 2, 1)))
    assert res.model_error == "arm is confounded with session"


def test_one_session_drops_the_session_term(long: pd.DataFrame) -> None:
    res = reading_time(long.assign(session=1))
    assert res.model_error is None and "session" not in res.model


def test_parallel_design_leaves_out_the_case_term(long: pd.DataFrame) -> None:
    # each case read once: the case effect cannot be told from the residual
    reads, _ = reads_with_duration(long)
    one = reads.sample(frac=1.0, random_state=1).drop_duplicates("case")
    res = reading_time(one)
    assert "(1 | case)" not in res.model
    assert res.variance_components is not None and res.variance_components.case is None
