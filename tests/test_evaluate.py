"""evaluate_pipeline on a toy spam task: numbers consistent, deterministic, bad input refused."""
import numpy as np
import pandas as pd
import pytest

from alchemist_magics.aggregate import covered
from alchemist_magics.data import DataError, from_dataframe
from alchemist_magics.data import stratified_split
from alchemist_magics.evaluate import evaluate_pipeline
from alchemist_magics.programs import LabelSpace, Program, apply_programs
from alchemist_magics.task import TaskSpec

TASK = TaskSpec("toy", "Is this message spam?", ["ham", "spam"])
SPAM = ["win a free prize now", "click here for free money", "free entry win cash", "claim your prize click"]
HAM = ["thanks see you tomorrow", "are we still on for lunch", "call me when you get home", "see you at the game"]
PROGRAMS = [
    Program("def free(text):\n    return 1 if 'free' in text else -1\n"),
    Program("def prize(text):\n    return 1 if 'prize' in text or 'click' in text else -1\n"),
    Program("def see(text):\n    return 0 if 'see you' in text else -1\n"),
]


def toy(n: int, seed: int):
    """Texts from the templates plus a random filler word; 10% of labels flipped so scores are < 1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    texts = [f"{rng.choice(SPAM if c else HAM)} {rng.choice(['ok', 'now', 'today', 'pls'])}" for c in y]
    noisy = np.where(rng.random(n) < 0.1, 1 - y, y)
    return from_dataframe(pd.DataFrame({"text": texts, "label": noisy}), "text", "label", classes=TASK.classes)


@pytest.fixture(scope="module")
def splits():
    return toy(200, 0), toy(60, 1), toy(80, 2)


@pytest.fixture(scope="module")
def result(splits):
    return evaluate_pipeline(*splits, TASK, PROGRAMS, seeds=(0, 1), distill="logreg", n_labeled=20,
                             metric="f1", zero_shot_models=("gpt-4o-mini",), workers=1)


def test_numbers_are_consistent(splits, result):
    train, dev, test = splits
    L_test = apply_programs(PROGRAMS, test.texts, LabelSpace(TASK.classes), progress=False, workers=1).L
    L_train = apply_programs(PROGRAMS, train.texts, LabelSpace(TASK.classes), progress=False, workers=1).L
    assert len(result.runs) == 2
    for run in result.runs:
        assert run["distilled_coverage"] == 1.0
        assert run["label_model_coverage"] == pytest.approx(covered(L_test).mean())
        assert run["train_coverage"] == pytest.approx(covered(L_train).mean())
        assert covered(L_test).mean() < 1.0  # the toy programs leave rows uncovered
        assert run["n_programs"] == 3 and run["dev_rows"] == 40
        for key in ("label_model", "label_model_covered", "distilled", "majority_vote"):
            assert 0.5 < run[key] <= 1.0, key
        assert run["total_s"] >= run["distill_s"] > 0
        assert run["distilled_uncovered"] in ("ignore", "prior")  # chosen on dev per seed (default "auto")
    assert result.settings["uncovered"] == "auto"
    mean = np.mean([r["distilled"] for r in result.runs])
    assert result.summary["distilled"]["mean"] == pytest.approx(mean)
    assert result.summary["distilled_ge_label_model"] == (mean >= result.summary["label_model"]["mean"])
    assert result.cost["programs_usd"] == 0.0
    zero_shot = result.cost["zero_shot"]["gpt-4o-mini"]
    assert zero_shot["rows"] == len(train) and zero_shot["usd"] > 0


def test_same_seed_same_numbers(splits, result):
    again = evaluate_pipeline(*splits, TASK, PROGRAMS, seeds=(1,), distill="logreg", n_labeled=20, metric="f1",
                              zero_shot_models=(), workers=1)
    timeless = lambda run: {k: v for k, v in run.items() if not k.endswith("_s")}  # noqa: E731
    assert timeless(again.runs[0]) == timeless(result.runs[1])


def test_synthesizer_mlp_and_writer_cost(splits):
    synth = evaluate_pipeline(*splits, TASK, "synth", seeds=(0,), distill="mlp", n_labeled=30, zero_shot_models=(),
                              workers=1)
    run = synth.runs[0]
    assert run["n_programs"] >= 1 and run["distilled_coverage"] == 1.0 and 0.5 < run["distilled"] <= 1.0

    def writer(task, texts, labels, unlabeled, seed):
        assert len(texts) == len(labels) == 30 and len(unlabeled) == len(splits[0])
        return [Program(p.source, provenance={"cost_usd": 0.01}) for p in PROGRAMS]

    paid = evaluate_pipeline(*splits, TASK, writer, seeds=(0,), distill=None, n_labeled=30, zero_shot_models=(),
                             workers=1)
    assert paid.cost["programs_usd"] == pytest.approx(0.03)
    assert "distilled" not in paid.runs[0] and "distilled_ge_label_model" not in paid.summary
    assert repr(paid).startswith("EvaluationResult(accuracy: label model") and "distilled" not in repr(paid)


def test_bad_input_is_refused(splits):
    train, dev, test = splits
    three = TaskSpec("toy3", "?", ["a", "b", "c"])
    with pytest.raises(ValueError, match="macro_f1"):
        evaluate_pipeline(train, dev, test, three, PROGRAMS, metric="f1")
    with pytest.raises(DataError, match="n_labeled"):
        evaluate_pipeline(train, dev, test, TASK, PROGRAMS, n_labeled=59)
    with pytest.raises(DataError, match="weak_labels"):
        evaluate_pipeline(train, dev, test, TASK, "wrench", seeds=(0,), n_labeled=20, distill=None,
                          zero_shot_models=())
    with pytest.raises(ValueError, match="uncovered='none': use one of"):
        evaluate_pipeline(train, dev, test, TASK, PROGRAMS, uncovered="none")
    with pytest.raises(ValueError, match="program_source"):
        evaluate_pipeline(train, dev, test, TASK, "gpt")


def test_stratified_split_keeps_every_row_and_the_label_shares():
    data = toy(500, 3)
    parts = stratified_split(data, (0.7, 0.1, 0.2), seed=0)
    assert [len(p) for p in parts] == [350, 50, 100]
    assert sorted(sum((p.texts for p in parts), [])) == sorted(data.texts)
    share = data.labels.mean()
    for part in parts:
        assert abs(part.labels.mean() - share) < 0.02
    again = stratified_split(data, seed=0)
    assert again[2].texts == parts[2].texts
