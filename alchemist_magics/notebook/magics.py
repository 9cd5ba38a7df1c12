"""IPython magics: ``%%alchemist`` writes a task's programs, ``%alchemist`` works with them, and
``%%alchemist_program`` (the first line of every generated program cell) registers an edited program.

The magics only parse options, call the layers (data, synthesizer / llm, workbench, distill) and
display; every step is reachable from plain Python through ``_alchemist`` (the last task's
:class:`TaskSession`). Settings are traitlets (``%config Alchemist.model = "gpt-4o"``) whose
defaults come from the environment, as in jupyter-ai. See docs/notebook.md.
"""
from __future__ import annotations

import argparse
import functools
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display
from traitlets import Int, Unicode, default

from ..data import Dataset, from_dataframe
from ..llm import CostMeter, LLMClient, LLMConfig
from ..llm.writer import LLMWriter
from ..programs import Program
from ..synth.writer import OfflineWriter
from ..task import TaskSpec
from ..workbench import Workbench
from .comm import program_cell, send_program_cells, send_stats, stats_message
from .panel import Panel, write_labels


class AlchemistError(Exception):
    """A user-facing error: IPython shows this one line instead of a traceback, and Run All stops."""

    def _render_traceback_(self) -> list[str]:
        return [f"AlchemistError: {self}"]


class _HelpShown(Exception):
    """``--help`` was printed: nothing else to do."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise AlchemistError(f"{self.prog}: {message} (see {self.prog} --help)")

    def exit(self, status=0, message=None):
        raise _HelpShown()


def _one_line(method):
    """Turn the layers' expected errors (bad input, missing key, budget, files) into one line."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except _HelpShown:
            return None
        except AlchemistError:
            raise
        except (ValueError, LookupError, RuntimeError, OSError) as e:
            text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            raise AlchemistError(str(text).strip().splitlines()[0] if str(text).strip() else type(e).__name__) from None
    return wrapper


def interpolate(text: str, namespace: dict) -> str:
    """Replace ``{name}`` with ``str(namespace[name])``; ``{{`` and ``}}`` stay literal braces."""
    def value(match):
        name = match.group(1)
        if name not in namespace:
            raise AlchemistError(f"{{{name}}} in the task description: no variable {name!r} in the notebook")
        return str(namespace[name])
    parts = re.split(r"(\{\{|\}\})", text)
    return "".join({"{{": "{", "}}": "}"}.get(p) or re.sub(r"\{([A-Za-z_]\w*)\}", value, p) for p in parts)


def parse_keywords(text: str | None) -> dict[str, list[str]]:
    """``"spam: free, win; ham: thanks"`` -> ``{"spam": ["free", "win"], "ham": ["thanks"]}``."""
    out: dict[str, list[str]] = {}
    for part in filter(str.strip, (text or "").split(";")):
        if ":" not in part:
            raise AlchemistError(f"--keywords {part.strip()!r}: write CLASS: word, word; CLASS: word")
        name, words = part.split(":", 1)
        out[name.strip()] = [w.strip() for w in words.split(",") if w.strip()]
    return out


@dataclass
class TaskSession:
    """One task in the kernel: its workbench (``.workbench.programs``), panel and last generation.

    ``cells`` is the JupyterLab extension's answer to the last program cells sent: which programs
    it ``inserted``, how many old cells it ``replaced``, which edited cells it ``kept``.
    """

    task: TaskSpec
    workbench: Workbench
    panel: Panel
    model: str
    notes: list[str] = field(default_factory=list)
    cells: dict = field(default_factory=dict)

    @property
    def programs(self) -> list[Program]:
        return self.workbench.programs

    @property
    def distilled(self):
        """The distilled model of ``%alchemist distill`` (``workbench.distilled``)."""
        return self.workbench.distilled


