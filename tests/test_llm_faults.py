"""Client faults a real server (local or cloud) produces, against the fake server on 127.0.0.1:
Retry-After variants, drips, malformed/huge bodies, lying usage, one-at-a-time servers, model
discovery, keyless local endpoints, cost shown for local models, token budgets."""
import math
import time
import warnings

import pytest

from alchemist_magics.llm import CostMeter, LLMClient, Request
from alchemist_magics.llm.client import AdaptiveLimiter, is_local_endpoint, parse_retry_after
from alchemist_magics.llm.cost import worst_case_prompt_tokens
from fake_openai import FakeOpenAI

MSG = [{"role": "user", "content": "write a labeling function"}]


# -- Retry-After ------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers, expected", [
    ({"retry-after": "2"}, 2.0),
    ({"retry-after": "-5"}, 0.0),
    ({"retry-after": "nan"}, None),
    ({"retry-after": "inf"}, 120.0),
    ({"retry-after": "1e400"}, 120.0),
    ({"retry-after": "999999999"}, 120.0),
    ({"retry-after": "soon"}, None),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past
    ({"retry-after-ms": "250"}, 0.25),
    ({"retry-after-ms": "-1"}, 0.0),
    ({"retry-after-ms": "NaN"}, None),
    ({}, None),
])
def test_retry_after_is_clamped_never_raises(headers, expected):
    assert parse_retry_after(headers, cap_s=120.0) == expected


@pytest.mark.parametrize("value", ["-3", "nan", "1e400", "999999999", "garbage", "Thu, 01 Jan 2099 00:00:00 GMT"])
def test_hostile_retry_after_headers_recover(fake_server, make_client, value):
    fake_server.push({"status": 429, "headers": {"Retry-After": value}})
    waits = []
    result = make_client(sleep=waits.append, max_retry_after_s=0.5).complete(MSG)
    assert result.ok and result.attempts == 2
    assert all(math.isfinite(w) and 0 <= w <= 0.5 for w in waits)


# -- total deadline ---------------------------------------------------------------------------------
def test_timeout_is_a_total_deadline_even_when_the_server_drips(fake_server, make_client):
    fake_server.push({"drip": 0.4})  # one byte every 0.4 s: every read succeeds, the reply never ends
    start = time.monotonic()
    result = make_client(timeout_s=1.0, max_attempts=1).complete(MSG)
    took = time.monotonic() - start
    assert not result.ok and result.reason == "timeout" and "total deadline" in result.detail
    assert took < 2.5  # not the ~100 s the drip would take


def test_a_slow_but_steady_reply_within_the_deadline_is_read(fake_server, make_client):
    fake_server.push({"drip": 0.0005})
    assert make_client(timeout_s=5.0).complete(MSG).ok


# -- malformed, huge, lying usage ---------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"[" * 200_000 + b"]" * 200_000, b'{"choices": [' * 50_000, b"\xff\xfe\x00garbage"])
def test_pathological_bodies_are_malformed_not_a_crash(fake_server, make_client, body):
    fake_server.responder = lambda b: {"body": body}
    result = make_client(max_attempts=2).complete(MSG)
    assert not result.ok and result.reason == "malformed"


def test_huge_reply_is_cut_off_and_reported(fake_server, make_client):
    fake_server.responder = lambda b: {"content": "x" * 3_000_000}
    result = make_client(max_attempts=1, max_reply_bytes=1_000_000).complete(MSG)
    assert not result.ok and result.reason == "malformed" and "bytes" in result.detail


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": 10, "completion_tokens": 10**9},
    {"prompt_tokens": -50, "completion_tokens": -7},
    {"prompt_tokens": 10**12, "completion_tokens": 5},
])
def test_lying_usage_is_clamped_to_the_reservation_and_counted(fake_server, make_client, usage):
    fake_server.responder = lambda b: {"usage": usage}
    budget = 0.05
    meter = CostMeter(budget_usd=budget)
    client = make_client(meter=meter, max_tokens=100)
    results = client.complete_many([Request(MSG, sample=i) for i in range(3)])
    assert all(r.ok for r in results)
    worst = worst_case_prompt_tokens(MSG)
    assert all(0 <= r.prompt_tokens <= worst and 0 <= r.completion_tokens <= 100 for r in results)
    assert meter.usage_faults == 3 and meter.spent_usd <= budget
    assert meter.reported_tokens == [3 * usage["prompt_tokens"], 3 * usage["completion_tokens"]]
    assert all(r.usage_fault for r in meter.records)


def test_usage_with_wrong_types_is_malformed(fake_server, make_client):
    fake_server.responder = lambda b: {"usage": {"prompt_tokens": "many", "completion_tokens": 3}}
    result = make_client(max_attempts=1).complete(MSG)
    assert not result.ok and result.reason == "malformed"


