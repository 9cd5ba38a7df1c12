"""Offline program synthesizer: determinism, static check, readability, planted-rule recovery, edge cases."""
import random
import re

import numpy as np
import pytest

from alchemist_magics.programs import LabelSpace, Program, apply_programs, check_program
from alchemist_magics.synth import DECISION_RULES, synthesize_programs
from alchemist_magics.task import TaskSpec

TASK = TaskSpec(name="planted", description="Which topic is this text about?", classes=["sport", "food", "tech"])
PLANTED = {0: ["goal", "referee"], 1: ["recipe", "oven"], 2: ["laptop", "compiler"]}
FILLER = "the a of and to in is it that was for on with as this day people very".split()


def planted_rows(n: int, seed: int):
    """Texts of filler words plus one planted keyword of their class (20% carry none)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        label = rng.randrange(3)
        words = rng.choices(FILLER, k=rng.randint(4, 10))
        if rng.random() < 0.8:
            words.insert(rng.randrange(len(words) + 1), rng.choice(PLANTED[label]))
        texts.append(" ".join(words).capitalize() + ".")
        labels.append(label)
    return texts, labels


def run(programs, texts):
    """Apply in-process (the sandbox is exercised once, in test_programs_run_in_the_sandbox)."""
    L = np.full((len(texts), len(programs)), -1)
    for j, program in enumerate(programs):
        namespace = {}
        exec(program.source, namespace)
        fn = namespace[check_program(program.source).entry]
        L[:, j] = [fn(t) for t in texts]
    return L


@pytest.fixture(scope="module")
def planted():
    texts_l, y_l = planted_rows(60, seed=1)
    texts_u, _ = planted_rows(600, seed=2)
    texts_t, y_t = planted_rows(300, seed=3)
    return texts_l, y_l, texts_u, texts_t, np.array(y_t)


def test_deterministic_for_a_seed(planted):
    texts_l, y_l, texts_u, *_ = planted
    first = synthesize_programs(TASK, texts_l, y_l, texts_u, seed=3)
    second = synthesize_programs(TASK, texts_l, y_l, texts_u, seed=3)
    assert [p.source for p in first] == [p.source for p in second]
    assert first[0].provenance["source"] == "offline-synthesizer" and first[0].provenance["seed"] == 3


def test_every_program_passes_the_check_and_is_short(planted):
    texts_l, y_l, texts_u, *_ = planted
    programs = synthesize_programs(TASK, texts_l, y_l, texts_u, n_programs=8)
    assert 3 <= len(programs) <= 8
    for program in programs:
        result = check_program(program.source)
        assert result.ok, result.reasons
        assert program.name == result.entry
        assert "_if_" in program.name or program.provenance["stats"]["kind"] == "decision"
        assert program.source.count("\n") < 25 + DECISION_RULES
        assert re.search(r"Cross-fitted on the 60 labeled rows \(mined without the rows it is scored on\): "
                         r"(\d+/\d+ right|never fired)", program.source)
    assert len({p.name for p in programs}) == len(programs)


def test_recovers_the_planted_keywords(planted):
    texts_l, y_l, texts_u, texts_t, y_t = planted
    programs = synthesize_programs(TASK, texts_l, y_l, texts_u, n_programs=6)
    by_class = {c: set() for c in PLANTED}
    for program in programs:
        stats = program.provenance["stats"]
        if stats["kind"] != "decision":  # the multi-class opening list; planted texts open with filler
            by_class[stats["label"]].update(stats["keys"])
    for label, words in PLANTED.items():
        assert set(words) <= by_class[label], (label, by_class[label])
    # Known weakness: with 3+ classes the opening decision list is written even when openings are
    # filler, as here, and its rules are chance; the keyword programs must still be exact.
    L = run([p for p in programs if p.provenance["stats"]["kind"] != "decision"], texts_t)
    fired = L != -1
    assert fired.any(axis=1).mean() > 0.75  # 80% carry a keyword
    assert (L[fired] == np.broadcast_to(y_t[:, None], L.shape)[fired]).mean() > 0.95  # planted words are exact; a few chance filler phrases are not


def test_programs_run_in_the_sandbox(planted):
    texts_l, y_l, texts_u, texts_t, y_t = planted
    programs = synthesize_programs(TASK, texts_l, y_l, texts_u, n_programs=4)
    result = apply_programs(programs, texts_t, LabelSpace(TASK.classes), progress=False, workers=1)
    assert [r.status for r in result.runs] == ["ok"] * len(programs)
    assert np.array_equal(result.L, run(programs, texts_t))


def test_unlabeled_texts_grow_the_rules():
    # "oven" never occurs in the labeled rows; unlabeled rows pair it with the labeled "recipe".
    texts_l = ["a recipe for bread", "recipe for soup", "the goal was late", "a goal at last"] * 3
    y_l = [1, 1, 0, 0] * 3
    texts_u = ["recipe with the oven", "oven and recipe here", "preheat the oven recipe"] * 5 + ["goal goal"] * 5
    programs = synthesize_programs(TaskSpec("t", "d", ["sport", "food"]), texts_l, y_l, texts_u)
    food_keys = {k for p in programs if p.provenance["stats"]["label"] == 1 for k in p.provenance["stats"]["keys"]}
    assert "oven" in food_keys


def test_class_absent_from_labeled_rows_gets_no_program(planted):
    texts_l, y_l, texts_u, *_ = planted
    keep = [i for i, y in enumerate(y_l) if y != 2]
    programs = synthesize_programs(TASK, [texts_l[i] for i in keep], [y_l[i] for i in keep], texts_u)
    voted = {label for p in programs for label in p.provenance["stats"].get("labels", [p.provenance["stats"]["label"]])}
    assert programs and voted <= {0, 1}


@pytest.mark.parametrize("texts", [["", ""], ["a", "b"], ["", "x"]])
def test_tiny_or_empty_inputs_give_few_programs_not_a_crash(texts):
    programs = synthesize_programs(TASK, texts, [0, 1], ["", "a", "b"])
    assert isinstance(programs, list)
    for program in programs:
        assert check_program(program.source).ok
        assert run([program], ["", "a", "zzz"]).shape == (3, 1)


def test_accepts_class_names_and_no_unlabeled_texts():
    texts = ["goal scored", "goal again", "a goal", "goal", "oven hot", "oven on", "an oven", "oven"]
    programs = synthesize_programs(TASK, texts, ["sport", " SPORT"] * 2 + ["food"] * 4, n_programs=5)
    assert {tuple(p.provenance["stats"]["keys"]) for p in programs} >= {("goal",), ("oven",)}


@pytest.mark.parametrize("texts, labels, message", [
    (["a", "b"], [0], "one label per text"),
    (["a", "b"], [0, 7], "is not a class"),
    (["a", "b"], [0, "pizza"], "is not a class"),
    (["a", "b"], [1, 1], "at least two different classes"),
])
def test_bad_labels_raise_a_clear_error(texts, labels, message):
    with pytest.raises(ValueError, match=message):
        synthesize_programs(TASK, texts, labels, [])


def test_returns_program_objects_with_stats(planted):
    texts_l, y_l, texts_u, *_ = planted
    program = synthesize_programs(TASK, texts_l, y_l, texts_u, n_programs=1)[0]
    assert isinstance(program, Program)
    stats = program.provenance["stats"]
    assert stats["labeled_right"] <= stats["labeled_fired"]
    assert stats["kind"] in ("decision", "word", "start", "shape", "short", "long")
    # The comment states the cross-fitted count, which matches the held-out votes it comes from.
    votes = np.array(stats["crossfit_votes"])
    assert stats["crossfit_fired"] == int((votes >= 0).sum())
    assert stats["crossfit_right"] == int((votes == np.asarray(y_l)).sum())
    assert f"{stats['crossfit_right']}/{stats['crossfit_fired']} right" in program.source
    assert "in-sample" not in program.source


def test_in_sample_comment_says_so_when_crossfitting_is_off(planted):
    texts_l, y_l, texts_u, *_ = planted
    program = synthesize_programs(TASK, texts_l, y_l, texts_u, n_programs=1, crossfit=0)[0]
    assert "in-sample, optimistic" in program.source and "crossfit_fired" not in program.provenance["stats"]


def test_bare_numbers_and_years_are_never_keywords():
    rng = np.random.default_rng(0)
    texts, y = [], []
    for i in range(300):  # the year 2019 and the number 55 are perfectly tied to class 1 in the planted data
        label = i % 2
        words = list(rng.choice(["alpha", "beta", "gamma", "delta", "omega"], 6))
        words += ["2019", "55", "buyme"] if label else ["hello", "friend"]
        texts.append(" ".join(words))
        y.append(label)
    programs = synthesize_programs(TASK, texts[:60], y[:60], texts[60:], n_programs=10)
    keys = {k for p in programs for k in p.provenance["stats"]["keys"]}
    assert "buyme" in keys
    assert not keys & {"2019", "55", "2019 55", "55 buyme"}


QUESTIONS = TaskSpec(name="q", description="What does the question ask for?", classes=["DESC", "ENTY", "LOC"])
NOUNS = "atom caldera comet tariff sonnet lichen prism reflex".split()


def question_rows(n: int, seed: int):
    """Questions told apart only by opening, length and a later word: short "what is a X ?" and
    "why ... city ?" ask for a description, long "what is a ..." for a thing, and long ones with
    "city" further on for a location."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        label = rng.randrange(3)
        filler = rng.choices(FILLER, k=rng.randint(4, 7))
        filler.insert(rng.randrange(len(filler) + 1), "city" if label == 2 else rng.choice(NOUNS))
        if label == 0 and rng.random() < 0.5:
            texts.append("why " + " ".join(filler).replace(filler[0], "city", 1) + " ?")
        elif label == 0:
            texts.append(f"what is a {rng.choice(NOUNS)} ?")
        else:
            texts.append("what is a " + " ".join(filler) + " ?")
        labels.append(label)
    return texts, labels


