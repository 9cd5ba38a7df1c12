"""Speed/accuracy/memory of our default label model vs snorkel's LabelModel at scale.

    python bench/labelmodel.py --n 1000000 --m 100 --k 5

One synthetic matrix (alchemist_magics.aggregate.synthetic.make_label_matrix: class prior
~ Dirichlet(2), per-program coverage ~ U(0.05, 0.3), per-class accuracy ~ U(0.25, 0.65) with
Dirichlet-split, non-uniform errors; weak programs, so that with ~17 votes per row the models
still differ) is written to bench/out/ and every contender runs in its own
subprocess on that same file, so its peak RSS (ru_maxrss of that process, which includes loading
the 100 MB matrix and importing torch) is its own. Time = fit + predict_proba on the whole
matrix, after loading. ``*_acc`` is accuracy on COVERED rows (rows with at least one vote; the
key figure); ``*_acc_all`` scores every row, uncovered rows taking each model's prior class.
The last line printed is a JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alchemist_magics.aggregate import DawidSkene, MajorityVote, SnorkelLabelModel  # noqa: E402
from alchemist_magics.aggregate.base import break_ties  # noqa: E402
from alchemist_magics.aggregate.synthetic import make_label_matrix  # noqa: E402

ACCURACY = (0.25, 0.65)
CONTENDERS = {"mv": MajorityVote, "ours": DawidSkene, "snorkel": SnorkelLabelModel}


def run_child(name: str, data: Path, k: int, seed: int) -> dict:
    L = np.load(data / "L.npy")
    y = np.load(data / "y.npy")
    start = time.perf_counter()
    model = CONTENDERS[name](cardinality=k, seed=seed).fit(L)
    proba = model.predict_proba(L)
    seconds = time.perf_counter() - start
    pred = break_ties(proba, seed)
    cov = (L != -1).any(axis=1)
    return {
        "s": seconds,
        "acc": float((pred[cov] == y[cov]).mean()),
        "acc_all": float((pred == y).mean()),
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,  # KiB on Linux
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--m", type=int, default=100)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-snorkel", action="store_true", help="only time our models")
    ap.add_argument("--child", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.data, args.k, args.seed)))
        return

    data = ROOT / "bench" / "out" / f"labelmodel_{args.n}_{args.m}_{args.k}_{args.seed}"
    data.mkdir(parents=True, exist_ok=True)
    L, y, _ = make_label_matrix(args.n, args.m, args.k, seed=args.seed, accuracy=ACCURACY)
    np.save(data / "L.npy", L)
    np.save(data / "y.npy", y)
    result = {"n": args.n, "m": args.m, "k": args.k, "seed": args.seed,
              "coverage": float((L != -1).any(axis=1).mean()), "ours_model": "DawidSkene"}
    del L, y
    names = ["mv", "ours"] + ([] if args.skip_snorkel else ["snorkel"])
    for name in names:
        cmd = [sys.executable, __file__, "--child", name, "--data", str(data), "--k", str(args.k),
               "--seed", str(args.seed)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ).stdout
        child = json.loads(out.strip().splitlines()[-1])
        for key, value in child.items():
            result[f"{name}_{key}"] = value
        print(name, child, flush=True)
    if "snorkel_s" in result:
        result["ratio"] = result["snorkel_s"] / result["ours_s"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
