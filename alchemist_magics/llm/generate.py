"""Ask an LLM for N labeling programs at once, and keep each with its provenance.

Each request gets its own strategy and is told which approaches the others use; replies without
a usable program are retried (reason ``invalid``); near-duplicate programs (same code up to names,
comments, docstrings and formatting) are rejected. Whatever succeeded is kept.
"""
from __future__ import annotations

import ast
import builtins
import difflib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..programs import Program, check_program, extract_programs
from ..task import TaskSpec
from .client import Completion, LLMClient, Request
from .cost import TYPICAL_PROGRAM_REPLY_TOKENS, Estimate, estimate_requests, total_cost
from .prompts import DEFAULT_TEMPLATES, STRATEGIES, Exemplar, PromptTemplates, program_messages
from .provenance import ProgramStore
from .retrieval import DocumentRetriever

DUPLICATE_SIMILARITY = 0.9


@dataclass
class Failure:
    """A request that produced no new program, with why."""

    index: int
    reason: str  # a client reason (rate_limited, timeout, truncated, invalid, budget...) or "duplicate"
    detail: str

    def __str__(self) -> str:
        return f"request {self.index}: {self.reason}: {self.detail}"


@dataclass
class GenerationResult:
    """Programs obtained, failures with reasons, the estimate made before sending, and the cost."""

    programs: list[Program] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    estimate: Estimate | None = None
    completions: list[Completion] = field(default_factory=list)

    @property
    def cost_usd(self) -> float | None:
        """What this call spent (None when a model's price is unknown); cache hits cost $0."""
        return total_cost(self.completions)

    @property
    def cache_hits(self) -> int:
        return sum(c.cached for c in self.completions)

    def __repr__(self) -> str:
        cost = "unknown" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        return (f"GenerationResult({len(self.programs)} programs, {len(self.failures)} failures, "
                f"{self.cache_hits} cache hits, cost {cost})")


# -- near-duplicates -------------------------------------------------------------------------
class _Normalizer(ast.NodeTransformer):
    """Rename user identifiers to v0, v1... and drop docstrings, so only the logic is compared."""

    def __init__(self):
        self.names: dict[str, str] = {}

    def _rename(self, name: str) -> str:
        if hasattr(builtins, name):
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node):
        node.id = self._rename(node.id)
        return node

    def visit_arg(self, node):
        node.arg = self._rename(node.arg)
        return node

    def visit_FunctionDef(self, node):
        node.name = self._rename(node.name)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        self.generic_visit(node)
        return node


def normalized_code(source: str) -> list[str]:
    """The program's tokens after normalisation (raw tokens when it does not parse)."""
    try:
        text = ast.unparse(_Normalizer().visit(ast.parse(source)))
    except (SyntaxError, ValueError):
        text = source
    return re.findall(r"\w+|[^\w\s]", text)


def is_near_duplicate(source: str, others: list[str], threshold: float = DUPLICATE_SIMILARITY) -> bool:
    """True when ``source`` matches any of ``others`` at >= ``threshold`` normalised-token similarity."""
    mine = normalized_code(source)
    for other in others:
        matcher = difflib.SequenceMatcher(None, mine, normalized_code(other), autojunk=False)
        if matcher.real_quick_ratio() >= threshold and matcher.ratio() >= threshold:
            return True
    return False


# -- shared by generation and repair ---------------------------------------------------------
def _first_valid(reply: str) -> tuple[Program | None, str]:
    programs = list(extract_programs(reply))
    if not programs:
        return None, "no Python code in the reply"
    reasons = []
    for program in programs:
        check = check_program(program.source)
        if check.ok:
            return program, ""
        reasons += check.reasons
    return None, "code fails the program check: " + "; ".join(reasons[:3])


def validate_reply(reply: str) -> str | None:
    """None when the reply holds a usable program, else why not (the request is then retried)."""
    return _first_valid(reply)[1] or None


def provenance_of(completion: Completion, **extra) -> dict:
    """The provenance record of a program made from ``completion``."""
    return {"prompt": completion.messages, "model": completion.model, "parameters": completion.params,
            "raw_reply": completion.text, "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens, "cost_usd": completion.cost_usd,
            "cached": completion.cached, "attempts": completion.attempts,
            "elapsed_s": round(completion.elapsed_s, 3), "request_key": completion.key,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "parent": None, **extra}


def collect(completions: list[Completion], extras: list[dict], existing: list[Program],
            store: ProgramStore | None, similarity: float) -> tuple[list[Program], list[Failure]]:
    """Turn replies into programs with provenance, rejecting failures and near-duplicates."""
    programs, failures = [], []
    seen = [p.source for p in existing]
    for i, (completion, extra) in enumerate(zip(completions, extras)):
        if not completion.ok:
            failures.append(Failure(i, completion.reason, completion.detail))
            continue
        found, why = _first_valid(completion.text)
        if found is None:  # a cached reply checked by an older validator
            failures.append(Failure(i, "invalid", why))
            continue
        if is_near_duplicate(found.source, seen, similarity):
            failures.append(Failure(i, "duplicate", "near-duplicate of an earlier program's code"))
            continue
        extra = dict(extra)
        prefix = extra.pop("name_prefix", "llm")
        program = Program(found.source, name=f"{prefix}_{found.id[:6]}", provenance=provenance_of(completion, **extra))
        seen.append(program.source)
        programs.append(program)
        if store is not None:
            store.save(program)
    return programs, failures


