"""Distillation: a small local model trained on a label model's probabilistic labels.

The label model only labels rows some program voted on, and needs the programs to run. The
distilled model learns from those soft labels and then labels *every* row (100% coverage) from
features alone: no LLM, no programs. As in the Alchemist paper the default is an MLP with two
hidden layers of 32 ReLU units, trained with a soft cross-entropy on the covered rows.

Optionally (``uncovered="prior"``, or ``"auto"`` to let the dev set decide) it also learns the label
model's no-evidence answer on the rows no program voted on: where "no program fired" itself says
"probably the majority class" (the offline synthesizer's spam programs), ignoring those rows lets
the student call some of them spam; where the programs cover little it would drown the signal.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import joblib
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from ..aggregate.select import score
from ..data.dataset import Dataset
from ..programs.cache import atomic_write
from .features import extract, make_extractor
from .threads import intra_op_threads

FORMAT_VERSION = 1
METRICS = ("accuracy", "f1", "macro_f1")
UNCOVERED = ("ignore", "prior", "auto")
_PREDICT_BATCH = 8192
LABELED_SHARE = 0.5  # semi-supervised fit: the gold-labeled rows' share of the loss
MAX_REPEAT = 50  # ... reached by repeating each labeled row at most this many times


def soft_cross_entropy(logits: torch.Tensor, proba: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-sum_c proba[c] * log_softmax(logits)[c]`` (targets are probabilities)."""
    return F.cross_entropy(logits, proba)


class SparseRows(NamedTuple):
    """A batch of sparse rows (e.g. TF-IDF) in embedding-bag form: the column ``indices`` and
    ``values`` of all non-zeros, row after row, and where each row starts (``offsets``)."""

    indices: torch.Tensor
    offsets: torch.Tensor
    values: torch.Tensor


