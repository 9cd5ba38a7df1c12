"""A small chat client over the ``openai`` package for any OpenAI-compatible endpoint.

It adds what the raw client lacks for this tool: adaptive concurrency for N requests (a local
one-at-a-time server and a cloud provider both work with the defaults), retries with backoff that
honour ``Retry-After`` (clamped), a total deadline per attempt, a reason for every failure (rate
limit, timeout, malformed, empty, truncated, invalid...), the on-disk response cache (keyed by
endpoint too), the cost meter with its budget in dollars or tokens, and model discovery on local
servers (``/v1/models``).
"""
from __future__ import annotations

import email.utils
import importlib
import ipaddress
import math
import os
import random
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

import openai

from .cache import ResponseCache, request_key
from .cost import BudgetExceeded, CostMeter, worst_case_prompt_tokens

DEFAULT_MODEL = "gpt-4o-mini"

# Failure reasons. Retried: the server or the reply may do better next time.
RETRIED = {"rate_limited", "server_error", "timeout", "connection", "malformed", "empty",
           "truncated", "invalid"}
# Not retried: the same request would fail the same way.
FINAL = {"auth", "bad_request", "budget", "error"}

# The automatic deadline: generous until the server's speed is known, then derived from it.
AUTO_TIMEOUT_REMOTE_S = 60.0
AUTO_TIMEOUT_LOCAL_S = 600.0
AUTO_TIMEOUT_MAX_S = 900.0
# A parse of one reply that hits these is that reply's problem, never the batch's.
PARSE_ERRORS = (RecursionError, SystemError, MemoryError, ValueError, TypeError)


class MissingAPIKeyError(RuntimeError):
    """No API key in the configured environment variable."""

    def __init__(self, env_var: str):
        super().__init__(f"Set the {env_var} environment variable to your API key "
                         f"(or point api_key_env at the variable that holds it; "
                         f"api_key_env='' for a server that needs no key).")
        self.env_var = env_var


