"""CLIP with open_clip: load a model, embed images in batches, embed concept texts.

- :class:`ClipModel` wraps an open_clip model, its eval preprocessing and tokenizer, the device
  (CUDA when present, else CPU) and an *identity* string (cache key): ``ClipModel.load(name,
  pretrained)`` for real weights (a pretrained tag, or a local checkpoint path), or
  ``ClipModel(model, preprocess)`` for a model object.
- :func:`embed_paths` is the unit of work: image paths -> L2-normalised float32 rows, in a
  thread pool (threads, not processes: it also runs inside a daemonic dask worker). On CUDA the
  threads decode ahead of the model, with autocast to float16; on CPU each thread decodes and
  embeds its own batch. A ``ClipModel`` pickles (a loaded
  one as its name + tag, reloaded on the other side), so ``embed_paths`` can be shipped to workers.
- :func:`embed_images` adds the on-disk cache (``cache.EmbeddingCache``) keyed by (model
  identity, image content hash), so a second run embeds nothing, and drops images that fail to
  decode (reported, never a crash).
"""
from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.dataset import DataError
from ..distill.threads import intra_op_threads
from .cache import EmbeddingCache, content_hashes
from .data import ImageSet
from .preprocess import BatchPreprocess

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def pick_device(device: str = "auto"):
    """``"auto"``: CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def parameters_hash(model) -> str:
    """sha256 of a model's state dict (names, dtypes, shapes and bytes), for cache keys."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _file_hash(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _looks_like_path(pretrained: str) -> bool:
    return os.sep in pretrained or "/" in pretrained or pretrained.lower().endswith(CHECKPOINT_SUFFIXES)


class ClipModel:
    """An open_clip model ready to embed images and texts.

    Args:
        model: an open_clip ``CLIP`` (anything with ``encode_image`` / ``encode_text``).
        preprocess: PIL image -> tensor (open_clip's eval transform).
        tokenizer: list of str -> token tensor (default: open_clip's CLIP tokenizer at the model's
            context length).
        identity: what determines the embeddings, for the cache (default: a hash of the weights
            and the preprocessing).
        device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda:1"``...
    """

    def __init__(self, model, preprocess, tokenizer=None, *, identity: str | None = None, device: str = "auto"):
        import open_clip

        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.preprocess = preprocess
        self.batch_preprocess = BatchPreprocess.of(preprocess)  # None: per-image transform
        context = getattr(model, "context_length", None) or 77
        self.tokenizer = tokenizer or open_clip.SimpleTokenizer(context_length=context)
        self.identity = identity or f"weights-sha256:{parameters_hash(model)}|{preprocess!r}"
        self._spec: dict | None = None  # set by load(): how to rebuild after unpickling
        self._texts: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, name: str = DEFAULT_MODEL, pretrained: str | None = DEFAULT_PRETRAINED, *, device: str = "auto",
             cache_dir: str | os.PathLike | None = None) -> "ClipModel":
        """Load an open_clip architecture with weights.

        Args:
            name: an open_clip model name (``"ViT-B-32"``, ``"ViT-L-14"``; ``open_clip.list_models()``)
                or ``"hf-hub:<repo>"``.
            pretrained: a pretrained tag (``"laion2b_s34b_b79k"``, ``"openai"``;
                ``open_clip.list_pretrained_tags_by_model(name)``), the path of a local checkpoint
                file, or None for random weights.
            cache_dir: where open_clip keeps downloaded weights (default: its own cache).
        """
        import open_clip

        if not name.startswith("hf-hub:") and name not in open_clip.list_models():
            raise ValueError(f"unknown open_clip model {name!r}; e.g. ViT-B-32 or ViT-L-14 "
                             "(open_clip.list_models() lists them all)")
        if pretrained is not None and _looks_like_path(str(pretrained)):
            checkpoint = Path(pretrained).expanduser()
            if not checkpoint.is_file():
                raise FileNotFoundError(f"CLIP checkpoint {checkpoint} does not exist; pass an existing file "
                                        f"or a pretrained tag such as {DEFAULT_PRETRAINED!r}")
            pretrained = str(checkpoint)
            identity = f"open_clip:{name}:file-sha256:{_file_hash(checkpoint)}"
        elif pretrained is not None and not name.startswith("hf-hub:"):
            tags = open_clip.list_pretrained_tags_by_model(name)
            if pretrained not in tags:
                raise ValueError(f"{name} has no pretrained tag {pretrained!r}; its tags: {tags} "
                                 "(or pass the path of a checkpoint file)")
            identity = f"open_clip:{name}:{pretrained}"
        else:
            identity = f"open_clip:{name}:{pretrained}" if pretrained else None
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, device=str(pick_device(device)),
                cache_dir=None if cache_dir is None else str(cache_dir))
        except (RuntimeError, OSError) as err:  # download failures surface as either
            raise RuntimeError(f"could not load {name} weights {pretrained!r}: {err}. Weights download on first "
                               "use; offline, copy the checkpoint file here and pass its path as pretrained") from err
        clip = cls(model, preprocess, open_clip.get_tokenizer(name), identity=identity, device=device)
        clip._spec = {"name": name, "pretrained": pretrained, "device": device, "cache_dir": cache_dir}
        return clip

    # -- pickling: a loaded model travels as its name and tag ----------------------------------
    def __getstate__(self):
        if self._spec is not None:
            return {"spec": self._spec}
        state = dict(self.__dict__, _lock=None, _texts={})
        state["model"] = self.model.cpu()
        return state

    def __setstate__(self, state):
        if "spec" in state:
            self.__dict__.update(ClipModel.load(**state["spec"]).__dict__)
            return
        self.__dict__.update(state)
        self.device = pick_device("auto")
        self.model = self.model.to(self.device)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ClipModel({self.identity.split('|')[0][:60]!r}, device={self.device.type!r})"

    # -- encoders -----------------------------------------------------------------------------
    def encode_images(self, pixels) -> np.ndarray:
        """A preprocessed image batch (tensor) -> L2-normalised float32 embeddings."""
        import torch

        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=self.device.type == "cuda"):
            features = self.model.encode_image(pixels.to(self.device, non_blocking=True))
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Texts -> L2-normalised float32 embeddings (remembered per text: editing one concept
        re-encodes only that one)."""
        import torch

        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t not in self._texts))
            if todo:
                tokens = self.tokenizer(todo).to(self.device)
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16,
                                                            enabled=self.device.type == "cuda"):
                    features = self.model.encode_text(tokens)
                features = torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()
                self._texts.update(zip(todo, features))
            return np.stack([self._texts[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)


# -- the unit of work ------------------------------------------------------------------------
def _decode(path: str, preprocess):
    """(tensor, None) or (None, reason): one image through the per-image transform."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return preprocess(image.convert("RGB")), None
    except Exception as err:  # any decoder error is a per-image fault, reported by the caller
        return None, f"{type(err).__name__}: {err}"


