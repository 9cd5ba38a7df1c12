"""The Workbench: one labeling task in the kernel, from programs to labels.

It ties the layers together and owns no algorithm of its own: programs are checked and smoke
tested (``programs``), applied in the sandbox with the output cache, the label matrix is
aggregated by a label model chosen on the dev set (``aggregate``), and programs plus provenance are
persisted under ``<root>/<task>/`` (``llm.provenance``). Everything here works from plain Python;
the notebook magics call these methods.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .aggregate import DawidSkene, MajorityVote, SelectionResult, program_analysis, select_label_model
from .aggregate.select import score
from .data.dataset import Dataset
from .llm.provenance import ProgramStore
from .programs import ApplyResult, LabelSpace, OutputCache, Program, apply_programs, smoke_test
from .task import TaskSpec

SPLITS = ("train", "dev", "test")


class Workbench:
    """A task, its data splits and its programs.

    Args:
        task: the :class:`TaskSpec` (classes define the label space).
        train: the rows to label (gold labels, if any, are only used for reporting).
        dev: optional labeled rows: empirical accuracy per program and the label-model choice.
        test: optional labeled rows for the final report (never used to choose anything).
        root: folder for programs, provenance and caches (``.alchemist`` next to the notebook).
        workers, time_limit_s, memory_limit_mb: sandbox settings (see ``apply_programs``).
        smoke_rows: rows of train used to smoke-test a program before it joins the set.
        seed: seeds sampling, tie-breaking and label models.
    """

    def __init__(
        self,
        task: TaskSpec,
        train: Dataset,
        dev: Dataset | None = None,
        test: Dataset | None = None,
        *,
        root: str | Path = ".alchemist",
        workers: int | None = None,
        time_limit_s: float = 60.0,
        memory_limit_mb: int | None = 2048,
        smoke_rows: int = 200,
        seed: int = 0,
    ):
        self.task = task
        self.datasets = {name: ds for name, ds in zip(SPLITS, (train, dev, test)) if ds is not None}
        self.label_space = LabelSpace(task.classes, task.aliases)
        self.store = ProgramStore(task.name, root)
        self.cache = OutputCache(Path(root) / "cache" / "outputs")
        self.sandbox = {"workers": workers, "time_limit_s": time_limit_s, "memory_limit_mb": memory_limit_mb}
        self.seed = seed
        self.programs: list[Program] = []
        self.rejected: list[tuple[Program, str]] = []
        self.results: dict[str, ApplyResult] = {}
        self.selection: SelectionResult | None = None
        self.label_model = None
        rng = np.random.default_rng(seed)
        self._smoke_rows = np.sort(rng.choice(len(train), size=min(smoke_rows, len(train)), replace=False))
        self._inputs = {name: ds.inputs() for name, ds in self.datasets.items()}

    # -- programs -------------------------------------------------------------------------------
    def add(self, program: Program | str, *, smoke: bool = True) -> bool:
        """Check, smoke-test and register a program; a program with the same name is replaced.

        Returns False (and records the reason in ``rejected``) when the program is refused.
        Registration does not run it over the data: call :meth:`apply`.
        """
        program = program if isinstance(program, Program) else Program(program)
        if smoke:
            sample = [self._inputs["train"][i] for i in self._smoke_rows]
            verdict = smoke_test(program, sample, self.label_space, time_limit_s=min(10.0, self.sandbox["time_limit_s"]),
                                 memory_limit_mb=self.sandbox["memory_limit_mb"])
            if not verdict.ok:
                self.rejected.append((program, "; ".join(verdict.reasons)))
                return False
        names = [p.name for p in self.programs]
        if program.name in names:
            self.programs[names.index(program.name)] = program
        else:
            self.programs.append(program)
        self.store.save(program)
        return True

    def add_all(self, programs) -> int:
        """Add several programs; returns how many were accepted."""
        return sum(self.add(p) for p in programs)

    def remove(self, name: str) -> None:
        """Drop a program by name (its files stay on disk)."""
        names = [p.name for p in self.programs]
        if name not in names:
            raise KeyError(f"no program named {name!r}; programs: {names}")
        del self.programs[names.index(name)]

    # -- application ----------------------------------------------------------------------------
    def apply(self, progress: bool = True, engine: str = "local", client=None) -> pd.DataFrame:
        """Run every program over every split (cached outputs are reused) and return the statuses.

        ``engine="dask"`` partitions the rows across the workers of ``client`` (a
        ``distributed.Client``, a scheduler address, or None for the active client): same sandbox,
        same cache, same matrix (see ``alchemist_magics.scale``).
        """
        if not self.programs:
            raise ValueError("no programs yet: add some with .add(source) first")
        if engine not in ("local", "dask"):
            raise ValueError(f"unknown engine {engine!r}; use 'local' or 'dask'")
        for split, inputs in self._inputs.items():
            common = dict(cache=self.cache, dataset_fingerprint=self.datasets[split].fingerprint, progress=progress,
                          time_limit_s=self.sandbox["time_limit_s"], memory_limit_mb=self.sandbox["memory_limit_mb"])
            if engine == "dask":
                from .scale import apply_programs_dask  # dask is an optional extra

                # one sandbox child per task: dask's workers already take the cores
                self.results[split] = apply_programs_dask(self.programs, inputs, self.label_space, client, **common)
            else:
                self.results[split] = apply_programs(self.programs, inputs, self.label_space,
                                                     workers=self.sandbox["workers"], **common)
        return pd.DataFrame(self.results["train"].summary()).set_index("name")

    def matrix(self, split: str = "train") -> np.ndarray:
        """The int8 label matrix of a split (rows x programs, -1 = abstain)."""
        if split not in self.results:
            raise ValueError(f"no label matrix for {split!r} yet: call .apply() first" if split in self.datasets
                             else f"unknown split {split!r}; splits: {list(self.datasets)}")
        return self.results[split].L

    def analysis(self) -> pd.DataFrame:
        """Per program: snorkel's columns on train; Correct/Incorrect/Emp. Acc. on dev when labeled;
        plus faults, invalid outputs, runtime and status."""
        runs = self.results["train"].runs if "train" in self.results else None
        if runs is None:
            raise ValueError("nothing applied yet: call .apply() first")
        names = [r.program.name for r in runs]
        table = program_analysis(self.matrix("train"), names=names)
        dev = self.datasets.get("dev")
        if dev is not None and dev.has_labels and "dev" in self.results:
            known = dev.labels >= 0
            on_dev = program_analysis(self.matrix("dev")[known], dev.labels[known], names=names)
            table[["Correct", "Incorrect", "Emp. Acc."]] = on_dev[["Correct", "Incorrect", "Emp. Acc."]]
        table["Faults"] = [r.faults for r in runs]
        table["Invalid"] = [r.invalid for r in runs]
        table["Runtime (s)"] = [round(r.runtime_s, 3) for r in runs]
        table["Status"] = [r.status for r in runs]
        return table

    # -- aggregation ----------------------------------------------------------------------------
    def fit(self, candidates: list[str] | None = None, metric: str = "accuracy") -> SelectionResult | None:
        """Fit the label model: chosen on dev when dev has labels, else Dawid-Skene unsupervised.

        ``metric`` is what the dev choice maximises: ``"accuracy"``, ``"f1"`` (binary, class 1
        positive, e.g. spam) or ``"macro_f1"``.
        """
        L = self.matrix("train")
        dev = self.datasets.get("dev")
        if dev is not None and dev.has_labels:
            known = dev.labels >= 0
            self.selection = select_label_model(L, self.matrix("dev")[known], dev.labels[known],
                                                candidates=candidates, seed=self.seed, metric=metric,
                                                cardinality=self.task.cardinality)
            self.label_model = self.selection.model
        else:
            self.selection = None
            self.label_model = DawidSkene(cardinality=self.task.cardinality, seed=self.seed).fit(L)
        return self.selection

    def predict_proba(self, split: str = "train") -> np.ndarray:
        """Probabilistic labels for a split from the fitted label model."""
        return self._model().predict_proba(self.matrix(split))

    def predict(self, split: str = "train", uncovered: str = "abstain") -> np.ndarray:
        """Hard labels; rows no program covers are -1 unless ``uncovered="prior"``."""
        return self._model().predict(self.matrix(split), uncovered=uncovered)

    def evaluate(self, split: str = "test") -> pd.DataFrame:
        """Gold-label metrics of the chosen model and of majority vote on a labeled split.

        Every row is scored: uncovered rows get the model's a-priori most likely class
        (WRENCH-style), and ``coverage`` says how many rows any program covers.
        """
        ds = self.datasets.get(split)
        if ds is None or not ds.has_labels:
            raise ValueError(f"split {split!r} has no gold labels to evaluate against")
        known = ds.labels >= 0
        L, y = self.matrix(split)[known], ds.labels[known]
        majority = self.selection.majority if self.selection else MajorityVote(
            cardinality=self.task.cardinality, seed=self.seed).fit(self.matrix("train"))
        rows = []
        for name, model in (("chosen: " + self.model_name, self._model()), ("majority", majority)):
            pred = model.predict(L, uncovered="prior")
            row = {"model": name, "accuracy": score(y, pred, "accuracy")}
            f1 = "f1" if self.task.cardinality == 2 else "macro_f1"
            row[f1] = score(y, pred, f1)
            rows.append(row)
        table = pd.DataFrame(rows).set_index("model")
        table["coverage"] = float((L != -1).any(axis=1).mean())
        return table

    @property
    def model_name(self) -> str:
        """Name of the fitted label model."""
        return self.selection.name if self.selection else type(self._model()).__name__

    def _model(self):
        if self.label_model is None:
            raise ValueError("no label model yet: call .fit() first")
        return self.label_model
