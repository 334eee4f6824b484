"""Reading and validating MRMC input: every problem is a ValueError that names it."""

import pandas as pd
import pytest

from analysis.io import mrmc_design, read_mrmc_csv

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


def test_unbalanced_design_names_reader_and_treatment(tmp_path):
    rows = [row for row in crossed_rows() if row[:3] != ("r2", "B", "c4")]
    with pytest.raises(ValueError, match="unbalanced design: reader r2 under treatment B lacks 1"):
        mrmc_design(read_mrmc_csv(write(tmp_path, rows)))


def test_duplicate_reading(tmp_path):
    rows = [*crossed_rows(), crossed_rows()[0]]
    with pytest.raises(ValueError, match="more than once"):
        mrmc_design(read_mrmc_csv(write(tmp_path, rows)))


def test_missing_file_and_empty_frame(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        read_mrmc_csv(tmp_path / "absent.csv")
    empty = pd.DataFrame(columns=["reader", "treatment", "case", "truth", "rating"])
    with pytest.raises(ValueError, match="no data rows"):
        mrmc_design(empty)
