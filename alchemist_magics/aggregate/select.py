"""Choose a label model on a labeled dev set, with majority vote as the default to beat."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .base import LabelModel, check_cardinality, check_matrix, covered
from .dawid_skene import DawidSkene
from .majority import MajorityVote, WeightedMajorityVote
from .snorkel_model import SnorkelLabelModel
from .triplet import Triplet

MODELS = {
    "majority": MajorityVote,
    "weighted_majority": WeightedMajorityVote,
    "dawid_skene": DawidSkene,
    "triplet": Triplet,
    "snorkel": SnorkelLabelModel,
}
# snorkel builds a dense float64 one-hot (n * m * k * 8 bytes); skip it by default past this size
SNORKEL_MAX_CELLS = 20_000_000


@dataclass
class SelectionResult:
    """``model``: the chosen fitted model (``name``); ``majority``: fitted majority vote, always
    reported beside it; ``scores``: dev metrics per candidate (one row each, simplest first)."""

    name: str
    model: LabelModel
    majority: MajorityVote
    scores: pd.DataFrame
    metric: str

    def __repr__(self):
        return f"SelectionResult(chosen={self.name!r}, metric={self.metric!r})\n{self.scores.to_string()}"


def scores_batch(y: np.ndarray, pred: np.ndarray, metric: str) -> np.ndarray:
    """Metric of each row of ``pred``/``y`` (both (B, n)): accuracy, f1 (class 1) or macro_f1.
    F1 is 2tp/(2tp+fp+fn), 0 when undefined; macro averages the classes present in y or pred,
    as scikit-learn does."""
    if metric == "accuracy":
        return (pred == y).mean(axis=1)
    classes = [1] if metric == "f1" else range(int(max(y.max(), pred.max())) + 1)
    per_class = []
    for c in classes:
        tp = ((pred == c) & (y == c)).sum(axis=1)
        den = (pred == c).sum(axis=1) + (y == c).sum(axis=1)
        per_class.append(np.where(den > 0, 2 * tp / np.maximum(den, 1), np.nan if metric != "f1" else 0.0))
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.stack(per_class), axis=0) if metric != "f1" else per_class[0]


def score(y, pred, metric: str) -> float:
    """One metric ("accuracy", "f1" or "macro_f1") of predictions ``pred`` against gold ``y``."""
    return float(scores_batch(np.asarray(y)[None], np.asarray(pred)[None], metric)[0])


def _default_candidates(L_train: np.ndarray, k: int) -> list[str]:
    names = ["majority", "weighted_majority", "dawid_skene"]
    if L_train.shape[1] >= 3:  # both need three programs (snorkel raises below that)
        names.append("triplet")
        if L_train.size * k <= SNORKEL_MAX_CELLS:
            names.append("snorkel")
    return names


def select_label_model(L_train, L_dev, y_dev, candidates=None, seed: int = 0, metric: str | None = None,
                       cardinality: int | None = None, confidence: float = 0.95,
                       n_boot: int = 2000) -> SelectionResult:
    """Fit each candidate on ``L_train`` (no labels) and choose among them on the dev set only.

    Every dev row is scored; rows no program covers take each model's no-evidence guess
    (``predict(..., uncovered="prior")``), as WRENCH scores them. Majority vote stays the
    choice unless another candidate beats it on dev in at least ``confidence`` of ``n_boot``
    paired bootstrap resamples of the dev rows (a one-sided test at 1 - confidence): with
    100-500 dev rows, point differences of a few points are noise, and the simpler model is
    the safer bet. Among candidates that pass, the best dev score wins (earlier on ties).

    ``candidates``: names from ``MODELS`` or unfitted model instances (default: all but snorkel
    past ``SNORKEL_MAX_CELLS``). ``metric``: "accuracy", "f1" (binary, class 1) or "macro_f1";
    default accuracy. The scores table has accuracy, f1 (binary) or macro_f1, dev coverage,
    the bootstrap share of resamples in which the candidate beats majority vote, and the choice.
    """
    L_train, L_dev = check_matrix(L_train), check_matrix(L_dev)
    y_dev = np.asarray(y_dev).ravel()
    if y_dev.shape != (L_dev.shape[0],) or not np.issubdtype(y_dev.dtype, np.integer) or (y_dev < 0).any():
        raise ValueError(f"y_dev must hold {L_dev.shape[0]} integer gold labels >= 0 (one per L_dev row)")
    if L_train.shape[1] != L_dev.shape[1]:
        raise ValueError(f"L_train has {L_train.shape[1]} programs but L_dev has {L_dev.shape[1]}")
    k = check_cardinality(cardinality if cardinality is not None
                          else max(int(L_train.max()), int(L_dev.max()), int(y_dev.max()), 1) + 1)
    metric = metric or "accuracy"
    if metric not in ("accuracy", "f1", "macro_f1"):
        raise ValueError(f'metric must be "accuracy", "f1" or "macro_f1", got {metric!r}')
    if metric == "f1" and k != 2:
        raise ValueError('metric="f1" is the positive-class F1 of a binary task; use "macro_f1"')

    models = {}
    for cand in candidates or _default_candidates(L_train, k):
        if isinstance(cand, str):
            if cand not in MODELS:
                raise ValueError(f"unknown candidate {cand!r}; choose from {sorted(MODELS)}")
            models[cand] = MODELS[cand](cardinality=k, seed=seed)
        else:
            models[type(cand).__name__] = cand
    mv_name = next((name for name, m in models.items() if type(m) is MajorityVote), None)
    if mv_name is None:
        mv_name = "majority"
        models = {mv_name: MajorityVote(cardinality=k, seed=seed), **models}

    boot = np.random.default_rng(seed).integers(0, len(y_dev), size=(n_boot, len(y_dev)))
    dev_cov = float(covered(L_dev).mean())
    preds, rows = {}, []
    for name, model in models.items():
        model.fit(L_train)
        preds[name] = pred = model.predict(L_dev, uncovered="prior")
        row = {"model": name, "accuracy": score(y_dev, pred, "accuracy")}
        if k == 2:
            row["f1"] = score(y_dev, pred, "f1")
        row["macro_f1"] = score(y_dev, pred, "macro_f1")
        row["dev_coverage"] = dev_cov
        rows.append(row)
    scores = pd.DataFrame(rows).set_index("model")
    mv_boot = scores_batch(y_dev[boot], preds[mv_name][boot], metric)
    scores["p_beats_mv"] = [
        float((scores_batch(y_dev[boot], preds[name][boot], metric) > mv_boot).mean()) for name in models
    ]
    passing = scores[(scores["p_beats_mv"] >= confidence) & (scores[metric] > scores.loc[mv_name, metric])]
    chosen = passing[metric].idxmax() if len(passing) else mv_name
    scores["chosen"] = scores.index == chosen
    return SelectionResult(chosen, models[chosen], models[mv_name], scores, metric)
