"""Scoring readers' marks against lesion locations: which mark localizes which lesion.

A reader who calls a finding present may mark where it is (the viewer's M key): points
``(image, x, y)`` in image pixels, ``x`` the column and ``y`` the row. The ground truth may hold,
per abnormal case, its lesions: ``(lesion, image, x, y, radius)``. This module turns the marks
into RJafroc's free-response data (Chakraborty 2017, ch. 5):

* a mark **localizes** a lesion on the same case and image when the protocol's acceptance rule
  holds: ``"inside"``, the mark lies within the lesion's circle (distance to the centre
  ``<= radius``), or ``"distance"``, within a fixed distance in pixels of the centre (``<=
  distance``, whatever the radius). Pixels, not millimetres: marks and lesions are both stored in
  pixels and the platform keeps no pixel spacing, so a rule in millimetres would rest on a value
  the study does not have.
* a mark that localizes two lesions goes to the **nearest** centre (ties: the lesion listed
  first);
* each lesion's highest-rated mark of a reader and treatment is its **lesion localization**
  (LL); every other mark, including the lower-rated marks on an already localized lesion, is a
  **non-lesion localization** (NL), as in RJafroc's data (at most one LL per lesion) and
  Chakraborty and Berbaum (2004);
* marks that are not scored: a mark of a read whose call is "absent" (``call`` 0). The reader
  said there is no finding; a mark left on the image then reports no suspicious location, so
  the read counts as an unmarked case (no NL, no LL), as RJafroc treats a case without marks.

Ratings: each mark's own ``rating``; the platform gives a mark the read's confidence for the
finding (0-100) unless the mark carries its own confidence.

:func:`score_marks` returns the marks with their classification (``kind`` LL, NL or empty for
an unscored mark; ``lesion`` the localized lesion), and the ``truth``, ``nl`` and ``ll`` frames
that :func:`analysis.froc.froc_data` takes.

References
----------
Chakraborty DP (2017). Observer Performance Methods for Diagnostic Imaging. CRC Press.
doi:10.1201/9781351228190
Chakraborty DP, Berbaum KS (2004). Observer studies involving detection and localization:
modeling, analysis, and validation. Medical Physics 31(8):2313-2330. doi:10.1118/1.1769352
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.froc.data import NORMAL_LESION, FrocData, froc_data

__all__ = ["RULES", "FindingFroc", "MarkTables", "ScoredMarks", "finding_froc", "score_marks"]

RULES = ("inside", "distance")
MARK_COLUMNS = ("reader", "treatment", "case", "image", "x", "y", "rating")
LESION_COLUMNS = ("case", "lesion", "image", "x", "y", "radius")


@dataclass(frozen=True)
class ScoredMarks:
    """Marks scored against lesions.

    Attributes
    ----------
    marks
        The input marks in their order, with ``kind`` (``"LL"``, ``"NL"``, or ``""`` for a mark
        not scored) and ``lesion`` (the localized lesion's ID, ``""`` when none).
    truth
        ``case, lesion, weight``: one row per lesion, lesion ``"0"`` for a normal case.
    nl, ll
        The NL marks (``reader, treatment, case, rating``) and the LL marks (``reader,
        treatment, case, lesion, rating``).
    """

    marks: pd.DataFrame
    truth: pd.DataFrame
    nl: pd.DataFrame
    ll: pd.DataFrame

    def data(
        self, *, readers: Sequence[str] | None = None, treatments: Sequence[str] | None = None
    ) -> FrocData:
        """The :class:`~analysis.froc.FrocData` of these marks (see :func:`froc_data`)."""
        return froc_data(self.truth, self.nl, self.ll, readers=readers, treatments=treatments)


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lack column(s) {', '.join(missing)}")


def _numbers(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            row = int(bad[0])
            raise ValueError(
                f"{what} row {row + 1}: {column} {frame[column].iloc[row]!r} is not a number"
            )


def _check(
    marks: pd.DataFrame, lesions: pd.DataFrame, cases: Sequence[str], rule: str, distance: float
) -> None:
    if rule not in RULES:
        raise ValueError(f"the acceptance rule must be one of {', '.join(RULES)}, not {rule!r}")
    if rule == "distance" and not (math.isfinite(distance) and distance > 0):
        raise ValueError(f"the 'distance' rule needs a positive distance, not {distance!r}")
    _require(marks, MARK_COLUMNS, "marks")
    _require(lesions, LESION_COLUMNS, "lesions")
    _numbers(marks, ("image", "x", "y", "rating"), "marks")
    _numbers(lesions, ("image", "x", "y", "radius"), "lesions")
    if (pd.to_numeric(lesions["radius"]) <= 0).any():
        raise ValueError("lesions: every radius must be positive")
    known = set(cases)
    unknown = sorted(set(lesions["case"]) - known)
    if unknown:
        raise ValueError(f"lesions on case(s) not among the cases: {', '.join(unknown[:5])}")
    unknown = sorted(set(marks["case"]) - known)
    if unknown:
        raise ValueError(f"marks on case(s) without truth: {', '.join(unknown[:5])}")
    twice = lesions.duplicated(["case", "lesion"])
    if twice.any():
        case, lesion = lesions.loc[twice, ["case", "lesion"]].iloc[0]
        raise ValueError(f"lesions: case {case} lesion {lesion} appears twice")


def _nearest_lesion(
    marks: pd.DataFrame, lesions: pd.DataFrame, rule: str, distance: float
) -> pd.Series:
    """Per scored mark (by its row), the ID of the lesion it localizes, or ``""``.

    A lesion reaches ``depth`` images either side of its own (0: its image only), so a mark on
    any slice of a nodule's extent in a CT stack is measured in that slice's plane.
    """
    pairs = marks[["_row", "case", "image", "x", "y"]].merge(
        lesions[["case", "lesion", "image", "x", "y", "radius", "depth", "_order"]],
        on="case",
        suffixes=("", "_lesion"),
    )
    steps = np.abs(pairs["image"].to_numpy(np.int64) - pairs["image_lesion"].to_numpy(np.int64))
    pairs = pairs[steps <= pairs["depth"].to_numpy(np.int64)]
    d = np.hypot(
        pairs["x"].to_numpy(np.float64) - pairs["x_lesion"].to_numpy(np.float64),
        pairs["y"].to_numpy(np.float64) - pairs["y_lesion"].to_numpy(np.float64),
    )
    reach = pairs["radius"].to_numpy(np.float64) if rule == "inside" else distance
    pairs = pairs.assign(_d=d)[d <= reach]
    nearest = pairs.sort_values(["_row", "_d", "_order"]).drop_duplicates("_row")
    found = dict(zip(nearest["_row"], nearest["lesion"], strict=True))
    return pd.Series([found.get(row, "") for row in marks["_row"]], index=marks.index)


def score_marks(
    marks: pd.DataFrame,
    lesions: pd.DataFrame,
    cases: Sequence[str],
    *,
    rule: str = "inside",
    distance: float = math.nan,
) -> ScoredMarks:
    """Classify each mark as a lesion (LL) or non-lesion (NL) localization, with its rating.

    Parameters
    ----------
    marks
        ``reader, treatment, case, image, x, y, rating``, one row per mark, and optionally
        ``call`` (0/1: the read's call; marks of a 0 call are not scored).
    lesions
        ``case, lesion, image, x, y, radius`` and optionally ``weight`` (NaN: equal weights)
        and ``depth`` (a lesion of a CT or MR stack reaches this many images either side of
        ``image``, all in its series; NaN or absent: 0, its own image only), one row per lesion
        of an abnormal case.
    cases
        Every case with truth for the finding type: those without a lesion are normal.
    rule, distance
        The acceptance rule, ``"inside"`` (within the lesion's radius) or ``"distance"``
        (within ``distance`` pixels of the centre).

    Raises
    ------
    ValueError
        A missing column, a value that is not a number, a radius that is not positive, a depth
        that is not a whole number >= 0, a mark or
        lesion on a case not in ``cases``, a lesion listed twice, an unknown rule.
    """
    cases = [str(c) for c in cases]
    marks = marks.reset_index(drop=True).assign(
        case=lambda f: f["case"].astype(str), reader=lambda f: f["reader"].astype(str)
    )
    lesions = lesions.reset_index(drop=True).assign(
        case=lambda f: f["case"].astype(str), lesion=lambda f: f["lesion"].astype(str)
    )
    _check(marks, lesions, cases, rule, distance)
    for frame in (marks, lesions):
        frame["image"] = pd.to_numeric(frame["image"]).astype(np.int64)
    lesions["_order"] = np.arange(len(lesions))
    lesions["depth"] = _depths(lesions)
    scored = (
        np.ones(len(marks), dtype=bool)
        if "call" not in marks.columns
        else pd.to_numeric(marks["call"]).to_numpy() == 1
    )
    work = marks.assign(_row=np.arange(len(marks)), rating=pd.to_numeric(marks["rating"]))
    lesion = pd.Series("", index=work.index, dtype=object)
    if scored.any():
        lesion[scored] = _nearest_lesion(work[scored], lesions, rule, distance)
    work["lesion"] = lesion
    # Of the marks on one lesion, the highest-rated (the first among equals) is its LL.
    hits = work[scored & (lesion != "")]
    best = hits.sort_values(["rating", "_row"], ascending=[False, True]).drop_duplicates(
        ["reader", "treatment", "case", "lesion"]
    )
    is_ll = work["_row"].isin(best["_row"]).to_numpy()
    kind = np.where(is_ll, "LL", np.where(scored, "NL", ""))
    out = marks.assign(kind=kind, lesion=np.where(is_ll, lesion, ""))
    abnormal = lesions[["case", "lesion"]].assign(
        weight=pd.to_numeric(lesions["weight"], errors="coerce").fillna(0.0)
        if "weight" in lesions.columns
        else 0.0
    )
    normal = sorted(set(cases) - set(lesions["case"]))
    truth = pd.concat(
        [pd.DataFrame({"case": normal, "lesion": NORMAL_LESION, "weight": 0.0}), abnormal],
        ignore_index=True,
    )
    ids = ["reader", "treatment", "case"]
    nl = work.loc[scored & ~is_ll, [*ids, "rating"]].reset_index(drop=True)
    ll = work.loc[is_ll, [*ids, "lesion", "rating"]].reset_index(drop=True)
    return ScoredMarks(marks=out, truth=truth, nl=nl, ll=ll)


def _depths(lesions: pd.DataFrame) -> npt.NDArray[np.int64]:
    if "depth" not in lesions.columns:
        return np.zeros(len(lesions), dtype=np.int64)
    depth = pd.to_numeric(lesions["depth"], errors="coerce").fillna(0.0).to_numpy(np.float64)
    if (depth < 0).any() or (depth != np.floor(depth)).any():
        raise ValueError("lesions: every depth must be a whole number of slices, 0 or more")
    return depth.astype(np.int64)


@dataclass(frozen=True)
class MarkTables:
    """A study's marks and lesions, and the acceptance rule (``distance`` NaN for "inside").

    ``marks``: ``reader, case, arm, session, finding, call, mark, image, x, y, rating``;
    ``lesions``: ``finding, case, lesion, image, x, y, radius, weight, depth``.
    """

    marks: pd.DataFrame
    lesions: pd.DataFrame
    rule: str = "inside"
    distance: float = math.nan

    def located_findings(self) -> list[str]:
        """Finding types whose truth carries lesion locations (their marks can be scored)."""
        return sorted(str(f) for f in pd.unique(self.lesions["finding"]))


@dataclass(frozen=True)
class FindingFroc:
    """One finding type's marks of a reader study, scored, and their FROC data.

    ``notes`` say which cases were left out (abnormal cases whose truth has no lesion
    locations cannot be scored).
    """

    finding: str
    scored: ScoredMarks
    data: FrocData
    notes: tuple[str, ...]


def finding_froc(
    long: pd.DataFrame,
    marks: pd.DataFrame,
    lesions: pd.DataFrame,
    finding: str,
    *,
    rule: str = "inside",
    distance: float = math.nan,
    treatments: Sequence[str] = ("unassisted", "assisted"),
) -> FindingFroc:
    """Score one finding type's marks over the cases and readers of a long reads frame.

    Parameters
    ----------
    long
        The long reads frame (at least ``reader, case, arm, finding, truth``): its rows of
        ``finding`` with truth give the readers, the arms (treatments) and the cases. A reader
        who read a case and marked nothing has no NL and no LL there, as in RJafroc.
    marks
        ``reader, case, arm, finding, call, image, x, y, rating`` (one row per mark).
    lesions
        ``finding, case, lesion, image, x, y, radius, weight`` and optionally ``depth`` (one
        row per lesion).
    finding, rule, distance
        The finding type and the acceptance rule (:func:`score_marks`).
    treatments
        The order of the arms (those present are kept).
    """
    rows = long[(long["finding"].astype(str) == finding) & long["truth"].notna()]
    if rows.empty:
        raise ValueError(f"no reads of {finding} on cases with ground truth")
    own = lesions[lesions["finding"].astype(str) == finding].assign(
        case=lambda f: f["case"].astype(str)
    )
    first = rows.drop_duplicates("case")
    truth = pd.Series(first["truth"].to_numpy(), index=first["case"].astype(str))
    located = set(own["case"])
    unlocated = sorted(str(c) for c, t in truth.items() if int(t) == 1 and c not in located)
    notes = []
    if unlocated:
        notes.append(
            f"{finding}: {len(unlocated)} abnormal case(s) without lesion locations left out of "
            f"the FROC analysis ({', '.join(unlocated[:5])}{', ...' if len(unlocated) > 5 else ''})"
        )
    cases = [c for c in truth.index if c not in set(unlocated)]
    normal_only = [c for c in cases if c not in located]
    if len(normal_only) == len(cases):
        raise ValueError(f"{finding}: no abnormal case with lesion locations among the reads")
    own = own[own["case"].isin(cases)]
    readers = sorted(pd.unique(rows["reader"].astype(str)).tolist())
    arms = set(rows["arm"].astype(str))
    order = [t for t in treatments if t in arms] + sorted(arms - set(treatments))
    chosen = marks[
        (marks["finding"].astype(str) == finding)
        & marks["case"].astype(str).isin(cases)
        & marks["reader"].astype(str).isin(readers)
        & marks["arm"].astype(str).isin(arms)
    ].rename(columns={"arm": "treatment"})
    scored = score_marks(chosen, own, cases, rule=rule, distance=distance)
    return FindingFroc(
        finding=finding,
        scored=scored,
        data=scored.data(readers=readers, treatments=order),
        notes=tuple(notes),
    )
