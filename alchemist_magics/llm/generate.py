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
from .client import Completion, LLMClient, Request, is_local_endpoint
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
    # Every candidate program that was left out, with why (also those from replies that gave
    # another program): syntax errors, check failures, cut-off functions, duplicates.
    rejected: list[Failure] = field(default_factory=list)
    wall_s: float | None = None  # wall-clock seconds the requests took (None: not measured)

    @property
    def cost_usd(self) -> float | None:
        """What this call spent (None when a model's price is unknown); cache hits cost $0."""
        return total_cost(self.completions)

    @property
    def cache_hits(self) -> int:
        return sum(c.cached for c in self.completions)

    @property
    def tokens(self) -> int:
        """Prompt + completion tokens this call was billed for (0 for cache hits)."""
        return sum((c.prompt_tokens or 0) + (c.completion_tokens or 0) for c in self.completions if not c.cached)

    @property
    def cost_text(self) -> str:
        """``$0.0123``; ``local: N tokens, T s`` for a local model; ``unknown (N tokens)`` when a
        price is unknown; never a made-up ``$0``."""
        if self.cost_usd is not None:
            return f"${self.cost_usd:.4f}"
        billed = [c for c in self.completions if not c.cached]
        if billed and all(is_local_endpoint(c.base_url) for c in billed):
            seconds = self.wall_s if self.wall_s is not None else max(c.elapsed_s for c in billed)
            return f"local: {self.tokens} tokens, {seconds:.1f} s"
        return f"unknown ({self.tokens} tokens)"

    def __repr__(self) -> str:
        return (f"GenerationResult({len(self.programs)} programs, {len(self.failures)} failures, "
                f"{self.cache_hits} cache hits, cost {self.cost_text})")


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


