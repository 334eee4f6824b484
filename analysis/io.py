"""Reading and validating MRMC input: ``reader,treatment,case,truth,rating``.

:func:`read_mrmc_csv` reads the CSV of the DESIGN.md contract into a data frame;
:func:`mrmc_reads` validates a frame and lays it out as a
treatment x reader x case array (missing reads masked), the shape every MRMC method here works
on, :func:`detect_design` names its study design and :func:`mrmc_design` does both. Every problem is
reported as a :class:`ValueError` whose message names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import pandas as pd

MRMC_COLUMNS = ("reader", "treatment", "case", "truth", "rating")
_ID_COLUMNS = ("reader", "treatment", "case")


Design = Literal["factorial", "split-plot", "cases-nested-in-readers", "cases-nested-in-treatments"]
DESIGNS: tuple[Design, ...] = (
    "factorial",
    "split-plot",
    "cases-nested-in-readers",
    "cases-nested-in-treatments",
)


@dataclass(frozen=True)
class MRMCReads:
    """Validated MRMC reads laid out as a treatment x reader x case array, in any design.

    Attributes
    ----------
    ratings : ndarray, shape (t, r, K)
        ``ratings[i, j, k]`` is reader ``j``'s rating of case ``k`` under treatment ``i``; NaN
        where that read does not exist.
    truth : ndarray of bool, shape (K,)
        True for the truth-positive cases.
    treatments, readers, cases : tuple of str
        IDs as they appear in the input, in order of first appearance.
    observed : ndarray of bool, shape (t, r, K)
        Which reads exist (all True for a fully crossed study).
    """

    ratings: NDArray[np.float64]
    truth: NDArray[np.bool_]
    treatments: tuple[str, ...]
    readers: tuple[str, ...]
    cases: tuple[str, ...]
    observed: NDArray[np.bool_]

    @property
    def n_positive(self) -> int:
        return int(self.truth.sum())

    @property
    def n_negative(self) -> int:
        return int(self.truth.size - self.truth.sum())

    @property
    def fully_paired(self) -> bool:
        """Every reader read every case under every treatment."""
        return bool(self.observed.all())

    @property
    def n_missing(self) -> int:
        """Reads absent from the full treatment x reader x case array."""
        return int(self.observed.size - self.observed.sum())


@dataclass(frozen=True)
class MRMCDesign(MRMCReads):
    """:class:`MRMCReads` of a design the OR and DBM analyses take, named.

    Attributes
    ----------
    design : str
        The study design detected from ``observed`` by :func:`detect_design`.
    """

    design: Design


def detect_design(
    observed: NDArray[np.bool_], treatments: tuple[str, ...], readers: tuple[str, ...]
) -> Design:
    """The study design of a treatment x reader x case pattern of reads.

    The rules of MRMCaov 0.3.0 ``get_design`` (``R/utils.R``), which need every reader under
    every treatment: every case read by exactly one reader is ``cases-nested-in-readers``
    (MRMCaov design 2); otherwise every case read under exactly one treatment is
    ``cases-nested-in-treatments`` (design 3); otherwise the design is factorial (design 1, or
    -1, "factorial (partially paired)", when reads are missing). Partially paired data are
    called ``split-plot`` when the readers fall into at least two groups that read disjoint
    case blocks, each reader every case of its group's block under every treatment and no
    other; any other pattern of missing reads stays ``factorial`` (the analysis adds a note
    counting the missing reads). Both are analysed as MRMCaov's partially paired design.

    Raises
    ------
    ValueError
        When a reader lacks a treatment: readers nested in treatments (MRMCaov design 4) and
        incomplete reader x treatment layouts are not supported.
    """
    reader_in_treatment = observed.any(axis=2)
    if not reader_in_treatment.all():
        i, j = (int(axis[0]) for axis in np.nonzero(~reader_in_treatment))
        nested = bool((reader_in_treatment.sum(axis=0) == 1).all())
        kind = "readers nested in treatments are" if nested else "this design is"
        raise ValueError(
            f"reader {readers[j]} has no reads under treatment {treatments[i]}: {kind} not "
            "supported (every reader must read under every treatment)"
        )
    if (observed.any(axis=0).sum(axis=0) == 1).all():
        return "cases-nested-in-readers"
    if (observed.any(axis=1).sum(axis=0) == 1).all():
        return "cases-nested-in-treatments"
    if observed.all():
        return "factorial"
    cases_of_reader = observed[0]
    same_in_all_treatments = bool((observed == cases_of_reader[np.newaxis]).all())
    blocks = np.unique(cases_of_reader, axis=0)
    disjoint = bool((blocks.sum(axis=0) == 1).all())  # every case in exactly one block
    if same_in_all_treatments and disjoint and len(blocks) >= 2:
        return "split-plot"
    return "factorial"


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
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a CSV file") from None
    except OSError as error:  # no permission, a name too long, ...
        raise ValueError(f"cannot open {path}: {error.strerror or error}") from None
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


def mrmc_reads(frame: pd.DataFrame) -> MRMCReads:
    """Validate an MRMC frame and arrange it as a treatment x reader x case array.

    Any pattern of reads is accepted: missing reads are NaN in ``ratings`` and False in
    ``observed``.

    Raises
    ------
    ValueError
        On a missing column, a non-numeric rating, truth other than 0/1, a case whose truth
        differs between rows, a reader without both truth classes, or a repeated
        reader x treatment x case row.
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
    ratings = np.full(t * r * K, np.nan, dtype=np.float64)
    ratings[cell] = ratings_rows
    return MRMCReads(
        ratings=ratings.reshape(t, r, K),
        truth=truth,
        treatments=treatments,
        readers=readers,
        cases=cases,
        observed=(counts == 1).reshape(t, r, K),
    )


def mrmc_design(frame: pd.DataFrame) -> MRMCDesign:
    """Validate an MRMC frame, arrange it as a treatment x reader x case array, name its design.

    Reads may be missing (partially paired and nested designs, see :func:`detect_design`);
    missing reads are NaN in ``ratings`` and False in ``observed``.

    Raises
    ------
    ValueError
        On any problem :func:`mrmc_reads` names, or a reader without reads under some
        treatment.
    """
    reads = mrmc_reads(frame)
    return MRMCDesign(
        ratings=reads.ratings,
        truth=reads.truth,
        treatments=reads.treatments,
        readers=reads.readers,
        cases=reads.cases,
        observed=reads.observed,
        design=detect_design(reads.observed, reads.treatments, reads.readers),
    )
