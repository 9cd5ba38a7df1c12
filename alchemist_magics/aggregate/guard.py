"""Guards on the labeled rows: is a program better than its class prior, and is the whole pipeline
better than a classifier trained on the same labeled rows?

- :func:`flag_programs`: per program, from its votes on labeled rows (cross-fitted votes for programs
  mined from those rows; plain votes for LLM programs, which never saw the labels) and the labels,
  against *chance* (the rate of the classes it votes): ``ok`` (above chance with 95% confidence,
  one-sided Wilson bound), ``unproven`` (above chance, but not with 95% confidence on so few rows),
  ``not_above_prior`` (not above chance at all), ``inverted`` (below chance with 95% confidence: it
  votes against its evidence) or ``never_fired``. By default ``not_above_prior`` and ``inverted``
  programs are left out of the label model (:func:`kept_programs`); every flag is shown, never
  silently applied. (Dropping the ``unproven`` ones too was measured on sms: a ham keyword program
  right 20 times in 21 is not provably above the 87% ham rate, and leaving such programs out cost
  0.02-0.06 spam F1.)
- :func:`compare_with_baselines`: the pipeline's cross-validated score on the labeled rows beside
  TF-IDF + logistic regression and (when embeddings are given) embedding + logistic regression,
  cross-validated on the same folds, with a plain sentence saying which is better.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .select import score, select_label_model

CONFIDENCE_Z = 1.645  # one-sided 95%
FOLDS = 5
LR_C = 10.0  # the baselines' regularisation, fixed up front (as in bench/synth.py)


def wilson(right: float, n: float, z: float = CONFIDENCE_Z) -> tuple[float, float]:
    """(lower, upper) Wilson confidence bounds of the rate ``right / n``; (0, 1) when ``n`` is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = right / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float((centre - spread) / (1 + z * z / n)), float((centre + spread) / (1 + z * z / n))


@dataclass
class ProgramFlag:
    """One program's record on the labeled rows (see :func:`flag_programs`)."""

    index: int
    name: str
    fired: int
    right: int
    accuracy: float | None
    chance: float | None  # the accuracy of voting the same classes at random: mean prior of its votes
    lower: float
    upper: float
    status: str  # "ok", "unproven", "not_above_prior", "inverted", "never_fired"

    @property
    def flagged(self) -> bool:
        return self.status != "ok"

    @property
    def left_out(self) -> bool:
        """Whether the label model should leave it out by default."""
        return self.status in LEFT_OUT

    @property
    def reason(self) -> str:
        if self.status == "never_fired":
            return f"{self.name}: never voted on the labeled rows, so its accuracy is unknown"
        what = f"{self.name}: {self.right}/{self.fired} right ({self.accuracy:.0%}) vs {self.chance:.0%} by chance"
        return {"ok": f"{what}: above chance",
                "unproven": f"{what}: above chance, but not with 95% confidence on {self.fired} rows "
                            f"(lower bound {self.lower:.0%})",
                "not_above_prior": f"{what}: not above chance with 95% confidence (lower bound {self.lower:.0%})",
                "inverted": f"{what}: significantly below chance (upper bound {self.upper:.0%}): inverted?"}[self.status]


def flag_programs(votes, labels, k: int | None = None, names=None, *, z: float = CONFIDENCE_Z) -> list[ProgramFlag]:
    """Flag programs whose accuracy on the labeled rows is not above chance, or below it.

    Args:
        votes: ``(rows, programs)`` votes on labeled rows (class index, -1 = abstain). For programs
            written from these rows, pass their cross-fitted (held-out) votes.
        labels: the rows' gold class indices.
        k: number of classes (default: from the labels and votes).
        names: program names for the messages.

    Chance for a program is the mean class prior of the classes it voted on its fired rows: a
    one-class program's chance is its class prior; a multi-class program's is what voting with its
    vote mix but no information would score.
    """
    V = np.asarray(votes)
    if V.ndim == 1:
        V = V[:, None]
    y = np.asarray(labels)
    if V.shape[0] != len(y):
        raise ValueError(f"votes has {V.shape[0]} rows but there are {len(y)} labels")
    k = k or int(max(y.max(), V.max()) + 1)
    prior = np.bincount(y, minlength=k) / len(y)
    names = list(names) if names is not None else [f"program {j}" for j in range(V.shape[1])]
    out = []
    for j in range(V.shape[1]):
        fired = V[:, j] >= 0
        n = int(fired.sum())
        if not n:
            out.append(ProgramFlag(j, names[j], 0, 0, None, None, 0.0, 1.0, "never_fired"))
            continue
        right = int((V[fired, j] == y[fired]).sum())
        chance = float(prior[V[fired, j]].mean())
        lower, upper = wilson(right, n, z)
        accuracy = right / n
        status = ("inverted" if upper < chance else "not_above_prior" if accuracy <= chance + 1e-12
                  else "unproven" if lower <= chance else "ok")
        out.append(ProgramFlag(j, names[j], n, right, right / n, chance, lower, upper, status))
    return out


