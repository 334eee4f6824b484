"""Fuzzing ``python -m analysis``: malformed MRMC, kappa and long CSVs end in one line, exit 2.

The command line is run in-process (``analysis.cli.main``): every input either succeeds (exit 0)
or is refused with one line on stderr naming the problem and exit status 2, never a traceback.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from analysis.cli import EXIT_INPUT_ERROR, main
from tests.fuzz.conftest import FUZZ, HOSTILE

MRMC_COLUMNS = ("reader", "treatment", "case", "truth", "rating")
KAPPA_COLUMNS = ("rater", "item", "rating")
LONG_COLUMNS = [
    "study",
    "reader",
    "case",
    "arm",
    "session",
    "finding",
    "truth",
    "call",
    "confidence",
    "ai_probability",
    "site",
    "modality",
    "manufacturer",
    "started_at",
    "submitted_at",
    "duration_s",
]

cells = st.one_of(
    st.sampled_from(["0", "1", "2", "0.5", "-1", "1e308", "nan", "inf", "", " ", "NA", "a", "1,2"]),
    st.sampled_from(["unassisted", "assisted", "r1", "c1", "2026-01-01T00:00:00Z"]),
    st.sampled_from(HOSTILE[:-1]),  # the 70 kB string makes pandas slow, not wrong
    st.text(max_size=12),
)


@st.composite
def table(draw: st.DrawFn, columns: tuple[str, ...] | list[str]) -> str:
    header = draw(
        st.one_of(
            st.just(list(columns)),
            st.permutations(columns),
            st.lists(st.sampled_from([*columns, "extra", ""]), max_size=len(columns) + 1),
        )
    )
    rows = draw(st.lists(st.lists(cells, min_size=0, max_size=len(header) + 1), max_size=12))
    lines = [",".join(header)] + [",".join(row) for row in rows]
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", '"', "\x00"]))


def _run(tmp_path_factory, capsys, text: str, *args: str) -> int:
    path = tmp_path_factory.mktemp("analysis") / "input.csv"
    path.write_text(text, encoding="utf-8", newline="")
    capsys.readouterr()
    status = main([args[0], str(path), *args[1:]])
    err = capsys.readouterr().err
    assert status in (0, EXIT_INPUT_ERROR)
    if status:
        assert err.startswith("python -m analysis ") and err.count("\n") == 1, err
        assert "Traceback" not in err
    return status


def _balanced_mrmc(rng_rows: list[tuple[int, int]]) -> str:
    """A small valid design: 2 readers x 2 treatments x 6 cases, ratings drawn by hypothesis."""
    lines = ["reader,treatment,case,truth,rating"]
    k = 0
    for reader in ("1", "2"):
        for treatment in ("1", "2"):
            for case in range(6):
                rating = rng_rows[k % len(rng_rows)][0]
                k += 1
                lines.append(f"{reader},{treatment},{case},{int(case < 3)},{rating}")
    return "\n".join(lines) + "\n"


@settings(FUZZ, max_examples=40)
@given(text=table(MRMC_COLUMNS), flags=st.sampled_from([[], ["--json"], ["--cov", "delong"]]))
@example(text="", flags=[])
@example(text="reader,treatment,case,truth,rating\n", flags=["--json"])
@example(text="reader,treatment,case,truth,rating\n1,1,1,1,=cmd|' /C calc'!A0\n", flags=[])
def test_mrmc_with_a_malformed_file_is_refused_in_one_line(tmp_path_factory, capsys, text, flags):
    _run(tmp_path_factory, capsys, text, "mrmc", *flags)


@settings(FUZZ, max_examples=40)
@given(ratings=st.lists(st.tuples(st.integers(-5, 5), st.just(0)), min_size=1, max_size=24))
def test_mrmc_with_tied_or_constant_ratings_never_crashes(tmp_path_factory, capsys, ratings):
    for metric in ("empirical_auc", "sensitivity"):
        _run(
            tmp_path_factory, capsys, _balanced_mrmc(ratings), "mrmc", "--json", "--metric", metric
        )


@settings(FUZZ, max_examples=40)
@given(text=table(MRMC_COLUMNS))
def test_dbm_with_a_malformed_file_is_refused_in_one_line(tmp_path_factory, capsys, text):
    _run(tmp_path_factory, capsys, text, "dbm", "--json")


@settings(FUZZ, max_examples=40)
@given(text=table(KAPPA_COLUMNS), weights=st.sampled_from(["none", "linear", "quadratic"]))
@example(text="rater,item,rating\na,1,1\n", weights="none")
@example(text="rater,item,rating\na,1,x\nb,1,y\na,2,=1+1\nb,2,x\n", weights="quadratic")
def test_kappa_with_a_malformed_file_is_refused_in_one_line(
    tmp_path_factory, capsys, text, weights
):
    _run(tmp_path_factory, capsys, text, "kappa", "--json", "--weights", weights)


@settings(FUZZ, max_examples=40)
@given(text=table(LONG_COLUMNS))
@example(
    text=",".join(LONG_COLUMNS) + "\n",
)
def test_report_with_a_malformed_long_file_is_refused_in_one_line(tmp_path_factory, capsys, text):
    out = tmp_path_factory.mktemp("report") / "report.html"
    _run(tmp_path_factory, capsys, text, "report", "--out", str(out))


@pytest.mark.parametrize("command", ["mrmc", "dbm", "kappa"])
def test_a_missing_or_binary_file_is_refused_in_one_line(tmp_path, capsys, command):
    assert main([command, str(tmp_path / "absent.csv")]) == EXIT_INPUT_ERROR
    assert "no such file" in capsys.readouterr().err
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00" * 50)
    assert main([command, str(binary)]) == EXIT_INPUT_ERROR
    assert capsys.readouterr().err.count("\n") == 1


@settings(FUZZ, max_examples=40)
@given(
    line=st.integers(1, 24),
    column=st.integers(0, 4),
    cell=cells,
    command=st.sampled_from(["mrmc", "dbm"]),
)
def test_one_bad_cell_in_a_valid_mrmc_file_is_refused_or_analysed(
    tmp_path_factory, capsys, line, column, cell, command
):
    lines = _balanced_mrmc([(r % 5, 0) for r in range(24)]).splitlines()
    fields = lines[line].split(",")
    fields[column] = cell
    lines[line] = ",".join(fields)
    _run(tmp_path_factory, capsys, "\n".join(lines) + "\n", command, "--json")
