"""Token counting, the price table, the cost meter with its hard budget, and the counterfactual.

Exact token counts always come from each reply's ``usage``. Estimates (before a request is sent)
use ``tiktoken`` when its encoding can be loaded; tiktoken downloads its BPE files on first use, so
offline (no cache in ``TIKTOKEN_CACHE_DIR``) we fall back to an *approximate* count of
``ceil(chars / 4)``, which is flagged as such everywhere it is shown.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
import warnings
from dataclasses import dataclass, field

# USD per 1M tokens (input, output): public list prices, mid 2025. Extend with PriceTable.set().
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
}

# OpenAI's chat format adds a few tokens per message and primes the reply with a few more.
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMING = 3
# Byte-level tokenizers never emit more tokens than UTF-8 bytes; chat templates add a bounded
# number per message. Used for the worst-case budget reservation, so it must never undercount.
WORST_CASE_TOKENS_PER_MESSAGE = 16

APPROXIMATE = "approximate: ceil(chars/4), no tiktoken encoding could be loaded"


class BudgetExceeded(RuntimeError):
    """A request was not sent because its worst-case cost does not fit in the remaining budget."""


class PriceTable:
    """Per-model prices in USD per 1M tokens; dated model names match their base name."""

    def __init__(self, prices: dict[str, tuple[float, float]] | None = None):
        self._prices = dict(DEFAULT_PRICES)
        self._prices.update(prices or {})
        self._warned: set[str] = set()

    def set(self, model: str, input_per_1m: float, output_per_1m: float) -> None:
        """Add or change the price of ``model``."""
        self._prices[model] = (float(input_per_1m), float(output_per_1m))

    def lookup(self, model: str) -> tuple[float, float] | None:
        """(input, output) USD per 1M tokens, or None when the model is unknown."""
        name = model.split("/")[-1]  # "openai/gpt-4o" -> "gpt-4o"
        if name in self._prices:
            return self._prices[name]
        # "gpt-4o-2024-08-06" -> "gpt-4o"; the longest base wins so gpt-4o-mini is not gpt-4o.
        bases = [b for b in self._prices if name.startswith(b + "-")]
        return self._prices[max(bases, key=len)] if bases else None

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int, *, warn: bool = True) -> float | None:
        """USD for these token counts, or None (with one warning per model, unless ``warn`` is
        False: a local model has no price and needs no warning) when unknown."""
        price = self.lookup(model)
        if price is None:
            if warn and model not in self._warned:
                self._warned.add(model)
                warnings.warn(f"no price known for model {model!r}: its cost is shown as unknown; "
                              f"add one with PriceTable.set({model!r}, input_per_1m, output_per_1m)",
                              stacklevel=2)
            return None
        return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6


_ENCODINGS: dict[str, object] = {}  # model -> tiktoken Encoding or None (could not load)
_ENCODINGS_LOCK = threading.Lock()


def _encoding(model: str):
    with _ENCODINGS_LOCK:
        if model not in _ENCODINGS:
            _ENCODINGS[model] = _load_encoding(model)
        return _ENCODINGS[model]


def _load_encoding(model: str):
    """The model's tiktoken encoding, else cl100k_base as a stand-in, else None (approximate)."""
    import tiktoken

    loaders = [lambda: tiktoken.encoding_for_model(model.split("/")[-1]),
               lambda: tiktoken.get_encoding("cl100k_base")]
    for load in loaders:
        try:
            return load()
        except Exception:  # noqa: BLE001 - unknown model, offline download failure, corrupt cache
            continue
    return None


class TokenCounter:
    """Counts tokens for one model: tiktoken when available, else the documented approximation."""

    def __init__(self, model: str):
        self.model = model
        self._enc = _encoding(model)

    @property
    def exact(self) -> bool:
        """True when counts come from tiktoken, False for the chars/4 approximation."""
        return self._enc is not None

    @property
    def method(self) -> str:
        return f"tiktoken:{self._enc.name}" if self._enc is not None else APPROXIMATE

    def count(self, text: str) -> int:
        if self._enc is not None:
            return len(self._enc.encode(text, disallowed_special=()))
        return math.ceil(len(text) / 4)

    def count_messages(self, messages: list[dict]) -> int:
        """Estimated prompt tokens of a chat request."""
        return sum(self.count(m["content"]) + TOKENS_PER_MESSAGE for m in messages) + TOKENS_REPLY_PRIMING


def total_cost(completions) -> float | None:
    """What a set of completions spent (cache hits cost $0); None when any price is unknown."""
    costs = [c.cost_usd for c in completions]
    return None if any(c is None for c in costs) else sum(costs)


