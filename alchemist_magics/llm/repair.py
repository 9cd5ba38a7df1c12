"""Repair loop: send a weak program, its statistics and rows it gets wrong or leaves unlabeled back
to the LLM, and keep the improved program with ``parent`` = the old program's id."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..programs import Program
from ..task import TaskSpec
from .client import LLMClient, Request
from .generate import DUPLICATE_SIMILARITY, Failure, GenerationResult, collect, salvage_reply, validate_reply
from .prompts import DEFAULT_TEMPLATES, Exemplar, PromptTemplates, repair_messages
from .provenance import ProgramStore


@dataclass
class RepairRequest:
    """One program to repair: its stats (e.g. a row of ``program_analysis``, as a dict), rows it
    labels wrongly as (text, returned class, correct class), rows it leaves unlabeled as
    (text, correct class), rows where it raised or returned a non-label as (text, what happened:
    the exception's message when known), and ``message``: its run's one-line report (which
    quotes its first exception)."""

    program: Program
    stats: dict
    wrong: list[tuple[str, str, str]] = field(default_factory=list)
    uncovered: list[tuple[str, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    message: str = ""


def repair_evidence(texts: list[str], gold, codes, classes: list[str], *, message: str = "", k: int = 5,
                    seed: int = 0) -> dict:
    """What a repair prompt should show, from a program's *raw* per-row codes (``ProgramRun.codes``:
    classes, ABSTAIN -1, INVALID -2, FAULT -3): ``wrong`` and ``uncovered`` as in
    :func:`repair_examples` (uncovered = abstained, never a crash), and ``errors``: up to ``k``
    rows where it raised (quoting the exception from ``message`` when the run reported one) or
    returned something that is not a label. Pass the result as ``RepairRequest(**evidence)``."""
    from ..programs.labels import FAULT, INVALID

    gold, codes = np.asarray(gold), np.asarray(codes)
    if not len(texts) == len(gold) == len(codes):
        raise ValueError(f"texts, gold and codes differ in length: {len(texts)}, {len(gold)}, {len(codes)}")
    rng = random.Random(seed)
    wrong, uncovered = repair_examples(texts, gold, np.where(codes < -1, -9, codes),
                                       classes, k=k, seed=seed, _only_abstain=True)
    error_text = _quoted_error(message)
    rows = np.flatnonzero(codes == FAULT).tolist()
    invalid = np.flatnonzero(codes == INVALID).tolist()
    errors = [(texts[i], f"raised {error_text}" if error_text else "raised an exception")
              for i in sorted(rng.sample(rows, min(k, len(rows))))]
    errors += [(texts[i], "returned a value that is not a class index, a class name or -1")
               for i in sorted(rng.sample(invalid, min(max(0, k - len(errors)), len(invalid))))]
    return {"wrong": wrong, "uncovered": uncovered, "errors": errors, "message": message}


def _quoted_error(message: str) -> str:
    """The exception quoted in a run's message, e.g. ``NameError: name 'string' is not defined``
    from ``labeled 1196/4571 rows, 3375 faults (first: NameError: name 'string' is not defined)``."""
    import re

    message = message or ""
    marker = message.find("faults (first: ")
    if marker >= 0:
        start = marker + len("faults (first: ")
        depth, end = 1, start
        while end < len(message) and depth:
            depth += {"(": 1, ")": -1}.get(message[end], 0)
            end += 1
        quoted = message[start:end - 1 if depth == 0 else end].strip()
        return re.sub(r"^row \d+:\s*", "", quoted)  # the first failing row's number is not this row's
    found = re.search(r"\b([A-Z]\w*(?:Error|Exception))\b:?\s*([^;|]*)", message)
    return f"{found.group(1)}: {found.group(2).strip()}".rstrip(": ") if found else ""


def repair_examples(texts: list[str], gold, outputs, classes: list[str], k: int = 5,
                    seed: int = 0, _only_abstain: bool = False) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """Up to ``k`` rows the program labels wrongly and ``k`` it leaves unlabeled (a label-matrix
    column: -1), sampled reproducibly, for ``RepairRequest``. With raw codes (faults and invalid
    outputs apart) use :func:`repair_evidence`, which also quotes the exceptions."""
    gold, outputs = np.asarray(gold), np.asarray(outputs)
    if not len(texts) == len(gold) == len(outputs):
        raise ValueError(f"texts, gold and outputs differ in length: {len(texts)}, {len(gold)}, {len(outputs)}")
    rng = random.Random(seed)
    labeled = gold >= 0
    wrong_rows = np.flatnonzero(labeled & (outputs >= 0) & (outputs != gold)).tolist()
    uncovered_rows = np.flatnonzero(labeled & ((outputs == -1) if _only_abstain else (outputs < 0))).tolist()
    wrong = [(texts[i], classes[outputs[i]], classes[gold[i]])
             for i in sorted(rng.sample(wrong_rows, min(k, len(wrong_rows))))]
    uncovered = [(texts[i], classes[gold[i]]) for i in sorted(rng.sample(uncovered_rows, min(k, len(uncovered_rows))))]
    return wrong, uncovered


def repair_programs(task: TaskSpec, requests: list[RepairRequest], client: LLMClient | None = None, *,
                    existing: list[Program] | None = None, exemplars: list[Exemplar] | None = None,
                    budget_usd: float | None = None, store: ProgramStore | str | Path | None = None,
                    templates: PromptTemplates = DEFAULT_TEMPLATES, first_sample: int = 0,
                    similarity: float = DUPLICATE_SIMILARITY, budget_tokens: int | None = None) -> GenerationResult:
    """Ask for an improved version of each program, concurrently.

    A new program's provenance has ``parent`` (the old program's id) and ``repair_stats``. A
    repair that comes back as a near-duplicate of an existing program is reported as a failure.
    """
    client = client or LLMClient()
    if isinstance(store, (str, Path)):
        store = ProgramStore(task.name, store)
    chat, extras = [], []
    for req in requests:
        messages = repair_messages(task, req.program.source, req.stats, req.wrong, req.uncovered,
                                   exemplars=exemplars, templates=templates, errors=req.errors,
                                   message=req.message)
        chat.append(Request(messages, sample=first_sample, validate=validate_reply, salvage=salvage_reply,
                            purpose="repair"))
        extras.append({"parent": req.program.id, "repair_stats": dict(req.stats),
                       "name_prefix": f"{req.program.name}_fix"})
    with client.meter.limit(budget_usd, budget_tokens):
        completions = client.complete_many(chat)
    # The old programs count as existing: a "repair" that changes nothing is rejected.
    old = list(existing or []) + [r.program for r in requests]
    rejected: list[Failure] = []
    programs, failures = collect(completions, extras, old, store, similarity, rejected)
    return GenerationResult(programs, failures, None, completions, rejected)
