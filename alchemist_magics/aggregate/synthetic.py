"""A documented synthetic label-matrix generator, shared by the tests and bench/labelmodel.py.

The generative story matches the conditionally-independent model every label model here
assumes, but with the irregularities real programs have:

* the true class y ~ a non-uniform prior drawn from Dirichlet(2, ..., 2);
* program j votes on a row with probability coverage_j ~ U(coverage) (sparse, class-independent);
* when it votes, it outputs c with probability confusion_j[y, c]: the accuracy on class y is
  U(accuracy) and the error mass is split over the other classes by a Dirichlet(1) draw, so
  errors are NOT uniform (some programs systematically confuse particular classes).
"""
from __future__ import annotations

import numpy as np


def make_label_matrix(n: int, m: int, k: int, seed: int = 0, coverage=(0.05, 0.3), accuracy=(0.4, 0.9)):
    """Return ``(L, y, truth)``: int8 (n, m) matrix, int64 (n,) hidden labels, and a dict with
    the true ``prior`` (k,), ``coverage`` (m,) and ``confusion`` (m, k, k) used to draw them."""
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.full(k, 2.0))
    cov = rng.uniform(*coverage, size=m)
    confusion = np.empty((m, k, k))
    for j in range(m):
        for c in range(k):
            row = np.zeros(k)
            others = np.delete(np.arange(k), c)
            acc = rng.uniform(*accuracy)
            row[others] = (1 - acc) * rng.dirichlet(np.ones(k - 1))
            row[c] = acc
            confusion[j, c] = row
    y = rng.choice(k, size=n, p=prior)
    L = np.full((n, m), -1, dtype=np.int8)
    for j in range(m):
        rows = np.flatnonzero(rng.random(n) < cov[j])
        cum = np.cumsum(confusion[j], axis=1)[y[rows]]
        cum[:, -1] = 1.0  # guard against rounding
        L[rows, j] = (rng.random(len(rows))[:, None] > cum).sum(axis=1)
    return L, y.astype(np.int64), {"prior": prior, "coverage": cov, "confusion": confusion}