def test_parser_blowing_up_on_one_reply_fails_only_that_reply(fake_server, make_client):
    def validate(text):
        if "bomb" in text:
            raise RecursionError("maximum recursion depth exceeded")
        return None

    fake_server.responder = lambda b: {"content": "bomb" if b["messages"][0]["content"] == "q0" else "fine"}
    results = make_client(max_attempts=2).complete_many(
        [Request([{"role": "user", "content": f"q{i}"}], validate=validate) for i in range(3)])
    assert [r.ok for r in results] == [False, True, True]
    assert results[0].reason == "invalid" and "RecursionError" in results[0].detail


def test_truncated_reply_is_kept_only_when_salvage_accepts_it(fake_server, make_client):
    fake_server.responder = lambda b: {"finish_reason": "length", "content": "complete part\ncut mi"}
    kept = make_client().complete(MSG, salvage=lambda t: None if "complete" in t else "nothing")
    assert kept.ok and kept.finish_reason == "length"
    again = make_client().complete(MSG, salvage=lambda t: None if "complete" in t else "nothing")
    assert again.cached  # a salvaged reply is paid for once
    refused = make_client(max_attempts=1).complete(MSG, sample=1, salvage=lambda t: "no complete function")
    assert not refused.ok and refused.reason == "truncated" and "no complete function" in refused.detail


# -- one-at-a-time servers and adaptive concurrency ------------------------------------------------------
@pytest.fixture
def serial_server():
    with FakeOpenAI(serial=True) as server:
        yield server


def _client(server, tmp_path, **overrides):
    settings = dict(model="m", base_url=server.base_url, api_key_env="", backoff_base_s=0.001, max_attempts=4)
    settings.update(overrides)
    return LLMClient(cache=tmp_path / "cache", **settings)


def test_defaults_against_a_one_at_a_time_server_never_time_out(serial_server, tmp_path):
    serial_server.responder = lambda b: {"work": 0.15}
    client = _client(serial_server, tmp_path)
    results = client.complete_many([Request(MSG, sample=i) for i in range(8)])
    assert all(r.ok and r.attempts == 1 for r in results)
    assert serial_server.request_count == 8 and serial_server.served_unread == 0
    assert client.meter.prompt_tokens == serial_server.served["prompt_tokens"]
    assert client.meter.completion_tokens == serial_server.served["completion_tokens"]
    # A local endpoint starts at 1; queueing (replies at half speed) stops the growth, so the
    # limit oscillates around 1-2 (timing noise on a busy machine may let it touch 3 once).
    assert client.limiter.peak <= 3 and client.limiter.history[0] == 1


def test_no_resend_while_the_stale_attempt_may_still_run(serial_server, tmp_path):
    serial_server.push({"work": 0.5})  # the first attempt takes 0.5 s of server time
    client = _client(serial_server, tmp_path, timeout_s=0.3)
    result = client.complete(MSG)
    assert result.ok and result.attempts == 2 and result.failures[0].startswith("timeout")
    first, second = serial_server.request_times
    assert second - first >= 0.5  # the retry waited for the server to be done with the stale one
    assert serial_server.max_in_flight == 1


def test_concurrency_grows_on_a_parallel_server_and_shrinks_on_timeouts(fake_server, tmp_path):
    fake_server.latency_s = 0.05
    client = _client(fake_server, tmp_path, base_url=fake_server.base_url.replace("127.0.0.1", "localhost"))
    assert client.local
    results = client.complete_many([Request(MSG, sample=i) for i in range(24)])
    assert all(r.ok for r in results)
    assert client.limiter.peak >= 3 and fake_server.max_in_flight >= 3
    limiter = AdaptiveLimiter(8, 8)
    limiter.acquire()
    limiter.release(slowdown=True, stale_until=time.monotonic() + 0.2)
    assert limiter.limit == 4 and len(limiter.stale) == 1


def test_explicit_concurrency_without_adaptation_is_respected(fake_server, make_client):
    fake_server.latency_s = 0.1
    client = make_client(concurrency=3, adaptive=False)
    client.complete_many([Request(MSG, sample=i) for i in range(9)])
    assert fake_server.max_in_flight == 3


def test_progress_is_reported_per_request(fake_server, make_client):
    seen = []
    make_client(on_progress=seen.append).complete_many([Request(MSG, sample=i) for i in range(4)])
    assert [p.done for p in seen] == [1, 2, 3, 4] and seen[-1].total == 4
    assert seen[-1].completion_tokens > 0 and "4/4 requests done" in str(seen[-1])


