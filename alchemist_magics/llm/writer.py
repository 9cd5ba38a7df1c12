"""The language model as a program writer."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..programs.writer import WriteResult
from ..synth.text_rules import indicative_keywords
from ..task import TaskSpec
from .client import LLMClient
from .generate import generate_programs
from .retrieval import select_exemplars


def grounded_task(task: TaskSpec, labeled_texts, labels, unlabeled_texts=(), seed: int = 0) -> TaskSpec:
    """``task`` with indicative keywords for its prompts: the user's own when the task has some, else
    the words that mark each class across the labeled rows (``synth.text_rules.indicative_keywords``,
    grown on the unlabeled texts). A small model shown only a few exemplars copies their phrases;
    shown these it writes programs around evidence from the user's data."""
    y = np.asarray(labels)
    rows = np.flatnonzero(y >= 0)
    if task.keywords or len(set(y[rows].tolist())) < 2:
        return task
    texts = [labeled_texts[i] for i in rows]
    return replace(task, keywords=indicative_keywords(task, texts, y[rows], unlabeled_texts, seed=seed))


class LLMWriter:
    """Asks ``client`` for programs, with labeled exemplars and the words that mark each class
    (:func:`grounded_task`) in the prompt when there are labeled rows.

    Args:
        client: the :class:`LLMClient` (its meter counts the spending).
        budget_usd: the most this writing may spend.
        first_sample: the first sample index of the cache key (another number asks for fresh programs).
    """

    def __init__(self, client: LLMClient, *, budget_usd: float | None = None, first_sample: int = 0):
        self.client, self.budget_usd, self.first_sample = client, budget_usd, first_sample

    @property
    def name(self) -> str:
        """The model's name (asked from the server when none is configured)."""
        return self.client.model

    def write(self, task, labeled, unlabeled, n, seed) -> WriteResult:
        exemplars = None
        if labeled is not None and labeled.has_labels:
            exemplars = select_exemplars(labeled.texts, labeled.labels, task.classes, seed=seed)
            task = grounded_task(task, labeled.texts, labeled.labels, unlabeled or [], seed=seed)
        result = generate_programs(task, n, self.client, exemplars=exemplars, budget_usd=self.budget_usd,
                                   first_sample=self.first_sample)
        return WriteResult(result.programs, failures=[str(f) for f in result.failures], cost_usd=result.cost_usd,
                           cache_hits=result.cache_hits,
                           estimate_usd=result.estimate.expected_usd if result.estimate else None,
                           note=f"{self.name}: {len(result.programs)} of {n} programs, {result.cache_hits} from the "
                                f"cache, cost {result.cost_text}")
