"""Offline programs over concept scores: written from a few labeled images, no LLM needed.

The image counterpart of :mod:`alchemist_magics.synth.text_rules`, and the default program source for
images when no LLM endpoint is configured. It writes two kinds of short, editable programs, the
two approaches the score-program prompt suggests most often:

- **threshold** programs: one concept score above a threshold votes for a class ("four corners"
  scores high -> square); a concept the table marks as typical of a class votes only for it;
- **contrast** programs: for a feature the concept table describes once per class (``feature`` and
  ``class`` columns, as ``propose_concepts`` writes them), the class whose description fits best
  wins, if it leads the runner-up by a margin.

Thresholds come from the score percentiles over all images (labeled and not), the choice among
them from the labeled rows: a rule's precision is smoothed towards the class prior and must close
``LIFT`` of the gap between the prior and a perfect rule. Programs only see the scores of the
concepts in the table, so the concepts decide what the programs can key on: describe the object
(its shape, parts, colour), not its surroundings, and a background shortcut has nowhere to enter.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..programs import Program
from .naming import class_indices, identifier, unique_names
from ..task import TaskSpec

QUANTILES = np.linspace(0.05, 0.95, 19)  # candidate thresholds and margins
PRECISION_ALPHA = 2.0  # pseudo-count pulling a rule's precision towards the class prior
LIFT = 0.5  # a rule must close this share of the gap between the class prior and a perfect rule
MIN_HITS = 3  # labeled rows a rule must get right


@dataclass
class _Rule:
    kind: str  # "above" (threshold) or "contrast"
    label: int  # the class voted (-1 for contrast: the best-fitting class)
    columns: list  # the score columns it reads
    cut: float  # the threshold, or the contrast margin
    right: int  # labeled rows it got right
    fired: int  # labeled rows it voted on
    quality: float  # smoothed precision x sqrt(coverage): the ranking key
    feature: str = ""  # contrast: the feature compared
    classes: tuple = ()  # contrast: the class of each column


def synthesize_score_programs(task: TaskSpec, scores: pd.DataFrame, labels, n_programs: int = 8,
                              seed: int = 0) -> list[Program]:
    """Write up to ``n_programs`` programs over concept scores from the labeled rows.

    Args:
        task: the labeling task (class names name the programs).
        scores: from :func:`~alchemist_magics.images.concept_scores`, every image (labeled or not);
            its ``attrs["concepts"]`` (the concept table) describes the columns.
        labels: one per row of ``scores``: a class index or name, or -1 / None for unlabeled rows.
        n_programs: the most programs to return (fewer when the labeled rows support fewer rules).
        seed: recorded in the programs' provenance and header (the synthesis is deterministic).

    Returns:
        :class:`Program` objects ``f(x) -> class index or -1`` reading ``x.<column>``; provenance
        ``{"source": "offline-score-synthesizer", "seed", "stats"}`` with the rule and how often
        it fired / was right on the labeled rows.

    Raises:
        ValueError: labels of the wrong length, unknown class names, fewer than two classes labeled.
    """
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels for {len(scores)} score rows; pass one per row (-1 = unlabeled)")
    known = np.array([v is not None and not (isinstance(v, (int, np.integer)) and v < 0)
                      and not (isinstance(v, float) and np.isnan(v)) for v in labels])
    y = class_indices(task, [v for v, k in zip(labels, known) if k], int(known.sum()))
    if len(set(y.tolist())) < 2:
        raise ValueError("label images of at least two different classes to synthesize programs")
    values = scores.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("scores contain NaN or infinite values; score the images embed_images kept")
    prior = np.bincount(y, minlength=task.cardinality) / len(y)
    concepts = scores.attrs.get("concepts", [])
    typical = _concept_classes(concepts, task)
    rules = _threshold_rules(values, known, y, prior, list(scores.columns), typical)
    rules += _contrast_rules(values, known, y, prior, list(scores.columns), concepts, typical)
    chosen = _take_turns(rules, n_programs)
    sources = [_write(task, rule, seed) for rule in chosen]
    stats = [{"kind": r.kind, "label": r.label, "columns": r.columns, "cut": round(r.cut, 4),
              "labeled_fired": r.fired, "labeled_right": r.right} for r in chosen]
    return [Program(source, provenance={"source": "offline-score-synthesizer", "seed": seed, "stats": st})
            for source, st in zip(unique_names(sources), stats)]


def _quality(right: int, fired: int, n: int, prior: float) -> float | None:
    """Smoothed precision x sqrt(coverage), or None when the rule is not good enough."""
    if right < MIN_HITS:
        return None
    precision = (right + PRECISION_ALPHA * prior) / (fired + PRECISION_ALPHA)
    if precision < prior + LIFT * (1 - prior):
        return None
    return precision * np.sqrt(fired / n)


def _concept_classes(concepts: list[dict], task: TaskSpec) -> dict[str, int]:
    """``{column: class index}`` for the concepts the table marks as typical of a class."""
    classes = {c.casefold(): i for i, c in enumerate(task.classes)}
    marked = {r["column"]: classes.get(str(r.get("class") or "").casefold()) for r in concepts}
    return {column: label for column, label in marked.items() if label is not None}


def _threshold_rules(values, known, y, prior, columns, typical: dict[str, int]) -> list[_Rule]:
    """The best "score >= cut" rule per (column, class), if any is good enough; a column typical
    of a class only votes for that class."""
    rules = []
    for j, column in enumerate(columns):
        cuts = np.unique(np.round(np.quantile(values[:, j], QUANTILES), 4))  # rounded as the source prints them
        labeled = values[known, j]
        for label in ([typical[column]] if column in typical else range(len(prior))):
            best = None
            for cut in cuts:
                fired = labeled >= cut
                right = int((fired & (y == label)).sum())
                quality = _quality(right, int(fired.sum()), len(y), prior[label])
                if quality is not None and (best is None or quality > best.quality):
                    best = _Rule("above", label, [column], float(cut), right, int(fired.sum()), quality)
            if best is not None:
                rules.append(best)
    return rules


def _contrast_rules(values, known, y, prior, columns, concepts, typical: dict[str, int]) -> list[_Rule]:
    """One contrast rule per feature described for two or more classes (``typical``: the class of
    each concept column, from :func:`_concept_classes`)."""
    by_feature: dict[str, dict[int, str]] = {}
    for record in concepts:
        label = typical.get(record["column"])
        if record.get("feature") and label is not None and record["column"] in columns:
            by_feature.setdefault(record["feature"], {}).setdefault(label, record["column"])
    rules = []
    for feature, per_class in by_feature.items():
        if len(per_class) < 2:
            continue
        labels = sorted(per_class)
        block = values[:, [columns.index(per_class[k]) for k in labels]]
        ordered = np.sort(block, axis=1)
        lead = ordered[:, -1] - ordered[:, -2]
        winner = np.asarray(labels)[block.argmax(axis=1)]
        best = None
        for cut in np.unique(np.round(np.concatenate([[0.0], np.quantile(lead, QUANTILES[:10])]), 4)):
            fired = (lead >= cut)[known]
            right = int((fired & (winner[known] == y)).sum())
            quality = _quality(right, int(fired.sum()), len(y), float(prior[labels].max()))
            if quality is not None and (best is None or quality > best.quality):
                best = _Rule("contrast", -1, [per_class[k] for k in labels], float(cut), right, int(fired.sum()),
                             quality, feature, tuple(labels))
        if best is not None:
            rules.append(best)
    return rules


def _take_turns(rules: list[_Rule], n: int) -> list[_Rule]:
    """Best rules first, classes taking turns (contrast rules vote for every class), one rule per
    column set."""
    queues: dict[int, list[_Rule]] = {}
    for rule in sorted(rules, key=lambda r: -r.quality):
        queues.setdefault(rule.label, []).append(rule)
    chosen, used = [], set()
    while len(chosen) < n and any(queues.values()):
        for label in sorted(queues):
            while queues[label]:
                rule = queues[label].pop(0)
                if tuple(rule.columns) not in used:
                    used.add(tuple(rule.columns))
                    chosen.append(rule)
                    break
            if len(chosen) == n:
                break
    return chosen


def _write(task: TaskSpec, rule: _Rule, seed: int) -> str:
    """Render one readable program."""
    accuracy = f"{rule.right}/{rule.fired} right ({rule.right / rule.fired:.0%})"
    header = f"# Written by the offline score synthesizer (seed {seed}). On the labeled rows: {accuracy}.\n"
    if rule.kind == "contrast":
        pairs = ", ".join(f"{task.classes[i]!r}: x.{c}" for i, c in zip(rule.classes, rule.columns))
        return (
            f"{header}\n\ndef {identifier(f'by_{rule.feature}')}(x):\n"
            f'    """Vote the class whose {rule.feature!r} description fits the image best, if it leads the\n'
            f'    runner-up by {rule.cut:.4f} or more, else abstain."""\n'
            f"    fits = {{{pairs}}}\n"
            f"    best, runner_up = sorted(fits.values(), reverse=True)[:2]\n"
            f"    return max(fits, key=fits.get) if best - runner_up >= {rule.cut:.4f} else -1\n"
        )
    name, column = task.classes[rule.label], rule.columns[0]
    return (
        f"{header}\n\ndef {identifier(f'{name}_if_{column}_high')}(x):\n"
        f'    """Vote {name!r} ({rule.label}) if the {column} score is >= {rule.cut:.4f}, else abstain."""\n'
        f"    return {rule.label} if x.{column} >= {rule.cut:.4f} else -1\n"
    )
