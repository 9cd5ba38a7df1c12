"""The development suite shared by bench/synth.py and bench/e2e.py: any WRENCH-format folder, the same
row caps for every set, and the 100-label baselines on the same rows.

Caps (one constant each, the same for every set, fixed before any result): at most ``MAX_POOL`` train
texts as the unlabeled pool, ``MAX_VALID`` valid rows (the labeled rows are drawn from them; e2e's dev
rest is the remainder) and ``MAX_TEST`` test rows, each a fixed random sample (seed 0) so that every
method and seed sees the same rows and the sentence embeddings are computed once. They exist because
embedding 150k texts with MiniLM on a shared 2-core CPU takes hours; smaller sets are used whole.
"""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from alchemist_magics.data import load_public

MAX_POOL = 4000
MAX_VALID = 1000
MAX_TEST = 2000
MAX_SEQ_LENGTH = 128  # word pieces MiniLM reads per text (its default is 256): half the CPU
EMBED_CACHE = os.environ.get("ALCHEMIST_EMBED_CACHE", "/work/cache/emb")


def cap(data, n: int):
    if len(data) <= n:
        return data
    rows = np.sort(np.random.default_rng(0).permutation(len(data))[:n])
    return data.subset(rows)


def load_suite_set(data_dir, name: str, *, max_pool: int = MAX_POOL, max_valid: int = MAX_VALID,
                   max_test: int = MAX_TEST):
    """``load_public`` with the caps applied (train/dev/test subsampled once, seed 0)."""
    bench = load_public(data_dir, name)
    notes = list(bench.notes)
    sizes = (len(bench.train), len(bench.dev), len(bench.test))
    bench = replace(bench, train=cap(bench.train, max_pool), dev=cap(bench.dev, max_valid), test=cap(bench.test, max_test))
    if (len(bench.train), len(bench.dev), len(bench.test)) != sizes:
        notes.append(f"capped: train {sizes[0]}->{len(bench.train)}, valid {sizes[1]}->{len(bench.dev)}, "
                     f"test {sizes[2]}->{len(bench.test)} (fixed sample, seed 0)")
    return replace(bench, notes=notes)


def text_encoder():
    """MiniLM through the per-text embedding cache, or None when not installed."""
    from alchemist_magics.distill import default_text_encoder

    return default_text_encoder(EMBED_CACHE, max_seq_length=MAX_SEQ_LENGTH)
