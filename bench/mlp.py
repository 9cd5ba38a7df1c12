"""Benchmark: train the distilled MLP on 100k x 384 learnable features for 50 epochs.

The features are Gaussian; soft labels come from a planted linear teacher (softmax of a random
linear map), so the MLP has something real to learn and ``train_acc`` shows it did. Training runs
through the public ``DistilledModel`` API with precomputed features, on the device ``auto`` picks
(CUDA when present), with the model's own thread setting on CPU (``DistilledModel(threads=1)``)
unless --threads says otherwise. Prints one JSON object as its last line.

    python bench/mlp.py [--rows 100000] [--dim 384] [--epochs 50] [--classes 4] [--device auto] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: with spinning, two threads on a busy 2-core
# machine run ~15x slower than one; asleep they are no slower. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from alchemist_magics.distill import DistilledModel  # noqa: E402


def planted(rows: int, dim: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features and the teacher's soft labels (temperature chosen so labels are confident but soft)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, dim), dtype=np.float32)
    W = rng.standard_normal((dim, classes)).astype(np.float32) / np.sqrt(dim)
    logits = 3.0 * X @ W
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    return X, proba / proba.sum(axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="DistilledModel(threads=...) on CPU")
    args = parser.parse_args()
    X, proba = planted(args.rows, args.dim, args.classes)
    # The first optimizer built in a process imports torch._dynamo (1-3 s, once): time it apart.
    warmup = time.perf_counter()
    DistilledModel(features="precomputed", epochs=1, device=args.device, threads=args.threads).fit(X[:256], proba[:256])
    warmup_s = time.perf_counter() - warmup
    model = DistilledModel(features="precomputed", epochs=args.epochs, device=args.device, threads=args.threads)
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(X, proba)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    train_acc = float((model.predict(X) == proba.argmax(axis=1)).mean())
    print(json.dumps({"mlp_train_s": round(seconds, 3), "mlp_train_cpu_s": round(cpu_seconds, 3), "rows": args.rows, "dim": args.dim,
                      "epochs": args.epochs, "device": str(model.device), "batch_size": model.params["batch_size"]
                      or int(np.clip(args.rows // 32, 32, 4096)), "threads": args.threads if model.device.type == "cpu" else None,
                      "train_acc": round(train_acc, 4), "warmup_s": round(warmup_s, 3)}))


if __name__ == "__main__":
    main()
