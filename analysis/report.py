"""Every analysis of a reader study's long reads frame, as one JSON-able result.

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
* reading time per arm (:mod:`analysis.readtime`);
* the complete-case readers' results by specialty, experience and role, when the frame carries
  their qualifications (:mod:`analysis.subgroups`).

Interim looks. A study read part-way has readers who have not finished both arms. The
protocol's analysis is **complete case**: the analyses above that involve readers run on the
readers who finished both arms only (the platform knows them from the assignments and passes
``complete_readers``; from a file, :func:`complete_readers` infers them: a reader is complete when
the cases they read unassisted are the cases they read assisted). The readers left out are named,
with the reason. Next to it, per finding type, the all-available-data analysis runs on every read:
the U-statistic MRMC analysis of iMRMC (:func:`analysis.mrmc.imrmc.imrmc_analysis`), which needs
no complete design. Reading time uses every read (a mixed model with a reader intercept).

An analysis that the data cannot support is skipped with its reason in ``notes``; input that is
wrong as a whole (missing column, non-numeric confidence, truth not 0/1, an AI probability outside
[0, 1], an arm other than ``unassisted``/``assisted``, an arm missing) raises ``ValueError``.
:mod:`analysis.study` adds drift, the protocol and figures; :mod:`analysis.sections` renders it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis.longreads import (
    ARMS,
    CORRECTION_COLUMNS,
    DESIGN_COLUMNS,
    LONG_COLUMNS,
    TELEMETRY_COLUMNS,
    check_ai_threshold,
    check_long_frame,
    read_long_csv,
)

if TYPE_CHECKING:
    from analysis.agreement import AgreementRow
    from analysis.missed import MissedFindingsResult
    from analysis.mrmc import ORResult
    from analysis.readtime import ReadingTimeResult
    from analysis.standalone import StandaloneResult
    from analysis.subgroups import SubgroupsResult

__all__ = [
    "ALL_AVAILABLE",
    "ALL_READS",
    "ARMS",
    "COMPLETE_CASE",
    "CORRECTION_COLUMNS",
    "DESIGN_COLUMNS",
    "LONG_COLUMNS",
    "TELEMETRY_COLUMNS",
    "ReaderSelection",
    "ReportResult",
    "analyze_checked",
    "analyze_long_frame",
    "check_ai_threshold",
    "check_long_frame",
    "complete_readers",
    "mrmc_frame",
    "read_long_csv",
    "report_dict",
]

COMPLETE_CASE = "complete-case (protocol)"
ALL_AVAILABLE = "all available data (U-statistic, iMRMC)"
ALL_READS = "all available data (every read)"
# One rule, said the same way whether the platform knows the assignments or a file is read, so
# both entry points give the same analysis object for the same reads.
COMPLETE_RULE = (
    "complete case: the readers who finished both arms (on the platform: every assignment "
    "submitted; from a file: the cases read unassisted are the cases read assisted)"
)


@dataclass(frozen=True)
class ReaderSelection:
    """Which readers the complete-case analyses include, and why the others are left out."""

    included: tuple[str, ...]
    excluded: tuple[tuple[str, str], ...]  # (reader, reason)
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "included": list(self.included),
            "excluded": [{"reader": r, "reason": why} for r, why in self.excluded],
            "rule": self.rule,
        }

    def reads(self, long: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``long`` read by the included readers (``long`` itself when all are)."""
        complete = long["reader"].isin(self.included)
        return long if complete.all() else long[complete]


