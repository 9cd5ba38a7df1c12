"""aggregate.guard: program flags against chance, and the pipeline vs. 100-label classifiers."""
from __future__ import annotations

import numpy as np
import pytest

from alchemist_magics.aggregate.guard import (compare_with_baselines, crossfit_predictions, flag_programs,
                                              kept_programs, wilson)


def test_wilson_bounds_bracket_the_rate_and_shrink_with_n():
    lo, hi = wilson(8, 10)
    assert lo < 0.8 < hi
    lo2, hi2 = wilson(80, 100)
    assert lo < lo2 < 0.8 < hi2 < hi
    assert wilson(0, 0) == (0.0, 1.0)


def test_flags_good_unproven_chance_inverted_and_silent_programs():
    y = np.array([0, 1] * 100)  # exactly balanced: chance for a program voting 1 is 0.5
    good = np.where(y == 1, 1, -1)  # votes 1 exactly on class 1
    chance = np.where(np.arange(200) % 4 < 2, 1, -1)  # votes 1 on 50 rows of each class: 50%
    unproven = np.full(200, -1)
    unproven[np.flatnonzero(y == 1)[:6]] = 1
    unproven[np.flatnonzero(y == 0)[:4]] = 1  # 6/10 right: above 50%, not provably
    inverted = np.where(y == 0, 1, -1)  # votes 1 exactly on class 0
    silent = np.full(200, -1)
    votes = np.stack([good, chance, unproven, inverted, silent], axis=1)
    flags = flag_programs(votes, y, 2, ["good", "chance", "maybe", "inv", "mute"])
    assert [f.status for f in flags] == ["ok", "not_above_prior", "unproven", "inverted", "never_fired"]
    assert flags[0].accuracy == 1.0 and flags[0].right == flags[0].fired == 100
    assert flags[1].accuracy == pytest.approx(0.5) and flags[2].lower < 0.5 < flags[2].accuracy
    assert "inverted" in flags[3].reason and "never voted" in flags[4].reason and "not with 95%" in flags[2].reason
    assert [f.left_out for f in flags] == [False, True, False, True, False]
    assert kept_programs(flags) == [0, 2, 4]
    assert kept_programs(flags, keep_never_fired=False, keep_unproven=False) == [0]


def test_chance_of_a_multiclass_program_is_the_prior_of_what_it_votes():
    y = np.array([0] * 80 + [1] * 20)
    always_majority = np.zeros(100, dtype=int)  # 80% right, but that is exactly chance
    flag = flag_programs(always_majority[:, None], y, 2)[0]
    assert flag.accuracy == pytest.approx(0.8) and flag.chance == pytest.approx(0.8)
    assert flag.status == "not_above_prior"


def test_crossfit_predictions_majority_and_fallback():
    V = np.array([[1, 1, 0], [-1, -1, -1], [2, -1, -1]])
    y = np.array([1, 0, 0, 0])[:3]
    assert crossfit_predictions(V, y, 3).tolist() == [1, 0, 2]  # empty row -> most common label


def test_compare_with_baselines_says_which_is_better():
    rng = np.random.default_rng(1)
    words = {0: "rain cloud storm", 1: "goal match team"}
    y = rng.integers(0, 2, 60)
    texts = [words[c] + " " + " ".join(rng.choice(["a", "b", "c", "d"], 3)) for c in y]
    perfect = compare_with_baselines(texts, y, y.copy(), metric="accuracy", seed=0)
    assert perfect.pipeline == 1.0 and perfect.pipeline_is_better
    assert "at least as good" in perfect.message
    wrong = compare_with_baselines(texts, y, 1 - y, metric="accuracy", seed=0)
    assert not wrong.pipeline_is_better and wrong.best_baseline[0] == "TF-IDF LR"
    assert wrong.baselines["TF-IDF LR"] > 0.9 and "is better by" in wrong.message
    emb = np.eye(2)[y] + 0.01 * rng.normal(size=(60, 2))
    assert "embedding LR" in compare_with_baselines(texts, y, y, embeddings=emb).baselines
