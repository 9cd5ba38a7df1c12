"""10 program requests against the fake OpenAI server with 1 s latency each.

Run: python bench/llm_concurrency.py
Last line: JSON with wall_s (concurrent, through generate_programs and the real openai client)
and sequential_s (the sum of the server's latencies: what one-at-a-time requests would take).
Bar: wall_s <= 2.
"""
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fake_openai import FakeOpenAI  # noqa: E402

from alchemist_magics.llm import LLMClient, generate_programs  # noqa: E402
from alchemist_magics.task import TaskSpec  # noqa: E402

N, LATENCY_S = 10, 1.0


def distinct_program(body):
    """A different program per request (so none is dropped as a near-duplicate)."""
    k = len(body["messages"][-1]["content"])  # prompts differ per request (strategy, used list)
    checks = "\n".join(f"    if text.count({chr(65 + j)!r}) > {k % 7 + j}:\n        return {j % 2}" for j in range(k % 9 + 1))
    return {"content": f"```python\ndef label_function(text):\n    if len(text) > {k}:\n        return 1\n{checks}\n    return -1\n```"}


def main():
    task = TaskSpec("bench", "Is this YouTube comment spam?", ["ham", "spam"])
    os.environ["ALCHEMIST_BENCH_KEY"] = "fake"
    with FakeOpenAI(distinct_program, latency_s=LATENCY_S) as server:
        client = LLMClient(cache=None, model="gpt-4o", base_url=server.base_url, api_key_env="ALCHEMIST_BENCH_KEY",
                           concurrency=N)
        start = time.perf_counter()
        result = generate_programs(task, n=N, client=client, similarity=1.01)
        wall = time.perf_counter() - start
    print(json.dumps({"requests": server.request_count, "programs": len(result.programs),
                      "latency_per_request_s": LATENCY_S, "max_in_flight": server.max_in_flight,
                      "wall_s": round(wall, 3), "sequential_s": N * LATENCY_S}))


if __name__ == "__main__":
    main()
