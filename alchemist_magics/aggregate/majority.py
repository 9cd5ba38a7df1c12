"""Majority vote and weighted majority vote."""
from __future__ import annotations

import numpy as np
import torch

from .base import LabelModel, Votes, break_ties


def vote_shares(votes: Votes, weights: torch.Tensor | None, prior: np.ndarray) -> np.ndarray:
    """(Weighted) vote counts normalised per row; rows without any (weighted) vote get ``prior``."""
    counts = votes.counts(weights)
    total = counts.sum(dim=1, keepdim=True)
    shares = counts / total.clamp_min(1e-300)
    prior_t = torch.as_tensor(prior, dtype=torch.float64, device=votes.device)
    return torch.where(total > 0, shares, prior_t).cpu().numpy()


def _prior_from_votes(P: np.ndarray, has_vote: np.ndarray, seed: int) -> np.ndarray:
    """Class balance of the hard votes on rows that have votes (add-one smoothed)."""
    k = P.shape[1]
    hard = break_ties(P[has_vote], seed)
    return (np.bincount(hard, minlength=k) + 1.0) / (len(hard) + k)


class MajorityVote(LabelModel):
    """Each program gets one vote; probabilities are the vote shares.

    ``fit`` is optional: it only learns the class prior used for uncovered rows (uniform before).
    """

    def __init__(self, cardinality: int = 2, seed: int = 0, device=None):
        super().__init__(cardinality, seed, device)
        self.prior_ = np.full(self.cardinality, 1.0 / self.cardinality)

    def fit(self, L) -> "MajorityVote":
        L = self._check(L)
        votes = Votes(L, self.cardinality, self.device)
        P = vote_shares(votes, None, self.prior_)
        self.prior_ = _prior_from_votes(P, votes.covered, self.seed)
        return self

    def raw_proba(self, L):
        return vote_shares(Votes(L, self.cardinality, self.device), None, self.prior_)


class WeightedMajorityVote(LabelModel):
    """Majority vote where program j's vote counts ``weights[j]``.

    Without given weights, ``fit`` learns them without gold labels: each program's accuracy p_j
    is estimated by how often it agrees with the majority of the *other* programs (leave-one-out,
    rows where the others tie or are silent are skipped, add-one smoothed), and its weight is the
    log-odds ``log(p_j (k-1) / (1-p_j))``, clipped at 0 so a worse-than-random program is muted
    rather than inverted.
    """

    def __init__(self, cardinality: int = 2, seed: int = 0, device=None, weights=None):
        super().__init__(cardinality, seed, device)
        self.given_weights = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.ndim != 1 or not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError("weights must be a 1-D array of finite non-negative numbers, one per program")
            self.given_weights = w
        self.weights_: np.ndarray | None = None

    def fit(self, L) -> "WeightedMajorityVote":
        L = self._check(L)
        if self.given_weights is not None and len(self.given_weights) != L.shape[1]:
            raise ValueError(f"got {len(self.given_weights)} weights for {L.shape[1]} programs")
        votes = Votes(L, self.cardinality, self.device)
        self.weights_ = self.given_weights if self.given_weights is not None else self._learn_weights(votes)
        uniform = np.full(self.cardinality, 1.0 / self.cardinality)
        P = vote_shares(votes, self._w(), uniform)
        self.prior_ = _prior_from_votes(P, votes.covered, self.seed)
        return self

    def _w(self):
        return torch.as_tensor(self.weights_, dtype=torch.float64, device=self.device)

    def _learn_weights(self, votes: Votes) -> np.ndarray:
        k = votes.k
        counts = votes.counts()
        top2 = counts.topk(2, dim=1).values
        A = votes.A
        rows = torch.repeat_interleave(
            torch.arange(votes.n, device=votes.device), A.crow_indices().diff().long()
        )
        cols = A.col_indices().long()
        own = counts[rows, cols % k]
        first, second = top2[rows, 0], top2[rows, 1]
        # The others' majority agrees with this vote iff it was the unique top class with a
        # margin of at least 2; a margin of exactly 1 means the others tie (skipped).
        agree = (own == first) & (first - 1 > second)
        tie = (own == first) & (first - 1 == second)
        program = cols // k
        n_agree = torch.bincount(program[agree], minlength=votes.m).double()
        n_decided = torch.bincount(program[~tie], minlength=votes.m).double()
        p = ((n_agree + 1) / (n_decided + 2)).cpu().numpy()
        return np.clip(np.log(p * (k - 1) / (1 - p)), 0.0, None)

    def raw_proba(self, L):
        if len(self.weights_) != L.shape[1]:
            raise ValueError(f"model was fitted on {len(self.weights_)} programs, L has {L.shape[1]}")
        return vote_shares(Votes(L, self.cardinality, self.device), self._w(), self.prior_)
