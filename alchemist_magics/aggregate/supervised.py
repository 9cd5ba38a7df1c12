"""A label model that learns from the labeled rows: logistic regression over the programs' votes.

The unsupervised models (majority, Dawid-Skene, ...) guess each program's accuracy from how the
programs agree. With 100 labeled rows a user can do better when the programs are noisy: learn each
vote's weight from the labels, so that a program that is mostly wrong when it says "ham" counts
little there, and an inverted one counts against its class. ``VoteClassifier`` is that stacker;
``challenge`` lets it replace an unsupervised choice only when its out-of-fold predictions on the
labeled rows beat that choice with confidence.
"""
from __future__ import annotations

import numpy as np

from .base import ABSTAIN, LabelModel

C = 1.0  # scikit-learn's default regularisation, fixed up front (one-hot votes need no tuning)


def one_hot(L: np.ndarray, k: int) -> np.ndarray:
    """(n, m*k) indicators: column j*k+c is 1 where program j votes class c (abstains are all 0)."""
    n, m = L.shape
    X = np.zeros((n, m * k))
    rows, cols = np.nonzero(L != ABSTAIN)
    X[rows, cols * k + L[rows, cols]] = 1.0
    return X


class VoteClassifier(LabelModel):
    """Logistic regression (balanced class weights, ``C`` fixed) from one-hot votes to the gold
    label, fitted on labeled rows: ``fit(L, y)``. A row no program covers gets the intercept's
    belief (``predict(..., uncovered="prior")``)."""

    def __init__(self, cardinality: int = 2, seed: int = 0, device=None):
        super().__init__(cardinality, seed, device)
        self.lr_ = None

    def fit(self, L, y=None) -> "VoteClassifier":
        from sklearn.linear_model import LogisticRegression

        if y is None:
            raise ValueError("VoteClassifier learns from gold labels: call fit(L, y) with the labeled rows")
        L, y = self._check(L), np.asarray(y).ravel()
        if y.shape != (L.shape[0],) or (y < 0).any() or (y >= self.cardinality).any():
            raise ValueError(f"y must hold {L.shape[0]} labels in 0..{self.cardinality - 1}")
        self.prior_ = np.bincount(y, minlength=self.cardinality) / len(y)
        if len(set(y.tolist())) < 2:  # one class only: nothing to learn, predict it
            self.lr_ = None
            return self
        self.lr_ = LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit(
            one_hot(L, self.cardinality), y)
        return self

    def raw_proba(self, L):
        if self.lr_ is None:  # fitted on one class
            return np.tile(self.prior_, (L.shape[0], 1))
        P = np.zeros((L.shape[0], self.cardinality))
        P[:, self.lr_.classes_] = self.lr_.predict_proba(one_hot(L, self.cardinality))
        return P


def heldout_predictions(L, y, k: int, seed: int = 0) -> np.ndarray:
    """``VoteClassifier``'s predictions for each labeled row from a fit on the other folds
    (``guard.crossval_folds``): what it would score on rows it did not learn from."""
    from .guard import crossval_folds

    L, y = np.asarray(L), np.asarray(y)
    pred = np.full(len(y), ABSTAIN)
    for part in crossval_folds(len(y), seed):
        rest = np.setdiff1d(np.arange(len(y)), part)
        pred[part] = VoteClassifier(k, seed).fit(L[rest], y[rest]).predict(L[part], uncovered="prior")
    return pred


def challenge(L_dev, y, chosen_pred, metric: str, k: int, seed: int = 0,
              confidence: float = 0.95) -> tuple[VoteClassifier | None, dict]:
    """Whether ``VoteClassifier`` should replace the unsupervised choice whose dev predictions are
    ``chosen_pred``: its held-out predictions must score strictly higher (``metric``) and win in at
    least ``confidence`` of the paired bootstrap resamples of the labeled rows. Returns the model
    fitted on every labeled row (or None) and its numbers (``heldout``, ``chosen``, ``p_beats``,
    and the held-out predictions ``pred``)."""
    from .guard import bootstrap_share
    from .select import score

    y = np.asarray(y)
    pred = heldout_predictions(L_dev, y, k, seed)
    numbers = {"heldout": score(y, pred, metric), "chosen": score(y, chosen_pred, metric),
               "p_beats": bootstrap_share(y, pred, chosen_pred, metric, seed=seed), "pred": pred}
    wins = numbers["heldout"] > numbers["chosen"] and numbers["p_beats"] >= confidence
    return (VoteClassifier(k, seed).fit(L_dev, y) if wins else None), numbers
