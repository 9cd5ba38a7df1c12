"""synth.concepts: text concept programs over sentence-embedding scores, with a toy encoder."""
from __future__ import annotations

import numpy as np
import pytest

from alchemist_magics.programs import LabelSpace, Program, apply_programs, check_program
from alchemist_magics.synth.concepts import (class_phrase, junk_token, mine_phrases, row_input,
                                             synthesize_concept_programs, synthesize_text_programs)
from alchemist_magics.synth import synthesize_programs
from alchemist_magics.task import TaskSpec

TASK = TaskSpec(name="topics", description="Which topic?", classes=["sport", "food", "tech"])
VOCAB = {0: ["goal", "match", "team", "coach"], 1: ["pizza", "bread", "cheese", "soup"],
         2: ["laptop", "chip", "code", "server"]}
FILLER = ["the", "and", "today", "really", "great", "some", "news"]


class BagEncoder:
    """A deterministic toy sentence encoder: a normalised bag of words over a fixed vocabulary."""

    def __init__(self):
        words = [w for ws in VOCAB.values() for w in ws] + FILLER + ["sport", "food", "tech"]
        self.index = {w: i for i, w in enumerate(words)}
        self.calls = 0

    def transform(self, texts):
        self.calls += len(texts)
        out = np.zeros((len(texts), len(self.index)), dtype=np.float32)
        for r, text in enumerate(texts):
            for w in text.lower().split():
                if w in self.index:
                    out[r, self.index[w]] += 1
        out += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def make(n, seed, noise=0.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    texts = []
    for c in y:
        c_words = c if rng.random() >= noise else rng.integers(0, 3)
        texts.append(" ".join(list(rng.choice(VOCAB[c_words], 2)) + list(rng.choice(FILLER, 3))))
    return texts, y


def test_junk_tokens_and_class_phrases():
    assert junk_token("1999") and junk_token("42") and junk_token("the") and junk_token("x")
    assert not junk_token("goal") and not junk_token("150p")
    assert class_phrase("Sci/Tech") == "sci tech" and class_phrase("comp.sys.mac") == "comp sys mac"
    assert class_phrase("O (3 train samples only)") == "o"


def test_mined_phrases_are_typical_of_their_class():
    texts, y = make(90, 0)
    phrases = mine_phrases(texts, y, 3)
    for c in range(3):
        assert phrases[c] and all(any(w in VOCAB[c] for w in p.split()) for p in phrases[c])


def test_concept_programs_run_in_the_sandbox_and_state_crossfitted_accuracy():
    texts, y = make(60, 1, noise=0.1)
    pool, _ = make(300, 2)
    test, y_test = make(300, 3)
    enc = BagEncoder()
    res = synthesize_concept_programs(TASK, texts, y, pool, encoder=enc, seed=0)
    kinds = [p.provenance["stats"]["kind"] for p in res.programs]
    assert "concept_nearest_profile" in kinds and kinds.count("concept_profile_margin") == 3
    for program in res.programs:
        assert check_program(program.source).ok
        stats = program.provenance["stats"]
        assert f"{stats['crossfit_right']}/{stats['crossfit_fired']} right" in program.source
        assert "Cross-fitted on the 60 labeled rows" in program.source
    # held-out votes are what the comments count
    j = kinds.index("concept_nearest_profile")
    assert res.programs[j].provenance["stats"]["crossfit_right"] == int((res.heldout_votes[:, j] == y).sum())
    data = res.concepts.dataset(test)
    assert data.input_columns[0] == "text" and "proto_sport" in data.input_columns
    L = apply_programs(res.programs, data.inputs(), LabelSpace(TASK.classes), progress=False).L
    nearest = L[:, j]
    assert (nearest >= 0).all() and (nearest == y_test).mean() > 0.85
    # the sandboxed program is exactly its SCORES table: argmax of score + offset
    namespace = {}
    exec(res.programs[j].source, namespace)  # our own generated source, read back for the check
    table = namespace["SCORES"]
    scores = res.concepts.scores(test)
    expected = np.array([table[c][0] for c in table])[
        (scores[list(table)].to_numpy() + np.array([table[c][1] for c in table])).argmax(axis=1)]
    assert (L[:, j] == expected).all()


def test_prior_offsets_give_each_class_its_labeled_share():
    from alchemist_magics.synth.concepts import prior_offsets

    rng = np.random.default_rng(0)
    S = rng.normal(size=(2000, 2)) * 0.05 + np.array([0.30, 0.32])  # column 1 wins ~60% of rows unadjusted
    offsets = prior_offsets(S, np.array([0, 1]), np.array([0.87, 0.13]))
    share = np.bincount((S + offsets).argmax(axis=1), minlength=2) / len(S)
    assert abs(share[1] - 0.13) < 0.03 and offsets[1] < offsets[0]


def test_a_class_without_labeled_rows_gets_a_note_not_a_profile():
    texts, y = make(60, 4)
    keep = y != 2
    res = synthesize_concept_programs(TASK, [t for t, k in zip(texts, keep) if k], y[keep], encoder=BagEncoder())
    assert any("'tech' has no labeled row" in n for n in res.notes)
    assert not any(c["kind"] == "profile" and c["class"] == 2 for c in res.concepts.concepts)


def test_row_input_keeps_votes():
    texts, y = make(60, 5)
    program = synthesize_programs(TASK, texts, y, n_programs=1)[0]
    rowed = row_input(program)
    assert "def " + program.name + "(x):" in rowed.source and "text = x.text" in rowed.source
    enc = BagEncoder()
    res = synthesize_concept_programs(TASK, texts, y, encoder=enc)
    data = res.concepts.dataset(texts)
    space = LabelSpace(TASK.classes)
    a = apply_programs([program], texts, space, progress=False).L
    b = apply_programs([rowed], data.inputs(), space, progress=False).L
    assert (a == b).all()


def test_text_programs_drop_chance_programs_and_cover_every_labeled_class():
    texts, y = make(90, 6, noise=0.2)
    pool, _ = make(400, 7)
    res = synthesize_text_programs(TASK, texts, y, pool, encoder=BagEncoder(), seed=0)
    assert res.heldout_votes.shape == (90, len(res.programs))
    for program, flag in res.flagged:
        assert program not in res.programs
        if flag is not None:
            assert flag.status in ("not_above_prior", "inverted") and any(flag.name in n for n in res.notes)
    for program in res.programs:
        assert program.provenance["stats"]["crossfit_status"] in ("ok", "unproven", "never_fired")
    assert not [n for n in res.notes if "no kept program" in n]


def test_embeddings_are_not_recomputed_when_given():
    texts, y = make(60, 8)
    pool, _ = make(200, 9)
    enc = BagEncoder()
    E_l, E_u = enc.transform(texts), enc.transform(pool)
    enc.calls = 0
    synthesize_concept_programs(TASK, texts, y, pool, encoder=enc, labeled_embeddings=E_l, unlabeled_embeddings=E_u)
    assert enc.calls < 50  # only class names and mined phrases were embedded


def test_needs_two_labeled_classes():
    with pytest.raises(ValueError, match="two different classes"):
        synthesize_concept_programs(TASK, ["goal match"] * 5, [0] * 5, encoder=BagEncoder())


def test_classifier_program_is_readable_crossfitted_and_runs_in_the_sandbox():
    from alchemist_magics.synth.classifier import LabeledRowsClassifier

    texts, y = make(90, 10, noise=0.2)
    pool, _ = make(300, 11)
    test, y_test = make(200, 12)
    res = synthesize_text_programs(TASK, texts, y, pool, encoder=BagEncoder(), seed=0,
                                   sets={"all": ("keyword", "nearest", "margin", "classifier")}, abstain=(0.0,))
    kinds = [p.provenance["stats"]["kind"] for p in res.programs]
    j = kinds.index("classifier")
    program, stats = res.programs[j], res.programs[j].provenance["stats"]
    assert check_program(program.source).ok and "logistic regression" in program.source
    assert f"{stats['crossfit_right']}/90 right" in program.source
    # its held-out votes are out-of-fold: a classifier fitted on all 90 rows would score them in-sample
    assert stats["crossfit_right"] == int((res.heldout_votes[:, j] == y).sum())
    in_sample = LabeledRowsClassifier(3).fit(texts, y, BagEncoder().transform(texts))
    assert (in_sample.predict_proba(texts, BagEncoder().transform(texts)).argmax(1) == y).sum() >= stats["crossfit_right"]
    data = res.concepts.dataset(test)
    assert {"clf_sport", "clf_food", "clf_tech"} <= set(data.input_columns)
    L = apply_programs(res.programs, data.inputs(), LabelSpace(TASK.classes), progress=False).L
    scores = res.concepts.scores(test)
    assert (L[:, j] == scores[["clf_sport", "clf_food", "clf_tech"]].to_numpy().argmax(axis=1)).all()
    assert (L[:, j] == y_test).mean() > 0.8
    assert "trained on the labeled rows" in res.concepts.describe()


def test_classifier_counts_long_numbers_and_links_as_shared_tokens():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from alchemist_magics.synth.classifier import LabeledRowsClassifier, words_and_shapes

    plain = "Are we still on for lunch, Dave? It's 12 o'clock"
    assert words_and_shapes(plain) == TfidfVectorizer().build_analyzer()(plain)  # no digits run, no link
    assert words_and_shapes("call 09061790126 or 0800 5420578, see www.x.co")[-3:] == ["_longnum_"] * 2 + ["_url_"]
    # every spam row has a different number: as words they teach nothing, as a shape they do
    rng = np.random.default_rng(0)
    ham = [f"see you at {h} pm {w}" for h, w in zip(rng.integers(1, 12, 40), rng.choice(["mate", "dear", "love"], 40))]
    spam = [f"win now call {n} {w}" for n, w in zip(rng.integers(10**9, 10**10, 40), rng.choice(["now", "today"], 40))]
    texts, y = ham + spam, np.array([0] * 40 + [1] * 40)
    model = LabeledRowsClassifier(2, parts=("tfidf",)).fit(texts, y)
    unseen = ["hi, reply 08712300456", "hi, reply tomorrow"]  # only the number tells them apart
    P = model.predict_proba(unseen)
    assert P[0, 1] > P[1, 1] + 0.1
    info, arrays = model.state()
    assert np.allclose(LabeledRowsClassifier.from_state(info, arrays).predict_proba(unseen), P)


def test_classifier_alone_is_a_candidate_set():
    from alchemist_magics.synth.concepts import choose_program_set

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    good = np.where(rng.random(100) < 0.9, y, 1 - y)  # the classifier: right 90%
    noise = rng.integers(-1, 2, (100, 5))  # five chance programs
    programs = [Program(f"def p{i}(x):\n    return -1\n", provenance={"stats": {"kind": "word"}}) for i in range(5)]
    programs.append(Program("def clf(x):\n    return 0\n", provenance={"stats": {"kind": "classifier"}}))
    kept, H, choice = choose_program_set(programs, np.hstack([noise, good[:, None]]), y, 2, "accuracy")
    assert choice["name"] == "classifier only" and [p.name for p in kept] == ["clf"] and H.shape == (100, 1)


def test_nearest_program_abstains_below_its_margin():
    texts, y = make(90, 13, noise=0.3)
    pool, _ = make(400, 14)
    test, _ = make(200, 15)
    res = synthesize_text_programs(TASK, texts, y, pool, encoder=BagEncoder(), seed=0,
                                   sets={"all": ("keyword", "nearest", "margin")}, abstain=(0.5,), classifier=False)
    j = next(i for i, p in enumerate(res.programs) if p.provenance["stats"]["kind"] == "concept_nearest_profile")
    stats = res.programs[j].provenance["stats"]
    assert res.nearest_margin["abstain_share"] == 0.5 and "MARGIN = " in res.programs[j].source
    assert stats["crossfit_fired"] == int((res.heldout_votes[:, j] >= 0).sum()) < 90
    L = apply_programs(res.programs, res.concepts.dataset(test).inputs(), LabelSpace(TASK.classes), progress=False).L
    assert 0.2 < (L[:, j] == -1).mean() < 0.8  # abstains on about half of the rows


def test_another_set_replaces_the_classifier_only_with_bootstrap_confidence():
    from alchemist_magics.synth.concepts import choose_program_set

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 100)
    clf = np.where(rng.random(100) < 0.7, y, 1 - y)  # the classifier: right ~70%
    clf[:10], clf[10:20] = 1 - y[:10], y[10:20]
    programs = [Program(f"def k{i}(x):\n    return -1\n", provenance={"stats": {"kind": "word"}}) for i in range(3)]
    programs.append(Program("def clf(x):\n    return 0\n", provenance={"stats": {"kind": "classifier"}}))
    # three keyword programs voting as the classifier but for 6 rows more right and 3 more wrong: better
    # by a luck-sized margin (+3 rows of 100)
    row = clf.copy()
    row[:6], row[10:13] = y[:6], 1 - y[10:13]
    slightly = np.stack([row] * 3, axis=1)
    _, _, point = choose_program_set(programs, np.hstack([slightly, clf[:, None]]), y, 2, "accuracy", confidence=0)
    _, _, choice = choose_program_set(programs, np.hstack([slightly, clf[:, None]]), y, 2, "accuracy")
    assert point["name"] != "classifier only" and point["score"] > choice["score"]
    assert choice["name"] == "classifier only"
    assert choice["versus_classifier"]["share"] < 0.95 and choice["versus_classifier"]["best"] == point["name"]
    # keyword programs right on every row they vote, voting on most rows: clearly better, chosen
    clearly = np.stack([np.where(rng.random(100) < 0.8, y, -1) for _ in range(3)], axis=1)
    _, _, choice = choose_program_set(programs, np.hstack([clearly, clf[:, None]]), y, 2, "accuracy")
    assert choice["name"] != "classifier only" and choice["versus_classifier"]["share"] >= 0.95
