"""What labeling every row with the LLM would cost vs asking it for 10 programs.

Run: python bench/cost.py            (set TIKTOKEN_CACHE_DIR for exact tiktoken counts offline)
For WRENCH youtube and sms train: the zero-shot counterfactual (the paper's per-row prompt, token
counts of every row's real prompt, reply = the requested {'class': '<name>'}) against 10 program
requests built exactly as generate_programs builds them (5 labeled exemplars per class, one
strategy per request, the 'already used' list), with an assumed reply of
TYPICAL_PROGRAM_REPLY_TOKENS tokens each (the worst case at max_tokens is shown too).
Last line: JSON with zero_shot_usd, programs_usd and ratio per dataset and model.
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alchemist_magics.data import load_wrench  # noqa: E402
from alchemist_magics.llm import PriceTable, TokenCounter, select_exemplars, zero_shot_counterfactual  # noqa: E402
from alchemist_magics.llm.client import LLMConfig  # noqa: E402
from alchemist_magics.llm.cost import TYPICAL_PROGRAM_REPLY_TOKENS  # noqa: E402
from alchemist_magics.llm.generate import program_requests  # noqa: E402
from alchemist_magics.task import TaskSpec  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MODELS = ["gpt-3.5-turbo", "gpt-4o"]
N_PROGRAMS = 10
TASKS = {
    "youtube": TaskSpec("youtube", "Is this YouTube comment spam?", ["ham", "spam"],
                        input_description="the text of one YouTube comment (a str)"),
    "sms": TaskSpec("sms", "Is this SMS text message spam?", ["ham", "spam"],
                    input_description="the text of one SMS message (a str)"),
}


def main():
    prices = PriceTable()
    max_tokens = LLMConfig().max_tokens
    out = {"assumptions": {"program_reply_tokens": TYPICAL_PROGRAM_REPLY_TOKENS, "n_programs": N_PROGRAMS,
                           "exemplars_per_class": 5, "max_tokens": max_tokens,
                           "prices_per_1m": {m: prices.lookup(m) for m in MODELS}}}
    for name, task in TASKS.items():
        train = load_wrench(DATA / name)["train"]
        texts = train.texts
        exemplars = select_exemplars(texts, train.labels, task.classes, k=5, seed=0)
        requests, _ = program_requests(task, N_PROGRAMS, exemplars=exemplars)
        row = {"rows": len(texts), "zero_shot_usd": {}, "programs_usd": {}, "programs_worst_case_usd": {},
               "ratio": {}, "break_even_rows": {}, "zero_shot_tokens": {}, "program_prompt_tokens": {}, "token_count_method": {}}
        for model in MODELS:
            cf = zero_shot_counterfactual(task, texts, model, prices=prices)
            counter = TokenCounter(model)
            prompt = sum(counter.count_messages(r.messages) for r in requests)
            programs = prices.cost(model, prompt, TYPICAL_PROGRAM_REPLY_TOKENS * N_PROGRAMS)
            row["zero_shot_usd"][model] = round(cf["usd"], 6)
            row["zero_shot_tokens"][model] = [cf["prompt_tokens"], cf["completion_tokens"]]
            row["programs_usd"][model] = round(programs, 6)
            row["programs_worst_case_usd"][model] = round(prices.cost(model, prompt, max_tokens * N_PROGRAMS), 6)
            row["program_prompt_tokens"][model] = prompt
            row["ratio"][model] = round(cf["usd"] / programs, 1)
            # Rows at which labeling each one costs as much as the 10 programs.
            row["break_even_rows"][model] = round(programs / (cf["usd"] / len(texts)))
            row["token_count_method"][model] = counter.method
        out[name] = row
        print(f"{name}: {len(texts)} rows; " + "; ".join(
            f"{m}: zero-shot ${row['zero_shot_usd'][m]:.4f} vs 10 programs ${row['programs_usd'][m]:.4f} "
            f"= {row['ratio'][m]}x" for m in MODELS))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
