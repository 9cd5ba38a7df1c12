"""End-to-end evaluation: programs -> label matrix -> label model -> distilled model -> test metrics.

:func:`evaluate_pipeline` runs the whole method on labeled train/dev/test splits, once per seed,
and reports the label model and the distilled model side by side with their coverage, the time
each stage took and what the programs cost beside labeling every train row zero-shot.

Per seed, the dev split is cut in two (seeded): ``n_labeled`` rows are the few labeled examples a
program writer may see; the other dev rows choose the label model and early-stop the distilled
model. The test split is only ever scored. Gold labels of train are never read.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .aggregate import covered, select_label_model
from .aggregate.select import score
from .data.dataset import DataError, Dataset
from .distill.model import METRICS, UNCOVERED, DistilledModel
from .llm.cost import PriceTable
from .llm.zero_shot import zero_shot_counterfactual
from .programs import LabelSpace, OutputCache, Program, apply_programs
from .synth.text_rules import synthesize_programs
from .task import TaskSpec

# Per-seed numbers averaged in the summary (the rest are labels such as the chosen model).
_NUMERIC = ("label_model", "label_model_covered", "label_model_coverage", "train_coverage", "distilled", "distilled_coverage",
            "majority_vote", "n_programs", "program_s", "apply_s", "label_model_s", "distill_s", "total_s")

ProgramWriter = Callable[..., Sequence[Program]]


@dataclass
class EvaluationResult:
    """What :func:`evaluate_pipeline` measured.

    Attributes:
        runs: one dict per seed: ``label_model`` / ``distilled`` test metric (every test row
            scored; the label model gives rows no program covers its no-evidence guess, as WRENCH
            does), ``label_model_covered`` (metric on covered test rows only), coverages, the
            chosen label model, ``majority_vote``, program count, dev rows, and seconds per stage.
        summary: ``{key: {"mean", "std"}}`` over the seeds for the numeric run keys, plus
            ``distilled_ge_label_model`` (mean distilled >= mean label model).
        cost: ``programs_usd`` (one program set, summed from the programs' provenance, mean over
            seeds; 0 for offline sources) and
            ``zero_shot`` (the counterfactual of labeling every train row, per model).
        settings: the arguments that shaped the run.
    """

    runs: list[dict]
    summary: dict
    cost: dict
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain data (JSON-serialisable)."""
        return {"settings": self.settings, "summary": self.summary, "cost": self.cost, "runs": self.runs}

    def __repr__(self) -> str:
        s = self.summary
        fmt = lambda key: f"{s[key]['mean']:.3f} ± {s[key]['std']:.3f}"  # noqa: E731
        distilled = (f", distilled {fmt('distilled')} (coverage {fmt('distilled_coverage')})"
                     if "distilled" in s else "")
        return (f"EvaluationResult({self.settings.get('metric')}: label model {fmt('label_model')} "
                f"(coverage {fmt('label_model_coverage')}){distilled}; {len(self.runs)} seeds)")


