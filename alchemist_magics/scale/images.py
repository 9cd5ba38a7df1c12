"""CLIP embeddings on a Dask cluster, feeding the same on-disk cache as ``images.embed_images``.

The client hashes the files (the cache key), asks the cache, and sends only the missing images,
in partitions, to ``images.clip.embed_paths`` on the workers (each uses its GPU when it has one:
one GPU per worker, e.g. ``dask-cuda``'s ``LocalCUDACluster`` or ``CUDA_VISIBLE_DEVICES`` per
worker). Vectors are stored as each partition finishes, so a failure later keeps the earlier
work; the result is then assembled by ``embed_images`` itself from the now-warm cache.
"""
from __future__ import annotations

import os
import uuid

import numpy as np

from .client import resolve_client


def embed_images_dask(images, clip, client=None, *, cache_dir: str | os.PathLike = ".alchemist/cache/clip",
                      partition_size: int = 2048, batch_size: int = 64, retries: int = 2, progress: bool = True):
    """Embed an :class:`~alchemist_magics.images.ImageSet` across workers; returns ``ImageEmbeddings``.

    Same result as ``embed_images(images, clip, cache_dir=...)`` (the same cache entries: one
    engine's work is a hit for the other); ``embedded`` counts images the cluster ran the model on.
    The model is sent to every worker once (a ``ClipModel.load``-ed model travels as its name and
    tag and is reloaded there, so the weights must be reachable from the workers).
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    from ..images.cache import EmbeddingCache, content_hashes
    from ..images.clip import embed_images

    if partition_size < 1:
        raise ValueError(f"partition_size must be >= 1, got {partition_size}")
    keys = content_hashes(images.paths)
    cache = EmbeddingCache(cache_dir, clip.identity)
    known = cache.get(keys)
    first_path: dict[str, str] = {}
    for key, path in zip(keys, images.paths):
        if key not in known:
            first_path.setdefault(key, path)
    todo = list(first_path)
    embedded = 0
    if todo:
        client = resolve_client(client)
        model = client.scatter(clip, broadcast=True, hash=False)  # a copy on every worker survives one dying
        token = uuid.uuid4().hex[:12]
        futures = {
            client.submit(_embed_partition, [first_path[k] for k in todo[s:s + partition_size]], model, batch_size,
                          key=f"alchemist-clip-{token}-{s}", retries=retries): s
            for s in range(0, len(todo), partition_size)
        }
        with tqdm(total=len(todo), unit="img", disable=not progress, desc="embedding images (dask)") as bar:
            for future in as_completed(futures):
                start = futures[future]
                vectors, failures = future.result()  # a task that failed for good raises here, after the rest were cached
                ok = [i for i in range(len(vectors)) if i not in failures]
                cache.put([todo[start + i] for i in ok], vectors[ok])
                embedded += len(ok)
                future.release()
                bar.update(len(vectors))
    result = embed_images(images, clip, cache_dir=cache_dir, batch_size=batch_size, progress=False)
    result.embedded = embedded
    result.cached = sum(k in known for k in keys)
    return result


def _embed_partition(paths: list[str], clip, batch_size: int) -> tuple[np.ndarray, dict[int, str]]:
    from ..images.clip import embed_paths

    return embed_paths(paths, clip, batch_size=batch_size)
