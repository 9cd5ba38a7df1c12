"""The language model as a program writer."""
from __future__ import annotations

from ..programs.writer import WriteResult
from .client import LLMClient
from .generate import generate_programs
from .retrieval import select_exemplars


class LLMWriter:
    """Asks ``client`` for programs, with labeled exemplars in the prompt when there are labeled rows.

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
        exemplars = (select_exemplars(labeled.texts, labeled.labels, task.classes, seed=seed)
                     if labeled is not None and labeled.has_labels else None)
        result = generate_programs(task, n, self.client, exemplars=exemplars, budget_usd=self.budget_usd,
                                   first_sample=self.first_sample)
        return WriteResult(result.programs, failures=[str(f) for f in result.failures], cost_usd=result.cost_usd,
                           cache_hits=result.cache_hits,
                           estimate_usd=result.estimate.expected_usd if result.estimate else None,
                           note=f"{self.name}: {len(result.programs)} of {n} programs, {result.cache_hits} from the "
                                f"cache, cost {result.cost_text}")
