"""A small chat client over the ``openai`` package for any OpenAI-compatible endpoint.

It adds what the raw client lacks for this tool: concurrency for N requests, retries with
backoff that honour ``Retry-After``, a reason for every failure (rate limit, timeout, malformed,
empty, truncated, invalid...), the on-disk response cache, and the cost meter with its budget.
"""
from __future__ import annotations

import email.utils
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import openai

from .cache import ResponseCache, request_key
from .cost import BudgetExceeded, CostMeter

DEFAULT_MODEL = "gpt-4o-mini"

# Failure reasons. Retried: the server or the reply may do better next time.
RETRIED = {"rate_limited", "server_error", "timeout", "connection", "malformed", "empty",
           "truncated", "invalid"}
# Not retried: the same request would fail the same way.
FINAL = {"auth", "bad_request", "budget"}


class MissingAPIKeyError(RuntimeError):
    """No API key in the configured environment variable."""

    def __init__(self, env_var: str):
        super().__init__(f"Set the {env_var} environment variable to your API key "
                         f"(or point api_key_env at the variable that holds it).")
        self.env_var = env_var


@dataclass
class LLMConfig:
    """Where and how to ask. Defaults come from ``ALCHEMIST_MODEL`` and ``OPENAI_BASE_URL``;
    the key is read from the variable *named* by ``api_key_env`` (never stored here).
    ``api_key_env=""`` means the endpoint needs no key (a local vLLM or Ollama)."""

    model: str = field(default_factory=lambda: os.environ.get("ALCHEMIST_MODEL") or DEFAULT_MODEL)
    base_url: str | None = field(default_factory=lambda: os.environ.get("OPENAI_BASE_URL") or None)
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.7
    max_tokens: int = 1024
    timeout_s: float = 60.0
    max_attempts: int = 4
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0
    concurrency: int = 8


@dataclass
class Request:
    """One chat request. ``sample`` tells apart otherwise identical requests in the cache (the
    i-th of N samples at the same prompt); ``validate(text)`` returns a failure detail or None."""

    messages: list[dict]
    temperature: float | None = None
    max_tokens: int | None = None
    sample: int = 0
    validate: Callable[[str], str | None] | None = None
    purpose: str = ""


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


