"""A thin wrapper that gives snorkel's LabelModel the same interface as our models."""
from __future__ import annotations

import numpy as np

from .base import LabelModel


class SnorkelLabelModel(LabelModel):
    """``snorkel.labeling.model.LabelModel`` (matrix completion + SGD), not re-implemented.

    ``fit`` passes ``seed``, ``n_epochs``, ``lr``, ``l2`` and ``class_balance`` to snorkel.
    Note: snorkel densifies the one-hot label matrix in float64 (~10 GB, ~25 s at 1e6 x 100, k=5).
    """

    def __init__(self, cardinality: int = 2, seed: int = 0, device="cpu", n_epochs: int = 100,
                 lr: float = 0.01, l2: float = 0.0, class_balance=None):
        super().__init__(cardinality, seed, device)
        self.n_epochs, self.lr, self.l2, self.class_balance = n_epochs, lr, l2, class_balance
        self.model_ = None

    def fit(self, L) -> "SnorkelLabelModel":
        from snorkel.labeling.model import LabelModel as _SnorkelLM

        L = self._check(L)
        self.model_ = _SnorkelLM(cardinality=self.cardinality, device=str(self.device), verbose=False)
        self.model_.fit(
            L, n_epochs=self.n_epochs, lr=self.lr, l2=self.l2, seed=self.seed,
            class_balance=self.class_balance, progress_bar=False,
        )
        self.prior_ = np.asarray(self.model_.p, dtype=np.float64)
        return self

    def raw_proba(self, L):
        return self.model_.predict_proba(L)