def evaluate_pipeline(
    train: Dataset,
    dev: Dataset,
    test: Dataset,
    task: TaskSpec,
    program_source: str | Sequence[Program] | ProgramWriter = "synth",
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    distill: str | None = "mlp",
    n_labeled: int = 100,
    *,
    metric: str = "accuracy",
    features="tfidf",
    uncovered: str = "auto",
    n_programs: int = 20,
    candidates: list[str] | None = None,
    zero_shot_models: Sequence[str] = ("gpt-3.5-turbo", "gpt-4o-mini"),
    workers: int | None = None,
    cache_dir=None,
) -> EvaluationResult:
    """Evaluate programs + label model + distillation on labeled data, once per seed.

    Args:
        train: the rows to label (their gold labels, if any, are not used).
        dev: labeled rows: ``n_labeled`` of them (drawn per seed) are the labeled examples a program
            writer sees; the rest choose the label model and early-stop the distilled model.
        test: labeled rows, only scored.
        task: the task (its classes give the label space).
        program_source: where programs come from:
            ``"synth"``: the offline synthesizer, from the ``n_labeled`` rows and the train texts;
            ``"wrench"``: no programs, the splits' stored ``weak_labels`` matrices (WRENCH);
            a list of :class:`Program`: fixed programs (the same for every seed);
            a callable ``f(task, labeled_texts, labels, unlabeled_texts, seed) -> list[Program]``
            (e.g. an LLM writer); cost is summed from each program's ``provenance["cost_usd"]``.
        seeds: one run per seed (dev cut, synthesizer, label models, distilled model init).
        distill: ``"mlp"`` (2x32 ReLU, the paper's), ``"logreg"``, or ``None`` to skip.
        n_labeled: labeled dev rows per seed for the program writer (0 for fixed programs is fine).
        metric: ``"accuracy"``, ``"f1"`` (binary, class 1 is the positive class, e.g. spam) or
            ``"macro_f1"``; used to choose the label model, early-stop and score.
        features: features of the distilled model (``"tfidf"``, ``"sentence-transformers"``, ...).
        uncovered: the distilled model's handling of rows no program voted on (``DistilledModel``'s
            ``uncovered``); default ``"auto"``: per seed, learn them as the label model's prior or
            ignore them, whichever scores better on the dev rows (never on test).
        n_programs: most programs the synthesizer writes.
        candidates: label models to choose from (default: ``select_label_model``'s).
        zero_shot_models: models priced for the zero-shot counterfactual of the train rows.
        workers, cache_dir: sandbox workers; a folder for the program-output and feature caches.
    """
    k = task.cardinality
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r}: use one of {METRICS}")
    if metric == "f1" and k != 2:
        raise ValueError("metric='f1' is the positive-class F1 of a binary task; use 'macro_f1'")
    if distill not in ("mlp", "logreg", None):
        raise ValueError(f"distill={distill!r}: use 'mlp', 'logreg' or None")
    if uncovered not in UNCOVERED:
        raise ValueError(f"uncovered={uncovered!r}: use one of {UNCOVERED}")
    source = _ProgramSource(program_source, task, n_programs)
    if not seeds:
        raise ValueError("seeds is empty: pass at least one seed, e.g. seeds=(0,)")
    for name, split in (("dev", dev), ("test", test)):
        if split.labels is None or (split.labels < 0).any():
            raise DataError(f"{name} needs a gold label on every row (drop or label the unlabeled ones)")
    if not 0 <= n_labeled <= len(dev) - 2:
        raise DataError(f"dev has {len(dev)} rows: n_labeled={n_labeled} leaves too few to choose the label "
                        f"model; lower n_labeled or pass a larger dev split")
    space = LabelSpace(task.classes, task.aliases)
    cache = OutputCache(f"{cache_dir}/outputs") if cache_dir else None
    runs = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(dev))
        labeled, rest = dev.subset(order[:n_labeled]), dev.subset(np.sort(order[n_labeled:]))
        start = time.perf_counter()
        programs = source.programs(labeled, train, seed)
        program_s = time.perf_counter() - start

        start = time.perf_counter()
        L_train, L_dev, L_test = (source.matrix(programs, split, space, cache, workers)
                                  for split in (train, rest, test))
        apply_s = time.perf_counter() - start

        start = time.perf_counter()
        chosen = select_label_model(L_train, L_dev, rest.labels, candidates=candidates, seed=seed,
                                    metric=metric, cardinality=k)
        pred = chosen.model.predict(L_test, uncovered="prior")
        test_covered = covered(L_test)
        label_model_s = time.perf_counter() - start
        run = {
            "seed": seed, "n_programs": L_train.shape[1], "dev_rows": len(rest), "label_model_name": chosen.name,
            "label_model": score(test.labels, pred, metric),
            "label_model_covered": (score(test.labels[test_covered], pred[test_covered], metric)
                                    if test_covered.any() else float("nan")),
            "label_model_coverage": float(test_covered.mean()),
            "train_coverage": float(covered(L_train).mean()),
            "majority_vote": score(test.labels, chosen.majority.predict(L_test, uncovered="prior"), metric),
            "programs_usd": float(sum(p.provenance.get("cost_usd") or 0.0 for p in programs)),
            "program_s": program_s, "apply_s": apply_s, "label_model_s": label_model_s,
        }
        start = time.perf_counter()
        if distill:
            model = DistilledModel(features=features, model=distill, seed=seed, metric=metric, uncovered=uncovered,
                                   cache_dir=f"{cache_dir}/features" if cache_dir else None)
            model.fit(train, chosen.model.predict_proba(L_train), covered=covered(L_train), dev=rest)
            distilled = np.asarray(model.predict(test))
            run["distilled"] = score(test.labels, distilled, metric)
            run["distilled_coverage"] = float((distilled >= 0).mean())
            run["distilled_best_epoch"] = model.best_epoch_
            run["distilled_uncovered"] = model.uncovered_
        run["distill_s"] = time.perf_counter() - start
        run["total_s"] = program_s + apply_s + label_model_s + run["distill_s"]
        runs.append(run)
    summary = _summarise(runs)
    # What one program set cost (the mean over seeds: each seed writes its own set).
    cost = {"programs_usd": float(np.mean([r["programs_usd"] for r in runs])), "programs_usd_note": source.cost_note,
            "zero_shot": {m: zero_shot_counterfactual(task, train.texts, m, prices=PriceTable())
                          for m in zero_shot_models}}
    settings = {"program_source": source.name, "seeds": list(seeds), "distill": distill, "uncovered": uncovered,
                "n_labeled": n_labeled, "metric": metric, "features": features if isinstance(features, str) else getattr(features, "kind", type(features).__name__),
                "rows": {"train": len(train), "dev": len(dev), "test": len(test)}}
    return EvaluationResult(runs, summary, cost, settings)