def worst_case_prompt_tokens(messages: list[dict]) -> int:
    """An upper bound on prompt tokens for any byte-level tokenizer (UTF-8 bytes + overhead)."""
    return sum(len(m["content"].encode()) + WORST_CASE_TOKENS_PER_MESSAGE for m in messages) + \
        WORST_CASE_TOKENS_PER_MESSAGE


@dataclass
class CostRecord:
    """One request as the meter saw it: exact tokens from ``usage`` (0 for cache hits)."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    cached: bool
    purpose: str = ""
    elapsed_s: float = 0.0
    local: bool = False
    usage_fault: str | None = None  # why the reported usage was clamped, when it was
    ended: float = 0.0  # time.monotonic() when the reply arrived (for wall-clock time)


@dataclass
class CostMeter:
    """Records every request's tokens and cost, and enforces optional hard budgets.

    ``budget_usd`` caps dollars (needs a known price), ``budget_tokens`` caps tokens (prompt +
    completion; works for any model, local ones included). Before each network attempt the caller
    ``reserve()``s the worst case (prompt upper bound + ``max_tokens``); after the reply it
    ``record()``s the exact usage and ``release()``s the reservation. Settled spend plus open
    reservations never exceed a budget: a reservation that does not fit waits for in-flight
    requests to settle and raises ``BudgetExceeded`` if it still does not.

    Reported usage outside what the request could use (negative, more completion tokens than
    ``max_tokens``, or, while a budget is set, more prompt tokens than the worst case) is clamped into that range and counted
    in ``usage_faults`` (the raw numbers stay in ``reported_tokens``), so a lying server can never
    push spending past a budget.
    """

    budget_usd: float | None = None
    prices: PriceTable = field(default_factory=PriceTable)
    records: list[CostRecord] = field(default_factory=list)
    spent_usd: float = 0.0
    unknown_cost_requests: int = 0
    # Attempts that timed out after sending: the provider may bill them, the reply never says.
    unaccounted_usd: float = 0.0
    budget_tokens: int | None = None
    unaccounted_tokens: int = 0
    usage_faults: int = 0
    unbilled_attempts: int = 0  # attempts that may have been billed without our seeing usage (timeouts)
    reported_tokens: list[int] = field(default_factory=lambda: [0, 0])  # raw usage as the server said

    def __post_init__(self):
        self._reserved = 0.0
        self._reserved_tokens = 0
        self._in_flight = 0
        self._cond = threading.Condition()

    # -- budget -----------------------------------------------------------------------------
    def worst_case_usd(self, model: str, messages: list[dict], max_tokens: int) -> float | None:
        if self.prices.lookup(model) is None:
            return None
        return self.prices.cost(model, worst_case_prompt_tokens(messages), max_tokens)

    def check_budget_possible(self, model: str) -> None:
        """Raise BudgetExceeded when a dollar budget is set but the model's price is unknown."""
        if self.budget_usd is not None and self.prices.lookup(model) is None:
            raise BudgetExceeded(f"cannot enforce a ${self.budget_usd} budget for model {model!r}: its price is "
                                 f"unknown. Give the budget in tokens instead (budget_tokens=...) "
                                 f"or set a price "
                                 f"(meter.prices.set({model!r}, usd_per_1m_in, usd_per_1m_out))")

    @property
    def spent_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @contextlib.contextmanager
    def limit(self, budget_usd: float | None = None, budget_tokens: int | None = None):
        """Within the block, spend at most ``budget_usd`` / ``budget_tokens`` more (on top of any
        overall budget)."""
        saved, saved_tokens = self.budget_usd, self.budget_tokens
        with self._cond:
            if budget_usd is not None:
                cap = self.spent_usd + self.unaccounted_usd + self._reserved + budget_usd
                self.budget_usd = cap if saved is None else min(saved, cap)
            if budget_tokens is not None:
                cap = self.spent_tokens + self.unaccounted_tokens + self._reserved_tokens + int(budget_tokens)
                self.budget_tokens = cap if saved_tokens is None else min(saved_tokens, cap)
        try:
            yield self
        finally:
            self.budget_usd, self.budget_tokens = saved, saved_tokens

    def reserve(self, amount_usd: float | None, tokens: int = 0) -> tuple[float, int]:
        """Hold ``amount_usd`` and ``tokens`` of the budgets for one attempt; returns the handle
        to pass to :meth:`release`."""
        if self.budget_usd is None and self.budget_tokens is None:
            return (0.0, 0)
        if self.budget_usd is not None and amount_usd is None:
            raise BudgetExceeded("cannot reserve a dollar budget for a request whose price is unknown; "
                                 "use budget_tokens")
        usd = amount_usd if self.budget_usd is not None else 0.0
        tokens = int(tokens) if self.budget_tokens is not None else 0
        with self._cond:
            while not self._fits(usd, tokens):
                if self._in_flight == 0:
                    if self.budget_usd is not None and not self._fits(usd, 0):
                        left = self.budget_usd - self.spent_usd - self.unaccounted_usd
                        raise BudgetExceeded(f"budget ${self.budget_usd:.4f}: ${left:.4f} left, this "
                                             f"request may cost up to ${usd:.4f}")
                    left = self.budget_tokens - self.spent_tokens - self.unaccounted_tokens
                    raise BudgetExceeded(f"budget {self.budget_tokens} tokens: {left} left, this request "
                                         f"may use up to {tokens}")
                self._cond.wait()
            self._reserved += usd
            self._reserved_tokens += tokens
            self._in_flight += 1
            return (usd, tokens)

    def _fits(self, usd: float, tokens: int) -> bool:
        if self.budget_usd is not None and \
                self.spent_usd + self.unaccounted_usd + self._reserved + usd > self.budget_usd + 1e-15:
            return False
        if self.budget_tokens is not None and \
                self.spent_tokens + self.unaccounted_tokens + self._reserved_tokens + tokens > self.budget_tokens:
            return False
        return True

    def release(self, held, *, maybe_billed: bool = False, worst_case: tuple[float | None, int] | None = None) -> None:
        """End a reservation. ``maybe_billed``: the attempt's cost is unknowable (timeout after
        sending), so keep its worst case counted against the budget (and, with no budget set,
        the ``worst_case`` (usd, tokens) the caller passes is recorded in ``unaccounted_*``)."""
        usd, tokens = held if isinstance(held, tuple) else (held, 0)
        if maybe_billed:
            self.unbilled_attempts += 1
        if self.budget_usd is None and self.budget_tokens is None and not (usd or tokens):
            if maybe_billed and worst_case is not None:
                with self._cond:
                    self.unaccounted_usd += worst_case[0] or 0.0
                    self.unaccounted_tokens += int(worst_case[1])
            return
        with self._cond:
            self._reserved -= usd
            self._reserved_tokens -= tokens
            self._in_flight = max(0, self._in_flight - 1)
            if maybe_billed:
                self.unaccounted_usd += usd
                self.unaccounted_tokens += tokens
            self._cond.notify_all()

    # -- recording --------------------------------------------------------------------------
    def record(self, model: str, prompt_tokens: int, completion_tokens: int, *, cached: bool = False,
               purpose: str = "", max_prompt_tokens: int | None = None, max_completion_tokens: int | None = None,
               elapsed_s: float = 0.0, local: bool = False) -> CostRecord:
        """Record one reply (a cache hit costs $0 and no tokens are billed). Usage outside
        ``[0, max_*]`` is clamped and counted as a usage fault."""
        fault = None
        raw = (prompt_tokens, completion_tokens)
        if not cached:
            # A prompt over the worst-case bound only matters to a budget (a chat template may add
            # more than the bound assumes); completion tokens over max_tokens are always wrong.
            budgeted = self.budget_usd is not None or self.budget_tokens is not None
            prompt_tokens = _clamp(prompt_tokens, max_prompt_tokens if budgeted else None)
            completion_tokens = _clamp(completion_tokens, max_completion_tokens)
            if (prompt_tokens, completion_tokens) != raw:
                fault = (f"server reported usage {raw[0]}+{raw[1]} tokens, outside what the request could "
                         f"use; counted as {prompt_tokens}+{completion_tokens}")
        cost = 0.0 if cached else self.prices.cost(model, prompt_tokens, completion_tokens, warn=not local)
        rec = CostRecord(model, 0 if cached else prompt_tokens, 0 if cached else completion_tokens,
                         cost, cached, purpose, elapsed_s, local, fault, time.monotonic())
        with self._cond:
            self.records.append(rec)
            if not cached:
                self.reported_tokens[0] += raw[0]
                self.reported_tokens[1] += raw[1]
            if fault:
                self.usage_faults += 1
            if cost is None:
                self.unknown_cost_requests += 1
            else:
                self.spent_usd += cost
        return rec

    # -- totals -----------------------------------------------------------------------------
    @property
    def prompt_tokens(self) -> int:
        return sum(r.prompt_tokens for r in self.records)

    @property
    def completion_tokens(self) -> int:
        return sum(r.completion_tokens for r in self.records)

    @property
    def requests(self) -> int:
        """Billed replies received (cache hits excluded)."""
        return sum(not r.cached for r in self.records)

    @property
    def cache_hits(self) -> int:
        return sum(r.cached for r in self.records)

    @property
    def elapsed_s(self) -> float:
        """Wall-clock seconds during which at least one billed request was waiting for its reply
        (overlapping requests count once)."""
        return busy_seconds(self.records)

    def cost_text(self) -> str:
        """The cost as a person should read it: dollars when every price is known; for a local
        model ``local: N tokens, T s``; else ``unknown`` with the tokens (never a fake $0)."""
        return describe_cost(self.records, self.spent_usd)

    def summary(self) -> dict:
        """Totals as plain data (cost is None when any request had an unknown price)."""
        return {
            "requests": self.requests, "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "cost_usd": None if self.unknown_cost_requests else round(self.spent_usd, 8),
            "known_cost_usd": round(self.spent_usd, 8),
            "unknown_cost_requests": self.unknown_cost_requests,
            "unaccounted_usd": round(self.unaccounted_usd, 8),
            "unaccounted_tokens": self.unaccounted_tokens,
            "budget_usd": self.budget_usd, "budget_tokens": self.budget_tokens,
            "usage_faults": self.usage_faults, "unbilled_attempts": self.unbilled_attempts, "elapsed_s": round(self.elapsed_s, 3),
            "cost_text": self.cost_text(),
        }

    def __repr__(self) -> str:
        s = self.summary()
        return (f"CostMeter({s['requests']} requests, {s['cache_hits']} cache hits, "
                f"{s['prompt_tokens']}+{s['completion_tokens']} tokens, {s['cost_text']})")