def _cell_parser() -> _Parser:
    p = _Parser(prog="%%alchemist", description="Write labeling programs for a task. The cell body is the "
                "task description; {name} is replaced by the notebook variable name.")
    p.add_argument("task", help="task name (also the folder under the root: .alchemist/<task>/)")
    p.add_argument("-d", "--data", required=True, help="variable with the rows to label (DataFrame or Dataset)")
    p.add_argument("--text", default="text", help="text column (default: text)")
    p.add_argument("--label", help="label column in data/dev (class names are taken from it without --classes)")
    p.add_argument("--classes", help="class names in index order, comma separated")
    p.add_argument("--dev", help="variable with labeled rows: exemplars, offline synthesis, label-model choice")
    p.add_argument("--test", help="variable with labeled rows for the final report only")
    p.add_argument("-n", type=int, default=10, help="number of programs (default 10)")
    p.add_argument("--model", help="LLM model (default: %%config Alchemist.model)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint (default: %%config Alchemist.base_url)")
    p.add_argument("--budget", type=float, help="the most this cell may spend, in USD")
    p.add_argument("--keywords", help='indicative keywords: "spam: free, win; ham: thanks"')
    p.add_argument("--rule", action="append", default=[], help="a labeling rule in words (repeatable)")
    p.add_argument("--offline", action="store_true", help="use the offline synthesizer even with an endpoint")
    p.add_argument("--sample", type=int, default=0, help="another number asks for fresh programs (cache key)")
    p.add_argument("--next-cell", action="store_true", help="also put all programs into the next cell")
    p.add_argument("--seed", type=int, default=0)
    return p


def _line_parser() -> _Parser:
    p = _Parser(prog="%alchemist", description="Work with a task's programs (default: the last task).")
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in [("status", "show the panel"), ("list", "list the programs"), ("apply", "re-run the programs"),
                       ("fit", "choose and fit the label model on dev"), ("analyze", "the per-program table"),
                       ("cost", "spent, estimate, budget and the zero-shot counterfactual"),
                       ("zeroshot", "label dev rows with the LLM, one request each (accuracy baseline)"),
                       ("repair", "ask the LLM to improve weak programs"),
                       ("distill", "train a small model on the label model's labels"),
                       ("export", "write the programs as a .py file with snorkel LFs"),
                       ("labels", "the rows with the label model's label, confidence and coverage"),
                       ("config", "show the settings")]:
        s = sub.add_parser(name, help=text, description=text)
        if name != "config":
            s.add_argument("task", nargs="?", help="task name (default: the last one)")
        if name == "analyze":
            s.add_argument("--sort", help="column to sort by (descending)")
        if name in ("zeroshot", "repair"):
            s.add_argument("--budget", type=float, help="the most this may spend, in USD")
        if name == "zeroshot":
            s.add_argument("--sample", type=int, help="rows of dev to ask about (default all)")
        if name == "repair":
            s.add_argument("--min-accuracy", type=float, default=0.7)
        if name == "distill":
            s.add_argument("--model", default="mlp", choices=["mlp", "logreg"])
        if name == "export":
            s.add_argument("--to", dest="path", help="output file (default <root>/<task>/export/programs.py)")
        if name == "labels":
            s.add_argument("--split", default="train", help="train (default), dev or test")
            s.add_argument("--votes", action="store_true", help="also one column per program")
            s.add_argument("--to", dest="path", help="also write them to FILE.csv or FILE.parquet")
    return p


