"""Reading and validating MRMC input: ``reader,treatment,case,truth,rating``.

:func:`read_mrmc_csv` reads the CSV of the DESIGN.md contract into a data frame;
:func:`mrmc_design` validates a frame and lays it out as a fully crossed
treatment x reader x case array, the shape every MRMC method here works on. Every problem is
reported as a :class:`ValueError` whose message names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import pandas as pd

MRMC_COLUMNS = ("reader", "treatment", "case", "truth", "rating")
_ID_COLUMNS = ("reader", "treatment", "case")


@dataclass(frozen=True)
class MRMCDesign:
    """A validated, fully crossed MRMC data set.

    Attributes
    ----------
    ratings : ndarray, shape (t, r, K)
        ``ratings[i, j, k]`` is reader ``j``'s rating of case ``k`` under treatment ``i``.
    truth : ndarray of bool, shape (K,)
        True for the truth-positive cases.
    treatments, readers, cases : tuple of str
        IDs as they appear in the input, in order of first appearance.
    """

    ratings: NDArray[np.float64]
    truth: NDArray[np.bool_]
    treatments: tuple[str, ...]
    readers: tuple[str, ...]
    cases: tuple[str, ...]

    @property
    def n_positive(self) -> int:
        return int(self.truth.sum())

    @property
    def n_negative(self) -> int:
        return int(self.truth.size - self.truth.sum())


def read_mrmc_csv(path: str | Path) -> pd.DataFrame:
    """Read an MRMC CSV (``reader,treatment,case,truth,rating``) into a data frame.

    IDs are kept as strings exactly as written; ``rating`` must be numeric and ``truth`` 0 or 1.
    Extra columns are kept. Raises :class:`ValueError` naming the first problem found.
    """
    import pandas as pd  # deferred: start-up time of `python -m analysis` matters

    try:
        frame = pd.read_csv(
            path,
            dtype={column: str for column in _ID_COLUMNS},
            engine="c",
            skipinitialspace=True,
        )
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "empty file"
        raise ValueError(f"cannot parse {path} as CSV: {first_line}") from None
    frame.columns = [str(column).strip() for column in frame.columns]
    check_mrmc_frame(frame)
    return frame


def check_mrmc_frame(frame: pd.DataFrame) -> None:
    """Check columns and value types of an MRMC frame; raise ValueError naming the problem."""
    missing = [column for column in MRMC_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(
            f"missing column(s): {', '.join(missing)} (need {', '.join(MRMC_COLUMNS)})"
        )
    if len(frame) == 0:
        raise ValueError("no data rows")
    for column in _ID_COLUMNS:
        if frame[column].isna().any():
            row = int(np.flatnonzero(frame[column].isna().to_numpy())[0])
            raise ValueError(f"empty {column} ID in data row {row + 1}")
    for column in ("rating", "truth"):
        _numeric(frame, column)
    truth = _numeric(frame, "truth")
    bad = ~np.isin(truth, (0.0, 1.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"truth must be 0 or 1, got {frame['truth'].iloc[row]!r} in data row {row + 1}"
        )


def _numeric(frame: pd.DataFrame, column: str) -> NDArray[np.float64]:
    import pandas as pd

    values = frame[column]
    if values.dtype.kind in "fiub":
        numbers = values.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numbers)
    else:
        coerced = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(coerced)
        numbers = coerced
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"non-numeric or missing {column} {values.iloc[row]!r} in data row {row + 1}"
        )
    return numbers


def mrmc_design(frame: pd.DataFrame) -> MRMCDesign:
    """Validate an MRMC frame and arrange it as a treatment x reader x case array.

    Raises
    ------
    ValueError
        On a missing column, a non-numeric rating, truth other than 0/1, a case whose truth
        differs between rows, a reader without both truth classes, a repeated
        reader x treatment x case row, or an unbalanced design (a reader x treatment without
        every case: this engine analyses fully crossed designs only).
    """
    import pandas as pd

    check_mrmc_frame(frame)
    codes: list[NDArray[np.intp]] = []
    labels: list[tuple[str, ...]] = []
    for column in ("treatment", "reader", "case"):
        code, unique = pd.factorize(frame[column], sort=False)
        codes.append(np.asarray(code, dtype=np.intp))
        labels.append(tuple(str(value) for value in unique))
    t_code, r_code, c_code = codes
    treatments, readers, cases = labels
    t, r, K = len(treatments), len(readers), len(cases)
    truth_rows = _numeric(frame, "truth") == 1.0
    ratings_rows = _numeric(frame, "rating")

    truth = np.zeros(K, dtype=bool)
    truth[c_code] = truth_rows
    conflict = truth[c_code] != truth_rows
    if conflict.any():
        case = cases[c_code[int(np.flatnonzero(conflict)[0])]]
        raise ValueError(f"case {case} has both truth 0 and truth 1")

    # Truth classes per reader (before the balance check, whose message is less specific).
    has_class = np.zeros((r, 2), dtype=bool)
    has_class[r_code, truth_rows.astype(np.intp)] = True
    for j in range(r):
        if not has_class[j].all():
            lacking = "positive (truth=1)" if not has_class[j, 1] else "negative (truth=0)"
            raise ValueError(f"reader {readers[j]} has no {lacking} cases")

    cell = (t_code * r + r_code) * K + c_code
    counts = np.bincount(cell, minlength=t * r * K)
    if counts.max() > 1:
        where = int(np.flatnonzero(counts > 1)[0])
        i, rest = divmod(where, r * K)
        j, k = divmod(rest, K)
        raise ValueError(
            f"reader {readers[j]} rated case {cases[k]} more than once under treatment "
            f"{treatments[i]}"
        )
    if counts.min() == 0:
        missing = counts.reshape(t, r, K) == 0
        i, j = (int(axis[0]) for axis in np.nonzero(missing.any(axis=2)))
        n_missing = int(missing[i, j].sum())
        raise ValueError(
            f"unbalanced design: reader {readers[j]} under treatment {treatments[i]} lacks "
            f"{n_missing} of the {K} cases (every reader must read every case in every treatment)"
        )
    ratings = np.empty(t * r * K, dtype=np.float64)
    ratings[cell] = ratings_rows
    return MRMCDesign(
        ratings=ratings.reshape(t, r, K),
        truth=truth,
        treatments=treatments,
        readers=readers,
        cases=cases,
    )