def program_constants(source: str) -> tuple | None:
    """The literal values a program uses (keywords, thresholds, patterns), docstrings excluded,
    as a sorted tuple; None when it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    values = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) not in docstrings]
    return tuple(sorted(repr(v) for v in values))


def is_near_duplicate(source: str, others: list[str], threshold: float = DUPLICATE_SIMILARITY) -> bool:
    """True when ``source`` matches any of ``others`` at >= ``threshold`` normalised-token similarity
    *and* uses the same constants. This is only a cheap pre-filter: programs that differ in a
    keyword, a threshold or a pattern vote differently and are never called duplicates here (whether
    two programs behave the same is decided on their outputs: ``dedup.duplicates_by_output``)."""
    mine = normalized_code(source)
    my_constants = program_constants(source)
    for other in others:
        if program_constants(other) != my_constants:
            continue
        matcher = difflib.SequenceMatcher(None, mine, normalized_code(other), autojunk=False)
        if matcher.real_quick_ratio() >= threshold and matcher.ratio() >= threshold:
            return True
    return False


# -- shared by generation and repair ---------------------------------------------------------
def programs_in_reply(reply: str, truncated: bool = False) -> tuple[list[Program], list[str]]:
    """Every usable program in a reply (extracted and passing the check) and, for each candidate
    left out, the true reason (its SyntaxError, the check's reasons, a cut at max_tokens...)."""
    extraction = extract_programs(reply, truncated=truncated)
    usable, reasons = [], list(extraction.reasons)
    for program in extraction:
        check = check_program(program.source)
        if check.ok:
            usable.append(program)
        else:
            reasons.append(f"{program.name}: fails the program check: " + "; ".join(check.reasons[:3]))
    return usable, reasons


def _first_valid(reply: str, truncated: bool = False) -> tuple[Program | None, str]:
    usable, reasons = programs_in_reply(reply, truncated)
    if usable:
        return usable[0], ""
    return None, _no_program_reason(reply, reasons)


def _no_program_reason(reply: str, reasons: list[str]) -> str:
    interesting = [r for r in reasons if not r.startswith("top-level statement dropped")]
    if not interesting:
        return "no Python code in the reply"
    return "no usable program: " + "; ".join(interesting[:3])


def validate_reply(reply: str, truncated: bool = False) -> str | None:
    """None when the reply holds a usable program, else why not (the request is then retried).
    ``truncated``: the reply was cut at max_tokens; only its complete functions count."""
    return _first_valid(reply, truncated)[1] or None


def salvage_reply(reply: str) -> str | None:
    """``validate_reply`` for a reply cut at max_tokens (``Request.salvage``)."""
    return validate_reply(reply, truncated=True)


def provenance_of(completion: Completion, **extra) -> dict:
    """The provenance record of a program made from ``completion``."""
    return {"prompt": completion.messages, "model": completion.model, "parameters": completion.params,
            "raw_reply": completion.text, "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens, "cost_usd": completion.cost_usd,
            "cached": completion.cached, "attempts": completion.attempts,
            "elapsed_s": round(completion.elapsed_s, 3), "request_key": completion.key,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "parent": None, **extra}


def collect(completions: list[Completion], extras: list[dict], existing: list[Program],
            store: ProgramStore | None, similarity: float,
            rejected: list[Failure] | None = None) -> tuple[list[Program], list[Failure]]:
    """Turn replies into programs with provenance, rejecting failures and near-duplicates.

    Every usable program of a reply is considered (a reply with three functions gives up to three
    programs); each one left out is appended to ``rejected`` with its reason. A request that
    gives no new program is a ``Failure`` with the reason of its first rejected candidate.
    """
    programs, failures = [], []
    rejected = rejected if rejected is not None else []
    seen = [p.source for p in existing]
    for i, (completion, extra) in enumerate(zip(completions, extras)):
        if not completion.ok:
            failures.append(Failure(i, completion.reason, completion.detail))
            continue
        truncated = completion.finish_reason == "length"
        try:
            usable, reasons = programs_in_reply(completion.text, truncated)
        except (RecursionError, MemoryError, SystemError, ValueError) as error:
            usable, reasons = [], [f"the reply could not be parsed ({type(error).__name__})"]
        mine = [Failure(i, "invalid", r) for r in reasons if not r.startswith("top-level statement dropped")]
        kept = 0
        for found in usable:
            if is_near_duplicate(found.source, seen, similarity):
                mine.append(Failure(i, "duplicate", f"{found.name}: near-duplicate of an earlier program's code"))
                continue
            extra_i = dict(extra)
            prefix = extra_i.pop("name_prefix", "llm")
            if len(usable) > 1:
                extra_i["function"] = found.name
            if truncated:
                extra_i["salvaged_from_truncated_reply"] = True
            program = Program(found.source, name=f"{prefix}_{found.id[:6]}",
                              provenance=provenance_of(completion, **extra_i))
            seen.append(program.source)
            programs.append(program)
            kept += 1
            if store is not None:
                store.save(program)
        rejected.extend(mine)
        if not kept:
            duplicates = [f for f in mine if f.reason == "duplicate"]
            failures.append(duplicates[0] if usable else Failure(i, "invalid", _no_program_reason(completion.text, reasons)))
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
                                sample=first_sample + i, validate=validate_reply, salvage=salvage_reply,
                                purpose="program"))
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
                      similarity: float = DUPLICATE_SIMILARITY, budget_tokens: int | None = None) -> GenerationResult:
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
        similarity: programs whose normalised code is at least this similar to another (and that
            use the same constants) are dropped.
        budget_tokens: the most tokens (prompt + completion) this call may use; works for local
            models, which have no price.

    Every usable function of every reply is kept (``result.programs``); each candidate left out is
    in ``result.rejected`` with its true reason. A reply cut at ``max_tokens`` still gives its
    complete functions; the one it ended inside is dropped.
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
                                 max_tokens=max_tokens or client.config.max_tokens, prices=client.meter.prices,
                                 warn=not client.local)
    started = time.monotonic()
    with client.meter.limit(budget_usd, budget_tokens):
        completions = client.complete_many(requests)
    wall = time.monotonic() - started
    rejected: list[Failure] = []
    programs, failures = collect(completions, extras, existing, store, similarity, rejected)
    return GenerationResult(programs, failures, estimate, completions, rejected, wall)