@magics_class
class Alchemist(Magics):
    """The magics, configured with ``%config Alchemist.<name> = value``."""

    model = Unicode(help="LLM model name ($ALCHEMIST_MODEL, default gpt-4o-mini)").tag(config=True)
    base_url = Unicode(help="OpenAI-compatible endpoint ($OPENAI_BASE_URL); empty = OpenAI").tag(config=True)
    api_key_env = Unicode("OPENAI_API_KEY", help="environment variable holding the API key").tag(config=True)
    root = Unicode(help="folder for programs and caches ($ALCHEMIST_ROOT, default .alchemist)").tag(config=True)
    workers = Int(0, help="sandbox worker processes (0 = automatic)").tag(config=True)

    @default("model")
    def _default_model(self):
        return LLMConfig().model

    @default("base_url")
    def _default_base_url(self):
        return os.environ.get("OPENAI_BASE_URL", "")

    @default("root")
    def _default_root(self):
        return os.environ.get("ALCHEMIST_ROOT", ".alchemist")

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self.sessions: dict[str, TaskSession] = {}
        self.last: str | None = None

    # -- helpers ------------------------------------------------------------------------------
    def _variable(self, name: str | None, option: str):
        if name is None:
            return None
        if name not in self.shell.user_ns:
            raise AlchemistError(f"{option} {name}: no variable {name!r} in the notebook")
        return self.shell.user_ns[name]

    def _dataset(self, value, name, text, label, classes, *, need_labels=False) -> Dataset:
        if isinstance(value, Dataset):
            if need_labels and not value.has_labels:
                raise AlchemistError(f"{name} has no gold labels; the dev rows must be labeled")
            return value
        if not isinstance(value, pd.DataFrame):
            raise AlchemistError(f"{name} is a {type(value).__name__}; pass a pandas DataFrame or a Dataset")
        label_column = label or "label"
        if label_column not in value.columns:
            if need_labels:
                raise AlchemistError(f"{name} has no label column {label_column!r}; pass --label COLUMN")
            label_column = None
        return from_dataframe(value, text, label_column, classes, name=name)

    def _client(self, meter: CostMeter, model=None, base_url=None) -> LLMClient:
        config = LLMConfig(model=model or self.model, base_url=base_url or self.base_url or None,
                           api_key_env=self.api_key_env)
        return LLMClient(config, cache=Path(self.root) / "cache" / "llm", meter=meter)

    def _endpoint_configured(self, base_url=None) -> bool:
        return bool(base_url or self.base_url or os.environ.get(self.api_key_env))

    def _session(self, task: str | None) -> TaskSession:
        name = task or self.last
        if name is None:
            raise AlchemistError("no task yet: run a %%alchemist cell first")
        if name not in self.sessions:
            raise AlchemistError(f"no task {name!r} in this kernel (tasks: {sorted(self.sessions)}); "
                                 f"run its %%alchemist cell first")
        return self.sessions[name]

    def cost(self, session: TaskSession) -> dict:
        """The task's cost account (``Workbench.cost``) for the session's model."""
        return session.workbench.cost(session.model)

    def refresh(self, session: TaskSession) -> None:
        """Apply the programs (cached outputs reused: only new or edited ones run), fit, redraw."""
        wb, panel = session.workbench, session.panel
        panel.progress(0, 2, f"applying {len(wb.programs)} programs")
        wb.apply(progress=False)
        panel.progress(1, 2, "fitting the label model")
        selection = wb.fit()
        panel.progress(2, 2, "done")
        analysis, cost = wb.analysis(), self.cost(session)
        panel.update(analysis=analysis, scores=selection.scores if selection else None,
                     chosen=wb.model_name, cost=cost,
                     status=f"{len(wb.programs)} programs, {len(wb.rejected)} rejected; label model {wb.model_name}")
        self.publish(session, analysis, cost)

    def publish(self, session: TaskSession, analysis=None, cost=None) -> bool:
        """Send the task's program statistics and cost to the JupyterLab sidebar (no-op elsewhere)."""
        wb = session.workbench
        analysis = wb.analysis() if analysis is None else analysis
        cost = self.cost(session) if cost is None else cost
        return send_stats(self.shell, stats_message(session.task.name, wb.programs, analysis, cost, wb.model_name))

    def _show_programs(self, session: TaskSession, programs: list[Program], next_cell: bool) -> None:
        cells = [program_cell(session.task.name, p) for p in programs]
        sent = send_program_cells(self.shell, session.task.name, programs, on_ack=session.cells.update)
        print(f"{len(programs)} programs" + (" sent to JupyterLab as cells" if sent else "")
              + f"; in Python: _alchemist.programs. Run a program cell to register an edit.")
        display(ProgramListing(cells))
        if next_cell:
            self.shell.set_next_input("\n".join(cells), replace=False)

    # -- %%alchemist ----------------------------------------------------------------------------
    @cell_magic("alchemist")
    @_one_line
    def alchemist_cell(self, line: str, cell: str):
        """Write programs for a task; ``%%alchemist --help`` lists the options."""
        args = _cell_parser().parse_args(shlex.split(line))
        if args.n < 1:
            raise AlchemistError(f"-n {args.n}: ask for at least 1 program")
        description = interpolate(cell.strip(), self.shell.user_ns)
        if not description:
            raise AlchemistError("the cell body is the task description: write what to label below the first line")
        classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
        train = self._dataset(self._variable(args.data, "--data"), args.data, args.text, args.label, classes)
        classes = classes or train.classes
        dev = self._variable(args.dev, "--dev")
        if dev is not None:
            dev = self._dataset(dev, args.dev, args.text, args.label, classes, need_labels=True)
            classes = classes or dev.classes
        test = self._variable(args.test, "--test")
        if test is not None:
            test = self._dataset(test, args.test, args.text, args.label, classes, need_labels=True)
        if not classes:
            raise AlchemistError("no class names: pass --classes a,b or --label COLUMN (with labeled rows)")
        task = TaskSpec(args.task, description, list(classes), keywords=parse_keywords(args.keywords), rules=args.rule)
        model = args.model or self.model
        wb = Workbench(task, train, dev, test, root=self.root, workers=self.workers or None, seed=args.seed)
        offline = args.offline or not self._endpoint_configured(args.base_url)
        if offline and dev is None:
            raise AlchemistError(f"no LLM endpoint configured (set ${self.api_key_env} or %config Alchemist.base_url) "
                                 "and the offline synthesizer needs labeled rows: pass --dev VARIABLE")
        session = TaskSession(task, wb, Panel(task.name, workbench=wb), model)
        session.panel.progress(0, args.n, f"writing {args.n} programs")
        display(session.panel)
        accepted = self._write_programs(session, args, model, offline)
        # Registered only now: a failed cell leaves the task's previous state in place.
        self.sessions[task.name], self.last = session, task.name
        self.shell.user_ns["_alchemist"] = session
        self.refresh(session)
        self._show_programs(session, accepted, args.next_cell)

    def _write_programs(self, session: TaskSession, args, model: str, offline: bool) -> list[Program]:
        wb = session.workbench
        if offline:
            why = "--offline" if args.offline else f"no LLM endpoint configured (${self.api_key_env} unset)"
            print(f"{why}: writing up to {args.n} programs with the offline synthesizer from "
                  f"{len(wb.writer_rows)} labeled dev rows.")
            writer = OfflineWriter()
        else:
            writer = LLMWriter(self._client(wb.meter, model, args.base_url), budget_usd=args.budget,
                               first_sample=args.sample)
        result = wb.write(writer, args.n)
        for failure in result.failures:
            print(f"failed: {failure}")
        if not offline:
            print(result.note)
        for program, why in result.rejected:
            print(f"rejected {program.name}: {why}")
        if not result.accepted:
            raise AlchemistError(f"none of the {len(result.programs)} programs passed the smoke test; see the reasons above")
        return result.accepted

    # -- %%alchemist_program ------------------------------------------------------------------------
    @cell_magic("alchemist_program")
    @_one_line
    def alchemist_program(self, line: str, cell: str):
        """``%%alchemist_program TASK [NAME]``: register the cell's source as program NAME of TASK
        (replacing the program of that name) and re-apply only it."""
        words = line.split()
        if not 1 <= len(words) <= 2:
            raise AlchemistError("write %%alchemist_program TASK [NAME] as the first line of a program cell")
        session = self._session(words[0])
        wb = session.workbench
        old = {p.name: p for p in wb.programs}
        name = words[1] if len(words) == 2 else None
        program = Program(cell, name=name, provenance={"source": "notebook cell",
                                                       "parent": old[name].id if name in old else None})
        if name in old and old[name].source == program.source:
            program = old[name]  # unchanged: keep its provenance
        elif not wb.add(program):
            raise AlchemistError(f"program {program.name} not registered: {wb.rejected[-1][1]}")
        self.refresh(session)
        row = session.panel.analysis.loc[program.name]
        verb = "unchanged" if program is old.get(name) else "replaced" if program.name in old else "added"
        acc = row.get("Emp. Acc.")
        print(f"{verb} {program.name} ({program.id}): coverage {row['Coverage']:.3f}"
              + (f", dev accuracy {acc:.3f}" if acc is not None and not pd.isna(acc) else "")
              + f", status {row['Status']}; label model {wb.model_name}")

    # -- %alchemist -------------------------------------------------------------------------------
    @line_magic("alchemist")
    @_one_line
    def alchemist_line(self, line: str):
        """``%alchemist status|list|apply|fit|analyze|cost|zeroshot|repair|distill|export|config``."""
        args = _line_parser().parse_args(shlex.split(line))
        if args.command == "config":
            return pd.Series({name: getattr(self, name) for name in self.trait_names(config=True)}, name="Alchemist")
        session = self._session(args.task)
        return getattr(self, f"_cmd_{args.command}")(session, args)

    def _cmd_status(self, session, args):
        return session.panel

    def _cmd_list(self, session, args):
        return pd.DataFrame([{"name": p.name, "id": p.id, "source": p.provenance.get("source", "llm")}
                             for p in session.programs])

    def _cmd_apply(self, session, args):
        self.refresh(session)
        return session.panel

    def _cmd_fit(self, session, args):
        selection = session.workbench.fit()
        self.publish(session)
        if selection is None:
            print("no labeled dev rows: Dawid-Skene fitted unsupervised")
            return None
        return selection.scores

    def _cmd_analyze(self, session, args):
        table = session.workbench.analysis()
        if args.sort:
            if args.sort not in table.columns:
                raise AlchemistError(f"--sort {args.sort!r}: columns are {list(table.columns)}")
            table = table.sort_values(args.sort, ascending=False, kind="stable")
        return table

    def _cmd_cost(self, session, args):
        return pd.Series(self.cost(session), name="cost", dtype=object)

    def _cmd_zeroshot(self, session, args):
        dev = session.workbench.datasets.get("dev")
        if dev is None:
            raise AlchemistError("zeroshot compares with gold labels: run the task with --dev")
        if not self._endpoint_configured():
            raise AlchemistError(f"zeroshot asks the LLM: set ${self.api_key_env} or %config Alchemist.base_url")
        result = session.workbench.zero_shot(self._client(session.workbench.meter, session.model), "dev",
                                             sample=args.sample, budget_usd=args.budget)
        return pd.Series({"rows": len(result.rows), "accuracy": result.accuracy(dev.labels),
                          "cost_usd": result.cost_usd, "failures": result.failures}, name="zero-shot on dev")

    def _cmd_repair(self, session, args):
        wb = session.workbench
        dev = wb.datasets.get("dev")
        if dev is None or not self._endpoint_configured():
            raise AlchemistError("repair needs labeled dev rows (--dev) and an LLM endpoint "
                                 f"(${self.api_key_env} or %config Alchemist.base_url)")
        weak = len(wb.weak_programs(args.min_accuracy))
        if not weak:
            print("no weak program to repair")
            return None
        accepted = wb.repair(self._client(wb.meter, session.model), min_accuracy=args.min_accuracy,
                             budget_usd=args.budget)
        print(f"{len(accepted)} repaired programs of {weak} weak ones")
        if accepted:
            self.refresh(session)
            self._show_programs(session, accepted, next_cell=False)
        return None

    def _cmd_distill(self, session, args):
        wb = session.workbench
        if wb.label_model is None:
            self.refresh(session)
        model = wb.distill(args.model)
        scores = wb.distilled_scores("accuracy")
        n_covered = int((wb.matrix("train") != -1).any(axis=1).sum())
        prior = " and the label model's prior on the uncovered ones" if model.uncovered_ == "prior" else ""
        print(f"distilled {args.model} on {n_covered} covered rows{prior}; in Python: _alchemist.distilled")
        return pd.Series({k: v for k, v in scores.items() if not k.endswith("_coverage")},
                         name="distilled accuracy", dtype=float)

    def _cmd_labels(self, session, args):
        if session.workbench.label_model is None:
            self.refresh(session)
        return write_labels(session.workbench.labels(args.split, votes=args.votes), args.path)

    def _cmd_export(self, session, args):
        path = session.workbench.export(args.path)
        print(f"wrote {len(session.programs)} programs to {path} (programs() and snorkel_lfs())")
        return None


class ProgramListing:
    """The generated program cells, shown in the magic's output (no extension needed)."""

    def __init__(self, cells: list[str]):
        self.cells = cells

    def __repr__(self) -> str:
        return "\n\n".join(self.cells)

    def _repr_markdown_(self) -> str:
        return "\n".join(f"```python\n{c}```" for c in self.cells)


def load_ipython_extension(shell) -> None:
    """``%load_ext alchemist_magics``: register the magics and make them ``%config``-urable."""
    magics = Alchemist(shell=shell, config=shell.config)
    shell.register_magics(magics)
    if magics not in shell.configurables:
        shell.configurables.append(magics)