def _approach(program: Program) -> str:
    """How an existing program works, in a few words, for the 'already used' list."""
    if program.provenance.get("strategy"):
        return program.provenance["strategy"]
    try:
        tree = ast.parse(program.source)
    except SyntaxError:
        return f"the program {program.name}"
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    doc = ast.get_docstring(functions[0]) if functions else None
    if doc:
        return doc.splitlines()[0]
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return f"the program {program.name}" + (f", which looks for {', '.join(map(repr, strings[:8]))}" if strings else "")


def program_requests(task: TaskSpec, n: int, *, exemplars: list[Exemplar] | None = None,
                     background: list[str] | None = None, existing: list[Program] | None = None,
                     templates: PromptTemplates = DEFAULT_TEMPLATES, temperature: float | None = None,
                     max_tokens: int | None = None, first_sample: int = 0) -> tuple[list[Request], list[dict]]:
    """The ``n`` requests ``generate_programs`` sends (one strategy each), without sending them."""
    already = [_approach(p) for p in existing or []]
    requests, extras = [], []
    slugs = list(STRATEGIES)
    for i in range(n):
        slug = slugs[(first_sample + i) % len(slugs)]
        strategy = STRATEGIES[slug]
        others = already + [STRATEGIES[slugs[(first_sample + j) % len(slugs)]] for j in range(i)]
        messages = program_messages(task, strategy=strategy, used=list(dict.fromkeys(others)) or None,
                                    exemplars=exemplars, background=background, templates=templates)
        requests.append(Request(messages, temperature=temperature, max_tokens=max_tokens,
                                sample=first_sample + i, validate=validate_reply, purpose="program"))
        extras.append({"strategy": strategy, "name_prefix": slug})
    return requests, extras


def prepare_request(task: TaskSpec, n: int, client, existing, store):
    """The argument handling every program-generation entry point shares: checked ``n``, a client,
    a list of existing programs and a ``ProgramStore`` (from a root folder) or None."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if isinstance(store, (str, Path)):
        store = ProgramStore(task.name, store)
    return client or LLMClient(), list(existing or []), store


def generate_programs(task: TaskSpec, n: int = 10, client: LLMClient | None = None, *,
                      exemplars: list[Exemplar] | None = None, documents: str | Path | DocumentRetriever | None = None,
                      existing: list[Program] | None = None, budget_usd: float | None = None,
                      store: ProgramStore | str | Path | None = None, templates: PromptTemplates = DEFAULT_TEMPLATES,
                      temperature: float | None = None, max_tokens: int | None = None, first_sample: int = 0,
                      similarity: float = DUPLICATE_SIMILARITY) -> GenerationResult:
    """Ask for ``n`` labeling programs concurrently.

    Args:
        task: the task (its supplementary fields go into the prompt when filled).
        client: an ``LLMClient`` (default: configured from the environment).
        exemplars: labeled examples to show (``retrieval.select_exemplars``).
        documents: a folder of .txt/.md files (or a ``DocumentRetriever``) to retrieve background from.
        existing: programs already kept; new ones must differ from them.
        budget_usd: the most this call may spend; never exceeded (worst case reserved per attempt).
        store: a ``ProgramStore`` or a root folder (``.alchemist``) to persist programs into.
        first_sample: use another number to get fresh programs for an unchanged prompt (the
            cache is keyed by it); re-running with the same value is served from the cache, for $0.
        similarity: programs whose normalised code is at least this similar to another are dropped.
    """
    client, existing, store = prepare_request(task, n, client, existing, store)
    background = None
    if documents is not None:
        retriever = documents if isinstance(documents, DocumentRetriever) else DocumentRetriever(documents)
        query = " ".join([task.description, *task.classes, *sum(task.keywords.values(), [])])
        background = [p.text for p in retriever.search(query, k=3)]
    requests, extras = program_requests(task, n, exemplars=exemplars, background=background, existing=existing,
                                        templates=templates, temperature=temperature, max_tokens=max_tokens,
                                        first_sample=first_sample)
    estimate = estimate_requests(client.model, [r.messages for r in requests],
                                 reply_tokens=TYPICAL_PROGRAM_REPLY_TOKENS,
                                 max_tokens=max_tokens or client.config.max_tokens, prices=client.meter.prices)
    with client.meter.limit(budget_usd):
        completions = client.complete_many(requests)
    programs, failures = collect(completions, extras, existing, store, similarity)
    return GenerationResult(programs, failures, estimate, completions)
