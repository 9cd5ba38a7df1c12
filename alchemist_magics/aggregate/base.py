"""Shared pieces of the label models: input checks, the sparse vote matrix, tie-breaking.

A label matrix ``L`` is an integer array of shape (n_rows, n_programs) with classes ``0..k-1``
and ``-1`` for abstain (snorkel's convention).
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

ABSTAIN = -1


def check_matrix(L, cardinality: int | None = None) -> np.ndarray:
    """Return ``L`` as a C-contiguous int8 array after checking shape and values.

    Raises a one-line ``ValueError`` naming the problem (not 2-D, not integer, out of range).
    """
    L = np.asarray(L)
    if L.ndim != 2:
        raise ValueError(f"label matrix must be 2-D (n_rows, n_programs), got shape {L.shape}")
    if L.size and not np.issubdtype(L.dtype, np.integer):
        raise ValueError(f"label matrix must hold integers (-1 = abstain), got dtype {L.dtype}")
    if L.size:
        lo, hi = int(L.min()), int(L.max())
        top = 127 if cardinality is None else cardinality - 1
        if lo < ABSTAIN or hi > top:
            bad = lo if lo < ABSTAIN else hi
            raise ValueError(f"label matrix values must lie in -1..{top} (-1 = abstain), found {bad}")
    return np.ascontiguousarray(L, dtype=np.int8)


def check_cardinality(cardinality) -> int:
    if not isinstance(cardinality, (int, np.integer)) or cardinality < 2:
        raise ValueError(f"cardinality must be an int >= 2 (number of classes), got {cardinality!r}")
    return int(cardinality)


def covered(L) -> np.ndarray:
    """Boolean mask of the rows that at least one program labels (does not abstain on)."""
    return (check_matrix(L) != ABSTAIN).any(axis=1)


def coverage(L) -> float:
    """Fraction of rows that at least one program labels."""
    mask = covered(L)
    return float(mask.mean()) if mask.size else 0.0


def resolve_device(device) -> torch.device:
    """``None``/"auto" -> cuda when available, else cpu."""
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _csr_tensor(m: sp.csr_matrix, device) -> torch.Tensor:
    values = torch.ones(m.nnz, dtype=torch.float32)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": we rely on matmul only
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr), torch.from_numpy(m.indices), values, size=m.shape,
            check_invariants=False,
        ).to(device)


class Votes:
    """The non-abstain votes of ``L`` as a sparse one-hot matrix ``A`` of shape (n, m*k).

    ``A[i, j*k + c] = 1`` when program j votes class c on row i. Products with ``A`` and its
    transpose are the whole cost of fitting, so both are kept as CSR tensors on ``device``
    (torch's own transpose-multiply of a CSR tensor is ~50x slower than a second CSR).
    """

    def __init__(self, L: np.ndarray, k: int, device, transpose: bool = False):
        n, m = L.shape
        self.n, self.m, self.k, self.device = n, m, k, device
        voted = L != ABSTAIN
        flat = np.flatnonzero(voted)  # row-major order == CSR order
        cols = (flat % m).astype(np.int32) * k + L.ravel()[flat]
        del flat
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.count_nonzero(voted, axis=1), out=indptr[1:])
        self.covered = indptr[1:] != indptr[:-1]
        index_dtype = np.int32 if len(cols) < 2**31 else np.int64
        csr = sp.csr_matrix(
            (np.ones(len(cols), dtype=np.float32), cols, indptr.astype(index_dtype)), shape=(n, m * k)
        )
        self.A = _csr_tensor(csr, device)
        self.AT = _csr_tensor(csr.T.tocsr(), device) if transpose else None

    def dot(self, B: torch.Tensor) -> torch.Tensor:
        """``A @ B`` for a dense (m*k, d) ``B``: per-row sums over the row's votes."""
        return (self.A @ B.float()).double()

    def tdot(self, q: torch.Tensor) -> torch.Tensor:
        """``A.T @ q`` for a dense (n, d) ``q``: per-(program, class) sums over rows."""
        return (self.AT @ q.float()).double()

    def class_map(self, weights: torch.Tensor | None = None) -> torch.Tensor:
        """(m*k, k) matrix sending column j*k+c to class c with weight w_j (default 1)."""
        eye = torch.eye(self.k, dtype=torch.float64, device=self.device)
        w = torch.ones(self.m, dtype=torch.float64, device=self.device) if weights is None else weights
        return (w[:, None, None] * eye[None]).reshape(self.m * self.k, self.k)

    def counts(self, weights: torch.Tensor | None = None) -> torch.Tensor:
        """(n, k) (weighted) number of votes per class."""
        return self.dot(self.class_map(weights))


def break_ties(P: np.ndarray, seed: int, atol: float = 1e-9) -> np.ndarray:
    """Row-wise argmax of ``P``; ties are broken by a seeded random choice per row."""
    P = np.asarray(P, dtype=np.float64)
    noise = np.random.default_rng(seed).random(P.shape)
    top = P >= P.max(axis=1, keepdims=True) - atol
    return np.where(top, noise, -1.0).argmax(axis=1)


class LabelModel:
    """Base class: scikit-learn-like ``fit`` / ``predict_proba`` / ``predict``.

    Subclasses set ``prior_`` (k,) in ``fit`` and implement ``raw_proba(L)``.
    """

    def __init__(self, cardinality: int = 2, seed: int = 0, device=None):
        self.cardinality = check_cardinality(cardinality)
        self.seed = seed
        self.device = resolve_device(device)
        self.prior_: np.ndarray | None = None

    def _check(self, L) -> np.ndarray:
        return check_matrix(L, self.cardinality)

    def require_fit(self):
        if self.prior_ is None:
            raise ValueError(f"{type(self).__name__} is not fitted yet: call fit(L) first")

    def fit(self, L) -> "LabelModel":
        raise NotImplementedError

    def predict_proba(self, L) -> np.ndarray:
        """(n, k) class probabilities. Rows nobody covers get the model's no-evidence belief."""
        self.require_fit()
        return self.raw_proba(self._check(L))

    def predict(self, L, uncovered: str = "abstain") -> np.ndarray:
        """Hard labels (int64). Uncovered rows give -1 (``uncovered="abstain"``, the default)
        or the model's no-evidence guess (``uncovered="prior"``: the class prior's argmax, or for
        Dawid-Skene, which reads abstains as evidence, the posterior given that all abstained).
        Ties are broken by a seeded per-row random choice, never towards class 0."""
        if uncovered not in ("abstain", "prior"):
            raise ValueError(f'uncovered must be "abstain" or "prior", got {uncovered!r}')
        L = self._check(L)
        pred = break_ties(self.predict_proba(L), self.seed)
        if uncovered == "abstain":
            pred[~(L != ABSTAIN).any(axis=1)] = ABSTAIN
        return pred

    def __repr__(self):
        return f"{type(self).__name__}(cardinality={self.cardinality}, seed={self.seed})"
