"""The opt-in real-model check: ``pytest -m local_llm`` with a GGUF file and llama-cpp-python.

Skipped unless ``ALCHEMIST_GGUF`` names a GGUF file and ``ALCHEMIST_LLAMA_PYTHON`` (default: this
Python) can ``import llama_cpp.server``. Nothing is downloaded here: see docs/local-llm.md for how
to install llama-cpp-python (a source build, ~7 min) and get a small GGUF model.

    ALCHEMIST_GGUF=/work/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf \
    ALCHEMIST_LLAMA_PYTHON=/work/llama-venv/bin/python .venv/bin/python -m pytest -m local_llm
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GGUF = os.environ.get("ALCHEMIST_GGUF", "")
PYTHON = os.environ.get("ALCHEMIST_LLAMA_PYTHON", sys.executable)


def _why_not() -> str | None:
    if not GGUF:
        return "set ALCHEMIST_GGUF to a GGUF file to run the real-model check (docs/local-llm.md)"
    if not Path(GGUF).is_file():
        return f"ALCHEMIST_GGUF={GGUF} is not a file"
    probe = subprocess.run([PYTHON, "-c", "import llama_cpp.server"], capture_output=True)
    if probe.returncode:
        return (f"{PYTHON} cannot import llama_cpp.server: install llama-cpp-python[server] "
                f"(docs/local-llm.md) or point ALCHEMIST_LLAMA_PYTHON at the Python that has it")
    return None


REASON = _why_not()
pytestmark = [pytest.mark.local_llm, pytest.mark.skipif(REASON is not None, reason=REASON or "")]


def test_real_model_writes_programs_that_run(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    import local_llm

    n = int(os.environ.get("ALCHEMIST_LOCAL_N", "3"))
    result = local_llm.main(["--gguf", GGUF, "--server-python", PYTHON, "--datasets", "youtube",
                             "--n", str(n), "--work", str(tmp_path)])
    row = result["datasets"]["youtube"]
    assert row["timeouts"] == 0
    assert row["programs_kept"] >= 1
    # The meter's books match the server's: every computed reply was read and counted.
    assert row["meter_requests"] == row["server_requests_computed"]
    assert row["meter_completion_tokens"] == row["server_generated_tokens"] + row["meter_requests"] or \
        row["meter_completion_tokens"] == row["server_generated_tokens"]
    assert row["rerun_requests"] == 0 and row["rerun_cache_hits"] == n
    assert row["cost_text"].startswith("local: ")
