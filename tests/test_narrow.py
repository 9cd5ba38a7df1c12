"""Per-class narrowing (``Workbench.fit(narrow="auto")``) and the LLM + synthesizer choice
(``llm.join.join_if_better``): both decided by 5-fold cross-validation on the labeled dev rows, and what
they change is visible (``narrowed``, fit notes, disabled programs)."""
import numpy as np
import pandas as pd

from alchemist_magics import TaskSpec, Workbench, from_dataframe
from alchemist_magics.aggregate.guard import bootstrap_share, mask_classes, weak_classes
from alchemist_magics.llm.join import join_if_better
from alchemist_magics.programs import Program

TASK = TaskSpec("toy", "spam or ham", ["ham", "spam"])


def _split(n, seed):
    """60 % spam; 30 % of spam rows say "free", the rest "subscribe"; 40 % of ham rows say "song"."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.6).astype(int)
    texts = []
    for i, c in enumerate(y):
        if c:
            texts.append(("win free cash" if rng.random() < 0.3 else "subscribe to my channel") + f" {i}")
        else:
            texts.append(("nice song" if rng.random() < 0.4 else "love this video") + f" {i}")
    return from_dataframe(pd.DataFrame({"text": texts, "y": y}), "text", "y", classes=["ham", "spam"])


# "spam if <cue> else ham": precise spam votes, ham votes wrong on every spam row without the cue
FREE_ELSE_HAM = Program('def free_else_ham(text):\n    return "spam" if "free" in text else 0\n')
SONG = Program('def song(text):\n    return 0 if "song" in text else -1\n')
LOVE = Program('def love(text):\n    return 0 if "love" in text else -1\n')
SUBSCRIBE = Program('def subscribe(text):\n    return 1 if "subscribe" in text else -1\n')


def _bench(tmp_path, programs):
    wb = Workbench(TASK, _split(400, 0), _split(200, 1), _split(200, 2), root=tmp_path, seed=0)
    for p in programs:
        assert wb.add(p)
    wb.apply(progress=False)
    return wb


def test_weak_classes_finds_the_guessing_branch_only():
    y = np.array([1] * 35 + [0] * 25)
    precise_spam_guess_ham = np.array([1] * 10 + [0] * 50)  # ham right 25 of 50 times
    good = y.copy()
    bad_everywhere = 1 - y
    votes = np.stack([precise_spam_guess_ham, good, bad_everywhere], axis=1)
    assert weak_classes(votes, y, 2) == [[0], [], [0, 1]]
    masked = mask_classes(votes, [[0], [], []])
    assert masked[:, 0].tolist() == [1] * 10 + [-1] * 50 and (masked[:, 1:] == votes[:, 1:]).all()


def test_fit_drops_the_guessing_votes_when_cross_validation_prefers_it(tmp_path):
    wb = _bench(tmp_path, [FREE_ELSE_HAM, SONG, LOVE, SUBSCRIBE])
    wb.fit(narrow=False, supervised=False)  # narrowing alone (a VoteClassifier learns the same: test_supervised.py)
    as_written = wb.scores("test")["label_model"]
    wb.fit(supervised=False)
    assert wb.narrowed == {"free_else_ham": [0]}, wb.fit_notes
    note = next(n for n in wb.fit_notes if n.startswith("votes dropped"))
    assert "free_else_ham (ham)" in note and "5-fold cross-validation on the 200 dev rows" in note
    assert wb.scores("test")["label_model"] > max(0.9, as_written)
    # the program is unchanged; its ham votes are dropped wherever the label model reads it
    j = wb.program_names("test").index("free_else_ham")
    assert (wb.matrix("test")[:, j] == 0).any() and "free_else_ham" not in wb.disabled
    assert (wb.label_model.predict(wb.matrix("test")) == wb.predict("test")).all()
    wb.fit(narrow=True, supervised=False)
    assert wb.narrowed == {"free_else_ham": [0]} and any("narrow=True" in n for n in wb.fit_notes)


def test_fit_narrows_nothing_without_a_weak_class_and_never_all_of_a_programs_classes(tmp_path):
    wb = _bench(tmp_path, [SONG, LOVE, SUBSCRIBE])
    wb.fit()
    assert wb.narrowed == {} and not any(n.startswith("votes") for n in wb.fit_notes)
    spam_if_love = Program('def spam_if_love(text):\n    return 1 if "love" in text else -1\n')  # wrong wherever it votes
    wb = _bench(tmp_path / "b", [SONG, SUBSCRIBE, FREE_ELSE_HAM, spam_if_love])
    wb.fit()
    assert "spam_if_love" not in wb.narrowed  # one class, all weak: drop_weak's, not narrowing's


def test_bootstrap_share_is_one_sided_and_paired():
    y = np.array([0, 1] * 50)
    better, worse = y.copy(), np.where(np.arange(100) % 5 == 0, 1 - y, y)
    assert bootstrap_share(y, better, worse, "accuracy") == 1.0
    assert bootstrap_share(y, worse, better, "accuracy") == 0.0
    assert bootstrap_share(y, better, better, "accuracy") == 0.0  # ties are not "better"


def test_join_if_better_keeps_programs_that_help_and_sets_aside_those_that_do_not(tmp_path):
    helps = _bench(tmp_path / "a", [SONG, LOVE, SUBSCRIBE, FREE_ELSE_HAM])
    helps.fit()
    choice = join_if_better(helps, ["subscribe"])
    assert choice.chosen == "with" and choice.scores["with"] > choice.scores["without"] and not helps.disabled
    assert choice.scores["bootstrap_share"] >= 0.95 and "bootstrap resamples (needs 95%)" in choice.note
    hurts = _bench(tmp_path / "b", [SONG, LOVE, SUBSCRIBE, Program('def free(text):\n    return 1 if "free" in text else -1\n'),
                                    FREE_ELSE_HAM])
    hurts.fit()
    choice = join_if_better(hurts, ["free_else_ham"])
    assert choice.chosen == "without", choice.note
    assert choice.disabled == ["free_else_ham"] and "free_else_ham" in hurts.disabled
    assert "free_else_ham" not in hurts.program_names("train")
