"""A model-based program: a classifier trained on the labeled rows, as one more labeling program.

Classical weak-supervision practice (a model fitted on the small labeled set is one more labeling
function): the label model then weighs it against the keyword and concept programs instead of
ignoring what a plain classifier on the same rows would know. It stays readable like every other
program: the classifier's probability per class is a named score column of the concept rows
(``x.clf_<class>``, computed by :class:`~alchemist_magics.synth.concepts.TextConcepts` like the
cosine scores), and the program votes the most probable class.

The classifier (:class:`LabeledRowsClassifier`): logistic regression on TF-IDF words (sublinear tf)
and logistic regression on the sentence embedding, each with balanced class weights and ``C=10``
(the same fixed settings as the 100-label baselines of the guard), their probabilities averaged.
The TF-IDF part also counts two shape tokens (:func:`words_and_shapes`): every run of 5 or more
digits is ``_longnum_`` and a link is ``_url_``, so a phone number or a URL seen once in 100 rows
is evidence for the next one (as a word, each is unique and learns nothing).
Its votes on the labeled rows are **cross-fitted** (each row scored by a classifier trained without
its fold), so its comment, its flag and the label-model choice never see an in-sample vote.
"""
from __future__ import annotations

import functools
import re

import numpy as np

from .text_rules import SHAPES

C = 10.0  # both logistic regressions' regularisation, fixed up front (as the guard's baselines)
PARTS = ("tfidf", "embedding")
CANDIDATE_PARTS = (("tfidf", "embedding"), ("embedding",), ("tfidf",))  # the first is used; all are scored


# the synthesizer's own shapes: longer than a count, a year or a price (a phone number, a code); a link
_LONG_NUMBER, _LINK = re.compile(SHAPES["long_number"]), re.compile(SHAPES["link"])


@functools.cache
def _words():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer().build_analyzer()


def words_and_shapes(text: str) -> list[str]:
    """TF-IDF's default words (``TfidfVectorizer().build_analyzer()``) plus one ``_longnum_`` per
    run of 5+ digits and one ``_url_`` when the text has a link. Texts without either tokenize
    exactly as ``TfidfVectorizer()`` does."""
    text = str(text)
    return _words()(text) + ["_longnum_"] * len(_LONG_NUMBER.findall(text)) + ["_url_"] * bool(_LINK.search(text))


def _vectorizer():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(sublinear_tf=True, analyzer=words_and_shapes)


def _lr():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, class_weight="balanced", max_iter=1000)


