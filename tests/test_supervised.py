"""The label model that learns from the labeled rows (``aggregate.VoteClassifier``) and fit()'s
``supervised`` step: it replaces the unsupervised choice only when its held-out dev predictions win
with confidence, reads flagged programs too, and says so."""
import numpy as np
import pytest

from alchemist_magics.aggregate import MajorityVote, VoteClassifier
from alchemist_magics.aggregate.supervised import challenge, heldout_predictions, one_hot
from alchemist_magics.notebook.magics import fit_line
from alchemist_magics.programs import Program

from test_narrow import FREE_ELSE_HAM, LOVE, SONG, SUBSCRIBE, _bench

# right on no row where it votes: flagged "inverted", which a learned weight turns around
INVERTED = Program('def spam_if_song(text):\n    return 1 if "song" in text else -1\n')


def test_one_hot_and_fit_need_gold_labels():
    L = np.array([[0, -1], [1, 1], [-1, 0]])
    assert one_hot(L, 2).tolist() == [[1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]
    with pytest.raises(ValueError, match="fit\\(L, y\\)"):
        VoteClassifier(2).fit(L)
    with pytest.raises(ValueError, match="labels in 0..1"):
        VoteClassifier(2).fit(L, [0, 1, 2])
    lone = VoteClassifier(2).fit(L, [1, 1, 1])  # one class: nothing to learn, it predicts that class
    assert lone.predict(L, uncovered="prior").tolist() == [1, 1, 1]


def test_vote_classifier_turns_an_inverted_program_around_where_majority_vote_cannot():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    inverted = 1 - y  # always wrong
    noisy = np.where(rng.random(300) < 0.6, y, 1 - y)  # right 60 % of the time
    L = np.stack([inverted, noisy, noisy], axis=1)
    majority = MajorityVote(2).fit(L).predict(L, uncovered="prior")
    held = heldout_predictions(L, y, 2)
    assert (held == y).mean() == 1.0 and (majority == y).mean() < 0.7
    model, numbers = challenge(L, y, majority, "accuracy", 2)
    assert model is not None and numbers["heldout"] == 1.0 and numbers["p_beats"] >= 0.95
    assert (model.predict(L) == y).all()


def test_fit_takes_the_learned_model_only_when_it_wins_with_confidence(tmp_path):
    free = Program('def free(text):\n    return 1 if "free" in text else -1\n')
    clean = _bench(tmp_path / "a", [SONG, LOVE, SUBSCRIBE, free])  # precise, every row covered: nothing to learn
    clean.fit()
    assert clean.model_name != "vote_classifier"
    assert any(n.startswith(f"kept {clean.model_name} over a label model learned from the labels") for n in clean.fit_notes)

    noisy = _bench(tmp_path / "b", [FREE_ELSE_HAM, SUBSCRIBE, INVERTED])
    noisy.fit(supervised=False)
    unsupervised = noisy.scores("test")["label_model"]
    assert "spam_if_song" in noisy.left_out  # flagged inverted: left out of the unsupervised model
    noisy.fit()
    assert noisy.model_name == "vote_classifier", noisy.fit_notes
    note = next(n for n in noisy.fit_notes if n.startswith("label model learned from the labels"))
    assert "votes of 3 programs" in note and "on the 200 dev rows (accuracy)" in note
    assert noisy.left_out == {} and noisy.narrowed == {}
    assert noisy.scores("test")["label_model"] == 1.0 > unsupervised
    assert (noisy.label_model.predict(noisy.matrix("test")) == noisy.predict("test")).all()
    table = noisy.selection.scores
    assert bool(table.loc["vote_classifier", "chosen"]) and table["chosen"].sum() == 1
    assert "kept in the label model" in noisy.analysis().loc["spam_if_song", "Problem"]
    assert fit_line(noisy).startswith("the label model weighs each program's votes as learned from the labeled dev rows")
    noisy.left_out["spam_if_song"] = "duplicate: (for the line's order)"
    assert fit_line(noisy).startswith("the label model leaves out 1 of 3 programs") and "; it weighs each" in fit_line(noisy)
    assert "learned from the labeled" not in fit_line(clean)