class MLP(nn.Module):
    """A ReLU MLP; the first layer also takes :class:`SparseRows` without densifying them."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 32, layers: int = 2):
        super().__init__()
        sizes = [dim] + [hidden] * layers + [n_classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))

    def forward(self, x: torch.Tensor | SparseRows) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            if isinstance(x, SparseRows):
                # Sparse rows times the weights as a weighted embedding-bag sum: one fused kernel
                # each way (torch.sparse.mm with COO batches was ~10x slower on TF-IDF).
                x = F.embedding_bag(x.indices, layer.weight.t(), x.offsets, mode="sum",
                                    per_sample_weights=x.values) + layer.bias
            else:
                x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class _Rows:
    """Feature rows on the device, gathered by row index: dense rows into a reused buffer (a
    fresh multi-MB tensor per batch costs page faults, ~7x the copy); CSR rows as SparseRows,
    with no scipy call and no Python loop per batch."""

    def __init__(self, X, device: torch.device, batch: int):
        self.sparse = sp.issparse(X)
        if self.sparse:
            self.indptr, self.indices, self.values = (torch.from_numpy(a).to(device) for a in
                                                      (X.indptr.astype(np.int64), X.indices.astype(np.int64), X.data))
        else:
            self.X = torch.from_numpy(X).to(device)
            self.buffer = torch.empty((min(batch, X.shape[0]), X.shape[1]), device=device)

    def __call__(self, rows: torch.Tensor) -> torch.Tensor | SparseRows:
        """The features of ``rows``; a dense result is valid until the next call."""
        if not self.sparse:
            return torch.index_select(self.X, 0, rows, out=self.buffer[: len(rows)])
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        offsets = torch.cumsum(lengths, 0) - lengths
        # Position of every non-zero of the batch in the CSR arrays: its row's start plus its rank.
        flat = torch.repeat_interleave(starts - offsets, lengths) + torch.arange(int(lengths.sum()), device=rows.device)
        return SparseRows(self.indices[flat], offsets, self.values[flat])


def _check_proba(proba, covered, n_rows: int, learn_uncovered: bool) -> tuple[np.ndarray, np.ndarray]:
    """``proba`` as float32 and the boolean coverage mask; the rows the student learns from (the
    covered ones, and with ``learn_uncovered`` all of them) must be probabilities."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[0] != n_rows or proba.shape[1] < 2:
        raise ValueError(f"proba has shape {proba.shape}; expected ({n_rows}, k): one row per input row, k >= 2 classes")
    if covered is None:
        # The label models' conventions for "no program voted": a NaN row or an all -1 row.
        covered = ~(np.isnan(proba).all(axis=1) | (proba == -1).all(axis=1))
    else:
        covered = np.asarray(covered)
        if covered.dtype != bool or covered.shape != (n_rows,):
            raise ValueError(f"covered must be a boolean mask of shape ({n_rows},), got {covered.dtype} {covered.shape}")
    if not covered.any():
        raise ValueError("no row is covered: the label model labeled nothing, so there is nothing to learn from")
    rows = proba[covered]
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(covered)[bad][0])
        raise ValueError(f"{int(bad.sum())} covered row(s) of proba contain NaN/inf (first: row {first}); "
                         "fix the label model output or mark those rows uncovered with `covered`")
    if learn_uncovered:
        rows = proba[~covered]
        if not np.isfinite(rows).all():
            raise ValueError("uncovered='prior'/'auto' learns the label model's answer on uncovered rows, but "
                             "proba has NaN/inf there: pass the label model's predict_proba unchanged (it gives "
                             "its prior there) or use uncovered='ignore'")
        rows = proba
    if (rows < 0).any() or not np.allclose(rows.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("rows of proba the model learns from must be probabilities: >= 0 and summing to 1 per row")
    return proba.astype(np.float32), covered


class DistilledModel:
    """A local classifier distilled from probabilistic labels; it labels every row.

    Args:
        features: ``"tfidf"`` (default; fitted on the training texts), ``"sentence-transformers"``
            (all-MiniLM-L6-v2), ``"precomputed"`` (pass 2-D arrays instead of texts, e.g. CLIP
            embeddings), or an extractor object (see :mod:`alchemist_magics.distill.features`).
        model: ``"mlp"`` (the paper's MLP, torch) or ``"logreg"`` (scikit-learn).
        hidden, layers: MLP width and number of hidden layers (paper: 32 and 2).
        seed: fixes weight initialisation and batch order; two fits with the same seed and data
            give identical predictions (on CPU; CUDA sparse kernels may differ in the last bits).
        epochs: maximum MLP epochs. patience: with a dev set, stop after this many epochs
            without a better dev score and restore the best epoch's weights.
        batch_size: MLP batch size; ``None`` picks ``n // 32`` clipped to 32..4096.
        lr, weight_decay: Adam settings.
        metric: dev metric: ``"accuracy"``, ``"f1"`` (binary, class 1 positive) or ``"macro_f1"``
            (scored by :func:`alchemist_magics.aggregate.select.score`, like the label models).
        C: inverse regularisation strength of the logistic regression.
        uncovered: what to do with rows no program voted on. ``"ignore"`` (default, the paper's):
            leave them out of the loss. ``"prior"``: learn ``proba`` there too (a label model's
            no-evidence answer, its class prior). ``"auto"``: fit both, keep the one with the
            better dev score (ties: ``"ignore"``); needs a dev set. The chosen one is ``uncovered_``.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``; same code path on both.
        threads: torch intra-op threads while fitting and predicting on CPU. Default 1: the MLP's
            ops are small, and waking idle OpenMP threads for each one costs more than they give
            (``bench/mlp.py``: 6.1 s with 1 thread, 8.7 s with 2); ``None`` keeps torch's setting.
        cache_dir: folder for the on-disk feature cache (``None``: no caching).

    After ``fit``: ``classes_``, ``coverage_`` (fraction of training rows covered), ``uncovered_``
    (``"ignore"`` or ``"prior"``), and with a dev set ``history_`` (dev score per epoch),
    ``best_epoch_`` (0-based) and ``dev_score_``.

    ``save``/``load`` keep weights, settings and the fitted feature pipeline; ``load`` unpickles,
    so load only files you trust.
    """

    def __init__(self, features="tfidf", model: str = "mlp", hidden: int = 32, layers: int = 2,
                 seed: int = 0, epochs: int = 100, patience: int = 10, batch_size: int | None = None,
                 lr: float = 1e-2, weight_decay: float = 0.0, metric: str = "accuracy", C: float = 1.0,
                 uncovered: str = "ignore", device: str = "auto", threads: int | None = 1, cache_dir=None):
        if model not in ("mlp", "logreg"):
            raise ValueError(f"model={model!r}: use 'mlp' or 'logreg'")
        if metric not in METRICS:
            raise ValueError(f"metric={metric!r}: use one of {METRICS}")
        if uncovered not in UNCOVERED:
            raise ValueError(f"uncovered={uncovered!r}: use one of {UNCOVERED}")
        if hidden < 1 or layers < 1 or epochs < 1 or patience < 1:
            raise ValueError("hidden, layers, epochs and patience must be >= 1")
        self.features = features
        self.params = {"model": model, "hidden": hidden, "layers": layers, "seed": seed, "epochs": epochs,
                       "patience": patience, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
                       "metric": metric, "C": C, "uncovered": uncovered}
        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
        self.threads = threads
        self.cache_dir = cache_dir
        self.extractor_ = None
        self.net_ = None
        self.logreg_ = None
        self.classes_: list | None = None
        self.history_: list[float] = []
        self.best_epoch_: int | None = None
        self.dev_score_: float | None = None
        self.coverage_: float | None = None
        self.uncovered_: str | None = None
        self.labeled_rows_ = 0  # gold-labeled rows learned besides the soft labels (semi-supervised)
        self.labeled_repeat_ = 0

    # ----------------------------------------------------------------------------------- fitting
    def fit(self, data, proba, covered=None, dev=None, dev_labels=None, *, labeled=None, labeled_labels=None,
            labeled_share: float = LABELED_SHARE) -> "DistilledModel":
        """Train on ``proba`` (an ``(n, k)`` array from a label model) over the covered rows.

        Args:
            data: a :class:`Dataset` or list of texts (a 2-D array with ``features="precomputed"``).
            proba: class probabilities per row. Rows not covered are ignored by the loss, unless
                ``uncovered`` is ``"prior"`` (or ``"auto"`` picks it).
            covered: boolean mask of rows the label model labeled; ``None`` treats rows that are
                all NaN or all -1 as uncovered. A covered row with NaN raises ``ValueError``.
            dev, dev_labels: optional dev inputs and gold class indices (-1 = unknown; taken from
                ``dev.labels`` for a Dataset) used for early stopping (MLP) and ``dev_score_``.
            labeled, labeled_labels: semi-supervised: rows with gold labels (a Dataset with labels, or
                inputs and class indices) the student also learns, as one-hot targets. They are
                repeated so that together they weigh ``labeled_share`` of the loss (at most
                ``MAX_REPEAT`` copies each). Do not pass the dev rows here when early stopping on them.
        """
        self.extractor_ = make_extractor(self.features).fit(data)
        X = extract(self.extractor_, data, self.cache_dir)
        mode = self.params["uncovered"]
        P, covered = _check_proba(proba, covered, X.shape[0], learn_uncovered=mode != "ignore")
        k = P.shape[1]
        classes = data.classes if isinstance(data, Dataset) and data.classes else list(range(k))
        if len(classes) != k:
            raise ValueError(f"proba has {k} columns but the dataset declares {len(classes)} classes {classes}")
        self.classes_ = list(classes)
        self.coverage_ = float(covered.mean())
        X_dev, y_dev = self._dev_set(dev, dev_labels)
        if mode == "auto" and X_dev is None:
            raise ValueError("uncovered='auto' chooses on the dev set: pass dev= (and dev_labels=), "
                             "or pick uncovered='ignore' or 'prior'")
        choices = ("ignore", "prior") if mode == "auto" else (mode,)
        if covered.all():
            choices = choices[:1]  # every row covered: both choices are the same fit
        X_lab, P_lab = self._labeled_rows(labeled, labeled_labels, k)
        self.labeled_rows_ = 0 if X_lab is None else X_lab.shape[0]
        best = None
        for choice in choices:
            rows = np.flatnonzero(covered) if choice == "ignore" else np.arange(X.shape[0])
            X_fit, P_fit = X[rows], P[rows]
            if X_lab is not None:
                share = float(np.clip(labeled_share, 0.0, 0.95))
                repeat = int(np.clip(round(share / (1 - share) * len(rows) / X_lab.shape[0]), 1, MAX_REPEAT))
                stack = sp.vstack if sp.issparse(X_fit) else np.vstack
                X_fit = stack([X_fit] + [X_lab] * repeat)
                if sp.issparse(X_fit):
                    X_fit = sp.csr_matrix(X_fit)
                P_fit = np.vstack([P_fit] + [P_lab] * repeat).astype(np.float32)
                self.labeled_repeat_ = repeat
            self._fit_once(X_fit, P_fit, X_dev, y_dev)
            self.uncovered_ = choice
            if best is None or self.dev_score_ > best[1]:
                best = (self._fitted_state(), self.dev_score_)
        self._restore(best[0])
        return self

    def _labeled_rows(self, labeled, labeled_labels, k: int):
        if labeled is None:
            return None, None
        if labeled_labels is None:
            if not (isinstance(labeled, Dataset) and labeled.labels is not None):
                raise ValueError("labeled has no gold labels: pass labeled_labels (class indices)")
            labeled_labels = labeled.labels
        y = np.asarray(labeled_labels)
        X_lab = extract(self.extractor_, labeled, self.cache_dir)
        if y.shape != (X_lab.shape[0],) or y.dtype.kind not in "iu":
            raise ValueError(f"labeled_labels must be {X_lab.shape[0]} integer class indices, got {y.dtype} {y.shape}")
        known = np.flatnonzero(y >= 0)
        if (y >= k).any():
            raise ValueError(f"labeled_labels must be in -1..{k - 1}")
        if not len(known):
            return None, None
        return X_lab[known], np.eye(k, dtype=np.float32)[y[known]]

    _STATE = ("net_", "logreg_", "history_", "best_epoch_", "dev_score_", "uncovered_")

    def _fitted_state(self) -> dict:
        return {name: getattr(self, name) for name in self._STATE}

    def _restore(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def _fit_once(self, X, P, X_dev, y_dev) -> None:
        self.net_ = self.logreg_ = None
        if self.params["model"] == "mlp":
            with self._cpu_threads():
                self._fit_mlp(X, P, X_dev, y_dev)
        else:
            self._fit_logreg(X, P)
            self.dev_score_ = None if X_dev is None else self._dev_score(X_dev, y_dev)

    def _dev_set(self, dev, dev_labels):
        if dev is None:
            return None, None
        if dev_labels is None:
            if not (isinstance(dev, Dataset) and dev.labels is not None):
                raise ValueError("dev has no gold labels: pass dev_labels (class indices, -1 = unknown)")
            dev_labels = dev.labels
        X_dev = extract(self.extractor_, dev, self.cache_dir)
        y_dev = np.asarray(dev_labels)
        if y_dev.shape != (X_dev.shape[0],) or y_dev.dtype.kind not in "iu":
            raise ValueError(f"dev_labels must be {X_dev.shape[0]} integer class indices, got {y_dev.dtype} {y_dev.shape}")
        if (y_dev >= len(self.classes_)).any() or (y_dev < -1).any():
            raise ValueError(f"dev_labels must be in -1..{len(self.classes_) - 1}")
        known = np.flatnonzero(y_dev >= 0)
        if len(known) == 0:
            raise ValueError("dev_labels has no known label (all -1); pass labeled dev rows or no dev set")
        if self.params["metric"] == "f1" and len(self.classes_) != 2:
            raise ValueError("metric='f1' is binary F1; use metric='macro_f1' for more than two classes")
        return X_dev[known], y_dev[known]

    def _cpu_threads(self):
        return intra_op_threads(self.threads if self.device.type == "cpu" else None)

    def _dev_score(self, X_dev, y_dev) -> float:
        return score(y_dev, self._proba(X_dev).argmax(axis=1), self.params["metric"])

    def _fit_mlp(self, X, P, X_dev, y_dev) -> None:
        p = self.params
        n, device = X.shape[0], self.device
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(p["seed"])
            self.net_ = MLP(X.shape[1], P.shape[1], p["hidden"], p["layers"]).to(device)
        order = torch.Generator().manual_seed(p["seed"])
        optimizer = torch.optim.Adam(self.net_.parameters(), lr=p["lr"], weight_decay=p["weight_decay"],
                                     fused=True)  # one kernel for all parameters: ~1 ms/step less on CPU
        batch = p["batch_size"] or int(np.clip(n // 32, 32, 4096))
        features, targets = _Rows(X, device, batch), torch.from_numpy(P).to(device)
        self.history_, self.best_epoch_, self.dev_score_ = [], None, None
        best_state = None
        for epoch in range(p["epochs"]):
            self.net_.train()
            perm = torch.randperm(n, generator=order).to(device)
            for start in range(0, n, batch):
                rows = perm[start:start + batch]
                loss = soft_cross_entropy(self.net_(features(rows)), targets.index_select(0, rows))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if X_dev is None:
                continue
            score = self._dev_score(X_dev, y_dev)
            self.history_.append(score)
            if self.dev_score_ is None or score > self.dev_score_:
                self.dev_score_, self.best_epoch_ = score, epoch
                best_state = {name: t.detach().clone() for name, t in self.net_.state_dict().items()}
            elif epoch - self.best_epoch_ >= p["patience"]:
                break
        if best_state is not None:
            self.net_.load_state_dict(best_state)

    def _fit_logreg(self, X, P) -> None:
        # Soft labels, not argmax: each row appears once per class, weighted by its probability.
        # The weighted log-loss is then exactly the soft cross-entropy the MLP minimises, so the
        # label model's confidence is kept (argmax would weigh a 51/49 row like a certain one).
        from sklearn.linear_model import LogisticRegression

        k = P.shape[1]
        X_rep = sp.vstack([X] * k, format="csr") if sp.issparse(X) else np.tile(X, (k, 1))
        y_rep = np.repeat(np.arange(k), X.shape[0])
        weight = P.T.ravel()
        keep = weight > 0
        if len(np.unique(y_rep[keep])) < 2:
            raise ValueError("the soft labels put all probability on one class; logistic regression needs two")
        self.logreg_ = LogisticRegression(C=self.params["C"], max_iter=1000, random_state=self.params["seed"])
        self.logreg_.fit(X_rep[keep], y_rep[keep], sample_weight=weight[keep])

    # -------------------------------------------------------------------------------- predicting
    def _proba(self, X) -> np.ndarray:
        if self.logreg_ is not None:
            proba = np.zeros((X.shape[0], len(self.classes_)), dtype=np.float32)
            proba[:, self.logreg_.classes_] = self.logreg_.predict_proba(X)
            return proba
        self.net_.eval()
        features, out = _Rows(X, self.device, _PREDICT_BATCH), []
        with torch.no_grad(), self._cpu_threads():
            for start in range(0, X.shape[0], _PREDICT_BATCH):
                rows = torch.arange(start, min(start + _PREDICT_BATCH, X.shape[0]), device=self.device)
                out.append(torch.softmax(self.net_(features(rows)), dim=1).cpu())
        return torch.cat(out).numpy()

    def predict_proba(self, data) -> np.ndarray:
        """Class probabilities ``(n, k)`` (float32) for every row: no row is left unlabeled."""
        if self.extractor_ is None or (self.net_ is None and self.logreg_ is None):
            raise ValueError("the model is not fitted: call fit(...) or DistilledModel.load(path) first")
        return self._proba(extract(self.extractor_, data, self.cache_dir))

    def predict(self, data) -> np.ndarray:
        """The most probable class index (``int64``, ``0..k-1``) for every row."""
        return self.predict_proba(data).argmax(axis=1).astype(np.int64)

    # ----------------------------------------------------------------------------- persistence
    def save(self, path) -> None:
        """Write the model to folder ``path``: ``config.json``, the weights, the feature pipeline.

        The feature pipeline (and a logistic regression) are pickled with joblib; the MLP weights
        are a torch ``state_dict``. Each file is written atomically, ``config.json`` last.
        """
        if self.extractor_ is None or (self.net_ is None and self.logreg_ is None):
            raise ValueError("nothing to save: fit the model first")
        folder = Path(path)
        atomic_write(folder / "features.joblib", lambda f: joblib.dump(self.extractor_, f))
        if self.net_ is not None:
            state = {name: t.cpu() for name, t in self.net_.state_dict().items()}
            atomic_write(folder / "weights.pt", lambda f: torch.save(state, f))
            dims = {"dim": self.net_.layers[0].in_features}
        else:
            atomic_write(folder / "logreg.joblib", lambda f: joblib.dump(self.logreg_, f))
            dims = {"dim": int(self.logreg_.n_features_in_)}
        config = {"format": FORMAT_VERSION, "params": self.params, "classes": self.classes_,
                  "features": self.extractor_.kind, "coverage": self.coverage_, "uncovered": self.uncovered_,
                  "dev_score": self.dev_score_, "best_epoch": self.best_epoch_, **dims}
        atomic_write(folder / "config.json", lambda f: f.write(json.dumps(config, indent=2).encode()))

    @classmethod
    def load(cls, path, device: str = "auto", cache_dir=None) -> "DistilledModel":
        """Load a model written by :meth:`save`.

        Security: this unpickles ``features.joblib`` (and ``logreg.joblib``); unpickling can run
        arbitrary code, so load only model folders you or someone you trust wrote.
        """
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise ValueError(f"{folder} is not a saved DistilledModel: config.json is missing")
        config = json.loads((folder / "config.json").read_text())
        if config.get("format") != FORMAT_VERSION:
            raise ValueError(f"{folder} has model format {config.get('format')}; this version reads {FORMAT_VERSION}")
        extractor = joblib.load(folder / "features.joblib")
        model = cls(features=extractor, device=device, cache_dir=cache_dir, **config["params"])
        model.extractor_, model.classes_ = extractor, config["classes"]
        model.coverage_, model.dev_score_, model.best_epoch_ = config["coverage"], config["dev_score"], config["best_epoch"]
        model.uncovered_ = config.get("uncovered", "ignore")  # folders saved before the option: "ignore"
        p = model.params
        if p["model"] == "mlp":
            model.net_ = MLP(config["dim"], len(model.classes_), p["hidden"], p["layers"])
            model.net_.load_state_dict(torch.load(folder / "weights.pt", map_location="cpu", weights_only=True))
            model.net_.to(model.device)
        else:
            model.logreg_ = joblib.load(folder / "logreg.joblib")
        return model
