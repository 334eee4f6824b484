"""The long reads frame of DESIGN.md: its columns, its validation, reading it from a CSV file.

One row per reader x case x arm x finding type. :func:`check_long_frame` validates a frame once
for every analysis of :mod:`analysis.report` and :mod:`analysis.study`; :func:`read_long_csv`
reads the CSV that ``manage.py export --format long`` writes. Every problem is a one-line
``ValueError`` naming the first data row at fault.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DESIGN_COLUMNS: tuple[str, ...] = (
    "study", "reader", "case", "arm", "session", "finding", "truth", "call", "confidence",
    "ai_probability", "site", "modality", "manufacturer", "started_at", "submitted_at",
    "duration_s",
)  # fmt: skip
# A corrected read's row carries the corrected call and confidence; these say that it was
# corrected (0/1), what the reader first submitted, and when the latest correction was made.
CORRECTION_COLUMNS: tuple[str, ...] = (
    "corrected", "original_call", "original_confidence", "corrected_at",
)  # fmt: skip
# How the read was read (the platform's reading telemetry; empty for a read without it): the
# distinct slices shown and the slices the case has, the seconds its images were on screen (once
# however many viewports showed them: not a sum over the series), and whether the AI heatmap
# overlay was on screen (0/1), for how many seconds, and the seconds from opening to the first
# sight of the AI's output. A corrected read keeps its original's.
TELEMETRY_COLUMNS: tuple[str, ...] = (
    "slices_viewed", "slices_total", "series_time_s", "ai_overlay_on", "ai_overlay_s",
    "ai_first_view_s",
)  # fmt: skip
# The reader's qualifications, the same on every row of a reader (empty when not stated):
# the report's reader subgroups (analysis.subgroups). A file without them has no subgroups.
READER_COLUMNS: tuple[str, ...] = (
    "reader_specialty", "reader_years_experience", "reader_role",
)  # fmt: skip
LONG_COLUMNS: tuple[str, ...] = (
    DESIGN_COLUMNS + CORRECTION_COLUMNS + TELEMETRY_COLUMNS + READER_COLUMNS
)
ARMS: tuple[str, str] = ("unassisted", "assisted")


def _data_row(frame: pd.DataFrame, bad: pd.Series) -> int:
    """The 1-based data row of the first ``bad`` row (the frame's own row numbers if it has them:
    rows left out before the check, such as those without truth, keep their numbers)."""
    pos = int(np.flatnonzero(bad.to_numpy())[0])
    label = frame.index[pos]
    return int(label) + 1 if pd.api.types.is_integer_dtype(frame.index) else pos + 1


NEEDED_COLUMNS: tuple[str, ...] = (
    "reader", "case", "arm", "finding", "truth", "call", "confidence", "ai_probability",
)  # fmt: skip


def check_columns(long: pd.DataFrame) -> None:
    """Raise ``ValueError`` naming the columns the analysis needs that ``long`` lacks."""
    missing = [c for c in NEEDED_COLUMNS if c not in long.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")


def _stripped_ids(values: pd.Series) -> pd.Categorical:
    """IDs as text without surrounding blanks, a categorical of the observed IDs as sorted
    categories; missing where the ID is missing or blank.

    Each distinct value is converted and stripped once (a million rows hold a few thousand
    IDs), and the analyses group and compare the small integer codes instead of strings.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = values.array.remove_unused_categories()
    else:
        cat = pd.Categorical(values)
    names = np.asarray(cat.categories.astype(str).str.strip(), dtype=object)
    categories = np.unique(names[names != ""]) if len(names) else names
    at = np.searchsorted(categories, names) if len(categories) else np.zeros(len(names), int)
    remap = np.where(names != "", at, -1)
    codes = np.asarray(cat.codes)
    new_codes = np.where(codes >= 0, remap[codes] if len(remap) else -1, -1)
    return pd.Categorical.from_codes(new_codes, categories=pd.Index(categories, dtype="str"))


