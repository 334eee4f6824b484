"""FROC figures of merit against RJafroc 2.1.3, and their closed-form jackknife."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from analysis.froc import FrocData, read_workbook
from analysis.froc.fom import FOMS, figure_of_merit, jackknife_cases, jackknife_values, pseudovalues
from tests.analysis.test_froc_analysis import CASES, DATA, GOLDEN, _close, _data, _reorder


@pytest.mark.parametrize(("name", "fom"), CASES)
def test_figure_of_merit_equals_rjafroc(name: str, fom: str) -> None:
    data = _data(name)
    entry = GOLDEN[name]
    _close(figure_of_merit(data, fom), _reorder(data, entry, entry["fom"][fom]["values"]), fom)


def test_jackknife_deletes_the_cases_rjafroc_deletes() -> None:
    data = _data("dataset05")
    k1, k2 = data.n_normal, data.n_abnormal
    assert jackknife_values(data, "wAFROC")[1].shape[-1] == k1 + k2
    assert jackknife_values(data, "HrSp")[1].shape[-1] == k1
    assert jackknife_values(data, "MaxLLF")[1].shape[-1] == k2


def _without_case(data: FrocData, k: int) -> FrocData:
    """``data`` with case ``k`` (an index into ``data.cases``) removed."""
    keep = [c for c in range(len(data.cases)) if c != k]
    k1 = data.n_normal
    if k < k1:
        return replace(
            data, cases=tuple(data.cases[c] for c in keep), n_normal=k1 - 1, nl=data.nl[:, :, keep]
        )
    a = k - k1
    keep2 = [c for c in range(data.n_abnormal) if c != a]
    return replace(
        data,
        cases=tuple(data.cases[c] for c in keep),
        lesion_ids=tuple(data.lesion_ids[c] for c in keep2),
        lesion_weights=data.lesion_weights[keep2],
        nl=data.nl[:, :, keep],
        ll=data.ll[:, :, keep2],
    )


@pytest.mark.parametrize("fom", FOMS)
def test_closed_form_jackknife_equals_deleting_each_case(fom: str) -> None:
    data = _data("dataset06")  # up to 15 lesions per case, ties in the ratings
    k1 = data.n_normal
    cases = {
        "all": range(len(data.cases)),
        "normal": range(k1),
        "abnormal": range(k1, len(data.cases)),
    }[jackknife_cases(fom)]  # type: ignore[index]
    _, jk = jackknife_values(data, fom)
    brute = np.stack([figure_of_merit(_without_case(data, k), fom) for k in cases], axis=-1)
    np.testing.assert_allclose(jk, brute, rtol=1e-12, atol=1e-14)


def test_pseudovalues_average_to_the_figure_of_merit() -> None:
    values, jk = jackknife_values(_data("dataset05"), "AFROC")
    np.testing.assert_allclose(pseudovalues(values, jk).mean(axis=-1), values, rtol=1e-12)


def test_figures_of_merit_without_normal_cases_are_refused_as_rjafroc() -> None:
    data = _data("dataset05")
    abnormal_only = replace(
        data, cases=data.cases[data.n_normal :], n_normal=0, nl=data.nl[:, :, data.n_normal :]
    )
    assert figure_of_merit(abnormal_only, "wAFROC1").shape == (2, 9)
    with pytest.raises(ValueError, match="wAFROC needs normal cases"):
        figure_of_merit(abnormal_only, "wAFROC")


def test_unknown_figure_of_merit_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown figure of merit 'FROC'"):
        figure_of_merit(_data("dataset05"), "FROC")


def test_jackknife_with_one_normal_case_is_refused() -> None:
    data = _data("dataset05")
    keep = [0, *range(data.n_normal, len(data.cases))]
    one_normal = replace(
        data, cases=tuple(data.cases[k] for k in keep), n_normal=1, nl=data.nl[:, :, keep]
    )
    with pytest.raises(ValueError, match="needs at least 2 normal and 2 abnormal cases"):
        jackknife_values(one_normal, "wAFROC")
    assert jackknife_values(one_normal, "wAFROC1")[1].shape[-1] == len(keep)


@pytest.mark.parametrize("fom", FOMS)
def test_rjafroc_reads_the_project_workbook_as_the_project_does(fom: str) -> None:
    # RJafroc cannot read names that are not integers: the writer numbers them (READERS etc.).
    entry = GOLDEN["project_written"]
    data = read_workbook(DATA / entry["file"])
    assert data.readers == ("r1", "r2")  # restored from the READERS sheet
    assert entry["readerID"] == ["1", "2"]
    _close(figure_of_merit(data, fom), entry["fom"][fom]["values"], fom)
