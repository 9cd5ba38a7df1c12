"""On-disk cache of image embeddings, keyed by (model identity, image content hash).

One folder per model identity; each ``put`` writes one new shard (``<random>.npz`` with the keys
and the vectors) atomically, so concurrent writers never clash and a reader never sees half a
shard. ``get`` reads every shard of the model; an unreadable shard is skipped with a warning (its
images are simply embedded again).
"""
from __future__ import annotations

import hashlib
import os
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..programs.cache import atomic_write


def _file_sha256(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as err:
        # an unreadable file gets a key of its own; decoding it then fails and reports the reason
        return "unreadable:" + hashlib.sha256(f"{path}\0{err}".encode()).hexdigest()


def content_hashes(paths: list[str], workers: int | None = None) -> list[str]:
    """sha256 of each file's bytes (hashlib releases the GIL, so threads hash in parallel)."""
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(_file_sha256, paths, chunksize=64))


class EmbeddingCache:
    """Embeddings of one model under ``folder/<hash of the model identity>/``."""

    def __init__(self, folder: str | os.PathLike, identity: str):
        self.identity = identity
        self.folder = Path(folder) / hashlib.sha256(identity.encode()).hexdigest()[:24]

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob("*.npz")) if self.folder.is_dir() else []

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The cached vector of each key that has one."""
        wanted = set(keys)
        found: dict[str, np.ndarray] = {}
        for shard in self.shards():
            try:
                with np.load(shard, allow_pickle=False) as data:
                    shard_keys, vectors = data["keys"], data["vectors"]
            except (OSError, ValueError, KeyError) as err:
                warnings.warn(f"embedding cache shard {shard.name} is unreadable ({err}); its images are re-embedded",
                              stacklevel=2)
                continue
            for i, key in enumerate(shard_keys.tolist()):
                if key in wanted:
                    found[key] = vectors[i]
        return found

    def put(self, keys: list[str], vectors: np.ndarray) -> None:
        """Store ``vectors[i]`` under ``keys[i]`` (one new shard)."""
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        if not len(keys):
            return
        if not (self.folder / "model.txt").is_file():  # says which model a folder belongs to
            atomic_write(self.folder / "model.txt", lambda handle: handle.write(self.identity.encode()))
        arrays = {"keys": np.array(keys), "vectors": np.asarray(vectors, dtype=np.float32)}
        atomic_write(self.folder / f"{uuid.uuid4().hex}.npz", lambda handle: np.savez(handle, **arrays))