@dataclass(frozen=True)
class ReportResult:
    """All results of :func:`analyze_long_frame`.

    ``mrmc``, ``missed``, ``agreement`` and ``standalone`` are the complete-case analyses of
    ``readers.included``; ``missed_all_reads`` is the missed-finding analysis of every read when
    some reader is left out; ``all_available`` holds, per finding type, the iMRMC analysis of every
    read (its ``to_dict()``); ``reading_time`` uses every read.
    """

    study: str
    n_readers: int
    n_cases: int
    n_rows: int
    findings: tuple[str, ...]
    mrmc: dict[str, ORResult]
    missed: MissedFindingsResult | None
    agreement: tuple[AgreementRow, ...]
    standalone: StandaloneResult
    reading_time: ReadingTimeResult | None
    readers: ReaderSelection
    all_available: dict[str, dict[str, Any]] = field(default_factory=dict)
    missed_all_reads: MissedFindingsResult | None = None
    all_available_notes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    mrmc_notes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = field(default=())
    subgroups: SubgroupsResult | None = None  # always set by analyze_checked

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (no NaN: missing numbers are ``None``); the web app reuses it."""
        return {
            "study": self.study,
            "n_readers": self.n_readers,
            "n_cases": self.n_cases,
            "n_rows": self.n_rows,
            "findings": list(self.findings),
            "label": COMPLETE_CASE,
            "readers": self.readers.to_dict(),
            "mrmc": {f: r.to_dict() for f, r in self.mrmc.items()},
            "mrmc_notes": {f: list(n) for f, n in self.mrmc_notes.items()},
            "missed": None if self.missed is None else self.missed.to_dict(),
            "agreement": [r.to_dict() for r in self.agreement],
            "standalone": self.standalone.to_dict(),
            "reading_time": None if self.reading_time is None else self.reading_time.to_dict(),
            "all_available": {
                "label": ALL_AVAILABLE,
                "mrmc": dict(self.all_available),
                "notes": {f: list(n) for f, n in self.all_available_notes.items()},
            },
            "missed_all_available": None
            if self.missed_all_reads is None
            else {"label": ALL_READS, **self.missed_all_reads.to_dict()},
            "subgroups": None if self.subgroups is None else self.subgroups.to_dict(),
            "notes": list(self.notes),
        }


def complete_readers(long: pd.DataFrame) -> ReaderSelection:
    """The readers who finished both arms, inferred from a validated long frame.

    A reader is complete when the set of cases they read unassisted equals the set they read
    assisted (and is not empty): in a crossover they have finished both sessions, in a
    sequential design every case they opened has both reads. Without assignments this is the
    best a file can tell; the platform passes the readers it knows finished instead.
    """
    return _selection(long, None)


def _selection(long: pd.DataFrame, complete: Collection[str] | None) -> ReaderSelection:
    reads = long.drop_duplicates(["reader", "case", "arm"])
    included, excluded = [], []
    for reader, g in reads.groupby("reader", sort=False):
        cases = {arm: set(g.loc[g["arm"] == arm, "case"]) for arm in ARMS}
        u, a = cases[ARMS[0]], cases[ARMS[1]]
        done = (u == a and bool(u)) if complete is None else str(reader) in complete
        if done:
            included.append(str(reader))
            continue
        counts = f"{len(u)} cases read unassisted, {len(a)} assisted, {len(u & a)} in both arms"
        excluded.append((str(reader), f"has not finished both arms ({counts})"))
    return ReaderSelection(tuple(included), tuple(excluded), COMPLETE_RULE)


def mrmc_frame(long: pd.DataFrame, finding: str) -> pd.DataFrame:
    """The MRMC frame (``reader,treatment,case,truth,rating``) of one finding type.

    Rating = confidence; treatments are the arms, ``unassisted`` first.
    """
    g = long[(long["finding"] == finding) & long["arm"].isin(ARMS)]
    frame = pd.DataFrame(
        {
            # The validated frame's categoricals stay categoricals (codes, not strings).
            "reader": g["reader"].array,
            "treatment": g["arm"].array,
            "case": g["case"].array,
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
    complete_readers: Collection[str] | None = None,
    ni_margin: float | None = None,
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
        The AI model's operating threshold (one, or one per finding type), in (0, 1).
    alpha
        Two-sided level of every interval.
    complete_readers
        The readers who finished both arms (``None``: inferred, :func:`complete_readers`).
    ni_margin
        The protocol's non-inferiority margin on the AUC: each finding's complete-case MRMC
        result then holds the one-sided test of assisted - unassisted
        (:mod:`analysis.mrmc.noninferiority`). ``None``: superiority only.

    Returns
    -------
    ReportResult
        See the module docstring; ``to_dict()`` gives the JSON-able form.
    """
    return analyze_checked(
        check_long_frame(long),
        significant=significant,
        ai_threshold=ai_threshold,
        alpha=alpha,
        complete_readers=complete_readers,
        ni_margin=ni_margin,
    )


def _degenerate(frame: pd.DataFrame, finding: str) -> list[str]:
    """Notes on ratings that make the MRMC intervals meaningless (no spread at all)."""
    notes = []
    if frame["rating"].nunique() == 1:
        notes.append(
            f"{finding}: every rating is {frame['rating'].iloc[0]:g}, so every AUC is 0.5 and "
            "its variance is zero: the intervals have zero width and carry no information"
        )
    else:
        for arm, g in frame.groupby("treatment", sort=False):
            if g["rating"].nunique() == 1:
                notes.append(f"{finding}: every {arm} rating is {g['rating'].iloc[0]:g}")
    return notes


def _zero_variance(result: ORResult, finding: str) -> list[str]:
    """Notes on OR standard errors of zero: their intervals have zero width."""
    flat = [f"AUC {arm}" for arm, st in result.single_treatment.items() if not st.se > 0]
    flat += [f"difference {d.pair}" for d in result.differences if not d.se > 0]
    if not flat:
        return []
    return [
        f"{finding}: zero variance for the {', '.join(flat)}: the interval has zero width and "
        "carries no information"
    ]


def _all_available(
    f: pd.DataFrame, finding: str, alpha: float
) -> tuple[dict[str, Any] | None, list[str]]:
    """iMRMC's U-statistic analysis of every read of ``finding`` (its ``to_dict()``), and notes.

    A reader whose reads so far hold one truth class only adds nothing to an AUC, and iMRMC
    refuses such a reader: they are left out of this analysis, with a note.
    """
    from analysis.mrmc import imrmc_analysis

    frame = mrmc_frame(f, finding)
    classes = frame.groupby("reader", sort=False)["truth"].nunique()
    lacking = [str(r) for r in classes.index[classes < 2]]
    notes = []
    if lacking:
        notes.append(
            f"{finding}: reader(s) {', '.join(lacking)} left out of the all-available-data "
            "analysis: their reads so far are all of one truth class"
        )
        frame = frame[~frame["reader"].isin(lacking)]
    try:
        result = imrmc_analysis(frame, alpha=alpha)
    except ValueError as error:
        return None, [*notes, f"all-available-data analysis of {finding} skipped: {error}"]
    return result.to_dict(), notes


