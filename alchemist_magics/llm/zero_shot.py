"""The baseline programs are compared with: ask the LLM for the label of every row.

``zero_shot_counterfactual`` prices labeling every row with the paper's zero-shot prompt without
sending anything (token counts of every row's real prompt); ``zero_shot_label`` actually runs it
(on a sample or all rows) through the same client, cache and budget, for an accuracy baseline.
"""
from __future__ import annotations

import ast
import json
import random
import re
from dataclasses import dataclass, field

import numpy as np

from ..programs import LabelSpace
from ..task import TaskSpec
from .client import Completion, LLMClient, Request
from .cost import PriceTable, TokenCounter, total_cost
from .prompts import DEFAULT_TEMPLATES, PromptTemplates, zero_shot_messages

# The reply the prompt asks for is {'class': '<name>'}; a few tokens, plus slack for a newline.
ZERO_SHOT_MAX_TOKENS = 20


def zero_shot_counterfactual(task: TaskSpec, texts: list[str], model: str, *, prices: PriceTable | None = None,
                             templates: PromptTemplates = DEFAULT_TEMPLATES) -> dict:
    """What labeling every row of ``texts`` with the zero-shot prompt would cost at ``model``'s price.

    Prompt tokens are counted on every row's actual prompt; the reply is assumed to be exactly
    the requested ``{'class': '<name>'}`` (averaged over class names). ``usd`` is None when the
    model's price is unknown.
    """
    counter = TokenCounter(model)
    prompt = sum(counter.count_messages(zero_shot_messages(task, t, templates)) for t in texts)
    per_reply = np.mean([counter.count(f"{{'class': '{c}'}}") for c in task.classes])
    completion = int(round(per_reply * len(texts)))
    usd = (prices or PriceTable()).cost(model, prompt, completion)
    return {"rows": len(texts), "prompt_tokens": prompt, "completion_tokens": completion, "usd": usd,
            "model": model, "token_count_method": counter.method}


def parse_zero_shot(reply: str, labels: LabelSpace) -> int:
    """The class index in a zero-shot reply, or -1 when it names no single class."""
    match = re.search(r"\{.*?\}", reply, re.S)
    if match:
        for parse in (json.loads, ast.literal_eval):
            try:
                value = parse(match.group(0))
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, dict) and isinstance(value.get("class"), str):
                index = labels.normalize(value["class"])
                if index >= 0:
                    return index
    # Free text: accept it only when exactly one class name appears as a word.
    found = {i for i, c in enumerate(labels.classes) if re.search(rf"\b{re.escape(c)}\b", reply, re.I)}
    return found.pop() if len(found) == 1 else -1


@dataclass
class ZeroShotResult:
    """Predictions for the rows asked (``rows`` are their indices; -1 where no label came back)."""

    rows: np.ndarray
    predictions: np.ndarray
    completions: list[Completion] = field(default_factory=list)

    @property
    def cost_usd(self) -> float | None:
        """What the zero-shot requests spent (None when a model's price is unknown)."""
        return total_cost(self.completions)

    @property
    def failures(self) -> dict[str, int]:
        """Count of failed requests per reason."""
        out: dict[str, int] = {}
        for c in self.completions:
            if not c.ok:
                out[c.reason] = out.get(c.reason, 0) + 1
        return out

    def accuracy(self, gold) -> float:
        """Accuracy on the asked rows against gold labels of the whole dataset (-1 counts as wrong)."""
        gold = np.asarray(gold)[self.rows]
        return float((self.predictions == gold).mean()) if len(gold) else float("nan")


def zero_shot_label(task: TaskSpec, texts: list[str], client: LLMClient | None = None, *,
                    sample: int | None = None, seed: int = 0, budget_usd: float | None = None,
                    templates: PromptTemplates = DEFAULT_TEMPLATES) -> ZeroShotResult:
    """Label rows one request each with the zero-shot prompt (``sample`` rows, or all).

    Uses the client's cache and meter; ``budget_usd`` caps this call. Rows whose request failed or
    whose reply names no class get -1; ``result.failures`` says why.
    """
    client = client or LLMClient()
    rows = np.arange(len(texts))
    if sample is not None and sample < len(texts):
        rows = np.array(sorted(random.Random(seed).sample(range(len(texts)), sample)))
    requests = [Request(zero_shot_messages(task, texts[i], templates), temperature=0.0,
                        max_tokens=ZERO_SHOT_MAX_TOKENS, purpose="zero-shot") for i in rows]
    with client.meter.limit(budget_usd):
        completions = client.complete_many(requests)
    labels = LabelSpace(task.classes, task.aliases)
    predictions = np.array([parse_zero_shot(c.text, labels) if c.ok else -1 for c in completions], dtype=np.int64)
    return ZeroShotResult(rows, predictions, completions)