def test_question_openings_become_one_multi_class_decision_list():
    texts_l, y_l = question_rows(60, seed=1)
    texts_u, _ = question_rows(600, seed=2)
    programs = synthesize_programs(QUESTIONS, texts_l, y_l, texts_u, n_programs=12)
    decision = [p for p in programs if p.provenance["stats"]["kind"] == "decision"]
    assert len(decision) == 1 and check_program(decision[0].source).ok
    stats = decision[0].provenance["stats"]
    rules = dict(zip(stats["keys"], stats["labels"]))
    assert rules["what+city"] == 2 and rules["why"] == 0
    assert any(key.startswith("what is|") and key.split("|")[1] in "456" and label == 0 for key, label in rules.items())
    assert stats["labeled_right"] == stats["labeled_fired"] > 50  # the planted openings are exact
    # the opening rules live only in the list, not in per-class programs that would vote against it
    assert not {p.provenance["stats"]["kind"] for p in programs} & {"start", "brief", "pair"}
    # first match decides: "what ... city" is LOC though it also opens with "what is"
    texts_t = ["what is a comet ?", "what is a day the city was big ?", "what is a very long day and the comet ?",
               "how now ?", ""]
    assert run(decision, texts_t).ravel().tolist() == [0, 2, 1, -1, -1]


def test_binary_tasks_keep_per_class_opening_programs():
    texts_l = ["call now to win", "call me later", "win a prize now", "see you later"] * 4
    programs = synthesize_programs(TaskSpec("s", "spam?", ["ham", "spam"]), texts_l, [1, 0, 1, 0] * 4, texts_l * 3)
    kinds = {p.provenance["stats"]["kind"] for p in programs}
    assert "decision" not in kinds and "word" in kinds