class LabeledRowsClassifier:
    """Logistic regressions on TF-IDF and on sentence embeddings of the labeled rows, probabilities
    averaged (``parts`` says which are used; embeddings are optional). ``predict_proba(texts,
    embeddings)`` is ``(rows, k)``; a class without labeled rows gets probability 0."""

    def __init__(self, k: int, parts=PARTS):
        self.k = k
        self.parts = tuple(parts)
        self.vectorizer_ = None
        self.models_: dict = {}

    def fit(self, texts, labels, embeddings=None) -> "LabeledRowsClassifier":
        y = np.asarray(labels)
        self.models_ = {}
        if len(set(y.tolist())) < 2:
            self.constant_ = int(y[0]) if len(y) else 0
            return self
        self.constant_ = None
        if "tfidf" in self.parts:
            self.vectorizer_ = _vectorizer()
            try:
                X = self.vectorizer_.fit_transform([str(t) for t in texts])
                self.models_["tfidf"] = _lr().fit(X, y)
            except ValueError:  # empty vocabulary (texts without words)
                self.vectorizer_ = None
        if "embedding" in self.parts and embeddings is not None:
            self.models_["embedding"] = _lr().fit(np.asarray(embeddings, dtype=np.float64), y)
        if not self.models_:
            self.constant_ = int(np.bincount(y).argmax())
        return self

    def predict_proba(self, texts, embeddings=None) -> np.ndarray:
        n = len(texts) if texts is not None else len(embeddings)
        out = np.zeros((n, self.k))
        if self.constant_ is not None:
            out[:, self.constant_] = 1.0
            return out
        used = 0
        for part, model in self.models_.items():
            if part == "tfidf":
                if texts is None:
                    continue
                P = model.predict_proba(self.vectorizer_.transform([str(t) for t in texts]))
            else:
                if embeddings is None:
                    continue
                P = model.predict_proba(np.asarray(embeddings, dtype=np.float64))
            out[:, model.classes_] += P
            used += 1
        if not used:
            raise ValueError("the classifier needs the texts (TF-IDF part) or the embeddings it was fitted with")
        return out / used

    def state(self) -> tuple[dict, dict]:
        """What rebuilds it without pickle: ``(JSON-able settings and vocabulary, named arrays)``."""
        info = {"k": self.k, "parts": list(self.parts), "constant": self.constant_, "models": list(self.models_),
                "vocabulary": None if self.vectorizer_ is None else
                {w: int(i) for w, i in self.vectorizer_.vocabulary_.items()}}
        arrays = {} if self.vectorizer_ is None else {"idf": self.vectorizer_.idf_}
        for part, model in self.models_.items():
            arrays.update({f"{part}_coef": model.coef_, f"{part}_intercept": model.intercept_,
                           f"{part}_classes": model.classes_})
        return info, arrays

    @classmethod
    def from_state(cls, info: dict, arrays: dict) -> "LabeledRowsClassifier":
        """The classifier :meth:`state` describes (same predictions)."""
        model = cls(info["k"], info["parts"])
        model.constant_ = info["constant"]
        if info["vocabulary"] is not None:
            model.vectorizer_ = _vectorizer()
            model.vectorizer_.vocabulary_ = info["vocabulary"]
            model.vectorizer_.idf_ = arrays["idf"]
        for part in info["models"]:
            lr = _lr()
            lr.coef_, lr.intercept_, lr.classes_ = (arrays[f"{part}_{a}"] for a in ("coef", "intercept", "classes"))
            model.models_[part] = lr
        return model

    @property
    def about(self) -> str:
        parts = [{"tfidf": "TF-IDF words (long numbers and links as shared tokens)", "embedding": "the sentence embedding"}[p] for p in self.models_]
        return ("logistic regression (C=10, balanced classes) on " + " and on ".join(parts)
                + (", probabilities averaged" if len(parts) > 1 else ""))


def crossfit_proba(texts, labels, embeddings, k: int, folds: list[np.ndarray], parts=PARTS) -> np.ndarray:
    """Out-of-fold probabilities on the labeled rows: each fold scored by a classifier fitted without it."""
    y = np.asarray(labels)
    texts = [str(t) for t in texts]
    E = None if embeddings is None else np.asarray(embeddings)
    out = np.zeros((len(y), k))
    for part in folds:
        fit = np.setdiff1d(np.arange(len(y)), part)
        model = LabeledRowsClassifier(k, parts).fit([texts[i] for i in fit], y[fit], None if E is None else E[fit])
        out[part] = model.predict_proba([texts[i] for i in part], None if E is None else E[part])
    return out


def choose_parts(texts, labels, embeddings, k: int, folds: list[np.ndarray], metric: str = "accuracy",
                 candidates=CANDIDATE_PARTS, prefer=None) -> tuple[tuple, np.ndarray, dict]:
    """Every candidate feature set's cross-validated ``metric`` on the labeled rows (both averaged,
    embedding only, TF-IDF only) and the parts used: ``prefer`` when given (what the synthesizer does:
    a fixed choice has no winner's curse), else the best score (ties: the earlier candidate). Returns
    the parts, their out-of-fold probabilities and every candidate's score."""
    from ..aggregate.select import score

    y = np.asarray(labels)
    if embeddings is None:
        candidates, prefer = [("tfidf",)], None
    best, chosen, scores = None, None, {}
    for parts in candidates:
        P = crossfit_proba(texts, y, embeddings, k, folds, parts)
        scores["+".join(parts)] = value = score(y, P.argmax(axis=1), metric)
        if best is None or value > best[2] + 1e-9:
            best = (tuple(parts), P, value)
        if prefer is not None and tuple(parts) == tuple(prefer):
            chosen = (tuple(parts), P, value)
    chosen = chosen or best
    return chosen[0], chosen[1], scores
