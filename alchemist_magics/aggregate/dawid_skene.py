"""Dawid-Skene: per-program class-conditional confusion tables fitted by EM (vectorised, sparse)."""
from __future__ import annotations

import numpy as np
import torch

from .base import LabelModel, Votes
from .majority import vote_shares


class DawidSkene(LabelModel):
    """Dawid & Skene (1979) with abstaining as an output of each program's table.

    Model: y ~ prior; each program j independently outputs c in {0..k-1, abstain} with
    probability theta_j[y, c]. Reading abstain as evidence matters for one-sided programs
    ("spam keyword -> spam, else abstain"), which otherwise say nothing about the other class.
    It stays sparse: log p(row | y) = sum_j log theta_j[y, abstain] (a per-class constant) plus,
    over the row's votes only, log theta_j[y, c] - log theta_j[y, abstain].
    ``abstain_evidence=False`` gives the classic model (abstains ignored).

    EM starts from majority vote, smooths with a symmetric Dirichlet(``alpha``) prior, and stops
    when the mean log-likelihood per row improves by less than ``tol``.
    """

    def __init__(self, cardinality: int = 2, seed: int = 0, device=None, max_iter: int = 100,
                 tol: float = 1e-5, alpha: float = 1.0, abstain_evidence: bool = True):
        super().__init__(cardinality, seed, device)
        self.max_iter, self.tol, self.alpha = max_iter, tol, alpha
        self.abstain_evidence = abstain_evidence
        self.confusion_ = None  # (m, k, k): P(vote c | y, program votes)
        self.abstain_ = None  # (m, k): P(program abstains | y)
        self.n_iter_ = 0

    def fit(self, L) -> "DawidSkene":
        L = self._check(L)
        k = self.cardinality
        votes = Votes(L, k, self.device, transpose=True)
        q = torch.from_numpy(vote_shares(votes, None, np.full(k, 1.0 / k))).to(self.device)
        last = -np.inf
        for self.n_iter_ in range(1, self.max_iter + 1):
            self.m_step(*self.sufficient_stats(votes, q))
            q, loglik = self.e_step(votes)
            if loglik - last < self.tol:
                break
            last = loglik
        self.m_step(*self.sufficient_stats(votes, q))
        return self

    @staticmethod
    def sufficient_stats(votes: Votes, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the M-step needs from rows ``votes`` with class posteriors ``q``; sums over row chunks add up.

        ``voted`` (m*k, k): expected votes c by program j on class y; ``mass`` (k,): expected rows per class.
        """
        return votes.tdot(q), q.sum(dim=0)

    def m_step(self, voted: torch.Tensor, mass: torch.Tensor):
        k = self.cardinality
        m = voted.shape[0] // k
        voted = voted.reshape(m, k, k)  # [j, c, y]
        abstained = (mass[None, :] - voted.sum(dim=1)).clamp_min(0)  # [j, y]
        table = torch.cat([voted, abstained[:, None, :]], dim=1) + self.alpha  # [j, c|abstain, y]
        if not self.abstain_evidence:
            table = table[:, :k]
        self._log_theta = (table / table.sum(dim=1, keepdim=True)).log()
        self._log_prior = ((mass + self.alpha) / (mass.sum() + k * self.alpha)).log()
        self.prior_ = self._log_prior.exp().cpu().numpy()
        theta = table[:, :k] / table[:, :k].sum(dim=1, keepdim=True)
        self.confusion_ = theta.permute(0, 2, 1).cpu().numpy()
        self.abstain_ = (abstained + self.alpha) / (mass[None, :] + (k + 1) * self.alpha)
        self.abstain_ = self.abstain_.cpu().numpy()

    def e_step(self, votes: Votes):
        m, k = votes.m, votes.k
        log_vote = self._log_theta[:, :k]  # [j, c, y]
        const = self._log_prior.clone()
        if self.abstain_evidence:
            log_abstain = self._log_theta[:, k:]  # [j, 1, y]
            log_vote = log_vote - log_abstain
            const = const + log_abstain.sum(dim=(0, 1))
        scores = votes.dot(log_vote.reshape(m * k, k)) + const
        log_q = torch.log_softmax(scores, dim=1)
        loglik = float((scores[:, 0] - log_q[:, 0]).mean())  # mean log p(row)
        return log_q.exp(), loglik

    def raw_proba(self, L):
        if L.shape[1] != self._log_theta.shape[0]:
            raise ValueError(f"model was fitted on {self._log_theta.shape[0]} programs, L has {L.shape[1]}")
        q, _ = self.e_step(Votes(L, self.cardinality, self.device))
        return q.cpu().numpy()
