"""The LLM client against a fake OpenAI-compatible server (real sockets, the real openai client)."""
import pytest

from alchemist_magics.llm import BudgetExceeded, CostMeter, LLMClient, MissingAPIKeyError, PriceTable, Request
from alchemist_magics.llm.cost import DEFAULT_PRICES

MSG = [{"role": "user", "content": "write a labeling function"}]
IN, OUT = DEFAULT_PRICES["gpt-4o"]


def usd(prompt, completion):
    return (prompt * IN + completion * OUT) / 1e6


def test_meter_tokens_equal_server_usage_exactly(fake_server, make_client):
    fake_server.responder = lambda body: {"content": "ok " + body["messages"][0]["content"],
                                          "usage": {"prompt_tokens": 1234, "completion_tokens": 77}}
    client = make_client()
    results = client.complete_many([Request([{"role": "user", "content": f"q{i}"}]) for i in range(6)])
    assert all(r.ok for r in results)
    assert [r.text for r in results] == [f"ok q{i}" for i in range(6)]  # order kept
    assert client.meter.prompt_tokens == fake_server.served["prompt_tokens"] == 6 * 1234
    assert client.meter.completion_tokens == fake_server.served["completion_tokens"] == 6 * 77
    assert client.meter.spent_usd == pytest.approx(usd(6 * 1234, 6 * 77), rel=1e-12)
    assert results[0].prompt_tokens == 1234 and results[0].cost_usd == pytest.approx(usd(1234, 77))


def test_cached_rerun_makes_no_request_and_costs_nothing(fake_server, make_client):
    make_client().complete_many([Request(MSG, sample=i) for i in range(3)])
    assert fake_server.request_count == 3
    meter = CostMeter()
    again = make_client(meter=meter).complete_many([Request(MSG, sample=i) for i in range(3)])
    assert fake_server.request_count == 3
    assert all(r.ok and r.cached and r.cost_usd == 0 for r in again)
    assert meter.cache_hits == 3 and meter.requests == 0 and meter.spent_usd == 0
    # A different parameter is a different request.
    make_client().complete(MSG, temperature=0.1)
    assert fake_server.request_count == 4


def test_cached_rerun_needs_no_api_key(fake_server, make_client, monkeypatch):
    client = make_client()
    client.complete(MSG)
    monkeypatch.delenv("ALCHEMIST_TEST_FAKE_KEY")
    rerun = LLMClient(cache=client.cache, model="gpt-4o", api_key_env="ALCHEMIST_TEST_FAKE_KEY",
                      base_url=fake_server.base_url)
    assert rerun.complete(MSG).cached
    # The endpoint is part of the key: the same prompt to another server is another request.
    elsewhere = LLMClient(cache=client.cache, model="gpt-4o", api_key_env="ALCHEMIST_TEST_FAKE_KEY",
                          base_url="http://127.0.0.1:9/v1")
    assert elsewhere._prepare(Request(MSG))[1] != rerun._prepare(Request(MSG))[1]


def test_errors_are_never_cached(fake_server, make_client):
    fake_server.push({"status": 500})
    failed = make_client(max_attempts=1).complete(MSG)
    assert not failed.ok and failed.reason == "server_error"
    ok = make_client().complete(MSG)
    assert ok.ok and not ok.cached and fake_server.request_count == 2


def test_a_reply_unusable_on_every_attempt_is_kept_so_a_rerun_costs_nothing(fake_server, make_client):
    fake_server.responder = lambda body: {"content": "no code, sorry"}
    needs_code = lambda t: None if "def " in t else "no code"  # noqa: E731
    first = make_client().complete(MSG, validate=needs_code)
    assert not first.ok and first.reason == "invalid" and fake_server.request_count == 3
    client = make_client()
    again = client.complete(MSG, validate=needs_code)
    assert not again.ok and again.reason == "invalid" and again.cached and "no code" in again.detail
    assert fake_server.request_count == 3 and client.meter.requests == 0 and client.meter.cache_hits == 1
    # a validator that now accepts the kept reply turns it into a hit; another sample asks again
    assert make_client().complete(MSG, validate=lambda t: None).ok and fake_server.request_count == 3
    assert not make_client().complete(MSG, validate=needs_code, sample=1).cached and fake_server.request_count == 6


@pytest.mark.parametrize("fault, reason", [
    ({"status": 429}, "rate_limited"),
    ({"status": 500}, "server_error"),
    ({"status": 503}, "server_error"),
    ({"delay": 1.0}, "timeout"),
])
def test_transient_faults_recover(fake_server, make_client, fault, reason):
    fake_server.push(fault)
    result = make_client(timeout_s=0.3).complete(MSG)
    assert result.ok and result.attempts == 2
    assert result.failures[0].startswith(reason)


def test_retry_after_is_honoured(fake_server, make_client):
    fake_server.push({"status": 429, "headers": {"Retry-After": "0.3"}})
    result = make_client().complete(MSG)
    assert result.ok
    first, second = fake_server.request_times
    assert second - first >= 0.3  # backoff base is 1 ms, so only Retry-After explains the wait


@pytest.mark.parametrize("fault, reason, detail", [
    ({"body": b"this is not json"}, "malformed", "unreadable"),
    ({"body": b""}, "malformed", "unreadable"),
    ({"body": b"{}"}, "malformed", "no usage"),
    ({"no_choices": True}, "empty", "no choices"),
    ({"content": "   "}, "empty", "no text"),
    ({"finish_reason": "length"}, "truncated", "finish_reason=length"),
    ({"status": 401}, "auth", "401"),
    ({"status": 400}, "bad_request", "400"),
])
def test_bad_replies_are_reported_with_their_reason(fake_server, make_client, fault, reason, detail):
    fake_server.responder = lambda body: fault
    result = make_client().complete(MSG)
    assert not result.ok and result.text is None
    assert result.reason == reason and detail in result.detail
    final = reason in ("auth", "bad_request")
    assert fake_server.request_count == (1 if final else 3)  # retried unless retrying cannot help