def busy_seconds(records) -> float:
    """Length of the union of the records' [reply - elapsed, reply] intervals."""
    spans = sorted((r.ended - r.elapsed_s, r.ended) for r in records if not r.cached and r.elapsed_s > 0)
    total, end = 0.0, float("-inf")
    for start, stop in spans:
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def _clamp(value, upper: int | None) -> int:
    value = max(0, int(value))
    return value if upper is None else min(value, int(upper))


def describe_cost(records, spent_usd: float | None = None) -> str:
    """``$0.0123``, ``local: 5210 tokens, 84.2 s`` or ``unknown (5210 tokens; no price for m)``."""
    billed = [r for r in records if not r.cached]
    if not billed:
        return "$0.0000 (all from the cache)" if records else "$0.0000"
    unknown = [r for r in billed if r.cost_usd is None]
    if not unknown:
        usd = sum(r.cost_usd for r in billed) if spent_usd is None else spent_usd
        return f"${usd:.4f}"
    tokens = sum(r.prompt_tokens + r.completion_tokens for r in billed)
    if all(r.local for r in unknown) and len(unknown) == len(billed):
        return f"local: {tokens} tokens, {busy_seconds(billed):.1f} s"
    models = ", ".join(sorted({r.model for r in unknown}))
    return f"unknown ({tokens} tokens; no price for {models})"


