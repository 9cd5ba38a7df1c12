"""Every label model on the WRENCH youtube, sms and trec label matrices, next to WRENCH's numbers.

    python bench/wrench.py [--data /work/shared/data]

Models are fitted on the train matrix (no labels); the auto-choice (select_label_model) sees the
valid split only; the test split is scored once per model. Every test row is scored, as WRENCH
does: rows no program covers take each model's no-evidence class (``uncovered="prior"``: the
class prior, or for Dawid-Skene the posterior given that every program abstained); test coverage
is reported beside. Metric: accuracy (youtube, trec), spam-class F1 (sms), as in WRENCH.

Matrices: the stored WRENCH weak_labels, except sms valid/test, which do not line up with their
texts (SOURCES.md) and are rebuilt by re-applying the 73 readme regex rules to the texts
(alchemist_magics.data.rule_matrix; the rules reproduce every stored sms train row). youtube
train drops its 100 appended duplicate rows (load_wrench does). trec test texts leak their label
word, which does not matter here: only label matrices are used.
The last line printed is a JSON object keyed by dataset.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alchemist_magics.aggregate import covered, select_label_model  # noqa: E402
from alchemist_magics.aggregate.select import MODELS, scores_batch  # noqa: E402
from alchemist_magics.data import load_wrench  # noqa: E402
from alchemist_magics.data import rule_matrix  # noqa: E402

DATASETS = {"youtube": "accuracy", "sms": "f1", "trec": "accuracy"}
ANCHOR_COLUMNS = {"MV": "majority", "WMV": "weighted_majority", "DS": "dawid_skene",
                  "Snorkel": "snorkel", "FlyingSquid": "triplet", "DP": None}


def wrench_anchors(path: Path) -> dict:
    """Published WRENCH label-model test numbers from the table in ANCHORS.md (percent -> 0..1)."""
    if not path.is_file():
        return {}
    lines = [l for l in path.read_text().splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    out = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = cells[0].split()[0].lower()
        if name in DATASETS and len(cells) == len(header):
            out[name] = {h: float(v) / 100 for h, v in zip(header[1:], cells[1:]) if re.fullmatch(r"[\d.]+", v)}
    return out


def matrices(folder: Path) -> dict:
    splits = load_wrench(folder)
    out = {}
    for split in ("train", "valid", "test"):
        ds = splits[split]
        rebuilt = folder.name == "sms" and split != "train"
        out[split] = (rule_matrix(ds) if rebuilt else ds.weak_labels, ds.labels,
                      "rules re-applied to texts" if rebuilt else "stored weak_labels")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    anchors = wrench_anchors(args.data.parent / "ANCHORS.md")
    result = {}
    for name, metric in DATASETS.items():
        start = time.perf_counter()
        mats = matrices(args.data / name)
        (L_train, _, _), (L_valid, y_valid, _), (L_test, y_test, test_source) = (
            mats["train"], mats["valid"], mats["test"])
        k = int(max(L_train.max(), y_valid.max(), y_test.max())) + 1
        sel = select_label_model(L_train, L_valid, y_valid, candidates=list(MODELS), seed=args.seed,
                                 metric=metric, cardinality=k)
        test = {}
        for model_name in sel.scores.index:
            model = sel.model if model_name == sel.name else None
            model = model or MODELS[model_name](cardinality=k, seed=args.seed).fit(L_train)
            pred = model.predict(L_test, uncovered="prior")
            test[model_name] = float(scores_batch(y_test[None], pred[None], metric)[0])
        row = {
            "metric": metric, "k": k, "n_programs": L_train.shape[1],
            "rows": {s: int(len(mats[s][0])) for s in mats}, "test_matrix": test_source,
            "coverage": {s: float(covered(mats[s][0]).mean()) for s in mats},
            "chosen": sel.name, "chosen_test": test[sel.name], "mv_test": test["majority"],
            "chosen_ge_mv": test[sel.name] >= test["majority"], "test": test,
            "valid": sel.scores[[metric, "p_beats_mv"]].round(4).to_dict(orient="index"),
            "wrench_published_test": {ANCHOR_COLUMNS.get(h) or h: v for h, v in anchors.get(name, {}).items()},
            "seconds": round(time.perf_counter() - start, 2),
        }
        result[name] = row
        print(name, json.dumps(row), flush=True)
    result["chosen_never_below_mv"] = all(result[d]["chosen_ge_mv"] for d in DATASETS)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
