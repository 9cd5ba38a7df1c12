"""10 programs over 10 million synthetic rows: local engine vs Dask on 2 workers; chunked label model.

    python bench/scale.py                 # 10M rows, 1e7 x 100 label matrix
    python bench/scale.py --rows 200000 --lm-rows 200000

* Rows are synthetic comments (a seeded pool of sentences over a vocabulary holding the programs'
  keywords), made per partition by ``synthetic_texts``. Dask workers make their own partitions
  (``Partition(load=...)``), so this process never holds the text column: ``peak_gb`` is its peak
  RSS (it also hosts the LocalCluster's scheduler). The local engine runs in a subprocess on the
  same rows (all partitions concatenated) so its memory does not count here; ``same_matrix``
  compares the two label matrices by hash. ``local_s`` and ``dask_s`` time the application only
  (Dask's includes making the rows on the workers); programs are bench/apply.py's.
* Label model: a ``lm_rows`` x 100 matrix (k = 5) is written chunk by chunk to a .npy file (each
  1e6-row chunk from ``make_label_matrix`` with its own seed), then a fresh subprocess fits
  Dawid-Skene with ``fit_chunked`` over ``npy_chunks`` and predicts every row with
  ``predict_chunked``: ``lm_s`` times both, ``lm_peak_gb`` is that subprocess's peak RSS.

The last line printed is a JSON object.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from apply import SOURCES  # noqa: E402  (the same 10 programs as bench/apply.py)

from alchemist_magics.programs import LabelSpace, Program  # noqa: E402
from alchemist_magics.scale import Partition  # noqa: E402

WORDS = ("i the a this is to you and it of in on for so that was just like what love video song "
         "great best lol omg my channel subscribe please plz check out free win $100 http://bit.ly/x "
         "www.site.com AWESOME WOW music views nice cool beautiful voice 2014 who listening").split()


def synthetic_texts(n: int, seed: int) -> list[str]:
    """``n`` comment-like rows drawn from a seeded pool of 5,000 sentences (3..24 words)."""
    rng = np.random.default_rng(seed)
    words = np.array(WORDS, dtype=object)
    pool = np.array([" ".join(words[rng.integers(len(WORDS), size=rng.integers(3, 25))]) for _ in range(5000)],
                    dtype=object)
    return pool[rng.integers(len(pool), size=n)].tolist()


def partitions(rows: int, partition_rows: int, seed: int = 0) -> list[Partition]:
    sizes = [min(partition_rows, rows - start) for start in range(0, rows, partition_rows)]
    return [Partition(f"synthetic {i}", size, load=functools.partial(synthetic_texts, size, seed * 100_003 + i))
            for i, size in enumerate(sizes)]


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux


def matrix_hash(L: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(L).tobytes()).hexdigest()[:16]


def local_child(rows: int, partition_rows: int, workers: int) -> dict:
    from alchemist_magics.programs import apply_programs

    texts = [t for part in partitions(rows, partition_rows) for t in part.inputs()]
    start = time.perf_counter()
    # the default 60 s limit is per program run over ALL rows: one program over 10M rows can exceed it
    result = apply_programs([Program(s) for s in SOURCES], texts, LabelSpace(["ham", "spam"]),
                            workers=workers, time_limit_s=3600, progress=False)
    seconds = time.perf_counter() - start
    return {"local_s": seconds, "local_hash": matrix_hash(result.L), "local_peak_gb": peak_gb(),
            "local_ok": all(r.ok for r in result.runs),
            "local_statuses": sorted({r.status for r in result.runs})}


def make_matrix(path: Path, rows: int, m: int, k: int, chunk_rows: int) -> None:
    from alchemist_magics.aggregate.synthetic import make_label_matrix

    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|i1", "fortran_order": False, "shape": (rows, m)})
        for i, start in enumerate(range(0, rows, chunk_rows)):
            L, _, _ = make_label_matrix(min(chunk_rows, rows - start), m, k, seed=i)
            f.write(L.tobytes())


def lm_child(path: Path, k: int, chunk_rows: int) -> dict:
    from alchemist_magics.aggregate import DawidSkene
    from alchemist_magics.aggregate.chunked import fit_chunked, npy_chunks, predict_chunked

    source = npy_chunks(path, chunk_rows)
    start = time.perf_counter()
    model = fit_chunked(DawidSkene(cardinality=k), source)
    pred = predict_chunked(model, source)
    seconds = time.perf_counter() - start
    return {"lm_s": seconds, "lm_peak_gb": peak_gb(), "lm_n_iter": model.n_iter_,
            "lm_labeled": float((pred >= 0).mean())}


def child(*args: str) -> dict:
    """Run this file in a subprocess in one of its child modes; returns the JSON it prints last."""
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def dask_run(rows: int, partition_rows: int) -> dict:
    from distributed import Client, LocalCluster

    from alchemist_magics.scale import apply_programs_dask

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        parts = partitions(rows, partition_rows)
        start = time.perf_counter()
        result = apply_programs_dask([Program(s) for s in SOURCES], parts, LabelSpace(["ham", "spam"]), client,
                                     progress=False)
        seconds = time.perf_counter() - start
        return {"dask_s": seconds, "dask_hash": matrix_hash(result.L), "dask_ok": all(r.ok for r in result.runs),
                "partitions": len(parts), "peak_gb": peak_gb()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--partition-rows", type=int, default=250_000)
    ap.add_argument("--lm-rows", type=int, default=10_000_000)
    ap.add_argument("--lm-chunk-rows", type=int, default=1_000_000)
    ap.add_argument("--mode", choices=["main", "local", "make-matrix", "lm"], default="main", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args()
    m, k = 100, 5
    if args.mode == "local":
        print(json.dumps(local_child(args.rows, args.partition_rows, workers=2)))
        return
    if args.mode == "make-matrix":
        make_matrix(Path(args.path), args.lm_rows, m, k, args.lm_chunk_rows)
        print("{}")
        return
    if args.mode == "lm":
        print(json.dumps(lm_child(Path(args.path), k, args.lm_chunk_rows)))
        return

    sizes = ["--rows", str(args.rows), "--partition-rows", str(args.partition_rows),
             "--lm-rows", str(args.lm_rows), "--lm-chunk-rows", str(args.lm_chunk_rows)]
    report = {"rows": args.rows, "programs": len(SOURCES), "dask_workers": 2, "local_workers": 2}
    report.update(dask_run(args.rows, args.partition_rows))  # first, so nothing else has raised this process's peak
    report.update(child("--mode", "local", *sizes))
    report["same_matrix"] = report.pop("local_hash") == report.pop("dask_hash")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "L.npy"
        child("--mode", "make-matrix", "--path", str(path), *sizes)
        report.update({"lm_rows": args.lm_rows, "lm_programs": m, "lm_classes": k})
        report.update(child("--mode", "lm", "--path", str(path), *sizes))
    report["load_avg"] = os.getloadavg()[0]
    print(json.dumps({key: round(v, 3) if isinstance(v, float) else v for key, v in report.items()}))


if __name__ == "__main__":
    main()