LEFT_OUT = ("not_above_prior", "inverted")


def kept_programs(flags: list[ProgramFlag], *, keep_never_fired: bool = True, keep_unproven: bool = True) -> list[int]:
    """Indices of the programs the label model should use by default: all but ``not_above_prior`` and
    ``inverted`` (programs that never fired on the labeled rows, or are above chance without proof,
    are kept unless ``keep_never_fired`` / ``keep_unproven`` is False)."""
    keep = {"ok"} | ({"never_fired"} if keep_never_fired else set()) | ({"unproven"} if keep_unproven else set())
    return [f.index for f in flags if f.status in keep]


# --------------------------------------------------------------------------- pipeline vs. 100-label classifiers
@dataclass
class GuardReport:
    """Cross-validated scores on the labeled rows: the pipeline's and each baseline's (same folds)."""

    metric: str
    pipeline: float
    baselines: dict[str, float]
    folds: int
    rows: int
    notes: list[str] = field(default_factory=list)

    @property
    def best_baseline(self) -> tuple[str, float]:
        return max(self.baselines.items(), key=lambda item: item[1])

    @property
    def pipeline_is_better(self) -> bool:
        return not self.baselines or self.pipeline >= self.best_baseline[1]

    @property
    def message(self) -> str:
        listing = ", ".join(f"{name} {value:.3f}" for name, value in self.baselines.items())
        head = (f"{self.folds}-fold cross-validation on the {self.rows} labeled rows ({self.metric}): "
                f"programs + label model {self.pipeline:.3f}; {listing}.")
        if self.pipeline_is_better:
            return head + " The programs are at least as good as a classifier trained on the labeled rows."
        name, value = self.best_baseline
        return (head + f" {name} trained on the labeled rows alone is better by {value - self.pipeline:.3f}: "
                f"prefer it (or the distilled model trained on the labeled rows too), or improve the programs.")

    def to_dict(self) -> dict:
        return {"metric": self.metric, "pipeline": self.pipeline, "baselines": dict(self.baselines),
                "pipeline_is_better": self.pipeline_is_better, "folds": self.folds, "rows": self.rows,
                "message": self.message, "notes": list(self.notes)}


def crossval_folds(n: int, seed: int = 0, folds: int = FOLDS) -> list[np.ndarray]:
    """The folds every guard uses: a seeded permutation of the rows cut into ``folds`` parts."""
    return [f for f in np.array_split(np.random.default_rng(seed).permutation(n), min(folds, n)) if len(f)]


FAST_MODELS = ("majority", "weighted_majority", "dawid_skene", "triplet")  # what a fold's fit chooses from
N_BOOT = 2000  # paired bootstrap resamples of the labeled rows behind every "better with confidence"


def bootstrap_share(y, pred_a, pred_b, metric: str, n_boot: int = N_BOOT, seed: int = 0) -> float:
    """The share of ``n_boot`` paired bootstrap resamples of the labeled rows on which predictions
    ``pred_a`` score strictly higher (``metric``) than ``pred_b``: a one-sided test of "a is better",
    passed at ``confidence`` when the share is at least that. A few points on 100 rows are noise."""
    from .select import scores_batch

    y, a, b = np.asarray(y), np.asarray(pred_a), np.asarray(pred_b)
    boot = np.random.default_rng(seed).integers(0, len(y), size=(n_boot, len(y)))
    return float((scores_batch(y[boot], a[boot], metric) > scores_batch(y[boot], b[boot], metric)).mean())


def weak_classes(votes, y, k: int, min_accuracy: float = 0.7, confidence: float = 0.95) -> list[list[int]]:
    """For each column of ``votes`` (labeled rows x programs), the classes whose votes are right
    significantly less often than ``min_accuracy`` (one-sided binomial test at ``1 - confidence``)."""
    from scipy.stats import binom

    votes, y = np.asarray(votes), np.asarray(y)
    return [[c for c in range(k) if (col == c).any()
             and binom.cdf(int(((col == c) & (y == c)).sum()), int((col == c).sum()), min_accuracy) < 1 - confidence]
            for col in votes.T]


