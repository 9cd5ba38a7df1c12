"""program_analysis must reproduce snorkel's LFAnalysis.lf_summary numbers."""
import numpy as np
import pandas as pd
import pytest
from snorkel.labeling import LFAnalysis, LabelingFunction

from alchemist_magics.aggregate import program_analysis
from alchemist_magics.aggregate.synthetic import make_label_matrix


@pytest.mark.parametrize("k, seed", [(2, 0), (4, 1)])
def test_matches_snorkel_lf_summary(k, seed):
    L, y, _ = make_label_matrix(4000, 9, k, seed=seed)
    L[:, 3] = np.where(L[:, 3] == 1, 1, -1)  # a unipolar program
    L[:, 5] = -1  # a program that never votes
    pd.testing.assert_frame_equal(program_analysis(L, y), LFAnalysis(L).lf_summary(y), check_dtype=False)
    pd.testing.assert_frame_equal(program_analysis(L), LFAnalysis(L).lf_summary(), check_dtype=False)


def test_names_and_extra_columns():
    L = np.array([[0, 1, -1], [0, 0, -1], [-1, 1, 1], [-1, -1, -1]], np.int8)
    names = ["a", "b", "c"]
    lfs = [LabelingFunction(n, f=lambda x: -1) for n in names]
    ours = program_analysis(L, np.array([0, 0, 1, 1]), names=names, extra={"faults": [0, 2, 1], "status": ["ok"] * 3})
    theirs = LFAnalysis(L, lfs).lf_summary(np.array([0, 0, 1, 1]))
    pd.testing.assert_frame_equal(ours[theirs.columns], theirs, check_dtype=False)
    assert ours.loc["b", "faults"] == 2 and list(ours.columns[-2:]) == ["faults", "status"]
    assert ours.loc["a", "Polarity"] == [0] and ours.loc["b", "Conflicts"] == pytest.approx(0.25)


def test_bad_input():
    L = np.zeros((3, 2), np.int8)
    with pytest.raises(ValueError, match="3 names for 2 programs"):
        program_analysis(L, names=["a", "b", "c"])
    with pytest.raises(ValueError, match="'runtime' has 1 values for 2 programs"):
        program_analysis(L, extra={"runtime": [1.0]})
    with pytest.raises(ValueError, match="3 integer gold labels"):
        program_analysis(L, y=[0, 1])
    with pytest.raises(ValueError, match="2-D"):
        program_analysis(np.zeros(3, np.int8))
