"""What labeling every row with the LLM would cost vs asking it for 10 programs.

Run: python bench/cost.py [--data DIR] [--sets imdb_large,sms]   (set TIKTOKEN_CACHE_DIR for exact
tiktoken counts offline)
For the train split of every text set in ../shared/data at its real size (every WRENCH folder,
imdb_large's 25k long reviews included, and the raw UCI collections): the zero-shot counterfactual (the paper's per-row prompt, token
counts of every row's real prompt, reply = the requested {'class': '<name>'}) against 10 program
requests built exactly as generate_programs builds them (5 labeled exemplars per class, one
strategy per request, the 'already used' list), with an assumed reply of
TYPICAL_PROGRAM_REPLY_TOKENS tokens each (the worst case at max_tokens is shown too).
The paper (Alchemist) reports 850x for IMDb (zero-shot $3.40 vs $0.004 for the programs); ours is
printed beside it for imdb and imdb_large.
Last line: JSON with zero_shot_usd, programs_usd and ratio per dataset and model.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alchemist_magics.data import load_public  # noqa: E402
from alchemist_magics.data.public import wrench_sets  # noqa: E402
from alchemist_magics.llm import PriceTable, TokenCounter, select_exemplars, zero_shot_counterfactual  # noqa: E402
from alchemist_magics.llm.client import LLMConfig  # noqa: E402
from alchemist_magics.llm.cost import TYPICAL_PROGRAM_REPLY_TOKENS  # noqa: E402
from alchemist_magics.llm.generate import program_requests  # noqa: E402
from alchemist_magics.task import TaskSpec  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MODELS = ["gpt-3.5-turbo", "gpt-4o"]
N_PROGRAMS = 10
RAW_SETS = ["youtube_raw", "sms_raw"]
# What the paper reports for IMDb (gpt-3.5-turbo): zero-shot on every row vs the programs.
PAPER_IMDB = {"ratio": 850, "zero_shot_usd": 3.40, "programs_usd": 0.004}
TASKS = {
    "youtube": TaskSpec("youtube", "Is this YouTube comment spam?", ["ham", "spam"],
                        input_description="the text of one YouTube comment (a str)"),
    "sms": TaskSpec("sms", "Is this SMS text message spam?", ["ham", "spam"],
                    input_description="the text of one SMS message (a str)"),
}


def text_sets(data: Path) -> list[str]:
    """Every text data set in ``data``: the WRENCH folders and the raw UCI collections present."""
    return wrench_sets(data) + [name for name in RAW_SETS if (data / name).is_dir()]


def main(argv=None):
    parser = argparse.ArgumentParser(description="zero-shot counterfactual vs 10 programs, per text set")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--sets", default=None, help="comma-separated (default: every text set in --data)")
    args = parser.parse_args(argv)
    data = Path(args.data)
    prices = PriceTable()
    max_tokens = LLMConfig().max_tokens
    out = {"assumptions": {"program_reply_tokens": TYPICAL_PROGRAM_REPLY_TOKENS, "n_programs": N_PROGRAMS,
                           "exemplars_per_class": 5, "max_tokens": max_tokens, "rows": "train split, every row",
                           "prices_per_1m": {m: prices.lookup(m) for m in MODELS}},
           "paper_imdb": PAPER_IMDB}
    for name in (args.sets.split(",") if args.sets else text_sets(data)):
        bench = load_public(data, name)
        task = TASKS.get(name) or bench.task
        train = bench.train
        texts = train.texts
        exemplars = select_exemplars(texts, train.labels, task.classes, k=5, seed=0) if train.has_labels else None
        requests, _ = program_requests(task, N_PROGRAMS, exemplars=exemplars)
        row = {"rows": len(texts), "classes": len(task.classes), "mean_chars": round(sum(map(len, texts)) / len(texts), 1),
               "zero_shot_usd": {}, "programs_usd": {}, "programs_worst_case_usd": {},
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
        paper = (f"  [paper, IMDb: {PAPER_IMDB['ratio']}x = ${PAPER_IMDB['zero_shot_usd']:.2f} vs "
                 f"${PAPER_IMDB['programs_usd']:.3f}]") if name.startswith("imdb") else ""
        print(f"{name}: {len(texts)} rows; " + "; ".join(
            f"{m}: zero-shot ${row['zero_shot_usd'][m]:.4f} vs 10 programs ${row['programs_usd'][m]:.4f} "
            f"= {row['ratio'][m]}x" for m in MODELS) + paper, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
