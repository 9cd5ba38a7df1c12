"""The Workbench: one labeling task, from programs to labels. The one orchestrator.

Every flow goes through it: the magics, the CLI and :func:`~alchemist_magics.evaluate.evaluate_pipeline`
call these methods and add nothing of their own. It owns no algorithm: programs come from a
*program writer* (``synth.OfflineWriter``, ``llm.LLMWriter``, a list, a function), are checked and
smoke tested and applied in the sandbox with the output cache (``programs``), the label matrix is
aggregated by a label model chosen on the dev set (``aggregate``), weak programs are repaired
(``synth`` offline or ``llm``), the labels are distilled into a small model (``distill``), and the
task's cost account (``llm.cost``) says what was spent against labeling every row with the LLM.
Programs and provenance are persisted under ``<root>/<task>/`` (``llm.provenance``).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from .aggregate import DawidSkene, MajorityVote, SelectionResult, covered, program_analysis, select_label_model
from .aggregate.analysis import analysis_stats, weak_reasons
from .aggregate.select import score
from .data import DataError, Dataset
from .llm.cost import CostMeter
from .llm.dedup import duplicates_by_output, silent_programs, uninformative_programs
from .llm.provenance import ProgramStore
from .llm.repair import RepairRequest, repair_evidence, repair_programs
from .llm.zero_shot import zero_shot_counterfactual, zero_shot_label
from .programs import ABSTAIN, FAULT, INVALID, ApplyResult, LabelSpace, OutputCache, Program, apply_programs, smoke_test
from .programs.smoke import smoke_run
from .programs.export import export_source
from .programs.snorkel_compat import from_snorkel, is_labeling_function
from .programs.writer import WriteResult, as_writer
from .task import TaskSpec

SPLITS = ("train", "dev", "test")
# An ``ok`` run is shown as ``faulty`` when more than this share of its rows raised, and as
# ``invalid`` when more than this share of its outputs were not labels (docs/programs.md).
FAULTY_SHARE = 0.05
INVALID_SHARE = 0.05


class Workbench:
    """A task, its data splits and its programs.

    Args:
        task: the :class:`TaskSpec` (classes define the label space).
        train: the rows to label (gold labels, if any, are only used for reporting).
        dev: optional labeled rows: empirical accuracy per program and the label-model choice.
        test: optional labeled rows for the final report (never used to choose anything).
        labeled: optional labeled rows a program writer learns from. When given, they are kept
            apart from ``dev``, so the numbers dev gives are measured on rows the programs were not
            written from; without it, writers learn from ``dev`` (and dev numbers are in-sample).
        root: folder for programs, provenance and caches (``.alchemist`` next to the notebook);
            ``None`` keeps everything in memory (no store, no caches).
        workers, time_limit_s, memory_limit_mb: sandbox settings (see ``apply_programs``).
        smoke_rows: ``None`` (default): a program is smoke-tested on every train row before it joins
            the set (the apply it would get anyway; :meth:`apply` then reads its outputs from the
            cache and reports it as run, not cached), so it is refused only
            for what the full apply shows (never voting, raising everywhere, one class everywhere);
            a number: on that many sampled train rows instead (faster for huge sets, but a rare,
            precise rule may then look like one that never votes).
        seed: seeds sampling, tie-breaking, writers, label models and the distilled model.
        meter: the task's cost meter (LLM clients for this task should record into it).
    """

    def __init__(
        self,
        task: TaskSpec,
        train: Dataset,
        dev: Dataset | None = None,
        test: Dataset | None = None,
        *,
        labeled: Dataset | None = None,
        root: str | Path | None = ".alchemist",
        workers: int | None = None,
        time_limit_s: float = 60.0,
        memory_limit_mb: int | None = 2048,
        smoke_rows: int | None = None,
        seed: int = 0,
        meter: CostMeter | None = None,
    ):
        self.task = task
        self.datasets = {name: ds for name, ds in zip(SPLITS, (train, dev, test)) if ds is not None}
        self.labeled = labeled
        self.label_space = LabelSpace(task.classes, task.aliases)
        self.root = None if root is None else Path(root)
        self.store = ProgramStore(task.name, root) if root is not None else None
        self.cache = OutputCache(self.root / "cache" / "outputs") if root is not None else None
        self.sandbox = {"workers": workers, "time_limit_s": time_limit_s, "memory_limit_mb": memory_limit_mb}
        self.seed = seed
        self.meter = meter if meter is not None else CostMeter()
        self.programs: list[Program] = []
        self.views: dict = {}  # view key -> what turns a split into the rows its programs read (synth.ConceptView)
        self.disabled: dict[str, Program] = {}  # set aside by disable(): kept, never run
        self.time_limits: dict[str, float] = {}  # program name -> its own time limit (else the sandbox's)
        self.rejected: list[tuple[Program, str]] = []
        self.results: dict[str, ApplyResult] = {}
        self.stored: dict[str, np.ndarray] = {}
        self.selection: SelectionResult | None = None
        self.label_model = None
        self.left_out: dict[str, str] = {}  # program -> why fit() left it out of the label model
        self.fit_notes: list[str] = []
        self._fit_names: list[str] | None = None  # the programs the label model uses (None: all)
        self.narrowed: dict[str, list[int]] = {}  # program -> classes whose votes the label model drops
        self.distilled = None
        self.estimate_usd: float | None = None
        self._zero_shot: dict[str, dict] = {}
        self._ran_at_add: dict = {}  # program name -> the train run add()'s smoke test computed
        self._run_messages: dict[tuple[str, str], str] = {}  # (split, program id) -> its last real run's report
        self._repairs_sent: dict[str, list[Program]] = {}  # LLM repair request key -> the programs it gave
        self.repair_failures: list[str] = []  # why the last LLM repair round's requests gave no program
        rng = np.random.default_rng(seed)
        self._smoke_rows = (None if smoke_rows is None or smoke_rows >= len(train)
                            else np.sort(rng.choice(len(train), size=smoke_rows, replace=False)))
        self._inputs = {name: ds.inputs() for name, ds in self.datasets.items()}

    def inputs(self, split: str = "train") -> list:
        """What each program receives per row of a split (see ``Dataset.inputs``)."""
        if split not in self._inputs:
            raise ValueError(f"unknown split {split!r}; splits: {list(self.datasets)}")
        return self._inputs[split]

    @property
    def writer_rows(self) -> Dataset | None:
        """The labeled rows a program writer learns from: ``labeled`` when given, else dev."""
        return self.labeled if self.labeled is not None else self.datasets.get("dev")

    # -- programs -------------------------------------------------------------------------------
    def write(self, writer, n: int = 10, *, smoke: bool = True) -> WriteResult:
        """Ask a program writer for ``n`` programs and add those that pass (see :meth:`add`).

        ``writer`` is a writer (``synth.OfflineWriter()``, ``llm.LLMWriter(client)``), a list of
        programs or a function (see ``programs.writer``). The result says what was accepted,
        rejected and failed, and what it cost.
        """
        writer = as_writer(writer)
        if getattr(writer, "cache_dir", False) is None and self.root is not None:
            writer.cache_dir = self.root / "cache" / "embeddings"  # the offline writer's sentence embeddings
        result = writer.write(self.task, self.writer_rows, self.inputs("train"), n, self.seed)
        for key, view in (getattr(result, "views", None) or {}).items():
            self.views[key] = view
            if self.store is not None:  # so that load() (a kernel restart) can run the programs again
                view.save(self.store.folder / "views")
        if result.estimate_usd is not None:
            self.estimate_usd = result.estimate_usd
        before = len(self.rejected)
        result.accepted = [p for p in result.programs if self.add(p, smoke=smoke)]
        result.rejected = self.rejected[before:]
        return result

    def add(self, program: Program | str, *, smoke: bool = True) -> bool:
        """Check, smoke-test and register a program; a program with the same name is replaced.

        Returns False (and records the reason in ``rejected``) when the program is refused.
        Registration does not run it over the data: call :meth:`apply`. A snorkel
        ``LabelingFunction`` is turned into a program first (``programs.from_snorkel``).
        """
        if is_labeling_function(program):
            program = from_snorkel([program], field=self._input_field())[0]
        program = self._inherit_view(program if isinstance(program, Program) else Program(program))
        if smoke:
            limit = self.time_limits.get(program.name, self.sandbox["time_limit_s"])
            if self._smoke_rows is None:
                # the full train apply, with apply()'s limits and through its output cache: the verdict is
                # the one apply() would reach, apply() reuses the outputs, and a program that hangs costs
                # its time limit once (the cache keeps failed outcomes too)
                inputs, fingerprint = self._program_inputs(program, "train")
                verdict, run = smoke_run(program, inputs, self.label_space, time_limit_s=limit,
                                         memory_limit_mb=self.sandbox["memory_limit_mb"], cache=self.cache,
                                         dataset_fingerprint=fingerprint if self.cache is not None else None,
                                         row_name="train row")
                if verdict.ok and not run.cached:
                    self._ran_at_add[program.name] = run  # apply() reports this run (it has the exception text)
            else:
                sample = [self._program_inputs(program, "train")[0][i] for i in self._smoke_rows]
                verdict = smoke_test(program, sample, self.label_space, time_limit_s=min(10.0, limit),
                                     memory_limit_mb=self.sandbox["memory_limit_mb"])
            if not verdict.ok:
                self.rejected.append((program, "; ".join(verdict.reasons)))
                return False
        names = [p.name for p in self.programs]
        self.disabled.pop(program.name, None)
        if program.name in names:
            self.programs[names.index(program.name)] = program
        else:
            self.programs.append(program)
        if self.store is not None:
            self.store.save(program)
        return True

    def _inherit_view(self, program: Program) -> Program:
        """A program that replaces one reading concept rows (same name, or its ``parent``: an edited
        cell, a repair) reads the same rows when it reads their columns (``x.text``, ``x.proto_spam``,
        ``x["clf_spam"]``); one that reads a plain text (``def f(text)``) gets the text."""
        if "view" in program.provenance:
            return program
        parent = program.provenance.get("parent")
        for old in [*self.programs, *self.disabled.values()]:
            key = (old.provenance or {}).get("view")
            if (key is not None and key in self.views and (old.name == program.name or old.id == parent)
                    and _reads_columns(program.source, self.views[key].columns)):
                program.provenance["view"] = key
                break
        return program

    def _program_inputs(self, program: Program, split: str) -> tuple[list, str]:
        """The rows a program reads on a split and their fingerprint: the split's inputs, or, for a
        program whose ``provenance["view"]`` names a view (the offline writer's concept programs),
        the rows that view makes of the split (``x.text`` and its score columns)."""
        key = (program.provenance or {}).get("view")
        if key is None:
            return self._inputs[split], self.datasets[split].fingerprint
        if key not in self.views:
            raise ValueError(f"{program.name} reads the concept rows of view {key!r}, which this workbench does not "
                             "have (not in its store, or made with an encoder other than the default MiniLM): "
                             "write the programs again with the offline writer")
        return self.views[key].inputs(self.datasets[split])

    def add_all(self, programs) -> int:
        """Add several programs; returns how many were accepted."""
        return sum(self.add(p) for p in programs)

    def remove(self, name: str) -> None:
        """Drop a program (enabled or disabled) by name (its files stay on disk)."""
        if self.disabled.pop(name, None) is not None:
            return
        names = [p.name for p in self.programs]
        if name not in names:
            raise KeyError(f"no program named {name!r}; programs: {names}")
        del self.programs[names.index(name)]

    def disable(self, name: str) -> Program:
        """Set a program aside: it stays in ``disabled`` (and in the store) but no longer runs or votes."""
        if name in self.disabled:
            return self.disabled[name]
        names = [p.name for p in self.programs]
        if name not in names:
            raise KeyError(f"no program named {name!r}; programs: {names}")
        program = self.programs.pop(names.index(name))
        self.disabled[name] = program
        return program

    def enable(self, name: str) -> Program:
        """Bring a disabled program back (at the end; :meth:`reorder` puts it in place)."""
        if name not in self.disabled:
            raise KeyError(f"no disabled program named {name!r}; disabled: {list(self.disabled)}")
        program = self.disabled.pop(name)
        self.programs.append(program)
        return program

    def reorder(self, names: list[str]) -> None:
        """Put the programs in the order of ``names`` (e.g. the notebook's cells); programs not
        named keep their relative order after the named ones."""
        rank = {name: i for i, name in enumerate(names)}
        self.programs.sort(key=lambda p: rank.get(p.name, len(rank)))

    def save_set(self, meta: dict | None = None) -> Path | None:
        """Record the current program set (ids in order, disabled ones marked) and ``meta`` (e.g. how
        the notebook made the task) in ``<root>/<task>/current.json``, which :meth:`load` reads.
        Written atomically; returns the path (None without a root)."""
        if self.store is None:
            return None
        import json

        from .llm.cache import atomic_write_text

        for program in [*self.programs, *self.disabled.values()]:
            self.store.save(program)  # idempotent: ensures every id is in the store
        entries = ([{"name": p.name, "id": p.id} for p in self.programs]
                   + [{"name": p.name, "id": p.id, "disabled": True} for p in self.disabled.values()])
        path = self.store.folder / "current.json"
        atomic_write_text(path, json.dumps({"task": self.task.name, "programs": entries, "meta": meta or {}},
                                           indent=1, ensure_ascii=False, default=str))
        return path

    def saved_meta(self) -> dict:
        """The ``meta`` of the last :meth:`save_set` ({} when none)."""
        return read_current(self.store)[1] if self.store is not None else {}

    def load(self) -> list[str]:
        """Restore the program set of the last :meth:`save_set` from the store, replacing the
        current one. Each program's source is checked against its id (its hash) by
        ``ProgramStore.load``; one that no longer matches is skipped with a warning. Without a
        ``current.json`` the newest stored version of each name is restored. Returns the names
        that could not be restored."""
        if self.store is None:
            raise ValueError("this workbench has no root folder: there is no store to load from")
        stored = self.store.load()
        by_id = {p.id: p for p in stored}
        entries, _ = read_current(self.store)
        if not entries:
            latest: dict[str, Program] = {}
            for p in stored:
                latest.pop(p.name, None)
                latest[p.name] = p
            entries = [{"name": name, "id": p.id} for name, p in latest.items()]
        self.programs, self.disabled, missing = [], {}, []
        for entry in entries:
            program = by_id.get(entry.get("id"))
            if program is None:
                missing.append(str(entry.get("name")))
                continue
            program = Program(program.source, name=entry.get("name") or program.name, provenance=program.provenance)
            if entry.get("disabled"):
                self.disabled[program.name] = program
            else:
                self.programs.append(program)
        self._load_views()
        return missing

    def _load_views(self) -> None:
        """The stored views (``synth.ConceptView``) the restored programs read, where they can be rebuilt."""
        keys = {(p.provenance or {}).get("view") for p in [*self.programs, *self.disabled.values()]}
        for key in sorted(k for k in keys if k is not None and k not in self.views):
            from .synth.writer import ConceptView

            view = ConceptView.load(self.store.folder / "views", key, cache_dir=self.root / "cache" / "embeddings")
            if view is not None:
                self.views[key] = view

    def export(self, path: str | Path | None = None) -> Path:
        """Write the programs as a ``.py`` file with loaders for plain functions and snorkel LFs."""
        if path is None:
            if self.store is None:
                raise ValueError("this workbench has no root folder: pass a path to export to")
            path = self.store.folder / "export" / "programs.py"
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(export_source(self.task, self.programs), encoding="utf-8")
        return path

    # -- application ----------------------------------------------------------------------------
    def apply(self, progress: bool = True, engine: str = "local", client=None, on_progress=None) -> pd.DataFrame:
        """Run every program over every split (cached outputs are reused) and return the statuses.

        ``on_progress(split, event)`` (local engine) follows each program through each split
        (``programs.apply.ProgramProgress``: queued, running with rows done, done with its status).

        ``engine="dask"`` partitions the rows across the workers of ``client`` (a
        ``distributed.Client``, a scheduler address, or None for the active client): same sandbox,
        same cache, same matrix (see ``alchemist_magics.scale``).
        """
        if not self.programs:
            raise ValueError("no programs yet: add some with .add(source) first")
        if engine not in ("local", "dask"):
            raise ValueError(f"unknown engine {engine!r}; use 'local' or 'dask'")
        # (time limit, view) -> program positions: one group unless limits are set per program or
        # programs read concept rows (their view's rows, not the split's inputs)
        groups: dict[tuple, list[int]] = {}
        for j, program in enumerate(self.programs):
            limit = self.time_limits.get(program.name, self.sandbox["time_limit_s"])
            groups.setdefault((limit, (program.provenance or {}).get("view")), []).append(j)
        for split in self._inputs:
            parts = []
            for (limit, _), positions in groups.items():
                programs = [self.programs[j] for j in positions]
                inputs, fingerprint = self._program_inputs(programs[0], split)
                common = dict(cache=self.cache, dataset_fingerprint=fingerprint if self.cache is not None else None,
                              progress=progress, time_limit_s=limit, memory_limit_mb=self.sandbox["memory_limit_mb"])
                if engine == "dask":
                    from .scale import apply_programs_dask  # dask is an optional extra

                    # one sandbox child per task: dask's workers already take the cores
                    result = apply_programs_dask(programs, inputs, self.label_space, client, **common)
                else:
                    tell = None if on_progress is None else functools.partial(on_progress, split)
                    result = apply_programs(programs, inputs, self.label_space, workers=self.sandbox["workers"],
                                            on_progress=tell, **common)
                parts.append((positions, result))
            self.results[split] = parts[0][1] if len(parts) == 1 else _merge(parts, len(self._inputs[split]),
                                                                             len(self.programs))
            if split == "train":  # outputs the smoke test of add() computed: that run is this apply's
                runs = self.results[split].runs
                for j, run in enumerate(runs):
                    fresh = self._ran_at_add.get(run.program.name)
                    if fresh is not None and fresh.program.id == run.program.id and run.status == fresh.status:
                        runs[j] = fresh
                self._ran_at_add.clear()
            for run in self.results[split].runs:  # exception texts, for the repair prompt of a later cached run
                if not run.cached and run.message:
                    self._run_messages[(split, run.program.id)] = run.message
        return pd.DataFrame(self.results["train"].summary()).set_index("name")

    def use_stored_matrices(self) -> None:
        """Aggregate the splits' stored ``weak_labels`` (e.g. WRENCH's human LFs) instead of programs."""
        for split, ds in self.datasets.items():
            if ds.weak_labels is None:
                raise DataError(f"{ds.name} has no stored weak_labels to aggregate")
            self.stored[split] = ds.weak_labels

    def matrix(self, split: str = "train") -> np.ndarray:
        """The int8 label matrix of a split (rows x programs, -1 = abstain)."""
        if split in self.stored:
            return self.stored[split]
        if split not in self.results:
            raise ValueError(f"no label matrix for {split!r} yet: call .apply() first" if split in self.datasets
                             else f"unknown split {split!r}; splits: {list(self.datasets)}")
        return self.results[split].L

    def program_names(self, split: str = "train") -> list[str]:
        """The programs' names in the column order of ``matrix(split)`` (before apply: the programs')."""
        if split in self.results:
            return [r.program.name for r in self.results[split].runs]
        return [p.name for p in self.programs]

    def dev_votes(self, heldout: bool = True) -> np.ndarray:
        """The dev label matrix (every program's column). With ``heldout`` (default), the column of each
        program the offline synthesizer wrote from these dev rows is its cross-fitted votes instead (each
        row voted by the program rebuilt without that row's fold): its in-sample dev votes would vouch
        for itself. This is what :meth:`analysis`, :meth:`flags` and :meth:`fit` score programs by."""
        L = self.matrix("dev")
        if not heldout or "dev" in self.stored:
            return L
        out = L
        for j, run in enumerate(self.results["dev"].runs):
            votes = self._crossfit_votes(run.program, len(L))
            if votes is not None:
                out = L.copy() if out is L else out
                out[:, j] = votes
        return out

    def analysis(self) -> pd.DataFrame:
        """Per program: snorkel's columns on train; Correct/Incorrect/Emp. Acc. on dev when labeled
        (cross-fitted for programs the offline synthesizer wrote from the dev rows, see
        :meth:`dev_votes`); plus faults, invalid outputs, runtime and status."""
        runs = self.results["train"].runs if "train" in self.results else None
        if runs is None:
            raise ValueError("nothing applied yet: call .apply() first")
        names = [r.program.name for r in runs]
        table = program_analysis(self.matrix("train"), names=names)
        dev = self.datasets.get("dev")
        if dev is not None and dev.has_labels and "dev" in self.results:
            known = dev.labels >= 0
            on_dev = program_analysis(self.dev_votes()[known], dev.labels[known], names=names)
            table[["Correct", "Incorrect", "Emp. Acc."]] = on_dev[["Correct", "Incorrect", "Emp. Acc."]]
        table["Faults"] = [r.faults for r in runs]
        table["Invalid"] = [r.invalid for r in runs]
        table["Runtime (s)"] = [round(r.runtime_s, 3) for r in runs]
        table["Status"] = [status_of(r) for r in runs]
        table["Problem"] = [problem_of(r) for r in runs]
        flags = self.flags()
        fitted = self.label_model is not None
        for name, row in flags.iterrows():
            what = ("left out of the label model" if name in self.left_out else "kept in the label model"
                    ) if fitted else "left out of the label model by default"
            if table.loc[name, "Status"] == "ok":
                table.loc[name, "Status"] = row["Flag"]
            table.loc[name, "Problem"] = "; ".join(x for x in (table.loc[name, "Problem"], f"{row['Reason']}: {what}") if x)
        for name, why in self.left_out.items():  # weak programs fit() left out (not flags)
            if name in table.index and name not in flags.index:
                if table.loc[name, "Status"] == "ok":
                    table.loc[name, "Status"] = "weak"
                table.loc[name, "Problem"] = "; ".join(x for x in (table.loc[name, "Problem"],
                                                                     f"{why}: left out of the label model") if x)
        for name, classes in self.narrowed.items():  # the votes fit() drops (narrow)
            if name in table.index:
                if table.loc[name, "Status"] == "ok":
                    table.loc[name, "Status"] = "narrowed"
                dropped = "/".join(self.task.classes[c] for c in classes)
                table.loc[name, "Problem"] = "; ".join(x for x in (table.loc[name, "Problem"], (
                    f"its {dropped} votes are mostly wrong on dev: the label model drops them")) if x)
        return table

    # -- flags ----------------------------------------------------------------------------------
    def flags(self) -> pd.DataFrame:
        """The programs the label model leaves out by default, and why (after :meth:`apply`).

        Index: program name. ``Flag``: ``silent`` (never votes on train: every output abstain,
        invalid or a fault), ``duplicate`` (votes like an earlier program on >= 95 % of the train rows
        where either votes, ``llm.dedup.duplicates_by_output``; a repaired program counts as earlier
        than its parent), ``not_above_prior`` or ``inverted`` (on the labeled dev rows its accuracy is
        not above chance with 95 % confidence, or significantly below it:
        ``llm.dedup.uninformative_programs`` over ``aggregate.guard.flag_programs``; programs the
        offline synthesizer wrote from these dev rows are judged on their cross-fitted votes), or
        ``not_chosen`` (the offline synthesizer wrote it, but the program set it chose by cross-fitted
        votes on the labeled rows does not hold it). ``Reason``: one line. Programs not listed are not flagged.
        """
        if "train" not in self.results:
            raise ValueError("nothing applied yet: call .apply() first")
        key = tuple(id(self.results.get(split)) for split in ("train", "dev"))
        if getattr(self, "_flags_key", None) == key:
            return self._flags
        runs = self.results["train"].runs
        names = [r.program.name for r in runs]
        L = self.results["train"].L
        rows: dict[str, tuple[str, str]] = {}
        for r in runs:  # the offline writer's set choice passed over it (cross-fitted on the labeled rows)
            if (r.program.provenance or {}).get("unchosen"):
                rows[r.program.name] = ("not_chosen", r.program.provenance["unchosen"])
        for name in silent_programs(L, names):
            rows.setdefault(name, ("silent", "never votes on the train rows (every output abstain, invalid or a fault)"))
        order = [j for j in _children_first([r.program for r in runs]) if names[j] not in rows]
        for dup in duplicates_by_output(L[:, order], [names[j] for j in order]):
            rows[dup.name] = ("duplicate", str(dup))
        dev = self.datasets.get("dev")
        if dev is not None and dev.has_labels and "dev" in self.results:
            judged = [j for j in range(len(names)) if names[j] not in rows]
            L_dev = self.results["dev"].L[:, judged]
            held = {}
            for col, j in enumerate(judged):
                votes = self._crossfit_votes(runs[j].program, len(dev))
                if votes is not None:
                    held[col] = votes
            for u in uninformative_programs(L_dev, dev.labels, [names[j] for j in judged], votes=held):
                rows[u.name] = (u.status, str(u) + (" (cross-fitted votes)" if names.index(u.name) in
                                                    [judged[c] for c in held] else ""))
        table = pd.DataFrame([{"name": n, "Flag": rows[n][0], "Reason": rows[n][1]} for n in names if n in rows],
                             columns=["name", "Flag", "Reason"]).set_index("name")
        self._flags_key, self._flags = key, table
        return table

    def _crossfit_votes(self, program: Program, n_dev: int):
        """Held-out votes on the dev rows of a program the offline synthesizer wrote from them (its
        in-sample dev votes would vouch for itself); None for any other program."""
        stats = (program.provenance or {}).get("stats")
        votes = stats.get("crossfit_votes") if isinstance(stats, dict) else None
        if self.labeled is not None or votes is None or len(votes) != n_dev or stats.get("labeled_rows") != n_dev:
            return None
        return np.asarray(votes, dtype=np.int8)

    # -- aggregation ----------------------------------------------------------------------------
    def fit(self, candidates: list[str] | None = None, metric: str = "accuracy", *,
            keep_flagged: bool = False, drop_weak: bool | str = "auto", narrow: bool | str = "auto",
            supervised: bool = True, min_accuracy: float = 0.7) -> SelectionResult | None:
        """Fit the label model: chosen on dev when dev has labels, else Dawid-Skene unsupervised.

        ``metric`` is what the dev choice maximises: ``"accuracy"``, ``"f1"`` (binary, class 1
        positive, e.g. spam) or ``"macro_f1"``. The programs :meth:`flags` lists (silent,
        duplicate, not above chance, inverted) are left out of the label model unless
        ``keep_flagged``; ``left_out`` maps each one left out to why, ``fit_notes`` says it in words
        (and :meth:`analysis` shows it per program). When every program is flagged, all are kept.

        ``drop_weak``: whether the label model also leaves out the *weak* programs (dev accuracy
        below ``min_accuracy``: above chance, but often wrong). ``"auto"`` (default) decides by
        5-fold cross-validation on the labeled dev rows: in each fold the weak programs are found
        on the other folds, the label model is chosen there, and the held-out fold is predicted;
        they are left out only when that scores strictly better (``metric``) than keeping them.
        The test split plays no part. ``fit_notes`` gives both scores.

        ``narrow``: whether the label model drops a program's votes for the classes it gets right
        significantly less often than ``min_accuracy`` on dev (a small model's ``return "spam" if
        <cue> else "ham"``: precise spam votes, guessed ham ones) while keeping its other votes; only
        for programs voting several classes, never all of a program's classes (a program weak on
        all of them is ``drop_weak``'s). ``"auto"`` (default) decides by 5-fold cross-validation on
        dev as ``drop_weak`` does, each fold finding the weak classes on its other rows; ``narrowed``
        maps each program to the classes dropped, ``fit_notes`` says it. The programs stay as written.

        ``supervised``: whether a label model that learns from the labeled dev rows may replace the
        unsupervised choice: logistic regression over one-hot votes (``aggregate.VoteClassifier``)
        reading the programs flagged ``not_above_prior`` or ``inverted`` and the weak ones too (a
        learned weight mutes a chance-level program and turns an inverted one around), not the
        ``silent``, ``duplicate`` or ``not_chosen`` ones. It replaces the choice only when its 5-fold
        held-out predictions on dev beat the choice's dev predictions in at least 95 % of paired
        bootstrap resamples; then ``left_out`` keeps only the programs it does not read,
        ``narrowed`` is empty, and ``fit_notes`` gives both scores either way.
        """
        names = self.program_names("train")
        self.left_out = {}
        self.narrowed = {}
        self.fit_notes = []
        if "train" in self.results and not self.stored:
            flags = self.flags()
            if len(flags) and not keep_flagged:
                # every program flagged: the offline writer's chosen set stays (not its passed-over ones)
                passed_over = flags["Flag"] == "not_chosen"
                chosen = len(flags) == len(names) and passed_over.any() and not passed_over.all()
                if chosen:
                    flags = flags[passed_over]
                    self.fit_notes.append("every chosen program is flagged (see flags()): they are kept")
                if len(flags) < len(names):
                    self.left_out = {n: f"{flags.loc[n, 'Flag']}: {flags.loc[n, 'Reason']}" for n in flags.index}
                    by_why: dict[str, list[str]] = {}  # one reason once, with the programs it covers
                    for name, why in self.left_out.items():
                        by_why.setdefault(why, []).append(name)
                    self.fit_notes.append(f"left out of the label model ({len(flags)} of {len(names)} programs; "
                                          "fit(keep_flagged=True) keeps them): "
                                          + "; ".join(f"{', '.join(ns)} ({why})" for why, ns in by_why.items()))
                else:
                    self.fit_notes.append("every program is flagged (see flags()): all are kept")
            elif len(flags):
                self.fit_notes.append(f"{len(flags)} flagged programs kept (keep_flagged=True): " + ", ".join(flags.index))
        dev = self.datasets.get("dev")
        judged = not keep_flagged and "dev" in self.results and not self.stored and dev is not None and dev.has_labels
        if narrow and judged:
            self.narrowed = self._classes_to_narrow(names, narrow, min_accuracy, metric)
        if drop_weak and judged:
            for name, why in self._weak_to_leave_out(names, drop_weak, min_accuracy, metric).items():
                self.left_out[name] = why
        self._fit_names = [n for n in names if n not in self.left_out] if self.left_out or self.narrowed else None
        L = self._votes("train")
        if dev is not None and dev.has_labels:
            known = dev.labels >= 0
            # chosen on the programs' held-out dev votes where they were written from dev (dev_votes)
            self.selection = select_label_model(L, self._votes("dev", heldout=True)[known], dev.labels[known],
                                                candidates=candidates, seed=self.seed, metric=metric,
                                                cardinality=self.task.cardinality)
            self.label_model = self.selection.model
            if supervised and judged:
                self._learn_from_labels(names, metric)
        else:
            self.selection = None
            self.label_model = DawidSkene(cardinality=self.task.cardinality, seed=self.seed).fit(L)
        if self._fit_names is not None:  # still reads a full matrix(split), as before any program was left out
            self.label_model = ProgramSubset(self.label_model, [names.index(n) for n in self._fit_names], len(names),
                                             [self.narrowed.get(n, []) for n in self._fit_names])
        return self.selection

    def _learn_from_labels(self, names: list[str], metric: str) -> None:
        """fit()'s ``supervised`` step: challenge the unsupervised choice with a ``VoteClassifier``
        over the programs it can learn a weight for, and take it only when it wins with confidence."""
        from .aggregate.guard import bootstrap_share
        from .aggregate.supervised import challenge

        known = self.datasets["dev"].labels >= 0
        y = self.datasets["dev"].labels[known]
        if len(y) < 20 or len(set(y.tolist())) < 2:  # too few labeled rows to cross-validate, as for drop_weak
            return
        used = self._votes("dev", heldout=True)[known]  # the dev votes as the unsupervised choice reads them
        # a learned weight answers an inverted or chance-level flag; silent and duplicate programs add no
        # votes, and not_chosen ones were passed over by their writer's own cross-validated choice
        unread = ("not_chosen", "duplicate", "silent")
        reads = [j for j, n in enumerate(names) if not self.left_out.get(n, "").startswith(unread)]
        chosen_pred = self.selection.model.predict(used, uncovered="prior")
        model, numbers = challenge(self.dev_votes()[known][:, reads], y, chosen_pred, metric,
                                   self.task.cardinality, self.seed)
        verdict = (f"5-fold held-out on the {len(y)} dev rows ({metric}) {numbers['heldout']:.3f} vs "
                   f"{self.selection.name} {numbers['chosen']:.3f}, better in {numbers['p_beats']:.0%} of "
                   f"the bootstrap resamples (needs 95%)")
        if model is None:
            self.fit_notes.append(f"kept {self.selection.name} over a label model learned from the labels: {verdict}")
            return
        # its row in the selection table: held-out scores, as the unsupervised rows are scores without labels
        scores, held = self.selection.scores.copy(), numbers["pred"]
        mv_pred = self.selection.majority.predict(used, uncovered="prior")
        scores["chosen"] = False
        scores.loc["vote_classifier"] = {**{m: score(y, held, m) for m in ("accuracy", "f1", "macro_f1") if m in scores},
                                         "dev_coverage": scores["dev_coverage"].iloc[0],
                                         "p_beats_mv": bootstrap_share(y, held, mv_pred, metric, seed=self.seed),
                                         "chosen": True}
        self.selection = SelectionResult("vote_classifier", model, self.selection.majority, scores, metric)
        self.left_out = {n: why for n, why in self.left_out.items() if n not in {names[j] for j in reads}}
        self.narrowed = {}
        self.fit_notes.append(f"label model learned from the labels (logistic regression over the votes of "
                              f"{len(reads)} programs, inverted, chance-level and weak ones too): {verdict}")
        self._fit_names = [names[j] for j in reads] if len(reads) < len(names) else None
        self.label_model = model

    def _weak_to_leave_out(self, names: list[str], drop_weak, min_accuracy: float, metric: str) -> dict[str, str]:
        """The weak programs (dev accuracy < ``min_accuracy``) fit() leaves out: all of them when
        ``drop_weak`` is True; with "auto", only when 5-fold cross-validation on the dev rows says
        the label model is better without them (see :meth:`fit`)."""
        from .aggregate.guard import crossval_predictions

        y, L_train, L_dev, base = self.judged_votes()

        def weak_on(rows) -> list[int]:
            out = []
            for j in base:
                fired = L_dev[rows, j] >= 0
                if fired.any() and (L_dev[rows, j][fired] == y[rows][fired]).mean() < min_accuracy:
                    out.append(j)
            return out

        weak = weak_on(np.arange(len(y)))
        if not weak or len(weak) == len(base):
            return {}
        why = {names[j]: f"weak: dev accuracy {(L_dev[L_dev[:, j] >= 0, j] == y[L_dev[:, j] >= 0]).mean():.2f} "
                         f"< {min_accuracy}" for j in weak}
        if drop_weak is True:
            self.fit_notes.append("weak programs left out (drop_weak=True): " + ", ".join(why))
            return {n: w + " (drop_weak=True)" for n, w in why.items()}
        if len(y) < 20 or len(set(y.tolist())) < 2:
            return {}
        def leaving_out(rest):  # the weak programs of a fold are found on its other rows
            weak_here = set(weak_on(rest))
            columns = [j for j in base if j not in weak_here] or base
            return L_train[:, columns], L_dev[:, columns]

        k = self.task.cardinality
        predictions = {"kept": crossval_predictions(L_train[:, base], L_dev[:, base], y, metric, k, self.seed),
                       "left out": crossval_predictions(L_train, L_dev, y, metric, k, self.seed, leaving_out)}
        kept, dropped = (score(y, predictions[p], metric) for p in ("kept", "left out"))
        verdict = f"5-fold cross-validation on the {len(y)} dev rows ({metric}): weak programs kept {kept:.3f}, left out {dropped:.3f}"
        if dropped > kept:
            self.fit_notes.append(f"weak programs left out ({', '.join(why)}): {verdict}")
            return {n: f"{w}; left out by cross-validation on dev ({dropped:.3f} vs {kept:.3f} kept)" for n, w in why.items()}
        self.fit_notes.append(f"weak programs kept ({', '.join(why)}): {verdict}")
        return {}

    def judged_votes(self):
        """What fit()'s cross-validated choices judge (and ``llm.join`` compares after a fit): the
        labeled dev rows' labels, the train matrix and the dev votes (cross-fitted where written from
        dev) with the narrowed votes dropped, every program's column, and the columns not left out."""
        from .aggregate.guard import mask_classes

        dev = self.datasets["dev"]
        known = np.flatnonzero(dev.labels >= 0)
        names = self.program_names("train")
        drop = [self.narrowed.get(n, []) for n in names]
        base = [j for j, n in enumerate(names) if n not in self.left_out]
        return (dev.labels[known], mask_classes(self.matrix("train"), drop), mask_classes(self.dev_votes()[known], drop),
                base)

    def _classes_to_narrow(self, names: list[str], narrow, min_accuracy: float, metric: str) -> dict[str, list[int]]:
        """The votes fit() drops per program (see its ``narrow``): ``{name: classes}``."""
        from .aggregate.guard import crossval_predictions, mask_classes, weak_classes

        y, L_train, L_dev, base = self.judged_votes()
        T, D, k = L_train[:, base], L_dev[:, base], self.task.cardinality
        voted = [set(np.unique(T[:, j]).tolist()) - {-1} for j in range(T.shape[1])]

        def narrowable(rows) -> list[list[int]]:  # a strict part of the classes a program votes
            return [c if set(c) < voted[j] else [] for j, c in enumerate(weak_classes(D[rows], y[rows], k, min_accuracy))]

        drop = narrowable(np.arange(len(y)))
        found = {names[base[j]]: c for j, c in enumerate(drop) if c}
        if not found:
            return {}
        listing = ", ".join(f"{n} ({'/'.join(self.task.classes[c] for c in cs)})" for n, cs in found.items())
        if narrow is True:
            self.fit_notes.append(f"votes dropped (narrow=True): {listing}")
            return found
        if len(y) < 20 or len(set(y.tolist())) < 2:
            return {}

        def narrowing(rest):  # a fold's weak classes are found on its other rows
            d = narrowable(rest)
            return mask_classes(T, d), mask_classes(D, d)

        as_written = score(y, crossval_predictions(T, D, y, metric, k, self.seed), metric)
        narrowed = score(y, crossval_predictions(T, D, y, metric, k, self.seed, narrowing), metric)
        verdict = (f"5-fold cross-validation on the {len(y)} dev rows ({metric}): as written {as_written:.3f}, "
                   f"narrowed {narrowed:.3f}")
        if narrowed > as_written:
            self.fit_notes.append(f"votes dropped for classes a program gets mostly wrong on dev: {listing}: {verdict}")
            return found
        self.fit_notes.append(f"votes kept as written ({listing} mostly wrong on dev): {verdict}")
        return {}

    def _votes(self, split: str, heldout: bool = False) -> np.ndarray:
        """The label matrix of a split restricted to the programs the label model uses (dev with
        ``heldout``: :meth:`dev_votes`)."""
        L = self.dev_votes() if heldout and split == "dev" else self.matrix(split)
        if self._fit_names is None or split in self.stored:
            return L
        from .aggregate.guard import mask_classes

        names = self.program_names(split)
        missing = [n for n in self._fit_names if n not in names]
        if missing:
            raise ValueError(f"the programs changed since fit() ({', '.join(missing)} gone): call .fit() again")
        return mask_classes(L[:, [names.index(n) for n in self._fit_names]],
                            [self.narrowed.get(n, []) for n in self._fit_names])

    def predict_proba(self, split: str = "train") -> np.ndarray:
        """Probabilistic labels for a split from the fitted label model."""
        return self._model().predict_proba(self._votes(split))

    def predict(self, split: str = "train", uncovered: str = "abstain") -> np.ndarray:
        """Hard labels; rows no program (used by the label model) covers are -1 unless ``uncovered="prior"``."""
        return self._model().predict(self._votes(split), uncovered=uncovered)

    def labels(self, split: str = "train", votes: bool = False) -> pd.DataFrame:
        """The split's rows with the label model's answer: input columns, ``label`` (class name,
        empty where no program voted), ``confidence`` (its probability) and ``covered``; with
        ``votes=True`` also one column per program (``vote:<name>``, its class name or empty)."""
        ds = self._split(split)
        proba = self.predict_proba(split)
        pred = self.predict(split)
        frame = ds.frame[ds.input_columns].copy()
        frame["label"] = [self.task.classes[p] if p >= 0 else None for p in pred]
        frame["confidence"] = proba.max(axis=1)
        frame["covered"] = covered(self._votes(split))
        if votes:
            for j, name in enumerate(self.program_names(split)):
                frame[f"vote:{name}"] = self._class_names(self.matrix(split)[:, j])
        return frame

    def examples(self, name: str, kind: str = "covered", split: str | None = None,
                 limit: int | None = None) -> pd.DataFrame:
        """The rows behind one program's numbers, with their text (what snorkel users get from
        ``L[:, j]`` slices and ``get_label_buckets``, by name).

        ``kind``: ``"covered"`` (rows it votes on: ``vote``, and ``gold`` on labeled splits),
        ``"wrong"`` (labeled rows where its vote is not the gold label; default split dev),
        ``"conflicts"`` (rows where another program votes another class; ``others`` names them),
        ``"errors"`` (rows on which it raised; ``attrs["message"]`` holds its first error).
        ``attrs`` also has ``split``, ``program``, ``kind`` and ``status``. The index is the
        split's row index; ``limit`` keeps the first rows.
        """
        kinds = ("covered", "wrong", "conflicts", "errors")
        if kind not in kinds:
            raise ValueError(f"unknown kind {kind!r}; kinds: {list(kinds)}")
        split = split or ("dev" if kind == "wrong" else "train")
        ds = self._split(split, labeled=kind == "wrong")
        names = self.program_names(split)
        if name not in names:
            raise KeyError(f"no program named {name!r}; programs: {names}")
        j, L = names.index(name), self.matrix(split)
        column = L[:, j]
        run = self.results[split].runs[j] if split in self.results else None
        gold = ds.labels
        others = np.delete(L, j, axis=1)
        if kind == "covered":
            mask = column != ABSTAIN
        elif kind == "wrong":
            mask = (column != ABSTAIN) & (gold >= 0) & (column != gold)
        elif kind == "conflicts":
            mask = (column != ABSTAIN) & ((others != ABSTAIN) & (others != column[:, None])).any(axis=1)
        else:
            codes = run.codes if run is not None and run.codes is not None else np.full(len(column), ABSTAIN)
            mask = np.asarray(codes) == FAULT
        rows = np.flatnonzero(mask)
        if limit is not None:
            rows = rows[:limit]
        frame = ds.frame.iloc[rows][ds.input_columns].copy()
        frame["vote"] = self._class_names(column[rows])
        if gold is not None:
            frame["gold"] = self._class_names(gold[rows])
        if kind == "conflicts":
            other_names = [n for n in names if n != name]
            frame["others"] = [", ".join(f"{other_names[k]}={self.task.classes[v]}" for k, v in enumerate(row)
                                         if v != ABSTAIN and v != column[i])
                               for i, row in zip(rows, others[rows])]
        frame.attrs.update(split=split, program=name, kind=kind, status=run.status if run is not None else None,
                           message=run.message if run is not None else None)
        return frame

    def scores(self, split: str = "test", metric: str = "accuracy") -> dict:
        """Gold-label scores on a split: ``label_model`` (every row scored; uncovered rows get the
        model's no-evidence guess, WRENCH-style), ``label_model_covered`` (covered rows only),
        ``coverage`` and ``majority_vote``."""
        ds = self._split(split, labeled=True)
        known = ds.labels >= 0
        L, y = self._votes(split)[known], ds.labels[known]
        is_covered = covered(L)
        pred = self._model().predict(L, uncovered="prior")
        return {
            "label_model": score(y, pred, metric),
            "label_model_covered": score(y[is_covered], pred[is_covered], metric) if is_covered.any() else float("nan"),
            "coverage": float(is_covered.mean()),
            "majority_vote": score(y, self._majority().predict(L, uncovered="prior"), metric),
        }

    def evaluate(self, split: str = "test") -> pd.DataFrame:
        """Gold-label metrics of the chosen model and of majority vote on a labeled split.

        Every row is scored: uncovered rows get the model's a-priori most likely class
        (WRENCH-style), and ``coverage`` says how many rows any program covers.
        """
        f1 = "f1" if self.task.cardinality == 2 else "macro_f1"
        by_metric = {m: self.scores(split, m) for m in ("accuracy", f1)}
        table = pd.DataFrame([{"model": name, **{m: s[key] for m, s in by_metric.items()}}
                              for name, key in (("chosen: " + self.model_name, "label_model"),
                                                ("majority", "majority_vote"))]).set_index("model")
        table["coverage"] = by_metric["accuracy"]["coverage"]
        return table

    @property
    def model_name(self) -> str:
        """Name of the fitted label model."""
        return self.selection.name if self.selection else type(self._model()).__name__

    # -- repair ---------------------------------------------------------------------------------
    def weak_programs(self, min_accuracy: float = 0.7) -> list[tuple[Program, dict, list[str]]]:
        """``(program, stats, reasons)`` for each program :func:`weak_reasons` finds weak."""
        table, n = self.analysis(), len(self.datasets["train"])
        duplicates = set(self.flags().query("Flag == 'duplicate'").index)
        out = []
        for program in self.programs:
            if program.name in duplicates or program.name not in table.index:  # a duplicate's twin is judged
                continue                                                      # instead; unapplied: no stats
            stats = analysis_stats(table.loc[program.name], n)
            reasons = weak_reasons(stats, min_accuracy=min_accuracy)
            if reasons:
                out.append((program, stats, reasons))
        return out

    def repair(self, client=None, *, min_accuracy: float = 0.7, budget_usd: float | None = None) -> list[Program]:
        """Repair the weak programs and add the repaired ones that pass; returns those added.

        With an LLM ``client`` the model rewrites each weak program from its statistics, its wrong and
        unlabeled dev rows and the rows where it raised, quoting the exception (:meth:`repair_requests`);
        identical requests are sent once and never again by this workbench. Without one, the offline repair (``synth.repair_program``) learns exceptions from
        the dev errors and the label model's confident train labels.
        """
        weak = self.weak_programs(min_accuracy)
        if not weak:
            return []
        if client is None:
            from .synth import NothingToLearn, repair_program

            repaired = []
            for program, stats, reasons in weak:
                try:
                    repaired.append(repair_program(self, program.name, reasons=reasons))
                except NothingToLearn:
                    continue
        else:
            repaired = self._repair_with_llm(weak, client, budget_usd)
        return [p for p in repaired if self.add(p)]

    def repair_requests(self, weak=None) -> list[RepairRequest]:
        """What :meth:`repair` sends the LLM for each weak program: its statistics, the dev rows it
        labels wrongly or leaves unlabeled, and the rows where it **raised** (quoting its exception)
        or returned a non-label, read from its raw outputs (``llm.repair_evidence``): a crash is
        never shown as "returns -1". When it fails on train rows but not on dev ones, the failing
        train rows are quoted."""
        dev = self.datasets.get("dev")
        if dev is None or not dev.has_labels:
            raise ValueError("repair with the LLM shows it wrong dev rows: give the workbench labeled dev rows")
        weak = self.weak_programs() if weak is None else weak
        names = self.program_names("dev")
        requests = []
        for program, stats, _ in weak:
            j = names.index(program.name)
            run = self.results["dev"].runs[j]
            codes = run.codes if run.codes is not None else self.matrix("dev")[:, j]
            evidence = repair_evidence(dev.texts, dev.labels, codes, self.task.classes, message=self._message(run, "dev"),
                                       seed=self.seed)
            train_run = self.results["train"].runs[self.program_names("train").index(program.name)]
            if not evidence["errors"] and train_run.codes is not None and (np.asarray(train_run.codes) < -1).any():
                train = self.datasets["train"]
                message = self._message(train_run, "train")
                on_train = repair_evidence(train.texts, np.full(len(train), -1), train_run.codes, self.task.classes,
                                           message=message, seed=self.seed)
                evidence.update(errors=on_train["errors"], message=message)
            requests.append(RepairRequest(program, stats, **evidence))
        return requests

    def _message(self, run, split: str) -> str:
        """A run's one-line report; for a run the output cache answered (whose report is rebuilt from
        its codes, without the exception's text), the report of its last real run in this workbench."""
        if not run.cached:
            return run.message
        return self._run_messages.get((split, run.program.id), run.message)

    def _repair_with_llm(self, weak, client, budget_usd) -> list[Program]:
        """One request per distinct (source, evidence): programs with the same code and outputs share
        it, a request this workbench already sent is not sent (or paid for) again, and a program whose
        repaired version is in the set is not repaired again (a later round repairs the repairs)."""
        import hashlib
        import json

        sent = self._repairs_sent
        fresh: dict[str, RepairRequest] = {}
        keys = []
        repaired = {(p.provenance or {}).get("parent") for p in [*self.programs, *self.disabled.values()]}
        weak = [w for w in weak if w[0].id not in repaired]  # a program whose repair is in the set: done
        for request in self.repair_requests(weak) if weak else []:
            # the program and its own evidence (not its overlap/conflict statistics, which move whenever
            # another program joins): the same program failing the same way is not asked about twice
            key = hashlib.sha256(json.dumps([request.program.source, request.wrong, request.uncovered,
                                             [text for text, _ in request.errors]], default=str, sort_keys=True
                                            ).encode()).hexdigest()
            keys.append(key)
            if key not in sent and key not in fresh:
                fresh[key] = request
        if fresh:
            result = repair_programs(self.task, list(fresh.values()), client, existing=self.programs,
                                     budget_usd=budget_usd)
            by_parent: dict[str, list[Program]] = {}
            for p in result.programs:
                by_parent.setdefault(p.provenance.get("parent"), []).append(p)
            for key, request in fresh.items():
                sent[key] = by_parent.get(request.program.id, [])
            self.repair_failures = [str(f) for f in result.failures]
        else:
            self.repair_failures = []
        present = {p.source for p in self.programs}
        out, seen = [], set()
        for key in keys:
            for p in sent.get(key, []):
                if p.source not in present and p.source not in seen:
                    seen.add(p.source)
                    out.append(p)
        return out
        return [p for p in repaired if self.add(p)]

    # -- distillation ---------------------------------------------------------------------------
    def guard(self, metric: str = "accuracy"):
        """The label model against the simplest alternative, on the dev rows: its predictions there
        beside TF-IDF + logistic regression cross-validated on the same rows (``aggregate.guard``).

        Returns a ``GuardReport`` whose ``message`` says plainly which is better. The programs were
        written from other rows when the workbench has ``labeled`` rows apart from dev (the label
        model is still chosen on dev, which favours it slightly; the report says so).
        """
        from .aggregate.guard import compare_with_baselines

        dev = self._split("dev", labeled=True)
        known = dev.labels >= 0
        if known.sum() < 10 or len(set(dev.labels[known].tolist())) < 2:
            raise ValueError("the guard compares on labeled dev rows: it needs at least 10 of them, of 2+ classes")
        pred = self.predict("dev", uncovered="prior")[known]
        report = compare_with_baselines([t for t, k in zip(dev.texts, known) if k], dev.labels[known], pred,
                                        metric=metric, seed=self.seed)
        report.notes.append("the label model was chosen on these dev rows" + (
            "; the programs were written from other rows" if self.labeled is not None
            else "; the programs were also written from them (in-sample)"))
        return report

    def distill(self, model: str = "mlp", *, features="tfidf", uncovered: str | None = None,
                metric: str = "accuracy", cache_dir=None):
        """Train a small model on the label model's probabilistic labels of train (``distill``).

        ``uncovered``: rows no program voted on; default ``"auto"`` when dev is labeled (the dev
        set decides between learning the label model's prior there and ignoring them), else
        ``"ignore"``. Features are cached under ``<root>/cache/features`` unless ``cache_dir`` says
        otherwise. The fitted model is also ``self.distilled``.
        """
        from .distill import DistilledModel  # torch-heavy: only when distilling

        if self.label_model is None:
            raise ValueError("no label model yet: call .fit() first")
        dev = self.datasets.get("dev")
        dev = dev if dev is not None and dev.has_labels else None
        if cache_dir is None and self.root is not None:
            cache_dir = self.root / "cache" / "features"
        student = DistilledModel(features=features, model=model, seed=self.seed, metric=metric,
                                 uncovered=uncovered or ("auto" if dev is not None else "ignore"), cache_dir=cache_dir)
        student.fit(self.datasets["train"], self.predict_proba("train"), covered(self._votes("train")), dev=dev)
        self.distilled = student
        return student

    def distilled_scores(self, metric: str = "accuracy", splits=("dev", "test")) -> dict:
        """The distilled model's score on each labeled split, and the share of rows it labels."""
        if self.distilled is None:
            raise ValueError("no distilled model yet: call .distill() first")
        out = {}
        for split in splits:
            ds = self.datasets.get(split)
            if ds is not None and ds.has_labels:
                pred = np.asarray(self.distilled.predict(ds))
                known = ds.labels >= 0
                out[split] = score(ds.labels[known], pred[known], metric)
                out[f"{split}_coverage"] = float((pred >= 0).mean())
        return out

    # -- cost -----------------------------------------------------------------------------------
    def zero_shot(self, client, split: str = "dev", *, sample: int | None = None, budget_usd: float | None = None):
        """Label a split's rows with the LLM, one request each: the per-row baseline."""
        ds = self._split(split)
        return zero_shot_label(self.task, ds.texts, client, sample=sample, budget_usd=budget_usd)

    def counterfactual(self, model: str) -> dict:
        """What labeling every train row zero-shot with ``model`` would cost (computed once per model)."""
        if model not in self._zero_shot:
            texts = [str(x) for x in self._inputs["train"]]
            self._zero_shot[model] = zero_shot_counterfactual(self.task, texts, model, prices=self.meter.prices)
        return self._zero_shot[model]

    def programs_usd(self) -> float:
        """What the current programs cost, summed from their provenance (0 for offline ones)."""
        return float(sum(p.provenance.get("cost_usd") or 0.0 for p in self.programs))

    def cost(self, model: str) -> dict:
        """The task's cost account: the meter's totals, spending per purpose (program, repair,
        zero-shot, ...), the estimate, and the zero-shot counterfactual of the train rows with the
        ratio of the two."""
        summary = self.meter.summary()
        spent = summary["known_cost_usd"]
        by_purpose: dict[str, float] = {}
        for record in self.meter.records:
            by_purpose[record.purpose or "other"] = by_purpose.get(record.purpose or "other", 0.0) + (record.cost_usd or 0.0)
        zero = self.counterfactual(model)
        # the ratio compares what the programs cost (not repairs or zero-shot baselines) with labeling every row
        programs_usd = by_purpose.get("program") or self.estimate_usd
        return {**summary, "spent_usd": spent, "by_purpose": by_purpose, "estimate_usd": self.estimate_usd,
                "zero_shot_usd": zero["usd"], "zero_shot_rows": zero["rows"],
                "ratio": zero["usd"] / programs_usd if zero["usd"] and programs_usd else None}

    # -- helpers --------------------------------------------------------------------------------
    def _input_field(self) -> str:
        columns = self.datasets["train"].input_columns
        return columns[0] if len(columns) == 1 else "text"

    def _class_names(self, codes) -> list:
        return [self.task.classes[int(c)] if 0 <= int(c) < len(self.task.classes) else None for c in codes]

    def _split(self, split: str, labeled: bool = False) -> Dataset:
        ds = self.datasets.get(split)
        if ds is None:
            raise ValueError(f"unknown split {split!r}; splits: {list(self.datasets)}")
        if labeled and not ds.has_labels:
            raise ValueError(f"split {split!r} has no gold labels to evaluate against")
        return ds

    def _majority(self):
        if self.selection is not None:
            return self.selection.majority
        return MajorityVote(cardinality=self.task.cardinality, seed=self.seed).fit(self._votes("train"))

    def _model(self):
        if self.label_model is None:
            raise ValueError("no label model yet: call .fit() first")
        return self.label_model


class ProgramSubset:
    """A fitted label model that uses some of the programs (and of their votes): given a full label
    matrix (every program's column, e.g. ``Workbench.matrix(split)``) it reads only its programs'
    columns, its j-th program abstaining on the classes in ``drop[j]`` (fit's ``narrow``); a matrix
    of just those columns is used as it is. Everything else is the model's."""

    def __init__(self, model, columns: list[int], n_programs: int, drop: list[list[int]] | None = None):
        self.model, self.columns, self.n_programs = model, list(columns), n_programs
        self.drop = drop or [[] for _ in self.columns]

    def _columns_of(self, L):
        from .aggregate.guard import mask_classes

        L = np.asarray(L)
        if L.ndim != 2 or L.shape[1] != self.n_programs:
            return L  # its programs' columns already (Workbench._votes: narrowed votes dropped)
        return mask_classes(L[:, self.columns], self.drop) if any(self.drop) else L[:, self.columns]

    def predict_proba(self, L):
        return self.model.predict_proba(self._columns_of(L))

    def predict(self, L, *args, **kwargs):
        return self.model.predict(self._columns_of(L), *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.__dict__["model"], name)


def _reads_columns(source: str, columns) -> bool:
    """Whether a program's source reads one of ``columns``: ``x.column``, ``x["text"]``, or a score
    column's name as a string (``x[column]`` over a table of them, as the offline writer's do)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    names = set(columns)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names:
            return True
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value in names:
            return True
        if isinstance(node, ast.Constant) and node.value in names - {"text"}:
            return True
    return False


def _children_first(programs: list[Program]) -> list[int]:
    """Program positions with each repaired program moved just before its parent (the program
    whose id its provenance names), so that a duplicate pair keeps the repair, not the parent."""
    position = {p.id: j for j, p in enumerate(programs)}
    before: dict[int, list[int]] = {}
    for j, p in enumerate(programs):
        parent = (p.provenance or {}).get("parent")
        if parent in position and position[parent] != j:
            before.setdefault(position[parent], []).append(j)
    moved = {j for js in before.values() for j in js}
    order: list[int] = []

    def emit(j: int) -> None:
        for child in before.get(j, []):
            if child not in order:
                emit(child)
        if j not in order:
            order.append(j)

    for j in range(len(programs)):
        if j not in moved:
            emit(j)
    for j in range(len(programs)):  # a cycle of parents (never made by repair): keep every program
        if j not in order:
            order.append(j)
    return order


def _merge(parts, n_rows: int, n_programs: int) -> ApplyResult:
    """One ApplyResult from the results of program groups run with different time limits."""
    L = np.full((n_rows, n_programs), -1, dtype=np.int8)
    runs = [None] * n_programs
    for positions, result in parts:
        L[:, positions] = result.L
        for k, j in enumerate(positions):
            runs[j] = result.runs[k]
    ran = [r for _, r in parts if r.isolation != "not recorded"]
    return ApplyResult(L, runs, isolation=ran[0].isolation if ran else "not recorded",
                       layers=ran[0].layers if ran else {})


def read_current(store) -> tuple[list[dict], dict]:
    """The entries and meta of ``<root>/<task>/current.json`` (empty when absent or unreadable)."""
    import json

    from .llm.cache import read_regular_text

    try:
        text = read_regular_text(store.folder / "current.json")
        data = json.loads(text) if text else {}
        entries = [e for e in data.get("programs", []) if isinstance(e, dict)]
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
        return entries, meta
    except (OSError, ValueError, AttributeError, RecursionError):
        return [], {}


def status_of(run) -> str:
    """A run's status, stricter than the sandbox's: an ``ok`` run is ``faulty`` when more than
    ``FAULTY_SHARE`` of its rows raised and ``invalid`` when more than ``INVALID_SHARE`` of its
    outputs were not labels."""
    if run.status != "ok" or run.codes is None or not len(run.codes):
        return run.status
    n = len(run.codes)
    if run.faults > FAULTY_SHARE * n:
        return "faulty"
    if run.invalid > INVALID_SHARE * n:
        return "invalid"
    return "ok"


def problem_of(run) -> str:
    """What is wrong with a run that is not ``ok``, in one line: the sandbox's message (with the
    first exception and the first invalid value) and the first row that raised or was invalid."""
    status = status_of(run)
    if status == "ok":
        return ""
    rows = []
    if run.codes is not None:
        for code, what in ((FAULT, "raised"), (INVALID, "invalid")):
            hits = np.flatnonzero(run.codes == code)
            if len(hits):
                rows.append(f"first {what} on train row {int(hits[0])}")
    return "; ".join([run.message, *rows]) if run.message else "; ".join(rows)