# -- local endpoints ---------------------------------------------------------------------------------------
def test_model_is_asked_from_the_server_and_remembered(tmp_path, monkeypatch):
    monkeypatch.delenv("ALCHEMIST_MODEL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAI(models=["qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"]) as server:
        client = LLMClient(base_url=server.base_url, cache=tmp_path)  # no model, no key: a local server
        result = client.complete(MSG)
        assert result.ok and result.model == "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
        assert server.requests[0]["model"] == result.model and server.model_list_requests == 1
        base_url = server.base_url
    # The server is gone: the cached re-run still knows the model and needs no request.
    rerun = LLMClient(base_url=base_url, cache=tmp_path, models_timeout_s=0.5)
    assert rerun.complete(MSG).cached


def test_model_discovery_failure_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("ALCHEMIST_MODEL", raising=False)
    with FakeOpenAI(models=None) as server:
        client = LLMClient(base_url=server.base_url, api_key_env="", cache=tmp_path)
        with pytest.raises(RuntimeError, match="did not list its models.*set model="):
            client.complete(MSG)


def test_keyless_local_server_needs_no_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAI() as server:
        assert LLMClient(model="m", base_url=server.base_url, cache=None).complete(MSG).ok


def test_missing_key_message_names_the_keyless_setting(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(Exception, match="api_key_env=''"):
        LLMClient(model="m", base_url="https://llm.example.com/v1", cache=tmp_path).complete(MSG)


@pytest.mark.parametrize("url, local", [
    ("http://127.0.0.1:8080/v1", True), ("http://localhost:11434/v1", True), ("http://[::1]:8000/v1", True),
    ("http://192.168.1.20:8000/v1", True), ("http://10.0.0.3/v1", True), ("https://api.openai.com/v1", False),
    (None, False),
])
def test_local_endpoints_are_recognised(url, local):
    assert is_local_endpoint(url) == local


def test_local_cost_reads_tokens_and_time_never_zero_dollars(fake_server, tmp_path):
    client = _client(fake_server, tmp_path, model="my-gguf")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a local model has no price: no warning about it either
        client.complete_many([Request(MSG, sample=i) for i in range(2)])
    text = client.meter.cost_text()
    tokens = client.meter.prompt_tokens + client.meter.completion_tokens
    assert text.startswith(f"local: {tokens} tokens, ") and text.endswith(" s") and "$" not in text
    seconds = float(text.split(", ")[1][:-2])
    assert 0 <= seconds <= client.progress.elapsed_s + 0.05  # wall-clock time, not a sum of waits
    assert client.meter.summary()["cost_usd"] is None
    remote = CostMeter()
    with pytest.warns(UserWarning):
        remote.record("mystery-model", 100, 10)
    assert remote.cost_text() == "unknown (110 tokens; no price for mystery-model)"
    assert "$0.0000" not in repr(remote)


def test_token_budget_works_for_a_model_without_price(fake_server, tmp_path):
    fake_server.responder = lambda b: {"usage": {"prompt_tokens": 40, "completion_tokens": 90}}
    meter = CostMeter(budget_tokens=1000)
    client = LLMClient(model="local-gguf", base_url=fake_server.base_url, api_key_env="", meter=meter,
                       cache=None, max_tokens=100, backoff_base_s=0.001)
    results = client.complete_many([Request(MSG, sample=i) for i in range(10)])
    assert meter.spent_tokens <= 1000 and meter.spent_tokens == sum(fake_server.served.values())
    assert 1 <= sum(r.ok for r in results) < 10
    assert {r.reason for r in results if not r.ok} == {"budget"}
    with meter.limit(budget_tokens=0):
        assert not client.complete(MSG, sample=99).ok


def test_timeouts_without_a_budget_are_still_counted(fake_server, make_client):
    fake_server.push({"delay": 0.6})
    client = make_client(timeout_s=0.2)
    result = client.complete(MSG)
    assert result.ok and result.attempts == 2
    s = client.meter.summary()
    assert s["unbilled_attempts"] == 1 and s["unaccounted_usd"] > 0 and s["unaccounted_tokens"] > 0


def test_the_limiter_carries_over_between_batches(fake_server, tmp_path):
    fake_server.latency_s = 0.05
    client = _client(fake_server, tmp_path, base_url=fake_server.base_url.replace("127.0.0.1", "localhost"))
    client.complete_many([Request(MSG, sample=i) for i in range(12)])
    learned = client.limiter.limit
    limiter = client.limiter
    client.complete_many([Request(MSG, sample=100 + i) for i in range(4)])
    assert client.limiter is limiter  # the second batch started from the learned limit
    assert limiter.history[:1] == [1] and learned >= 1
