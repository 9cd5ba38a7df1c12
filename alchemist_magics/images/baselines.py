"""Baselines and metrics for image tasks, as in the paper.

- :func:`zero_shot_clip`: each image gets the class whose prompt ("an image of a landbird") it is
  most similar to.
- :func:`group_prompting`: one prompt per (class, group attribute) ("an image of a landbird on
  water"); an image gets the class of its most similar prompt.
- :func:`group_metrics`: average accuracy and, with group labels, worst-group accuracy and the gap.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .clip import ClipModel, ImageEmbeddings

CLASS_TEMPLATE = "an image of a {cls}"
GROUP_TEMPLATE = "an image of a {cls} {attr}"


def _vectors(embeddings) -> np.ndarray:
    return embeddings.vectors if isinstance(embeddings, ImageEmbeddings) else np.asarray(embeddings, dtype=np.float32)


def prompt_predict(embeddings: ImageEmbeddings | np.ndarray, clip: ClipModel, prompts: list[list[str]]) -> np.ndarray:
    """Class ``i`` scores an image by its best match among ``prompts[i]``; returns the argmax per image."""
    if len(prompts) < 2 or not all(prompts):
        raise ValueError("need at least one prompt for each of at least 2 classes")
    flat = [p for group in prompts for p in group]
    owner = np.repeat(np.arange(len(prompts)), [len(g) for g in prompts])
    similarity = _vectors(embeddings) @ clip.encode_texts(flat).T
    per_class = np.full((similarity.shape[0], len(prompts)), -np.inf, dtype=np.float32)
    for i in range(len(prompts)):
        per_class[:, i] = similarity[:, owner == i].max(axis=1)
    return per_class.argmax(axis=1).astype(np.int64)


def zero_shot_clip(embeddings: ImageEmbeddings | np.ndarray, clip: ClipModel, classes: list[str], *,
                   template: str = CLASS_TEMPLATE) -> np.ndarray:
    """Zero-shot CLIP: predicted class index per image from ``template.format(cls=name)`` prompts."""
    return prompt_predict(embeddings, clip, [[template.format(cls=c)] for c in classes])


def group_prompting(embeddings: ImageEmbeddings | np.ndarray, clip: ClipModel, classes: list[str],
                    attributes: list[str], *, template: str = GROUP_TEMPLATE) -> np.ndarray:
    """Zero-shot CLIP with group-aware prompts: one per class and group attribute.

    ``attributes`` are the values of the attribute that defines the groups besides the class, in
    words (Waterbirds: ``["on land", "on water"]``).
    """
    if not attributes:
        raise ValueError("group prompting needs the group attributes in words, e.g. ['on land', 'on water']")
    return prompt_predict(embeddings, clip, [[template.format(cls=c, attr=a) for a in attributes] for c in classes])


@dataclass
class GroupMetrics:
    """Accuracy overall and per group (``worst_group_accuracy`` and ``gap`` are None without groups)."""

    accuracy: float
    worst_group_accuracy: float | None = None
    worst_group: object = None
    gap: float | None = None  # accuracy - worst_group_accuracy
    per_group: pd.DataFrame = field(default_factory=pd.DataFrame)

    def as_dict(self) -> dict:
        return {"accuracy": self.accuracy, "worst_group_accuracy": self.worst_group_accuracy,
                "worst_group": self.worst_group, "gap": self.gap}

    def __repr__(self) -> str:
        if self.worst_group_accuracy is None:
            return f"GroupMetrics(accuracy={self.accuracy:.4f})"
        return (f"GroupMetrics(accuracy={self.accuracy:.4f}, worst_group_accuracy={self.worst_group_accuracy:.4f} "
                f"({self.worst_group}), gap={self.gap:.4f})")


def group_metrics(y_true, y_pred, groups=None) -> GroupMetrics:
    """Average accuracy over rows with a gold label (a prediction of -1 counts as wrong), and with
    ``groups`` the accuracy of each group, the worst one and the gap to the average."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} gold labels for {len(y_pred)} predictions")
    known = y_true >= 0
    if not known.any():
        raise ValueError("no row has a gold label: nothing to score")
    correct = (y_true == y_pred)[known]
    accuracy = float(correct.mean())
    if groups is None:
        return GroupMetrics(accuracy)
    groups = np.asarray(groups, dtype=object)
    if len(groups) != len(y_true):
        raise ValueError(f"{len(groups)} group labels for {len(y_true)} rows")
    per_group = (pd.DataFrame({"group": groups[known], "correct": correct})
                 .groupby("group", sort=True)["correct"].agg(n="size", accuracy="mean"))
    worst = per_group["accuracy"].idxmin()
    worst_accuracy = float(per_group.loc[worst, "accuracy"])
    return GroupMetrics(accuracy, worst_accuracy, worst, accuracy - worst_accuracy, per_group)
