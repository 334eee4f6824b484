"""Reader subgroups from the long frame's qualification columns (analysis.subgroups)."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.simulate import simulate_long_frame
from analysis.study import analyze_file
from analysis.subgroups import experience_band, reader_qualifications


def _with_qualifications(qualifications: dict[str, tuple[str, object, str]]) -> pd.DataFrame:
    long = simulate_long_frame(3, n_readers=3, n_cases=30, findings=("nodule",))
    reader = long["reader"].astype(str)
    for i, column in enumerate(("reader_specialty", "reader_years_experience", "reader_role")):
        long[column] = reader.map(lambda r, i=i: qualifications[r][i])
    return long


@pytest.mark.parametrize(
    ("years", "band"),
    [(0, "< 5 years"), (4, "< 5 years"), (5, "5-10 years"), (10, "5-10 years"),
     (11, "> 10 years"), (None, "not stated")],
)  # fmt: skip
def test_experience_bands_have_stated_edges(years, band) -> None:
    assert experience_band(years) == band


def test_a_reader_with_two_roles_is_refused_naming_the_reader() -> None:
    long = _with_qualifications(
        {"reader-1": ("chest", 3, "fellow"), "reader-2": ("chest", 3, "fellow"),
         "reader-3": ("chest", 3, "fellow")}
    )  # fmt: skip
    long.loc[long.index[long["reader"] == "reader-2"][0], "reader_role"] = "attending"
    with pytest.raises(ValueError, match="reader reader-2 has more than one reader_role"):
        reader_qualifications(long)


def test_years_that_are_not_a_whole_number_are_refused() -> None:
    long = _with_qualifications(
        {"reader-1": ("", "ten", ""), "reader-2": ("", 2, ""), "reader-3": ("", "", "")}
    )
    with pytest.raises(ValueError, match=r"reader reader-1: reader_years_experience .* 'ten'"):
        analyze_file(long)


def test_no_stated_qualification_gives_no_subgroups_with_a_note() -> None:
    long = _with_qualifications({f"reader-{i}": ("", "", "") for i in (1, 2, 3)})
    sg = analyze_file(long)["analysis"]["subgroups"]
    assert sg["subgroups"] == [] and sg["notes"][0].startswith("reader subgroups absent")
