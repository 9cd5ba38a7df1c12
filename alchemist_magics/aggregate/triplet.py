"""Triplet: closed-form accuracies from agreement statistics (in the spirit of FlyingSquid)."""
from __future__ import annotations

import numpy as np
import torch

from .base import ABSTAIN, LabelModel, Votes


class Triplet(LabelModel):
    """Method-of-moments label model: no gold, no iterative training.

    Model: program j, when it votes, is right with probability p_j and otherwise picks one of
    the other k-1 classes uniformly; programs are independent given y. With one-hot votes
    centred at 1/k, the centred agreement of two programs on rows both label is
    ``M_jl = (P(agree) - 1/k) * k/(k-1) = b_j * b_l`` with ``b_j = (k p_j - 1)/(k-1)``, whatever
    the class balance. So for any triplet, ``b_j^2 = M_jl M_jo / M_lo``; we take the median over
    all triplets with enough overlap (``min_overlap`` rows per pair), assume programs are better
    than random (b_j in [0, 0.99]), and give programs with no usable triplet the median b.
    The class prior comes from the vote frequencies by the same moments:
    ``P(vote y | votes) = prior_y b_j + (1 - p_j)/(k-1)``.
    Prediction is the naive-Bayes posterior: log prior_y + sum_j w_j [vote_j = y],
    ``w_j = log(p_j (k-1) / (1-p_j))``.
    """

    def __init__(self, cardinality: int = 2, seed: int = 0, device=None, min_overlap: int = 10,
                 chunk_rows: int = 1 << 16):
        super().__init__(cardinality, seed, device)
        self.min_overlap, self.chunk_rows = min_overlap, chunk_rows
        self.accuracy_: np.ndarray | None = None

    def _pair_stats(self, L: np.ndarray):
        """(m, m) rows both programs label, and rows on which they agree (chunked dense matmuls)."""
        m, k = L.shape[1], self.cardinality
        overlap = torch.zeros(m, m, dtype=torch.float64, device=self.device)
        agree = torch.zeros_like(overlap)
        for start in range(0, L.shape[0], self.chunk_rows):
            chunk = torch.from_numpy(L[start:start + self.chunk_rows]).to(self.device)
            voted = (chunk != ABSTAIN).float()
            overlap += (voted.T @ voted).double()
            for c in range(k):
                is_c = (chunk == c).float()
                agree += (is_c.T @ is_c).double()
        return overlap.cpu().numpy(), agree.cpu().numpy()

    def fit(self, L) -> "Triplet":
        L = self._check(L)
        m, k = L.shape[1], self.cardinality
        overlap, agree = self._pair_stats(L)
        with np.errstate(invalid="ignore", divide="ignore"):
            M = (agree / overlap - 1 / k) * k / (k - 1)
        M[(overlap < self.min_overlap) | np.eye(m, dtype=bool)] = np.nan
        M[np.abs(M) < 1e-6] = np.nan  # a near-zero denominator makes a triplet meaningless
        b = np.full(m, np.nan)
        for j in range(m):
            with np.errstate(invalid="ignore"):
                ratios = np.abs(np.outer(M[j], M[j]) / M)
            ratios[j, :] = ratios[:, j] = np.nan
            if np.isfinite(ratios).any():
                b[j] = np.sqrt(np.nanmedian(ratios))
        b = np.clip(np.nan_to_num(b, nan=np.nanmedian(b) if np.isfinite(b).any() else 0.5), 0.0, 0.99)
        p = (b * (k - 1) + 1) / k
        self.accuracy_ = p
        self._w = np.log(p * (k - 1) / (1 - p))
        # class prior by moments, each program weighted by its vote count and reliability
        votes_per_class = np.stack([(L == c).sum(axis=0) for c in range(k)], axis=1).astype(float)
        n_votes = votes_per_class.sum(axis=1)
        est = (votes_per_class - n_votes[:, None] * ((1 - p) / (k - 1))[:, None]) * b[:, None]
        denom = (n_votes * b**2).sum()
        prior = est.sum(axis=0) / denom if denom > 0 else np.full(k, 1.0 / k)
        prior = np.clip(prior, 1e-3, None)
        self.prior_ = prior / prior.sum()
        return self

    def raw_proba(self, L):
        if L.shape[1] != len(self._w):
            raise ValueError(f"model was fitted on {len(self._w)} programs, L has {L.shape[1]}")
        votes = Votes(L, self.cardinality, self.device)
        w = torch.as_tensor(self._w, dtype=torch.float64, device=self.device)
        scores = votes.counts(w) + torch.as_tensor(np.log(self.prior_), device=self.device)
        return torch.softmax(scores, dim=1).cpu().numpy()