def text_ids(values: pd.Series) -> pd.Series:
    """IDs as text: a categorical of text categories as it is (grouping and comparing use its
    small integer codes), any other column converted with ``astype(str)``."""
    if isinstance(values.dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(
        values.cat.categories
    ):
        return values
    return values.astype(str)


def check_long_frame(long: pd.DataFrame) -> pd.DataFrame:
    """Validate the long reads frame; return a copy with typed columns.

    ``reader``, ``case``, ``arm`` and ``finding`` come back as categoricals of their stripped
    text (categories sorted), ``truth`` and ``call`` as integers, ``confidence`` and
    ``ai_probability`` as floats; the other columns are the caller's, shared, not copied.

    Raises
    ------
    ValueError
        Missing columns, no rows, an empty ID, ``truth``/``call`` not 0/1, a non-numeric or
        out-of-range ``confidence``, a non-numeric ``ai_probability`` or one outside [0, 1], an
        arm other than ``unassisted``/``assisted``, an arm missing. The message names the first
        data row at fault.
    """
    check_columns(long)
    if len(long) == 0:
        raise ValueError("no data rows")
    f = long.copy(deep=False)  # copy-on-write: the caller's frame keeps its columns
    for col in ("reader", "case", "arm", "finding"):
        ids = _stripped_ids(f[col])
        empty = pd.Series(ids.isna(), index=f.index)
        if empty.any():
            raise ValueError(f"empty {col} in data row {_data_row(f, empty)}")
        f[col] = ids
    for col in ("truth", "call"):
        values = pd.to_numeric(f[col], errors="coerce")
        bad = ~values.isin([0, 1])
        if bad.any():
            row = _data_row(f, bad)
            raise ValueError(
                f"{col} must be 0 or 1, got {f[col].loc[bad].iloc[0]!r} in data row {row}"
            )
        f[col] = values.astype(np.int64)
    conf = pd.to_numeric(f["confidence"], errors="coerce")
    bad = ~conf.between(0, 100)
    if bad.any():
        raise ValueError(
            f"non-numeric or out-of-range confidence {f['confidence'].loc[bad].iloc[0]!r} "
            f"in data row {_data_row(f, bad)} (need 0-100)"
        )
    f["confidence"] = conf.astype(np.float64)
    prob = pd.to_numeric(f["ai_probability"], errors="coerce")
    given = f["ai_probability"].notna()
    if f["ai_probability"].dtype.kind not in "fiub":  # text: a blank is no probability
        given &= f["ai_probability"].astype(str).str.strip() != ""
    bad = prob.isna() & given
    if bad.any():
        raise ValueError(
            f"non-numeric ai_probability {f['ai_probability'].loc[bad].iloc[0]!r} "
            f"in data row {_data_row(f, bad)}"
        )
    bad = prob.notna() & ~prob.between(0.0, 1.0)
    if bad.any():
        raise ValueError(
            f"ai_probability must be between 0 and 1, got {prob.loc[bad].iloc[0]:g} "
            f"in data row {_data_row(f, bad)}"
        )
    f["ai_probability"] = prob
    other = ~f["arm"].isin(ARMS)
    if other.any():
        names = ", ".join(repr(a) for a in pd.unique(f.loc[other, "arm"]))
        raise ValueError(
            f"unknown arm(s) {names} (first in data row {_data_row(f, other)}): "
            f"the analysis compares {ARMS[0]!r} with {ARMS[1]!r}"
        )
    arms = set(f["arm"])
    if not set(ARMS) <= arms:
        raise ValueError(f"need both arms {ARMS[0]!r} and {ARMS[1]!r}, got {sorted(arms)}")
    return f


def _shown(path: str | Path) -> str:
    """The path for a one-line message: an over-long one is shortened in the middle."""
    text = str(path)
    return text if len(text) <= 120 else f"{text[:60]}...{text[-50:]}"


def read_long_csv(path: str | Path, *, validate: bool = True) -> pd.DataFrame:
    """Read a long reads frame CSV (IDs as strings); validate it unless ``validate`` is false.

    A missing, unreadable or over-long path, a directory, or a file that is not CSV raise a
    one-line ``ValueError``. :func:`analysis.study.analyze_study` validates the frame itself, so
    its callers read with ``validate=False`` and the frame is checked once.
    """
    ids = {c: str for c in ("study", "reader", "case", "arm", "finding", "site", "modality",
                            "manufacturer", "reader_specialty", "reader_role")}  # fmt: skip
    try:
        frame = pd.read_csv(path, dtype=ids, skipinitialspace=True)
    except FileNotFoundError:
        raise ValueError(f"no such file: {_shown(path)}") from None
    except IsADirectoryError:
        raise ValueError(f"{_shown(path)} is a directory, not a CSV file") from None
    except OSError as error:  # permission denied, name too long, ...
        raise ValueError(f"cannot read {_shown(path)}: {error.strerror or error}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "empty file"
        raise ValueError(f"cannot parse {_shown(path)} as CSV: {first}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return check_long_frame(frame) if validate else frame


def check_ai_threshold(ai_threshold: float | dict[str, float]) -> None:
    """Refuse an operating threshold outside (0, 1): the AI's output is a probability."""
    values = ai_threshold.items() if isinstance(ai_threshold, dict) else [("", ai_threshold)]
    for finding, t in values:
        if not (isinstance(t, (int, float)) and 0.0 < float(t) < 1.0):
            where = f" for {finding}" if finding else ""
            raise ValueError(f"AI threshold{where} must be between 0 and 1 (exclusive), got {t}")
