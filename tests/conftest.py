import pytest

# ---- LLM layer fixtures (tests/test_llm_*.py) -------------------------------------------------
from fake_openai import FakeOpenAI

FAKE_KEY_ENV = "ALCHEMIST_TEST_FAKE_KEY"


@pytest.fixture
def fake_server():
    """A running fake OpenAI-compatible server on 127.0.0.1 (real socket)."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def make_client(fake_server, tmp_path, monkeypatch):
    """Build an LLMClient pointed at the fake server, with tiny backoff and a temp cache."""
    from alchemist_magics.llm import CostMeter, LLMClient

    monkeypatch.setenv(FAKE_KEY_ENV, "test-key-not-secret")

    def make(cache=True, meter=None, **overrides):
        settings = dict(model="gpt-4o", base_url=fake_server.base_url, api_key_env=FAKE_KEY_ENV,
                        backoff_base_s=0.001, timeout_s=5.0, max_attempts=3)
        settings.update(overrides)
        return LLMClient(cache=tmp_path / "cache" if cache else None, meter=meter or CostMeter(), **settings)

    return make
# ---- end of LLM layer fixtures ----------------------------------------------------------------