def mask_classes(L, drop: list[list[int]]):
    """``L`` with column j's votes for the classes in ``drop[j]`` turned into abstains."""
    L = np.array(L, copy=True)
    for j, classes in enumerate(drop):
        if classes:
            L[np.isin(L[:, j], classes), j] = -1
    return L


def crossval_predictions(L_train, L_dev, y, metric: str, k: int, seed: int = 0, per_fold=None) -> np.ndarray:
    """Held-out predictions for the labeled dev rows ``L_dev`` (labels ``y``), the label model chosen
    as ``Workbench.fit()`` chooses it: in each of the :func:`crossval_folds` it is chosen (by
    ``metric``, among ``FAST_MODELS``) on the other folds and predicts the held-out one.
    ``per_fold(rest) -> (L_train, L_dev)`` gives the matrices a fold uses, decided on its other rows
    ``rest`` only (which programs or votes to leave out); default: the matrices as given."""
    pred = np.full(len(y), -1)
    for part in crossval_folds(len(y), seed):
        rest = np.setdiff1d(np.arange(len(y)), part)
        T, D = (L_train, L_dev) if per_fold is None else per_fold(rest)
        cands = FAST_MODELS if T.shape[1] >= 3 else FAST_MODELS[:3]
        model = select_label_model(T, D[rest], y[rest], candidates=cands, seed=seed, metric=metric,
                                   cardinality=k, n_boot=500).model
        pred[part] = model.predict(D[part], uncovered="prior")
    return pred


def baseline_predictions(texts, labels, *, embeddings=None, folds: list[np.ndarray] | None = None,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """Cross-validated predictions on the labeled rows of TF-IDF + LR and (with ``embeddings``,
    ``(rows, dims)``) embedding + LR; both with balanced class weights and C=10, fixed up front."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(labels)
    folds = folds or crossval_folds(len(y), seed)
    texts = list(texts)
    out = {"TF-IDF LR": np.full(len(y), -1)}
    if embeddings is not None:
        out["embedding LR"] = np.full(len(y), -1)
    majority = int(np.bincount(y).argmax())
    for part in folds:
        fit = np.setdiff1d(np.arange(len(y)), part)
        if len(set(y[fit].tolist())) < 2:
            for pred in out.values():
                pred[part] = majority
            continue
        vec = TfidfVectorizer(sublinear_tf=True)
        X_fit = vec.fit_transform([texts[i] for i in fit])
        lr = LogisticRegression(C=LR_C, class_weight="balanced", max_iter=1000).fit(X_fit, y[fit])
        out["TF-IDF LR"][part] = lr.predict(vec.transform([texts[i] for i in part]))
        if embeddings is not None:
            E = np.asarray(embeddings)
            lr = LogisticRegression(C=LR_C, class_weight="balanced", max_iter=1000).fit(E[fit], y[fit])
            out["embedding LR"][part] = lr.predict(E[part])
    return out


def compare_with_baselines(texts, labels, pipeline_predictions, *, metric: str = "accuracy", embeddings=None,
                           folds: list[np.ndarray] | None = None, seed: int = 0) -> GuardReport:
    """The guard: the pipeline's cross-validated predictions on the labeled rows (each row predicted by
    programs and a label model built without it, e.g. ``crossfit_predictions``) against 100-label
    classifiers cross-validated on the same folds. Returns a :class:`GuardReport` whose ``message`` says
    plainly which is better."""
    y = np.asarray(labels)
    pred = np.asarray(pipeline_predictions)
    if pred.shape != y.shape:
        raise ValueError(f"pipeline_predictions has shape {pred.shape}; expected {y.shape} (one per labeled row)")
    folds = folds or crossval_folds(len(y), seed)
    base = baseline_predictions(texts, y, embeddings=embeddings, folds=folds, seed=seed)
    return GuardReport(metric, score(y, pred, metric), {name: score(y, p, metric) for name, p in base.items()},
                       len(folds), len(y))


def crossfit_predictions(heldout_votes, labels, k: int | None = None, *, prior=None) -> np.ndarray:
    """Majority vote over cross-fitted (held-out) votes: the pipeline's prediction for each labeled row
    from programs built without it. Rows no program voted on take the most common label (or ``prior``'s
    argmax); ties go to the more common class."""
    V = np.asarray(heldout_votes)
    y = np.asarray(labels)
    k = k or int(max(y.max(), V.max() if V.size else 0) + 1)
    prior = np.bincount(y, minlength=k) / len(y) if prior is None else np.asarray(prior)
    counts = np.zeros((len(V), k))
    for c in range(k):
        counts[:, c] = (V == c).sum(axis=1) if V.size else 0
    counts += 1e-6 * prior  # ties and empty rows: the more common class
    return counts.argmax(axis=1)