# A labeling program in a fenced block with a short explanation is typically 200-400 tokens;
# we assume 400 for estimates (the worst case, max_tokens, is what the budget reserves).
TYPICAL_PROGRAM_REPLY_TOKENS = 400


@dataclass
class Estimate:
    """Expected and worst-case cost of a batch of requests, before sending them."""

    requests: int
    prompt_tokens: int
    reply_tokens: int
    expected_usd: float | None
    worst_case_usd: float | None
    method: str  # how prompt tokens were counted (tiktoken or the approximation)

    def __str__(self) -> str:
        usd = lambda v: "unknown" if v is None else f"${v:.4f}"  # noqa: E731
        return (f"{self.requests} requests, ~{self.prompt_tokens} prompt + ~{self.reply_tokens} reply tokens: "
                f"expected {usd(self.expected_usd)}, at most {usd(self.worst_case_usd)} ({self.method})")


def estimate_requests(model: str, messages_list: list[list[dict]], *, reply_tokens: int, max_tokens: int,
                      prices: PriceTable | None = None, warn: bool = True) -> Estimate:
    """Estimate a batch: prompt tokens counted per request, ``reply_tokens`` assumed per reply."""
    prices = prices or PriceTable()
    counter = TokenCounter(model)
    prompt = sum(counter.count_messages(m) for m in messages_list)
    n = len(messages_list)
    worst_prompt = sum(worst_case_prompt_tokens(m) for m in messages_list)
    return Estimate(n, prompt, reply_tokens * n, prices.cost(model, prompt, reply_tokens * n, warn=warn),
                    prices.cost(model, worst_prompt, max_tokens * n, warn=warn), counter.method)
