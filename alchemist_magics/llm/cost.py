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

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for these token counts, or None (with one warning per model) when unknown."""
        price = self.lookup(model)
        if price is None:
            if model not in self._warned:
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


@dataclass
class CostMeter:
    """Records every request's tokens and cost, and enforces an optional hard budget.

    Before each network attempt the caller ``reserve()``s the worst case (prompt upper bound +
    ``max_tokens``); after the reply it ``settle()``s with the exact usage. The sum of settled
    cost and open reservations never exceeds ``budget_usd``: a reservation that does not fit
    waits for in-flight requests to settle and raises ``BudgetExceeded`` if it still does not.
    """

    budget_usd: float | None = None
    prices: PriceTable = field(default_factory=PriceTable)
    records: list[CostRecord] = field(default_factory=list)
    spent_usd: float = 0.0
    unknown_cost_requests: int = 0
    # Attempts that timed out after sending: the provider may bill them, the reply never says.
    unaccounted_usd: float = 0.0

    def __post_init__(self):
        self._reserved = 0.0
        self._in_flight = 0
        self._cond = threading.Condition()

    # -- budget -----------------------------------------------------------------------------
    def worst_case_usd(self, model: str, messages: list[dict], max_tokens: int) -> float | None:
        return self.prices.cost(model, worst_case_prompt_tokens(messages), max_tokens)

    def check_budget_possible(self, model: str) -> None:
        """Raise BudgetExceeded when a budget is set but the model's price is unknown."""
        if self.budget_usd is not None and self.prices.lookup(model) is None:
            raise BudgetExceeded(f"cannot enforce budget_usd={self.budget_usd} for model {model!r} "
                                 f"with no known price; add it with meter.prices.set({model!r}, in, out)")

    @contextlib.contextmanager
    def limit(self, budget_usd: float | None):
        """Within the block, spend at most ``budget_usd`` more (on top of any overall budget)."""
        if budget_usd is None:
            yield self
            return
        saved = self.budget_usd
        with self._cond:
            cap = self.spent_usd + self.unaccounted_usd + self._reserved + budget_usd
            self.budget_usd = cap if saved is None else min(saved, cap)
        try:
            yield self
        finally:
            self.budget_usd = saved

    def reserve(self, amount_usd: float | None) -> float:
        """Hold ``amount_usd`` of the budget for one attempt; returns the amount held."""
        if self.budget_usd is None:
            return 0.0
        if amount_usd is None:
            raise BudgetExceeded("cannot reserve budget for a request whose price is unknown")
        with self._cond:
            while self.spent_usd + self.unaccounted_usd + self._reserved + amount_usd > self.budget_usd:
                if self._in_flight == 0:
                    left = self.budget_usd - self.spent_usd - self.unaccounted_usd
                    raise BudgetExceeded(f"budget ${self.budget_usd:.4f}: ${left:.4f} left, this "
                                         f"request may cost up to ${amount_usd:.4f}")
                self._cond.wait()
            self._reserved += amount_usd
            self._in_flight += 1
            return amount_usd

    def release(self, held_usd: float, *, maybe_billed: bool = False) -> None:
        """End a reservation. ``maybe_billed``: the attempt's cost is unknowable (timeout after
        sending), so keep its worst case counted against the budget."""
        if self.budget_usd is None:
            return
        with self._cond:
            self._reserved -= held_usd
            self._in_flight -= 1
            if maybe_billed:
                self.unaccounted_usd += held_usd
            self._cond.notify_all()

    # -- recording --------------------------------------------------------------------------
    def record(self, model: str, prompt_tokens: int, completion_tokens: int, *, cached: bool = False,
               purpose: str = "") -> CostRecord:
        """Record one reply (a cache hit costs $0 and no tokens are billed)."""
        cost = 0.0 if cached else self.prices.cost(model, prompt_tokens, completion_tokens)
        rec = CostRecord(model, 0 if cached else prompt_tokens, 0 if cached else completion_tokens,
                         cost, cached, purpose)
        with self._cond:
            self.records.append(rec)
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

    def summary(self) -> dict:
        """Totals as plain data (cost is None when any request had an unknown price)."""
        return {
            "requests": self.requests, "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "cost_usd": None if self.unknown_cost_requests else round(self.spent_usd, 8),
            "known_cost_usd": round(self.spent_usd, 8),
            "unknown_cost_requests": self.unknown_cost_requests,
            "unaccounted_usd": round(self.unaccounted_usd, 8),
            "budget_usd": self.budget_usd,
        }

    def __repr__(self) -> str:
        s = self.summary()
        cost = "unknown" if s["cost_usd"] is None else f"${s['cost_usd']:.4f}"
        return (f"CostMeter({s['requests']} requests, {s['cache_hits']} cache hits, "
                f"{s['prompt_tokens']}+{s['completion_tokens']} tokens, {cost})")


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
                      prices: PriceTable | None = None) -> Estimate:
    """Estimate a batch: prompt tokens counted per request, ``reply_tokens`` assumed per reply."""
    prices = prices or PriceTable()
    counter = TokenCounter(model)
    prompt = sum(counter.count_messages(m) for m in messages_list)
    n = len(messages_list)
    worst_prompt = sum(worst_case_prompt_tokens(m) for m in messages_list)
    return Estimate(n, prompt, reply_tokens * n, prices.cost(model, prompt, reply_tokens * n),
                    prices.cost(model, worst_prompt, max_tokens * n), counter.method)