def _decode_batch(paths: list[str], clip: "ClipModel"):
    """``(pixels, ok, errors)``: the batch tensor of the images that decoded, their positions in
    ``paths``, and ``{position: reason}`` for the others."""
    import torch

    if clip.batch_preprocess is not None:
        return clip.batch_preprocess.load(paths)
    decoded = [_decode(p, clip.preprocess) for p in paths]  # a transform BatchPreprocess does not know
    ok = [i for i, (tensor, _) in enumerate(decoded) if tensor is not None]
    pixels = torch.stack([decoded[i][0] for i in ok]) if ok else None
    return pixels, ok, {i: why for i, (_, why) in enumerate(decoded) if why}


def default_workers() -> int:
    """Decoding threads: the usable CPUs (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def embed_paths(paths: list[str], clip: ClipModel, *, batch_size: int = 64, workers: int | None = None,
                on_batch=None) -> tuple[np.ndarray, dict[int, str]]:
    """Embed images by path, in batches, in ``workers`` threads (default: the usable CPUs).

    On CUDA the threads decode a few batches ahead and the model runs batch after batch. On CPU
    each thread decodes *and* embeds its own batch, with torch's intra-op threads divided between
    them for the call: independent batch streams keep every core busy, where one model call over
    all cores leaves them idle at each op's barrier, and decoding takes the gaps (measured in
    ``bench/clip.py``).

    Returns:
        ``(vectors, failures)``: ``vectors`` is ``(len(paths), dim)`` float32, L2-normalised,
        NaN in the rows whose image failed to decode; ``failures`` maps those row positions to
        the reason.
    ``on_batch(n)`` is called after each batch (progress).
    """
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    workers = workers or default_workers()
    on_cpu = clip.device.type == "cpu"
    vectors: np.ndarray | None = None
    failures: dict[int, str] = {}

    def work(batch: list[str]):
        pixels, ok, errors = _decode_batch(batch, clip)
        return pixels, ok, errors, (clip.encode_images(pixels) if on_cpu and pixels is not None else None)

    def finish(start: int, done) -> None:
        nonlocal vectors
        pixels, ok, errors, out = done
        failures.update({start + i: why for i, why in errors.items()})
        if pixels is not None:
            out = clip.encode_images(pixels) if out is None else out
            if vectors is None:
                vectors = np.full((len(paths), out.shape[1]), np.nan, dtype=np.float32)
            vectors[[start + i for i in ok]] = out
        if on_batch is not None:
            on_batch(len(ok) + len(errors))

    threads = max(1, torch.get_num_threads() // workers) if on_cpu else None  # divided between the streams
    with intra_op_threads(threads), ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for start in range(0, len(paths), batch_size):
            pending.append((start, pool.submit(work, list(paths[start:start + batch_size]))))
            # at most `workers` batches in flight: bounded memory, and the model never waits
            if len(pending) > workers:
                begin, future = pending.popleft()
                finish(begin, future.result())
        while pending:
            begin, future = pending.popleft()
            finish(begin, future.result())
    if vectors is None:  # no image decoded (or no paths): the width comes from the text tower
        vectors = np.full((len(paths), clip.encode_texts(["a"]).shape[1]), np.nan, dtype=np.float32)
    return vectors, failures


# -- with cache ------------------------------------------------------------------------------
@dataclass
class ImageEmbeddings:
    """Embeddings of the images that decoded (``images`` lists them, row for row).

    Attributes:
        vectors: ``(len(images), dim)`` float32, L2-normalised.
        images: the embedded images (rows that failed to decode are dropped and in ``failed``).
        model: the identity of the model that made them.
        failed: ``(path, reason)`` of images that failed to decode.
        embedded: how many images the model ran on in this call (0 on a full cache hit).
        cached: how many rows came from the cache.
    """

    vectors: np.ndarray
    images: ImageSet
    model: str
    failed: list[tuple[str, str]] = field(default_factory=list)
    embedded: int = 0
    cached: int = 0

    def __len__(self) -> int:
        return len(self.vectors)

    def __repr__(self) -> str:
        return (f"ImageEmbeddings({len(self)} x {self.vectors.shape[1]}, embedded {self.embedded}, "
                f"from cache {self.cached}, failed {len(self.failed)})")


def embed_images(images: ImageSet, clip: ClipModel, *, cache_dir: str | os.PathLike | None = ".alchemist/cache/clip",
                 batch_size: int = 64, workers: int | None = None, progress: bool = True) -> ImageEmbeddings:
    """Embed every image once: cache hits (by model identity and file content) are not re-run.

    Identical files are embedded once. Images that fail to decode are dropped from the result,
    counted in ``failed`` (path and reason) and warned about; they are not cached, so a fixed file
    is embedded next time.
    """
    if not isinstance(images, ImageSet):
        raise DataError(f"expected an ImageSet (load_image_folder / load_image_table), got {type(images).__name__}")
    keys = content_hashes(images.paths, workers=workers)
    cache = EmbeddingCache(cache_dir, clip.identity) if cache_dir is not None else None
    known = cache.get(keys) if cache is not None else {}
    todo = list(dict.fromkeys(k for k in keys if k not in known))
    missed = set(todo)
    first_path = {}
    for key, path in zip(keys, images.paths):
        first_path.setdefault(key, path)
    failed_keys: dict[str, str] = {}
    if todo:
        from tqdm.auto import tqdm

        with tqdm(total=len(todo), unit="img", delay=1.0, disable=not progress) as bar:
            vectors, failures = embed_paths([first_path[k] for k in todo], clip, batch_size=batch_size,
                                            workers=workers, on_batch=bar.update)
        failed_keys = {todo[i]: why for i, why in failures.items()}
        new = {k: v for k, v in zip(todo, vectors) if k not in failed_keys}
        if cache is not None and new:
            cache.put(list(new), np.stack(list(new.values())))
        known = {**known, **new}
    rows = [i for i, k in enumerate(keys) if k not in failed_keys]
    failed = [(images.paths[i], failed_keys[k]) for i, k in enumerate(keys) if k in failed_keys]
    kept = images.subset(rows)
    kept.skipped += failed
    if failed:
        warnings.warn(f"{images.name}: {len(failed)} image(s) failed to decode and were dropped, e.g. "
                      f"{failed[0][0]} ({failed[0][1]}); see .failed", stacklevel=2)
        if not rows:
            raise DataError(f"{images.name}: no image could be decoded; first: {failed[0][0]} ({failed[0][1]})")
    vectors = np.stack([known[keys[i]] for i in rows]).astype(np.float32, copy=False)
    return ImageEmbeddings(vectors, kept, clip.identity, failed, embedded=len(todo) - len(failed_keys),
                           cached=sum(k not in missed for k in keys))
