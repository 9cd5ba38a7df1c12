"""Label models over matrices streamed in row chunks, so memory stays bounded by one chunk.

The models are the in-memory ones (:class:`MajorityVote`, :class:`DawidSkene`): fitting streams their
sufficient statistics (vote counts; for Dawid-Skene, one EM iteration per pass over the chunks:
the E-step of each chunk feeds the sums the next M-step needs), and the fitted object is an
ordinary model whose own ``raw_proba`` scores each chunk. Results equal the in-memory fit up to float
summation order; tie-breaking draws from the same seeded stream, so hard labels match too.

A chunk source is any of: a 2-D array or ``np.memmap`` (sliced into ``chunk_rows`` rows), a dask
array (its row blocks are computed one at a time), a list of arrays, a callable returning a fresh
iterable of arrays (one call per pass, e.g. :func:`npy_chunks`), or a one-shot iterator (enough for
a single pass: ``MajorityVote`` fitting or prediction, not Dawid-Skene's EM).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .base import ABSTAIN, Votes, break_ties, check_matrix
from .dawid_skene import DawidSkene
from .majority import MajorityVote, vote_shares

DEFAULT_CHUNK_ROWS = 500_000


class ChunkSource:
    """Re-iterable row chunks of a label matrix (see the module docstring for what ``source`` can be).

    Every chunk is checked (2-D, integer, values in -1..k-1, same number of columns) and returned
    as C-contiguous int8.
    """

    def __init__(self, source, chunk_rows: int = DEFAULT_CHUNK_ROWS, cardinality: int | None = None):
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.source, self.chunk_rows, self.cardinality = source, chunk_rows, cardinality
        self.one_shot = isinstance(source, Iterator)  # a generator: readable once
        self._used = False
        self.n_programs: int | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.one_shot and self._used:
            raise ValueError("this chunk iterator was already read once; pass a callable that returns a fresh "
                             "iterator of chunks (or an array/memmap) so the model can read the matrix again")
        self._used = True
        for chunk in self._raw():
            chunk = check_matrix(chunk, self.cardinality)
            if self.n_programs is None:
                self.n_programs = chunk.shape[1]
            elif chunk.shape[1] != self.n_programs:
                raise ValueError(f"chunks disagree on the number of programs: {chunk.shape[1]} vs {self.n_programs}")
            if len(chunk):
                yield chunk

    def _raw(self):
        s = self.source
        if hasattr(s, "blocks") and hasattr(s, "numblocks"):  # a dask array, without importing dask
            s = s.rechunk({1: -1})
            for i in range(s.numblocks[0]):
                yield np.asarray(s.blocks[i].compute())
        elif isinstance(s, np.ndarray):
            for start in range(0, len(s), self.chunk_rows):
                yield s[start:start + self.chunk_rows]
        elif callable(s):
            yield from s()
        else:
            yield from s

    @property
    def rows(self) -> int | None:
        """Total rows when the source knows its shape without a pass (arrays), else None."""
        shape = getattr(self.source, "shape", None)
        return int(shape[0]) if shape is not None else None


def npy_chunks(path: str | Path, chunk_rows: int = DEFAULT_CHUNK_ROWS):
    """A chunk source reading a 2-D ``.npy`` file with plain reads, one chunk in memory at a time.

    (A memmap works too, but the pages it touches stay mapped and count towards the process's RSS.)
    """
    path = Path(path)

    def read():
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read_header:
                raise ValueError(f"{path}: .npy format version {version} is not supported; save it with np.save")
            shape, fortran, dtype = read_header[version](f)
            if len(shape) != 2 or fortran:
                raise ValueError(f"{path}: expected a 2-D C-ordered label matrix, got shape {shape}")
            for start in range(0, shape[0], chunk_rows):
                rows = min(chunk_rows, shape[0] - start)
                chunk = np.empty((rows, shape[1]), dtype=dtype)
                f.readinto(memoryview(chunk).cast("B"))
                yield chunk

    return read


def fit_chunked(model, source, chunk_rows: int = DEFAULT_CHUNK_ROWS):
    """Fit an unfitted :class:`MajorityVote` or :class:`DawidSkene` on a chunk source; returns the model."""
    chunks = ChunkSource(source, chunk_rows, model.cardinality)
    if type(model) is MajorityVote:
        return _fit_majority(model, chunks)
    if type(model) is DawidSkene:
        return _fit_dawid_skene(model, chunks)
    raise TypeError(f"chunked fitting supports MajorityVote and DawidSkene, not {type(model).__name__}; "
                    "fit other models on an in-memory matrix")


def iter_proba(model, source, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[np.ndarray]:
    """``model.predict_proba`` of each chunk in turn (any fitted label model)."""
    model.require_fit()
    for chunk in ChunkSource(source, chunk_rows, model.cardinality):
        yield model.raw_proba(chunk)


def predict_proba_chunked(model, source, out=None, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
    """(n, k) probabilities written into ``out`` (e.g. an ``np.memmap``; allocated when None)."""
    parts = []
    start = 0
    for proba in iter_proba(model, source, chunk_rows):
        if out is None:
            parts.append(proba)
        elif start + len(proba) > len(out):
            raise ValueError(f"out has {len(out)} rows but the chunks hold more")
        else:
            out[start:start + len(proba)] = proba
        start += len(proba)
    if out is not None:
        if start != len(out):
            raise ValueError(f"out has {len(out)} rows but the chunks hold {start}")
        return out
    return np.concatenate(parts) if parts else np.empty((0, model.cardinality))


def predict_chunked(model, source, uncovered: str = "abstain", chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
    """Hard labels (int64), equal to ``model.predict(L, uncovered)`` on the whole matrix."""
    if uncovered not in ("abstain", "prior"):
        raise ValueError(f'uncovered must be "abstain" or "prior", got {uncovered!r}')
    model.require_fit()
    rng = np.random.default_rng(model.seed)  # one stream across chunks == break_ties(P, seed) on all rows
    parts = []
    for chunk in ChunkSource(source, chunk_rows, model.cardinality):
        pred = break_ties(model.raw_proba(chunk), rng)
        if uncovered == "abstain":
            pred[~(chunk != ABSTAIN).any(axis=1)] = ABSTAIN
        parts.append(pred)
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _fit_majority(model: MajorityVote, chunks: ChunkSource) -> MajorityVote:
    # MajorityVote.fit: prior = add-one smoothed class balance of the tie-broken votes on covered rows
    k = model.cardinality
    rng = np.random.default_rng(model.seed)
    hard = np.zeros(k)
    for chunk in chunks:
        votes = Votes(chunk, k, model.device)
        P = vote_shares(votes, None, model.prior_)
        hard += np.bincount(break_ties(P[votes.covered], rng), minlength=k)
    model.prior_ = (hard + 1.0) / (hard.sum() + k)
    return model


def _fit_dawid_skene(model: DawidSkene, chunks: ChunkSource) -> DawidSkene:
    # The loop of DawidSkene.fit, with each E-step (and the sums of the M-step after it) one pass.
    k, device = model.cardinality, model.device
    uniform = np.full(k, 1.0 / k)

    def one_pass(e_step: bool):
        sums, loglik, n = None, 0.0, 0
        for chunk in chunks:
            votes = Votes(chunk, k, device, transpose=True)
            if e_step:
                q, mean_loglik = model.e_step(votes)
                loglik += mean_loglik * len(chunk)
            else:  # the first pass: majority-vote shares start EM, as in the in-memory fit
                q = torch.from_numpy(vote_shares(votes, None, uniform)).to(device)
            part = model.sufficient_stats(votes, q)
            sums = part if sums is None else (sums[0] + part[0], sums[1] + part[1])
            n += len(chunk)
        if sums is None:
            raise ValueError("the chunk source yielded no rows")
        return sums, loglik / n

    sums, _ = one_pass(e_step=False)
    last = -np.inf
    for model.n_iter_ in range(1, model.max_iter + 1):
        model.m_step(*sums)
        sums, loglik = one_pass(e_step=True)
        if loglik - last < model.tol:
            break
        last = loglik
    model.m_step(*sums)
    return model
