"""The Workbench end to end on small data: add, apply (cached), analyse, fit, evaluate, persist."""
import json

import numpy as np
import pandas as pd
import pytest

from alchemist_magics import TaskSpec, Workbench, from_dataframe
from alchemist_magics.cli import main as cli_main

SPAM = ["win cash now http://x.co", "subscribe to my channel", "free prize call now", "check out my video"]
HAM = ["nice song", "love this", "great video man", "this song is old"]


def _split(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    texts = [(SPAM if c else HAM)[rng.integers(0, 4)] + f" {i}" for i, c in enumerate(y)]
    return from_dataframe(pd.DataFrame({"text": texts, "y": y}), "text", "y", classes=["ham", "spam"])


SPAM_WORDS = '''
def spam_words(text):
    return 1 if any(w in text for w in ("cash", "subscribe", "free", "check out")) else -1
'''
HAM_SONG = '''
def ham_song(text):
    return "HAM" if "song" in text else None
'''
CONSTANT = '''
def always_spam(text):
    return 1
'''


@pytest.fixture
def bench(tmp_path):
    task = TaskSpec("toy", "spam or ham", ["ham", "spam"])
    return Workbench(task, _split(300, 0), _split(80, 1), _split(80, 2), root=tmp_path, seed=0)


def test_add_apply_analyse_fit_evaluate(bench, tmp_path):
    assert bench.add(SPAM_WORDS) and bench.add(HAM_SONG)
    assert not bench.add(CONSTANT)
    (rejected, why), = bench.rejected
    assert rejected.name == "always_spam" and "same class" in why
    status = bench.apply(progress=False)
    assert status["status"].tolist() == ["ok", "ok"]
    L = bench.matrix("train")
    assert L.dtype == np.int8 and L.shape == (300, 2)
    texts = bench.datasets["train"].texts
    assert (L[:, 0] == np.where([("cash" in t or "subscribe" in t or "free" in t or "check out" in t) for t in texts], 1, -1)).all()
    table = bench.analysis()
    assert table.loc["spam_words", "Emp. Acc."] == 1.0  # the toy rule is exact on dev
    assert table.loc["ham_song", "Status"] == "ok" and table.loc["ham_song", "Invalid"] == 0
    bench.fit()
    assert bench.selection.scores.loc["majority", "accuracy"] > 0.4 and bench.selection.metric == "accuracy"
    bench.fit(metric="f1")  # the dev choice maximises spam F1 instead
    assert bench.selection.metric == "f1" and bench.selection.scores["f1"].notna().all()
    with pytest.raises(ValueError, match="metric"):
        bench.fit(metric="recall")
    report = bench.evaluate("test")
    assert set(report.index) == {"chosen: " + bench.model_name, "majority"}
    covered = (bench.matrix("test") != -1).any(axis=1).mean()
    assert report["coverage"].iloc[0] == pytest.approx(covered)
    manifest = json.loads((tmp_path / "toy" / "manifest.json").read_text())
    assert [p["name"] for p in manifest["programs"]] == ["spam_words", "ham_song"]


def test_editing_a_program_reapplies_only_that_one(bench):
    bench.add(SPAM_WORDS)
    bench.add(HAM_SONG)
    bench.apply(progress=False)
    bench.add(HAM_SONG.replace('"song"', '"love"'))  # same name: replaces the program
    assert len(bench.programs) == 2
    status = bench.apply(progress=False)
    assert status.loc["spam_words", "cached"] and not status.loc["ham_song", "cached"]
    texts = bench.datasets["train"].texts
    assert (bench.matrix("train")[:, 1] == np.where(["love" in t for t in texts], 0, -1)).all()


def test_errors_name_the_fix(bench):
    with pytest.raises(ValueError, match="add some"):
        bench.apply()
    bench.add(SPAM_WORDS)
    with pytest.raises(ValueError, match=r"call \.apply\(\) first"):
        bench.matrix("train")
    bench.apply(progress=False)
    with pytest.raises(ValueError, match=r"call \.fit\(\) first"):
        bench.predict()
    with pytest.raises(KeyError, match="no program named"):
        bench.remove("nope")


def test_demo_command_runs_end_to_end(tmp_path, capsys):
    assert cli_main(["demo", "--root", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "8 of 8 programs accepted" in out
    assert "program analysis" in out and "WRENCH's stored label matrix: test" in out
    assert "Emp. Acc." in out and "chosen: " in out


def test_guard_compares_the_label_model_with_a_classifier_on_dev(tmp_path):
    """Workbench.guard: the label model's dev predictions beside TF-IDF LR cross-validated on dev."""
    rng = np.random.default_rng(0)
    words = {0: ["song", "love", "great"], 1: ["subscribe", "channel", "check"]}
    rows = [(" ".join(rng.choice(words[y], 3)) + f" filler{i % 7}", y) for i, y in enumerate(rng.integers(0, 2, 160))]
    frame = pd.DataFrame(rows, columns=["text", "y"])
    splits = [from_dataframe(frame.iloc[a:b], "text", "y", classes=["ham", "spam"]) for a, b in ((0, 100), (100, 160))]
    bench = Workbench(TaskSpec("guard", "spam?", ["ham", "spam"]), splits[0], dev=splits[1], root=tmp_path)
    bench.add('def spam_words(text):\n    return 1 if "subscribe" in text or "channel" in text else 0\n')
    bench.apply(progress=False)
    bench.fit()
    report = bench.guard()
    dev = splits[1]
    expected = float((bench.predict("dev", uncovered="prior") == dev.labels).mean())
    assert report.pipeline == pytest.approx(expected) and report.rows == len(dev)
    assert set(report.baselines) == {"TF-IDF LR"} and 0 <= report.baselines["TF-IDF LR"] <= 1
    assert report.pipeline_is_better == (report.pipeline >= report.baselines["TF-IDF LR"])
    assert "TF-IDF LR" in report.message and "in-sample" in report.notes[-1]
