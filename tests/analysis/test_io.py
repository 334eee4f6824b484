"""Reading and validating MRMC input: every problem is a ValueError that names it."""

import numpy as np
import pandas as pd
import pytest

from analysis.io import detect_design, mrmc_design, read_mrmc_csv

HEADER = "reader,treatment,case,truth,rating\n"


def crossed_rows():
    return [
        (reader, treatment, case, truth, rating)
        for treatment in ("A", "B")
        for reader in ("r1", "r2")
        for case, truth, rating in (("c1", 1, 3), ("c2", 0, 1), ("c3", 1, 2), ("c4", 0, 2))
    ]


def write(tmp_path, rows, header=HEADER):
    path = tmp_path / "study.csv"
    path.write_text(header + "".join(",".join(map(str, row)) + "\n" for row in rows))
    return path


def test_reads_ids_as_written_and_lays_out_the_design(tmp_path):
    rows = [("007", *row[1:]) if row[0] == "r1" else row for row in crossed_rows()]
    design = mrmc_design(read_mrmc_csv(write(tmp_path, rows)))
    assert design.readers == ("007", "r2")
    assert design.treatments == ("A", "B")
    assert design.ratings.shape == (2, 2, 4)
    assert design.truth.tolist() == [True, False, True, False]
    assert design.ratings[1, 0].tolist() == [3.0, 1.0, 2.0, 2.0]


def test_missing_column_is_named(tmp_path):
    path = write(tmp_path, [row[:4] for row in crossed_rows()], "reader,treatment,case,truth\n")
    with pytest.raises(ValueError, match=r"missing column.*rating"):
        read_mrmc_csv(path)


def test_non_numeric_rating_is_named_with_its_row(tmp_path):
    rows = crossed_rows()
    rows[2] = (*rows[2][:4], "high")
    with pytest.raises(ValueError, match="non-numeric or missing rating 'high' in data row 3"):
        read_mrmc_csv(write(tmp_path, rows))


def test_truth_other_than_zero_or_one(tmp_path):
    rows = crossed_rows()
    rows[0] = (*rows[0][:3], 2, rows[0][4])
    with pytest.raises(ValueError, match="truth must be 0 or 1"):
        read_mrmc_csv(write(tmp_path, rows))


def test_case_with_inconsistent_truth(tmp_path):
    rows = crossed_rows()
    rows[4] = (*rows[4][:3], 0, rows[4][4])
    with pytest.raises(ValueError, match="case c1 has both truth 0 and truth 1"):
        mrmc_design(read_mrmc_csv(write(tmp_path, rows)))


def test_reader_without_positive_cases(tmp_path):
    rows = [row for row in crossed_rows() if not (row[0] == "r2" and row[3] == 1)]
    with pytest.raises(ValueError, match="reader r2 has no positive"):
        mrmc_design(read_mrmc_csv(write(tmp_path, rows)))


def test_missing_read_is_masked_and_the_design_stays_factorial(tmp_path):
    rows = [row for row in crossed_rows() if row[:3] != ("r2", "B", "c4")]
    design = mrmc_design(read_mrmc_csv(write(tmp_path, rows)))
    assert design.design == "factorial"
    assert not design.fully_paired
    assert design.n_missing == 1
    assert not design.observed[1, 1, 3]
    assert np.isnan(design.ratings[1, 1, 3])


def test_reader_without_a_treatment_is_refused_by_name(tmp_path):
    rows = [row for row in crossed_rows() if row[:2] != ("r2", "B")]
    with pytest.raises(ValueError, match="reader r2 has no reads under treatment B"):
        mrmc_design(read_mrmc_csv(write(tmp_path, rows)))


def test_readers_nested_in_treatments_are_named_as_unsupported(tmp_path):
    rows = [row for row in crossed_rows() if row[:2] in (("r1", "A"), ("r2", "B"))]
    with pytest.raises(ValueError, match="readers nested in treatments are not supported"):
        mrmc_design(read_mrmc_csv(write(tmp_path, rows)))


def _observed(pattern):
    return np.array(pattern, dtype=bool)


def test_detects_the_designs_as_mrmcaov_get_design():
    ids2 = ("a", "b")
    full = np.ones((2, 2, 4), dtype=bool)
    assert detect_design(full, ids2, ids2) == "factorial"
    # reader 1 reads cases 0-1, reader 2 cases 2-3, both under both treatments
    nested_readers = _observed([[[1, 1, 0, 0], [0, 0, 1, 1]]] * 2)
    assert detect_design(nested_readers, ids2, ids2) == "cases-nested-in-readers"
    # treatment 1 has cases 0-1, treatment 2 cases 2-3, read by both readers
    nested_treatments = _observed([[[1, 1, 0, 0]] * 2, [[0, 0, 1, 1]] * 2])
    assert detect_design(nested_treatments, ids2, ids2) == "cases-nested-in-treatments"
    # reader groups {a, b} and {c} read the disjoint blocks {0, 1} and {2, 3} under both
    # treatments: a split-plot; one read fewer makes it factorial with missing reads
    split = _observed([[[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]]] * 2)
    ids3 = ("a", "b", "c")
    assert detect_design(split, ids2, ids3) == "split-plot"
    ragged = split.copy()
    ragged[1, 0, 0] = False
    assert detect_design(ragged, ids2, ids3) == "factorial"
    overlapping = split.copy()
    overlapping[:, 2, 1] = True
    assert detect_design(overlapping, ids2, ids3) == "factorial"


def test_duplicate_reading(tmp_path):
    rows = [*crossed_rows(), crossed_rows()[0]]
    with pytest.raises(ValueError, match="more than once"):
        mrmc_design(read_mrmc_csv(write(tmp_path, rows)))


def test_directory_and_unopenable_paths_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="is a directory"):
        read_mrmc_csv(tmp_path)
    with pytest.raises(ValueError, match=r"cannot open .*File name too long"):
        read_mrmc_csv(tmp_path / ("x" * 300 + ".csv"))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pd, "read_csv", refuse)
    with pytest.raises(ValueError, match=r"cannot open .*Permission denied"):
        read_mrmc_csv(tmp_path / "locked.csv")


def test_missing_file_and_empty_frame(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        read_mrmc_csv(tmp_path / "absent.csv")
    empty = pd.DataFrame(columns=["reader", "treatment", "case", "truth", "rating"])
    with pytest.raises(ValueError, match="no data rows"):
        mrmc_design(empty)