def is_local_endpoint(base_url: str | None) -> bool:
    """True for a server on this machine or a private network (llama.cpp, Ollama, vLLM...)."""
    if not base_url:
        return False
    host = (urlsplit(base_url if "//" in base_url else "//" + base_url).hostname or "").lower()
    if host in {"localhost", "0.0.0.0"} or host.endswith((".local", ".localhost", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


@dataclass
class LLMConfig:
    """Where and how to ask. Defaults come from ``ALCHEMIST_MODEL`` and ``OPENAI_BASE_URL``;
    the key is read from the variable *named* by ``api_key_env`` (never stored here).

    - ``model``: None means: ask the server (``GET /models``) when a ``base_url`` is set, else
      ``gpt-4o-mini``.
    - ``api_key_env``: ``""`` means the endpoint needs no key; a local endpoint (127.0.0.1, a
      private address) also works without one when the default variable is unset.
    - ``timeout_s``: the *total* deadline of one attempt (connect + wait + the whole body; a server
      dripping bytes cannot stretch it). None = automatic: 60 s for a cloud endpoint; for a local
      one 600 s until the server's speed is measured, then ``30 s + 3 x max_tokens / tokens_per_s``
      (60-900 s).
    - ``concurrency``: the most requests in flight. None = automatic: 1 for a local endpoint and
      4 for a cloud one to start with, adapted between 1 and ``max_concurrency`` (``adaptive``):
      it grows while replies keep their speed, shrinks when they slow down (queueing), halves on a
      timeout or a 429; a timed-out attempt keeps its slot until the server has probably finished
      it, and its retry is not sent before then.
    """

    model: str | None = field(default_factory=lambda: os.environ.get("ALCHEMIST_MODEL") or None)
    base_url: str | None = field(default_factory=lambda: os.environ.get("OPENAI_BASE_URL") or None)
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.7
    max_tokens: int = 1024
    timeout_s: float | None = None
    max_attempts: int = 4
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0
    concurrency: int | None = None
    max_concurrency: int = 8
    adaptive: bool = True
    max_reply_bytes: int = 4_000_000
    models_timeout_s: float = 10.0


@dataclass
class Request:
    """One chat request. ``sample`` tells apart otherwise identical requests in the cache (the
    i-th of N samples at the same prompt); ``validate(text)`` returns a failure detail or None.
    ``salvage(text)`` (optional) does the same for a reply cut at ``max_tokens``: when it
    returns None the truncated reply is kept (its complete parts are usable)."""

    messages: list[dict]
    temperature: float | None = None
    max_tokens: int | None = None
    sample: int = 0
    validate: Callable[[str], str | None] | None = None
    purpose: str = ""
    salvage: Callable[[str], str | None] | None = None


@dataclass
class Completion:
    """What came back for one request: the text when ``ok``, else ``reason`` + ``detail``."""

    ok: bool
    text: str | None
    reason: str | None
    detail: str
    model: str
    params: dict
    messages: list[dict]
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    cached: bool = False
    attempts: int = 0
    elapsed_s: float = 0.0
    finish_reason: str | None = None
    key: str = ""
    failures: list[str] = field(default_factory=list)  # "reason: detail" of each failed attempt
    base_url: str | None = None


class _AttemptFailed(Exception):
    def __init__(self, reason: str, detail: str, wait_s: float | None = None, reply: tuple[str, str] | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.wait_s = reason, detail, wait_s
        self.reply = reply  # (text, finish_reason) of a reply the server gave but that is unusable


def parse_retry_after(headers, cap_s: float = 120.0) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``retry-after``), clamped to
    ``[0, cap_s]``; None when absent or unreadable (NaN, garbage): the normal backoff applies."""
    headers = headers or {}
    try:
        if headers.get("retry-after-ms"):
            value = float(headers["retry-after-ms"]) / 1000
        else:
            raw = headers.get("retry-after")
            if not raw:
                return None
            try:
                value = float(raw)
            except ValueError:  # an HTTP date
                value = email.utils.parsedate_to_datetime(raw).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if math.isnan(value):
        return None
    return min(max(value, 0.0), cap_s)


def _retry_after(response, cap_s: float = 120.0) -> float | None:
    return parse_retry_after(getattr(response, "headers", None), cap_s)


# -- a total deadline for each attempt ------------------------------------------------------------
_DEADLINE = threading.local()  # .at: time.monotonic() deadline of this thread's attempt; .limit: bytes


def _httpx_module():
    """The httpx flavour the installed openai package is built on (``httpx`` or a fork)."""
    base = next(c for c in openai.DefaultHttpxClient.__mro__ if c.__module__.startswith("httpx"))
    return importlib.import_module(base.__module__.split(".")[0])


def _deadline_http_client(timeout_s: float):
    """An http client whose every attempt ends at its deadline, however slowly the server drips,
    and that stops reading a reply larger than the configured limit."""
    hx = _httpx_module()

    class DeadlineStream(hx.SyncByteStream):
        def __init__(self, inner, request, deadline, limit):
            self.inner, self.request, self.deadline, self.limit = inner, request, deadline, limit

        def __iter__(self):
            size = 0
            for chunk in self.inner:
                size += len(chunk)
                if self.deadline is not None and time.monotonic() > self.deadline:
                    raise hx.ReadTimeout("total deadline passed while reading the reply", request=self.request)
                if self.limit and size > self.limit:
                    raise hx.ReadError(f"reply larger than {self.limit} bytes", request=self.request)
                yield chunk

        def close(self):
            self.inner.close()

    class DeadlineTransport(hx.BaseTransport):
        def __init__(self):
            self.inner = hx.HTTPTransport()

        def handle_request(self, request):
            deadline = getattr(_DEADLINE, "at", None)
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise hx.ConnectTimeout("total deadline passed before sending", request=request)
                timeouts = dict(request.extensions.get("timeout") or {})
                request.extensions["timeout"] = {k: remaining if v is None else min(v, remaining)
                                                 for k, v in {**dict.fromkeys(("connect", "read", "write", "pool")),
                                                              **timeouts}.items()}
            response = self.inner.handle_request(request)
            return hx.Response(status_code=response.status_code, headers=response.headers,
                               stream=DeadlineStream(response.stream, request, deadline,
                                                     getattr(_DEADLINE, "limit", None)),
                               extensions=response.extensions)

        def close(self):
            self.inner.close()

    return openai.DefaultHttpxClient(transport=DeadlineTransport(), timeout=timeout_s)


# -- adaptive concurrency --------------------------------------------------------------------------
class AdaptiveLimiter:
    """How many attempts may be in flight, adapted to what the server shows.

    Each success reports its speed (tokens/s, the wait in the server's queue included). While
    replies at the limit stay near the best speed seen (>= 80 %), the limit grows by one after
    ``limit`` such replies; when they slow to under 60 % of it (requests are queueing behind each
    other, as on a one-at-a-time server), it shrinks by one; a timeout or a rate limit halves it. A timed-out
    attempt keeps its slot until ``stale_until``: the server may still be computing it, and a
    one-at-a-time server would queue anything sent meanwhile behind it.
    """

    def __init__(self, start: int, maximum: int, adaptive: bool = True):
        self.maximum = max(1, maximum)
        self.limit = max(1, min(start, self.maximum))
        self.adaptive = adaptive
        self.active = 0
        self.stale: list[float] = []  # monotonic times until which stale attempts hold a slot
        self.best_rate: float | None = None
        self.peak = 0
        self.history: list[int] = [self.limit]
        self._good = 0
        self._cond = threading.Condition()

    def _prune(self) -> None:
        now = time.monotonic()
        self.stale = [t for t in self.stale if t > now]

    def acquire(self) -> None:
        with self._cond:
            while True:
                self._prune()
                if self.active + len(self.stale) < self.limit:
                    self.active += 1
                    self.peak = max(self.peak, self.active + len(self.stale))
                    return
                wait = (min(self.stale) - time.monotonic()) if self.stale else None
                self._cond.wait(timeout=None if wait is None else max(0.01, wait))

    def release(self, *, rate: float | None = None, slowdown: bool = False,
                stale_until: float | None = None) -> None:
        with self._cond:
            full = self.active + len(self.stale) >= self.limit
            self.active -= 1
            if stale_until is not None and stale_until > time.monotonic():
                self.stale.append(stale_until)
            if self.adaptive:
                if slowdown:
                    self._set(self.limit // 2)
                elif rate is not None and rate > 0:
                    if self.best_rate is None or rate > self.best_rate:
                        self.best_rate = rate
                    if rate < 0.6 * self.best_rate:
                        self._set(self.limit - 1)
                    elif rate >= 0.8 * self.best_rate and full:
                        # additive increase: one more after `limit` good replies at the limit
                        self._good += 1
                        if self._good >= self.limit:
                            self._set(self.limit + 1)
            self._cond.notify_all()

    def _set(self, value: int) -> None:
        value = max(1, min(self.maximum, value))
        self._good = 0
        if value != self.limit:
            self.limit = value
            self.history.append(value)


@dataclass
class Progress:
    """What ``LLMClient(on_progress=...)`` is called with after every finished request."""

    total: int
    done: int = 0
    failed: int = 0
    cached: int = 0
    in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    elapsed_s: float = 0.0
    concurrency: int = 1

    def __str__(self) -> str:
        return (f"{self.done}/{self.total} requests done ({self.failed} failed, {self.cached} cached), "
                f"{self.prompt_tokens}+{self.completion_tokens} tokens, {self.elapsed_s:.0f} s")


class LLMClient:
    """Chat completions with cache, cost meter, budget, retries and adaptive concurrency.

    Args:
        config: an ``LLMConfig`` (defaults from the environment).
        cache: a ``ResponseCache``, a folder for one, or None for no cache.
        meter: the ``CostMeter`` every request is recorded on (a fresh one by default).
        on_progress: called with a ``Progress`` after each finished request (from worker threads).
        **overrides: any ``LLMConfig`` field, e.g. ``model="gpt-4o"``.
    """

    def __init__(self, config: LLMConfig | None = None, *, cache=".alchemist/cache/llm",
                 meter: CostMeter | None = None, sleep: Callable[[float], None] = time.sleep,
                 on_progress: Callable[[Progress], None] | None = None, **overrides):
        self.config = config or LLMConfig()
        for name, value in overrides.items():
            if not hasattr(self.config, name):
                raise TypeError(f"unknown LLMConfig field {name!r}")
            setattr(self.config, name, value)
        self.cache = ResponseCache(cache) if isinstance(cache, (str, os.PathLike)) else cache
        self.meter = meter if meter is not None else CostMeter()
        self.on_progress = on_progress
        self._sleep = sleep
        self._openai: openai.OpenAI | None = None
        self._lock = threading.Lock()
        self._model: str | None = self.config.model
        self._rate: float | None = None  # best completion tokens/s measured on this endpoint
        self.limiter: AdaptiveLimiter | None = None
        self.progress: Progress | None = None

    # -- endpoint ---------------------------------------------------------------------------------
    @property
    def local(self) -> bool:
        """True when the endpoint is on this machine or a private network."""
        return is_local_endpoint(self.config.base_url)

    @property
    def model(self) -> str:
        """The model name: the configured one, else the one the server lists, else gpt-4o-mini."""
        if self.config.model:
            return self.config.model
        if self._model is None:
            self._model = self._discover_model() if self.config.base_url else DEFAULT_MODEL
        return self._model

    def _model_memo_key(self) -> str:
        return request_key([], "models", {"base_url": _normal_url(self.config.base_url)})

    def _discover_model(self) -> str:
        """Ask the server which model it serves (``GET /models``); remember the answer in the
        cache so a cached re-run works while the server is down."""
        memo = self.cache.get(self._model_memo_key()) if self.cache is not None else None
        try:
            listed = [m.id for m in self._api().with_options(timeout=self.config.models_timeout_s).models.list()]
        except MissingAPIKeyError:
            raise
        except Exception as error:  # noqa: BLE001 - unreachable, no /models, unreadable
            if memo and memo.get("text"):
                return memo["text"]
            raise RuntimeError(f"no model set and {self.config.base_url} did not list its models "
                               f"({type(error).__name__}: {_short(error)}); set model=... "
                               f"(or ALCHEMIST_MODEL)") from None
        if not listed:
            raise RuntimeError(f"no model set and {self.config.base_url}/models lists none; set model=...")
        chosen = DEFAULT_MODEL if DEFAULT_MODEL in listed else listed[0]
        if len(listed) > 1:
            warnings.warn(f"{self.config.base_url} serves {len(listed)} models; using {chosen!r} "
                          f"(set model=... to choose)", stacklevel=3)
        if self.cache is not None:
            self.cache.put(self._model_memo_key(), {"text": chosen, "listed": listed})
        return chosen

    def _api(self) -> openai.OpenAI:
        """The openai client, made on first network use (a cached re-run needs no key)."""
        with self._lock:
            if self._openai is None:
                env = self.config.api_key_env
                key = os.environ.get(env) if env else "no-key-needed"
                if not key and env == LLMConfig.api_key_env and self.local:
                    key = "no-key-needed"  # a local server with the default variable unset
                if not key:
                    raise MissingAPIKeyError(env)
                # Retries are ours (budget accounting per attempt), so the SDK's are off.
                self._openai = openai.OpenAI(api_key=key, base_url=self.config.base_url,
                                             timeout=self._timeout(), max_retries=0,
                                             http_client=_deadline_http_client(self._timeout()))
            return self._openai

    def _timeout(self, max_tokens: int | None = None) -> float:
        """This attempt's total deadline in seconds (see ``LLMConfig.timeout_s``)."""
        if self.config.timeout_s is not None:
            return float(self.config.timeout_s)
        if not self.local:
            return AUTO_TIMEOUT_REMOTE_S
        if self._rate is None:
            return AUTO_TIMEOUT_LOCAL_S
        needed = 30.0 + 3.0 * (max_tokens or self.config.max_tokens) / self._rate
        return min(max(needed, 60.0), AUTO_TIMEOUT_MAX_S)

    def _key(self, messages: list[dict], params: dict) -> str:
        # The endpoint is part of what determines a reply (two servers may serve different
        # models under one name); the default endpoint keeps the historical key.
        if self.config.base_url:
            params = {**params, "base_url": _normal_url(self.config.base_url)}
        return request_key(messages, self.model, params)

    # -- public -----------------------------------------------------------------------------
    def complete(self, messages: list[dict], **request_fields) -> Completion:
        """Send one chat request (see ``Request`` for the optional fields)."""
        return self.complete_many([Request(messages, **request_fields)])[0]

    def complete_many(self, requests: list[Request]) -> list[Completion]:
        """Send many requests concurrently; results keep the order of ``requests``.

        Every request gets a ``Completion``; failures carry their reason and never discard the
        ones that succeeded. Raises only ``MissingAPIKeyError`` (nothing could be sent) and
        ``BudgetExceeded`` when a dollar budget is set for a model with no known price.
        """
        start = time.monotonic()
        prepared = [self._prepare(r) for r in requests]
        results: list[Completion | None] = [self._from_cache(r, p) for r, p in zip(requests, prepared)]
        todo = [i for i, c in enumerate(results) if c is None]
        self.progress = Progress(total=len(requests), done=len(requests) - len(todo),
                                 cached=len(requests) - len(todo))
        if todo:
            self._api()  # fail once, clearly, before starting threads
            self.meter.check_budget_possible(self.model)
            start_at = self.config.concurrency or (1 if self.local else 4)
            maximum = self.config.concurrency if not self.config.adaptive and self.config.concurrency \
                else max(self.config.max_concurrency, start_at)
            if self.limiter is None or self.limiter.maximum != maximum:
                # One limiter per client: what it learned about the server carries over to the
                # next batch (the repair round after the generation, say).
                self.limiter = AdaptiveLimiter(start_at, maximum, adaptive=self.config.adaptive)
            workers = max(1, min(maximum, len(todo)))
            lock = threading.Lock()

            def run(i: int) -> Completion:
                completion = self._send(requests[i], prepared[i])
                with lock:
                    p = self.progress
                    p.done += 1
                    p.failed += not completion.ok
                    p.prompt_tokens += completion.prompt_tokens or 0
                    p.completion_tokens += completion.completion_tokens or 0
                    p.elapsed_s = time.monotonic() - start
                    p.concurrency = self.limiter.limit
                    p.in_flight = self.limiter.active
                    snapshot = Progress(**vars(p))
                if self.on_progress is not None:
                    try:
                        self.on_progress(snapshot)
                    except Exception:  # noqa: BLE001 - a display problem never loses a reply
                        pass
                return completion

            with ThreadPoolExecutor(max_workers=workers) as pool:
                for i, completion in zip(todo, pool.map(run, todo)):
                    results[i] = completion
        return results

    # -- internals --------------------------------------------------------------------------
    def _prepare(self, req: Request) -> tuple[dict, str]:
        params = {"temperature": self.config.temperature if req.temperature is None else req.temperature,
                  "max_tokens": self.config.max_tokens if req.max_tokens is None else req.max_tokens,
                  "sample": req.sample}
        return params, self._key(req.messages, params)

    def _completion(self, req: Request, prepared: tuple[dict, str], **fields) -> Completion:
        params, key = prepared
        return Completion(model=self.model, params=params, messages=req.messages, key=key,
                          base_url=self.config.base_url, **fields)

    def _from_cache(self, req: Request, prepared) -> Completion | None:
        entry = self.cache.get(prepared[1]) if self.cache is not None else None
        if entry is None or not isinstance(entry.get("text"), str):
            return None
        check = req.salvage if entry.get("finish_reason") == "length" else req.validate
        if entry.get("finish_reason") == "length" and check is None:
            return None
        problem = _safe_check(check, entry["text"]) if check is not None else None
        if problem and not entry.get("failed"):
            return None
        self.meter.record(self.model, 0, 0, cached=True, purpose=req.purpose)
        if problem:  # every attempt of an earlier run gave an unusable reply, and it still is one
            return self._completion(req, prepared, ok=False, text=None, reason=entry["failed"],
                                    detail=f"{problem} (the reply kept from an earlier run; another sample "
                                           f"number asks again)", cost_usd=0.0, cached=True, attempts=0)
        return self._completion(req, prepared, ok=True, text=entry["text"], reason=None, detail="cache hit",
                                prompt_tokens=entry.get("prompt_tokens"),
                                completion_tokens=entry.get("completion_tokens"), cost_usd=0.0,
                                cached=True, finish_reason=entry.get("finish_reason"))

    def _send(self, req: Request, prepared) -> Completion:
        params, key = prepared
        start = time.perf_counter()
        failures: list[str] = []
        spent = {"prompt": 0, "completion": 0, "cost": 0.0, "cost_known": True}
        last = _AttemptFailed("server_error", "no attempt made")
        not_before = 0.0  # monotonic time before which this request must not be resent
        for attempt in range(1, self.config.max_attempts + 1):
            wait = not_before - time.monotonic()
            if wait > 0:
                self._sleep(wait)
            self.limiter.acquire()
            sent = time.monotonic()
            outcome: dict = {}
            try:
                text, finish, usage = self._attempt(req, params, spent, outcome)
            except _AttemptFailed as failure:
                last = failure
                failures.append(f"{failure.reason}: {failure.detail}")
                stale_until = None
                if failure.reason == "timeout":
                    stale_until = sent + self._stale_hold(params["max_tokens"], time.monotonic() - sent)
                    not_before = stale_until
                self.limiter.release(slowdown=failure.reason in ("timeout", "rate_limited"),
                                     stale_until=stale_until)
                if failure.reason in FINAL or attempt == self.config.max_attempts:
                    break
                self._sleep(self._backoff(attempt, failure.wait_s))
                continue
            except Exception as error:  # noqa: BLE001 - one request's surprise never fails the batch
                self.limiter.release()
                last = _AttemptFailed("error", f"{type(error).__name__}: {_short(error)}")
                failures.append(f"error: {last.detail}")
                break
            self.limiter.release(rate=outcome.get("rate"))
            if self.cache is not None:
                self.cache.put(key, {"text": text, "finish_reason": finish, "model": self.model,
                                     "prompt_tokens": usage[0], "completion_tokens": usage[1]})
            return self._completion(req, prepared, ok=True, text=text, reason=None, detail="",
                                    finish_reason=finish, attempts=attempt, failures=failures,
                                    elapsed_s=time.perf_counter() - start, **self._totals(spent))
        if self.cache is not None and last.reply is not None:
            # The last attempt gave an unusable reply (those are retried, never final): keep it, so a
            # re-run reports this failure for 0 requests instead of paying again (a transient fault
            # is not kept: it is retried).
            self.cache.put(key, {"text": last.reply[0], "finish_reason": last.reply[1], "model": self.model,
                                 "failed": last.reason})
        return self._completion(req, prepared, ok=False, text=None, reason=last.reason,
                                detail=last.detail, attempts=len(failures), failures=failures,
                                elapsed_s=time.perf_counter() - start, **self._totals(spent))

    def _stale_hold(self, max_tokens: int, waited_s: float) -> float:
        """How long after sending a timed-out attempt the server may still be computing it."""
        if self._rate:
            return max(waited_s, max_tokens / self._rate + 5.0)
        return waited_s * 2  # unknown speed: assume it needs as long again

    @staticmethod
    def _totals(spent: dict) -> dict:
        return {"prompt_tokens": spent["prompt"], "completion_tokens": spent["completion"],
                "cost_usd": spent["cost"] if spent["cost_known"] else None}

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.config.max_retry_after_s)
        wait = self.config.backoff_base_s * 2 ** (attempt - 1) * (0.5 + random.random() / 2)
        return min(wait, self.config.backoff_max_s)

    def _attempt(self, req: Request, params: dict, spent: dict, outcome: dict) -> tuple[str, str, tuple[int, int]]:
        """One network attempt: reserve budget, send, settle, classify the reply."""
        model = self.model
        max_tokens = params["max_tokens"]
        worst_prompt = worst_case_prompt_tokens(req.messages)
        worst_usd = self.meter.worst_case_usd(model, req.messages, max_tokens)
        try:
            held = self.meter.reserve(worst_usd, tokens=worst_prompt + max_tokens)
        except BudgetExceeded as e:
            raise _AttemptFailed("budget", str(e)) from None
        maybe_billed = False
        timeout = self._timeout(max_tokens)
        started = time.monotonic()
        _DEADLINE.at, _DEADLINE.limit = started + timeout, self.config.max_reply_bytes
        try:
            resp = self._api().chat.completions.create(
                model=model, messages=req.messages, temperature=params["temperature"],
                max_tokens=max_tokens, timeout=timeout)
            elapsed = time.monotonic() - started
            usage = getattr(resp, "usage", None)
            prompt_tokens = getattr(usage, "prompt_tokens", None)
            completion_tokens = getattr(usage, "completion_tokens", None) or 0
            if not _is_count(prompt_tokens) or not _is_count(completion_tokens, allow_none=True):
                maybe_billed = True  # billed or not, we cannot know: keep the worst case counted
                raise _AttemptFailed("malformed", "reply has no usage" if usage is None or prompt_tokens is None
                                     else f"reply has unreadable usage {prompt_tokens!r}/{completion_tokens!r}")
            rec = self.meter.record(model, int(prompt_tokens), int(completion_tokens), purpose=req.purpose,
                                    max_prompt_tokens=worst_prompt, max_completion_tokens=max_tokens,
                                    elapsed_s=elapsed, local=self.local)
            spent["prompt"] += rec.prompt_tokens
            spent["completion"] += rec.completion_tokens
            if rec.cost_usd is None:
                spent["cost_known"] = False
            else:
                spent["cost"] += rec.cost_usd
            if elapsed > 0:
                outcome["rate"] = (rec.completion_tokens + 1) / elapsed
                if rec.completion_tokens >= 32:
                    self._rate = max(self._rate or 0.0, rec.completion_tokens / elapsed)
            return self._classify(resp, req) + ((rec.prompt_tokens, rec.completion_tokens),)
        except openai.RateLimitError as e:
            raise _AttemptFailed("rate_limited", _short(e),
                                 _retry_after(e.response, self.config.max_retry_after_s)) from None
        except openai.APITimeoutError:
            maybe_billed = True
            raise _AttemptFailed("timeout", f"no complete reply within {timeout:.3g}s (total deadline)") from None
        except openai.APIConnectionError as e:
            cause = e.__cause__ or e.__context__
            if "larger than" in str(cause):
                maybe_billed = True
                raise _AttemptFailed("malformed", f"reply over {self.config.max_reply_bytes} bytes") from None
            raise _AttemptFailed("connection", _short(e)) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise _AttemptFailed("auth", _short(e)) from None
        except openai.APIStatusError as e:
            if e.status_code >= 500:
                raise _AttemptFailed("server_error", _short(e),
                                     _retry_after(e.response, self.config.max_retry_after_s)) from None
            raise _AttemptFailed("bad_request", _short(e)) from None
        except (openai.APIResponseValidationError, AttributeError, *PARSE_ERRORS) as e:
            raise _AttemptFailed("malformed", f"unreadable reply ({type(e).__name__})") from None
        finally:
            _DEADLINE.at = _DEADLINE.limit = None
            self.meter.release(held, maybe_billed=maybe_billed, worst_case=(worst_usd, worst_prompt + max_tokens))

    @staticmethod
    def _classify(resp, req: Request) -> tuple[str, str]:
        choices = resp.choices or []
        if not choices:
            raise _AttemptFailed("empty", "reply has no choices")
        choice = choices[0]
        text = choice.message.content if choice.message is not None else None
        if choice.finish_reason == "length":
            if not text or req.salvage is None:
                raise _AttemptFailed("truncated", "reply cut at max_tokens (finish_reason=length); "
                                                  "raise max_tokens")
            problem = _safe_check(req.salvage, text)
            if problem:
                raise _AttemptFailed("truncated", "reply cut at max_tokens (finish_reason=length) and "
                                                  f"nothing complete in it: {problem}", reply=(text, "length"))
            return text, choice.finish_reason
        if not text or not text.strip():
            raise _AttemptFailed("empty", "reply has no text")
        problem = _safe_check(req.validate, text) if req.validate else None
        if problem:
            raise _AttemptFailed("invalid", problem, reply=(text, choice.finish_reason or "stop"))
        return text, choice.finish_reason


def _safe_check(check: Callable[[str], str | None], text: str) -> str | None:
    """Run a validator; a parser blowing up on one reply makes that reply invalid, nothing more."""
    try:
        return check(text)
    except PARSE_ERRORS as error:
        return f"the reply could not be parsed ({type(error).__name__})"


def _is_count(value, allow_none: bool = False) -> bool:
    if value is None:
        return allow_none
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _normal_url(url: str | None) -> str | None:
    return url.rstrip("/").lower() if url else url


def _short(error: Exception) -> str:
    return " ".join(str(error).split())[:200]