def test_invalid_reply_is_retried_then_kept(fake_server, make_client):
    fake_server.push({"content": "no code, sorry"})
    result = make_client().complete(MSG, validate=lambda t: None if "def " in t else "no code")
    assert result.ok and "def label_function" in result.text
    assert result.failures == ["invalid: no code"]


def test_fault_never_double_counts_cost(fake_server, make_client):
    # 500 and 429 bill nothing; a truncated reply is billed once; the final reply once.
    fake_server.push({"status": 500}, {"status": 429},
                     {"finish_reason": "length", "usage": {"prompt_tokens": 100, "completion_tokens": 50}},
                     {"usage": {"prompt_tokens": 100, "completion_tokens": 20}})
    client = make_client(max_attempts=4)
    result = client.complete(MSG)
    assert result.ok and result.attempts == 4
    assert fake_server.served == {"prompt_tokens": 200, "completion_tokens": 70}
    assert (client.meter.prompt_tokens, client.meter.completion_tokens) == (200, 70)
    assert result.cost_usd == pytest.approx(usd(200, 70)) == pytest.approx(client.meter.spent_usd)
    assert len(client.meter.records) == 2


def test_budget_never_exceeded_under_retries(fake_server, make_client):
    # Every reply is truncated, so each request retries until the budget stops it.
    fake_server.responder = lambda body: {"finish_reason": "length",
                                          "usage": {"prompt_tokens": 40, "completion_tokens": 100}}
    budget = 0.02
    client = make_client(max_attempts=10, max_tokens=100, concurrency=4, meter=CostMeter(budget_usd=budget))
    results = client.complete_many([Request(MSG, sample=i) for i in range(8)])
    served_usd = usd(fake_server.served["prompt_tokens"], fake_server.served["completion_tokens"])
    assert client.meter.spent_usd == pytest.approx(served_usd)
    assert served_usd <= budget
    assert fake_server.request_count >= 5  # the budget, not the request count, stopped us
    assert all(not r.ok for r in results)
    assert {r.reason for r in results} == {"budget"}
    assert all("budget" in r.failures[-1] for r in results)


def test_budget_with_timeouts_keeps_worst_case(fake_server, make_client):
    fake_server.responder = lambda body: {"delay": 0.5}
    meter = CostMeter(budget_usd=0.01)
    result = make_client(meter=meter, timeout_s=0.1, max_attempts=20, max_tokens=200).complete(MSG)
    assert result.reason == "budget"
    # Timed-out attempts may be billed by a real provider: their worst case stays counted.
    assert 0 < meter.unaccounted_usd <= 0.01 and meter.spent_usd == 0


def test_missing_key_is_one_clear_line(fake_server, monkeypatch, tmp_path):
    monkeypatch.delenv("MY_LLM_KEY", raising=False)
    client = LLMClient(base_url=fake_server.base_url, api_key_env="MY_LLM_KEY", cache=tmp_path)
    with pytest.raises(MissingAPIKeyError) as info:
        client.complete(MSG)
    message = str(info.value)
    assert "MY_LLM_KEY" in message and "\n" not in message
    assert fake_server.request_count == 0


def test_default_key_variable_is_openai_api_key(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="Set the OPENAI_API_KEY environment variable"):
        LLMClient(cache=tmp_path).complete(MSG)


def test_config_from_environment(monkeypatch):
    monkeypatch.setenv("ALCHEMIST_MODEL", "my-model")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    client = LLMClient(cache=None)
    assert client.config.model == "my-model" and client.config.base_url == "http://127.0.0.1:9/v1"
    with pytest.raises(TypeError, match="unknown LLMConfig field"):
        LLMClient(cache=None, modle="x")


def test_unknown_model_price_is_unknown_not_a_crash(fake_server, make_client):
    client = make_client(model="my-local-llama")
    result = client.complete(MSG)  # 127.0.0.1: a local model, whose cost is its tokens and time
    assert result.ok and result.cost_usd is None and client.meter.cost_text().startswith("local: ")
    with pytest.warns(UserWarning, match="no price known for model 'my-local-llama'"):
        CostMeter().record("my-local-llama", 10, 10)  # from a remote endpoint it is worth a warning
    assert client.meter.summary()["cost_usd"] is None and client.meter.unknown_cost_requests == 1
    with pytest.raises(BudgetExceeded, match="price is unknown. Give the budget in tokens"):
        make_client(model="my-local-llama", meter=CostMeter(budget_usd=1.0)).complete([{"role": "user", "content": "x"}])


def test_price_table_matches_dated_names_and_is_extendable():
    prices = PriceTable()
    assert prices.lookup("gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
    assert prices.lookup("gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]
    assert prices.lookup("openai/gpt-4o") == DEFAULT_PRICES["gpt-4o"]
    prices.set("llama-3-8b", 0.05, 0.10)
    assert prices.cost("llama-3-8b", 1_000_000, 1_000_000) == pytest.approx(0.15)


def test_concurrent_requests_overlap(fake_server, make_client):
    fake_server.latency_s = 0.3
    results = make_client(concurrency=5).complete_many([Request(MSG, sample=i) for i in range(5)])
    assert all(r.ok for r in results)
    assert fake_server.max_in_flight >= 2  # the requests were waiting on the server together
