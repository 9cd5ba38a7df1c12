"""Per-class narrowing and the LLM + synthesizer choice (llm.narrow): both decided by 5-fold
cross-validation on the labeled dev rows, and what they change is visible (children, disabled parents)."""
import numpy as np
import pandas as pd
import pytest

from alchemist_magics import TaskSpec, Workbench, from_dataframe
from alchemist_magics.llm.narrow import (crossval_score, join_if_better, mask_classes, narrow_programs,
                                         narrowed_program, weak_classes)
from alchemist_magics.programs import LabelSpace, Program, apply_programs, check_program

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


def test_narrowed_program_abstains_on_the_dropped_class_by_index_or_name():
    child = narrowed_program(FREE_ELSE_HAM, [0], ["ham", "spam"])
    assert check_program(child.source).ok and check_program(child.source).entry == "free_else_ham_not_ham"
    assert child.provenance["parent"] == FREE_ELSE_HAM.id and child.provenance["narrowed"] == ["ham"]
    texts = ["free cash", "nice song"]
    assert apply_programs([child], texts, LabelSpace(TASK.classes), progress=False).L[:, 0].tolist() == [1, -1]
    named = narrowed_program(Program('def f(t):\n    return "Spam" if "x" in t else "HAM "\n'), [0, 1], ["ham", "spam"])
    assert apply_programs([named], texts, LabelSpace(TASK.classes), progress=False).L[:, 0].tolist() == [-1, -1]


def test_narrow_programs_keeps_the_precise_votes_when_cross_validation_prefers_it(tmp_path):
    wb = _bench(tmp_path, [FREE_ELSE_HAM, SONG, LOVE, SUBSCRIBE])
    before = wb.matrix("test")[:, 0].copy()
    choice = narrow_programs(wb)
    assert choice.chosen == "narrowed", choice.note
    assert choice.scores["narrowed"] > choice.scores["as written"]
    assert choice.added == ["free_else_ham_not_ham"] and choice.disabled == ["free_else_ham"]
    assert "free_else_ham" in wb.disabled and "5-fold cross-validation on the 200 dev rows" in choice.note
    child = wb._program_names("test").index("free_else_ham_not_ham")
    assert wb.matrix("test")[:, child].tolist() == np.where(before == 0, -1, before).tolist()
    # its spam votes stay: the narrowed set is right wherever it votes spam
    wb.fit()
    assert wb.scores("test")["label_model"] > 0.9


def test_narrow_programs_changes_nothing_without_a_weak_class(tmp_path):
    wb = _bench(tmp_path, [SONG, LOVE, SUBSCRIBE])
    choice = narrow_programs(wb)
    assert choice.chosen == "as written" and not choice.added and not wb.disabled
    assert "no program has a class it votes mostly wrongly" in choice.note


def test_join_if_better_keeps_programs_that_help_and_sets_aside_those_that_do_not(tmp_path):
    helps = _bench(tmp_path / "a", [SONG, LOVE, SUBSCRIBE, FREE_ELSE_HAM])
    choice = join_if_better(helps, ["subscribe"])
    assert choice.chosen == "with" and choice.scores["with"] > choice.scores["without"] and not helps.disabled
    assert choice.scores["bootstrap_share"] >= 0.95 and "bootstrap resamples (needs 95%)" in choice.note
    hurts = _bench(tmp_path / "b", [SONG, LOVE, SUBSCRIBE, Program('def free(text):\n    return 1 if "free" in text else -1\n'),
                                    FREE_ELSE_HAM])
    choice = join_if_better(hurts, ["free_else_ham"])
    assert choice.chosen == "without", choice.note
    assert choice.disabled == ["free_else_ham"] and "free_else_ham" in hurts.disabled
    assert "free_else_ham" not in hurts._program_names("train")


def test_crossval_score_is_the_fit_choice_on_held_out_folds():
    y = np.array([0, 1] * 20)
    noisy = np.where(np.arange(40) % 4 == 0, 1 - y, y)
    L = np.stack([y, y, noisy], axis=1)
    assert crossval_score(L, L, y, "accuracy", 2) == pytest.approx(1.0)
    assert crossval_score(L[:, 2:], L[:, 2:], y, "accuracy", 2) == pytest.approx(0.75)
