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
from typing import Sequence

import numpy as np

from .aggregate import covered
from .data import DataError, Dataset
from .distill import METRICS, UNCOVERED
from .programs.writer import FixedPrograms, as_writer
from .synth.writer import OfflineWriter
from .task import TaskSpec
from .workbench import Workbench

# Per-seed numbers averaged in the summary (the rest are labels such as the chosen model).
_NUMERIC = ("label_model", "label_model_covered", "label_model_coverage", "train_coverage", "distilled", "distilled_coverage",
            "majority_vote", "n_programs", "program_s", "apply_s", "label_model_s", "distill_s", "total_s")



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
    program_source="synth",
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
            a callable ``f(task, labeled_texts, labels, unlabeled_texts, seed) -> list[Program]``,
            or a program writer (``llm.LLMWriter(client)``, see ``programs.writer``); cost is
            summed from each program's ``provenance["cost_usd"]``.
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
    stored = program_source == "wrench"
    writer = _writer(program_source)
    if not seeds:
        raise ValueError("seeds is empty: pass at least one seed, e.g. seeds=(0,)")
    for name, split in (("dev", dev), ("test", test)):
        if split.labels is None or (split.labels < 0).any():
            raise DataError(f"{name} needs a gold label on every row (drop or label the unlabeled ones)")
    if not 0 <= n_labeled <= len(dev) - 2:
        raise DataError(f"dev has {len(dev)} rows: n_labeled={n_labeled} leaves too few to choose the label "
                        f"model; lower n_labeled or pass a larger dev split")
    runs = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(dev))
        labeled, rest = dev.subset(order[:n_labeled]), dev.subset(np.sort(order[n_labeled:]))
        bench = Workbench(task, train, rest, test, labeled=labeled, root=cache_dir, workers=workers, seed=seed)
        start = time.perf_counter()
        if stored:
            bench.use_stored_matrices()
            programs_usd = 0.0
        else:
            written = bench.write(writer, n_programs, smoke=False)
            if not written.accepted:
                raise ValueError(f"program source {writer.name!r} returned no programs for seed {seed}")
            programs_usd = bench.programs_usd()
        program_s = time.perf_counter() - start

        start = time.perf_counter()
        if not stored:
            bench.apply(progress=False)
        apply_s = time.perf_counter() - start

        start = time.perf_counter()
        bench.fit(candidates, metric)
        scores = bench.scores("test", metric)
        label_model_s = time.perf_counter() - start
        run = {
            "seed": seed, "n_programs": bench.matrix("train").shape[1], "dev_rows": len(rest),
            "label_model_name": bench.model_name, "label_model": scores["label_model"],
            "label_model_covered": scores["label_model_covered"], "label_model_coverage": scores["coverage"],
            "train_coverage": float(covered(bench.matrix("train")).mean()),
            "majority_vote": scores["majority_vote"], "programs_usd": programs_usd,
            "program_s": program_s, "apply_s": apply_s, "label_model_s": label_model_s,
        }
        start = time.perf_counter()
        if distill:
            model = bench.distill(distill, features=features, uncovered=uncovered, metric=metric,
                                  cache_dir=f"{cache_dir}/features" if cache_dir else None)
            distilled = bench.distilled_scores(metric, splits=("test",))
            run["distilled"] = distilled["test"]
            run["distilled_coverage"] = distilled["test_coverage"]
            run["distilled_best_epoch"] = model.best_epoch_
            run["distilled_uncovered"] = model.uncovered_
        run["distill_s"] = time.perf_counter() - start
        run["total_s"] = program_s + apply_s + label_model_s + run["distill_s"]
        runs.append(run)
    summary = _summarise(runs)
    # What one program set cost (the mean over seeds: each seed writes its own set).
    cost_note = ("offline: no LLM was called" if stored or program_source == "synth" or isinstance(writer, FixedPrograms)
                 else "sum of the programs' provenance['cost_usd'] (missing counts as 0)")
    cost = {"programs_usd": float(np.mean([r["programs_usd"] for r in runs])), "programs_usd_note": cost_note,
            "zero_shot": {m: bench.counterfactual(m) for m in zero_shot_models}}
    settings = {"program_source": "wrench" if stored else writer.name, "seeds": list(seeds), "distill": distill,
                "uncovered": uncovered, "n_labeled": n_labeled, "metric": metric,
                "features": features if isinstance(features, str) else getattr(features, "kind", type(features).__name__),
                "rows": {"train": len(train), "dev": len(dev), "test": len(test)}}
    return EvaluationResult(runs, summary, cost, settings)


def _writer(source):
    """The program writer behind ``program_source`` (``None`` for stored matrices)."""
    if isinstance(source, str):
        if source not in ("synth", "wrench"):
            raise ValueError(f"program_source={source!r}: use 'synth', 'wrench', a list of Programs or a callable")
        return OfflineWriter() if source == "synth" else None
    if not callable(source) and not hasattr(source, "write") and not list(source):
        raise ValueError("program_source is an empty list: pass at least one program")
    return as_writer(source)


def _summarise(runs: list[dict]) -> dict:
    summary = {}
    for key in _NUMERIC:
        values = np.array([r[key] for r in runs if key in r], dtype=float)
        if len(values):
            summary[key] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    if "distilled" in summary:
        summary["distilled_ge_label_model"] = summary["distilled"]["mean"] >= summary["label_model"]["mean"]
    return summary