class _AttemptFailed(Exception):
    def __init__(self, reason: str, detail: str, wait_s: float | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.wait_s = reason, detail, wait_s


def _retry_after(response) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``retry-after``), if any."""
    headers = getattr(response, "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return float(value)
        except ValueError:  # an HTTP date
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class LLMClient:
    """Chat completions with cache, cost meter, budget, retries and concurrency.

    Args:
        config: an ``LLMConfig`` (defaults from the environment).
        cache: a ``ResponseCache``, a folder for one, or None for no cache.
        meter: the ``CostMeter`` every request is recorded on (a fresh one by default).
        **overrides: any ``LLMConfig`` field, e.g. ``model="gpt-4o"``.
    """

    def __init__(self, config: LLMConfig | None = None, *, cache=".alchemist/cache/llm",
                 meter: CostMeter | None = None, sleep: Callable[[float], None] = time.sleep,
                 **overrides):
        self.config = config or LLMConfig()
        for name, value in overrides.items():
            if not hasattr(self.config, name):
                raise TypeError(f"unknown LLMConfig field {name!r}")
            setattr(self.config, name, value)
        self.cache = ResponseCache(cache) if isinstance(cache, (str, os.PathLike)) else cache
        self.meter = meter if meter is not None else CostMeter()
        self._sleep = sleep
        self._openai: openai.OpenAI | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        return self.config.model

    def _api(self) -> openai.OpenAI:
        """The openai client, made on first network use (a cached re-run needs no key)."""
        with self._lock:
            if self._openai is None:
                env = self.config.api_key_env
                key = os.environ.get(env) if env else "no-key-needed"
                if not key:
                    raise MissingAPIKeyError(env)
                # Retries are ours (budget accounting per attempt), so the SDK's are off.
                self._openai = openai.OpenAI(api_key=key, base_url=self.config.base_url,
                                             timeout=self.config.timeout_s, max_retries=0)
            return self._openai

    # -- public -----------------------------------------------------------------------------
    def complete(self, messages: list[dict], **request_fields) -> Completion:
        """Send one chat request (see ``Request`` for the optional fields)."""
        return self.complete_many([Request(messages, **request_fields)])[0]

    def complete_many(self, requests: list[Request]) -> list[Completion]:
        """Send many requests concurrently; results keep the order of ``requests``.

        Every request gets a ``Completion``; failures carry their reason and never discard the
        ones that succeeded. Raises only ``MissingAPIKeyError`` (nothing could be sent) and
        ``BudgetExceeded`` when a budget is set for a model with no known price.
        """
        prepared = [self._prepare(r) for r in requests]
        results: list[Completion | None] = [self._from_cache(r, p) for r, p in zip(requests, prepared)]
        todo = [i for i, c in enumerate(results) if c is None]
        if todo:
            self._api()  # fail once, clearly, before starting threads
            self.meter.check_budget_possible(self.config.model)
            workers = max(1, min(self.config.concurrency, len(todo)))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                done = pool.map(lambda i: self._send(requests[i], prepared[i]), todo)
                for i, completion in zip(todo, done):
                    results[i] = completion
        return results

    # -- internals --------------------------------------------------------------------------
    def _prepare(self, req: Request) -> tuple[dict, str]:
        params = {"temperature": self.config.temperature if req.temperature is None else req.temperature,
                  "max_tokens": self.config.max_tokens if req.max_tokens is None else req.max_tokens,
                  "sample": req.sample}
        return params, request_key(req.messages, self.config.model, params)

    def _completion(self, req: Request, prepared: tuple[dict, str], **fields) -> Completion:
        params, key = prepared
        return Completion(model=self.config.model, params=params, messages=req.messages, key=key, **fields)

    def _from_cache(self, req: Request, prepared) -> Completion | None:
        entry = self.cache.get(prepared[1]) if self.cache is not None else None
        if entry is None or (req.validate and req.validate(entry["text"])):
            return None
        self.meter.record(self.config.model, 0, 0, cached=True, purpose=req.purpose)
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
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                text, finish, usage = self._attempt(req, params, spent)
            except _AttemptFailed as failure:
                last = failure
                failures.append(f"{failure.reason}: {failure.detail}")
                if failure.reason in FINAL or attempt == self.config.max_attempts:
                    break
                self._sleep(self._backoff(attempt, failure.wait_s))
                continue
            if self.cache is not None:
                self.cache.put(key, {"text": text, "finish_reason": finish, "model": self.config.model,
                                     "prompt_tokens": usage[0], "completion_tokens": usage[1]})
            return self._completion(req, prepared, ok=True, text=text, reason=None, detail="",
                                    finish_reason=finish, attempts=attempt, failures=failures,
                                    elapsed_s=time.perf_counter() - start, **self._totals(spent))
        return self._completion(req, prepared, ok=False, text=None, reason=last.reason,
                                detail=last.detail, attempts=len(failures), failures=failures,
                                elapsed_s=time.perf_counter() - start, **self._totals(spent))

    @staticmethod
    def _totals(spent: dict) -> dict:
        return {"prompt_tokens": spent["prompt"], "completion_tokens": spent["completion"],
                "cost_usd": spent["cost"] if spent["cost_known"] else None}

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.config.max_retry_after_s)
        wait = self.config.backoff_base_s * 2 ** (attempt - 1) * (0.5 + random.random() / 2)
        return min(wait, self.config.backoff_max_s)

    def _attempt(self, req: Request, params: dict, spent: dict) -> tuple[str, str, tuple[int, int]]:
        """One network attempt: reserve budget, send, settle, classify the reply."""
        model = self.config.model
        try:
            held = self.meter.reserve(self.meter.worst_case_usd(model, req.messages, params["max_tokens"]))
        except BudgetExceeded as e:
            raise _AttemptFailed("budget", str(e)) from None
        maybe_billed = False
        try:
            resp = self._api().chat.completions.create(
                model=model, messages=req.messages, temperature=params["temperature"],
                max_tokens=params["max_tokens"])
            usage = getattr(resp, "usage", None)
            if usage is None or usage.prompt_tokens is None:
                maybe_billed = True  # billed or not, we cannot know: keep the worst case counted
                raise _AttemptFailed("malformed", "reply has no usage")
            rec = self.meter.record(model, usage.prompt_tokens, usage.completion_tokens or 0,
                                    purpose=req.purpose)
            spent["prompt"] += rec.prompt_tokens
            spent["completion"] += rec.completion_tokens
            if rec.cost_usd is None:
                spent["cost_known"] = False
            else:
                spent["cost"] += rec.cost_usd
            return self._classify(resp, req) + ((rec.prompt_tokens, rec.completion_tokens),)
        except openai.RateLimitError as e:
            raise _AttemptFailed("rate_limited", _short(e), _retry_after(e.response)) from None
        except openai.APITimeoutError:
            maybe_billed = True
            raise _AttemptFailed("timeout", f"no reply within {self.config.timeout_s}s") from None
        except openai.APIConnectionError as e:
            raise _AttemptFailed("connection", _short(e)) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise _AttemptFailed("auth", _short(e)) from None
        except openai.APIStatusError as e:
            if e.status_code >= 500:
                raise _AttemptFailed("server_error", _short(e), _retry_after(e.response)) from None
            raise _AttemptFailed("bad_request", _short(e)) from None
        except (openai.APIResponseValidationError, ValueError, AttributeError, TypeError) as e:
            raise _AttemptFailed("malformed", f"unreadable reply ({type(e).__name__})") from None
        finally:
            self.meter.release(held, maybe_billed=maybe_billed)

    @staticmethod
    def _classify(resp, req: Request) -> tuple[str, str]:
        choices = resp.choices or []
        if not choices:
            raise _AttemptFailed("empty", "reply has no choices")
        choice = choices[0]
        text = choice.message.content if choice.message is not None else None
        if choice.finish_reason == "length":
            raise _AttemptFailed("truncated", "reply cut at max_tokens (finish_reason=length); "
                                              "raise max_tokens")
        if not text or not text.strip():
            raise _AttemptFailed("empty", "reply has no text")
        problem = req.validate(text) if req.validate else None
        if problem:
            raise _AttemptFailed("invalid", problem)
        return text, choice.finish_reason


def _short(error: Exception) -> str:
    return " ".join(str(error).split())[:200]