class _ProgramSource:
    """Turns ``program_source`` into programs per seed and label matrices per split."""

    def __init__(self, source, task: TaskSpec, n_programs: int):
        self.task, self.n_programs, self.stored = task, n_programs, False
        self.cost_note = "offline: no LLM was called"
        if isinstance(source, str):
            if source not in ("synth", "wrench"):
                raise ValueError(f"program_source={source!r}: use 'synth', 'wrench', a list of Programs or a callable")
            self.name, self.stored = source, source == "wrench"
            self.write = self._synthesize if source == "synth" else None
        elif callable(source):
            self.name, self.write = getattr(source, "__name__", "callable"), source
            self.cost_note = "sum of the programs' provenance['cost_usd'] (missing counts as 0)"
        else:
            fixed = [p if isinstance(p, Program) else Program(p) for p in source]
            if not fixed:
                raise ValueError("program_source is an empty list: pass at least one program")
            self.name, self.write = "programs", lambda *args: fixed

    def _synthesize(self, task, texts, labels, unlabeled, seed):
        return synthesize_programs(task, texts, labels, unlabeled, n_programs=self.n_programs, seed=seed)

    def programs(self, labeled: Dataset, train: Dataset, seed: int) -> list[Program]:
        if self.stored:
            return []
        programs = list(self.write(self.task, labeled.texts, labeled.labels, train.texts, seed))
        if not programs:
            raise ValueError(f"program source {self.name!r} returned no programs for seed {seed}")
        return programs

    def matrix(self, programs, split: Dataset, space, cache, workers) -> np.ndarray:
        if self.stored:
            if split.weak_labels is None:
                raise DataError(f"program_source='wrench' needs stored weak_labels; {split.name} has none")
            return split.weak_labels
        result = apply_programs(programs, split.inputs(), space, cache=cache, dataset_fingerprint=split.fingerprint
                                if cache else None, workers=workers, progress=False)
        return result.L


def _summarise(runs: list[dict]) -> dict:
    summary = {}
    for key in _NUMERIC:
        values = np.array([r[key] for r in runs if key in r], dtype=float)
        if len(values):
            summary[key] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    if "distilled" in summary:
        summary["distilled_ge_label_model"] = summary["distilled"]["mean"] >= summary["label_model"]["mean"]
    return summary