def analyze_checked(
    f: pd.DataFrame,
    *,
    significant: Sequence[str] | None = None,
    ai_threshold: float | dict[str, float] = 0.5,
    alpha: float = 0.05,
    complete_readers: Collection[str] | None = None,
    ni_margin: float | None = None,
) -> ReportResult:
    """:func:`analyze_long_frame` on a frame :func:`check_long_frame` has already validated."""
    from analysis.agreement import long_frame_agreement
    from analysis.missed import missed_findings
    from analysis.mrmc import or_analysis
    from analysis.mrmc.noninferiority import check_margin
    from analysis.readtime import reading_time
    from analysis.standalone import ai_standalone
    from analysis.subgroups import reader_subgroups

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    check_margin(ni_margin, None)
    # unassisted is the reference: the test is of assisted - unassisted
    reference = None if ni_margin is None else ARMS[0]
    check_ai_threshold(ai_threshold)
    notes: list[str] = []
    findings = tuple(str(x) for x in pd.unique(f["finding"]))
    readers = _selection(f, complete_readers)
    if readers.excluded:
        notes.append(
            f"complete-case analyses include {len(readers.included)} reader(s) "
            f"({', '.join(readers.included) or 'none'}); left out: "
            + "; ".join(f"{r} {why}" for r, why in readers.excluded)
        )
    cc = readers.reads(f)  # no copy when every reader has finished
    has_arms = set(ARMS) <= set(cc["arm"])
    if not has_arms:
        notes.append(
            "complete-case analyses (MRMC ROC, missed findings, agreement, AI against the "
            "readers) not possible: no reader has finished both arms yet"
        )
    mrmc: dict[str, ORResult] = {}
    mrmc_notes: dict[str, tuple[str, ...]] = {}
    for finding in findings:
        if not has_arms:
            mrmc_notes[finding] = ("complete-case analysis not possible: no complete reader",)
            continue
        frame = mrmc_frame(cc, finding)
        found = _degenerate(frame, finding)
        try:
            mrmc[finding] = or_analysis(frame, alpha=alpha, margin=ni_margin, reference=reference)
        except ValueError as error:
            found.append(f"MRMC ROC analysis of {finding} skipped: {error}")
        else:
            if not found:
                found.extend(_zero_variance(mrmc[finding], finding))
        notes.extend(found)
        if found:
            mrmc_notes[finding] = tuple(found)
    all_available: dict[str, dict[str, Any]] = {}
    all_available_notes: dict[str, tuple[str, ...]] = {}
    for finding in findings:
        found_all, said = _all_available(f, finding, alpha)
        if found_all is not None:
            all_available[finding] = found_all
        if said:
            all_available_notes[finding] = tuple(said)
            notes.extend(said)
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
    missed: MissedFindingsResult | None = None
    agreement: tuple[AgreementRow, ...] = ()
    if has_arms:
        missed = missed_findings(
            cc, significant=significant, ai_threshold=ai_threshold, alpha=alpha
        )
        for fm in missed.findings:
            for part in (fm.missed, fm.false_positive):
                if part.or_error:
                    notes.append(
                        f"OR {part.kind} analysis of {fm.finding} skipped: {part.or_error}"
                    )
        agreement = long_frame_agreement(cc, ai_threshold=ai_threshold, alpha=alpha)
    missed_all_reads: MissedFindingsResult | None = None
    if readers.excluded:
        # Every read, as the missed module analyses it: OR where the design allows, else the
        # pooled rate with a case-clustered interval (each rate names its estimand and method).
        missed_all_reads = missed_findings(
            f, significant=significant, ai_threshold=ai_threshold, alpha=alpha
        )
    # The AI's performance is per case: the complete-case readers read every case of a crossover;
    # the comparison with the readers takes their unassisted reads.
    standalone = ai_standalone(cc if has_arms else f, ai_threshold=ai_threshold, alpha=alpha)
    for fs in standalone.findings:
        if fs.versus_readers_error:
            notes.append(f"AI vs readers for {fs.finding} skipped: {fs.versus_readers_error}")
    subgroups = reader_subgroups(
        cc, readers=readers.included if has_arms else (), findings=findings, alpha=alpha
    )
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
        readers=readers,
        missed_all_reads=missed_all_reads,
        all_available=all_available,
        all_available_notes=all_available_notes,
        mrmc_notes=mrmc_notes,
        notes=tuple(notes),
        subgroups=subgroups,
    )


def report_dict(long: pd.DataFrame, **options: Any) -> dict[str, Any]:
    """``analyze_long_frame(long, **options).to_dict()``: every result as a JSON-able dict."""
    return analyze_long_frame(long, **options).to_dict()
