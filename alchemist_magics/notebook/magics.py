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
import html
import os
import re
import shlex
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display
from traitlets import Float, Int, Unicode, default

from ..data import Dataset, from_dataframe
from ..llm import CostMeter, LLMClient, LLMConfig
from ..llm.client import DEFAULT_MODEL
from ..llm.writer import LLMWriter
from ..programs import Program
from ..programs.apply import reporting_progress
from ..programs.cache import FAILED_STATUSES
from ..synth.writer import OfflineWriter
from ..task import TaskSpec
from ..workbench import Workbench
from .comm import (CELL_MAGIC, cell_id, listen, program_cell, request_code, request_metadata, send,
                   send_program_cells, send_stats, stats_message, text_hash)
from .panel import CostReport, Panel, write_labels


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
        self.fit_lines = []
        try:
            result = method(self, *args, **kwargs)
            for line in self.fit_lines:
                print(line)
            return result
        except _HelpShown:
            return None
        except AlchemistError:
            raise
        except KeyboardInterrupt:
            raise AlchemistError("interrupted; the programs registered so far are kept "
                                 "(a program that hangs: lower --time-limit)") from None
        except (ValueError, LookupError, RuntimeError, OSError) as e:
            text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            raise AlchemistError(str(text).strip().splitlines()[0] if str(text).strip() else type(e).__name__) from None
    return wrapper


def _cell_lines(reason: str) -> str:
    """A rejection reason with line numbers counted in the program cell (its marker is line 1)."""
    return re.sub(r"\bline (\d+)", lambda m: f"line {int(m.group(1)) + 1} of the cell", reason)


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
    The notebook is the source of truth for the program set: ``cell_of`` binds each program to the
    id of the cell that holds it, ``order`` is the notebook's order of the task's program cells
    (from the extension), ``gone`` the ids of cells the extension reported deleted, ``run`` the id
    of the last execution of the ``%%alchemist`` cell (``magic_cell``).
    """

    task: TaskSpec
    workbench: Workbench
    panel: Panel
    model: str
    notes: list[str] = field(default_factory=list)
    cells: dict = field(default_factory=dict)
    cell_of: dict = field(default_factory=dict)
    order: list = field(default_factory=list)
    gone: set = field(default_factory=set)
    run: str | None = None
    magic_cell: str | None = None
    meta: dict = field(default_factory=dict)
    line: "StatusLine | None" = None
    llm: dict = field(default_factory=dict)  # the cell's LLM options (--model, --temperature...), for repair and zeroshot
    refused: dict = field(default_factory=dict)  # (name, source, limit, train fingerprint) -> why its check failed
    fit_line: str = ""  # the last fit_line() printed, so an unchanged one is not repeated each cell

    @property
    def programs(self) -> list[Program]:
        return self.workbench.programs

    @property
    def distilled(self):
        """The distilled model of ``%alchemist distill`` (``workbench.distilled``)."""
        return self.workbench.distilled

    def all_programs(self) -> list[Program]:
        """Enabled and disabled programs, in the notebook's order where it is known."""
        wb = self.workbench
        everything = [*wb.programs, *wb.disabled.values()]
        rank = {name: i for i, name in enumerate(self.order)}
        return sorted(everything, key=lambda p: rank.get(p.name, len(rank)))


class StatusLine:
    """One line of text in a cell's output that can change after the cell has finished (an
    ipywidgets label where widgets render; its text elsewhere, e.g. nbval)."""

    def __init__(self, text: str):
        self.text = text
        self._widget = None

    def update(self, text: str) -> None:
        self.text = text
        if self._widget is not None:
            self._widget.value = html.escape(text)

    def __repr__(self) -> str:
        return self.text

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/plain": self.text}
        try:
            import ipywidgets

            if self._widget is None:
                self._widget = ipywidgets.HTML(value=html.escape(self.text))
                self._widget.add_class("alchemist-status-line")
            view = self._widget._repr_mimebundle_() or {}
        except ImportError:
            return bundle
        bundle.update({k: v for k, v in view.items() if k != "text/plain"})
        return bundle


def fit_line(wb: Workbench) -> str:
    """``fit()``'s notes in one line: which programs the label model left out, grouped by why
    (a flag, or weak), whose votes for a class it drops (narrowed), and whether it learned the votes'
    weights from the labeled rows (``fit(supervised=True)``), or "" when it uses them all as they are."""
    parts = []
    if wb.left_out:
        groups: dict[str, list[str]] = {}
        for name, why in wb.left_out.items():
            groups.setdefault(why.split(":", 1)[0], []).append(name)
        listing = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in groups.items())
        parts.append(f"the label model leaves out {len(wb.left_out)} of {len(wb.programs)} programs ({listing})")
    if wb.narrowed:
        parts.append("it drops the votes each program gets mostly wrong on dev (" + ", ".join(
            f"{name}: {'/'.join(wb.task.classes[c] for c in classes)}" for name, classes in wb.narrowed.items()) + ")")
    if wb.label_model is not None and wb.model_name == "vote_classifier":
        parts.append(("it" if parts else "the label model") + " weighs each program's votes as learned from the "
                     "labeled dev rows (vote_classifier: better than the unsupervised models on held-out dev rows)")
    return "; ".join(parts) + "; why: %alchemist analyze (Status, Problem) and _alchemist.workbench.fit_notes" if parts else ""


def program_list(shell, task: str) -> list[dict]:
    """The kernel's program set of ``task``, in order: ``{"name", "source", "disabled"}`` each
    (what the browser tests compare with the notebook's program cells)."""
    session = shell.magics_manager.registry["Alchemist"].sessions[task]
    disabled = session.workbench.disabled
    return [{"name": p.name, "source": p.source, "disabled": p.name in disabled} for p in session.all_programs()]


def parse_marker(line: str) -> dict:
    """``TASK [NAME] [--disabled] [--time-limit S]`` (the marker line without ``%%alchemist_program``)."""
    p = _Parser(prog="%%alchemist_program", add_help=False)
    p.add_argument("task")
    p.add_argument("name", nargs="?")
    p.add_argument("--disabled", action="store_true")
    p.add_argument("--time-limit", type=float, dest="time_limit")
    try:
        args = p.parse_args(shlex.split(line))
    except AlchemistError:
        raise AlchemistError("write %%alchemist_program TASK [NAME] [--disabled] [--time-limit S] as the "
                             "first line of a program cell") from None
    if args.time_limit is not None and args.time_limit <= 0:
        raise AlchemistError(f"--time-limit {args.time_limit}: give a positive number of seconds")
    return vars(args)


def _set_time_limit(wb: Workbench, name: str | None, limit: float | None) -> bool:
    """The program's own time limit from its marker line; True when it changed."""
    if name is None or wb.time_limits.get(name) == limit:
        return False
    if limit is None:
        wb.time_limits.pop(name, None)
    else:
        wb.time_limits[name] = limit
    return True


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
    p.add_argument("-n", type=int, default=10, help="number of programs (default 10; offline: keyword programs, concept and classifier ones come on top)")
    p.add_argument("--model", help="LLM model (default: %%config Alchemist.model)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint (default: %%config Alchemist.base_url)")
    p.add_argument("--budget", type=float, help="the most this cell may spend, in USD")
    p.add_argument("--budget-tokens", type=int, dest="budget_tokens",
                   help="the most tokens (prompt + completion) this cell may use (works for local models, which have no price)")
    p.add_argument("--temperature", type=float, help="sampling temperature, 0-2 (default: %%config Alchemist.temperature, 0.7)")
    p.add_argument("--max-tokens", type=int, dest="max_tokens",
                   help="most tokens of one reply (default: %%config Alchemist.max_tokens, 1024)")
    p.add_argument("--timeout", type=float, dest="timeout_s",
                   help="seconds one request attempt may take in total (default: %%config Alchemist.timeout_s; "
                        "automatic: 60 s for a cloud endpoint, from the measured speed for a local one)")
    p.add_argument("--concurrency", type=int,
                   help="at most N requests in flight, fixed (default: %%config Alchemist.concurrency; 0 = adaptive, "
                        "starting at 1 for a local server and 4 for a cloud one)")
    p.add_argument("--max-attempts", type=int, dest="max_attempts",
                   help="attempts per request: retries on timeouts, rate limits and unusable replies "
                        "(default: %%config Alchemist.max_attempts, 4)")
    p.add_argument("--keywords", help='indicative keywords: "spam: free, win; ham: thanks"')
    p.add_argument("--rule", action="append", default=[], help="a labeling rule in words (repeatable)")
    p.add_argument("--offline", action="store_true", help="use the offline synthesizer even with an endpoint")
    p.add_argument("--sample", type=int, default=0, help="another number asks for fresh programs (cache key)")
    p.add_argument("--next-cell", action="store_true", help="also put all programs into the next cell")
    p.add_argument("--time-limit", type=float, default=60.0, dest="time_limit",
                   help="seconds one program may run over all rows of a split (default 60)")
    p.add_argument("--missing", choices=["error", "drop", "empty"], default="error",
                   help="rows whose text is NaN/None: error (default), drop them, or use an empty text")
    p.add_argument("--writer-share", type=float, default=0.5, dest="writer_share",
                   help="share of the --dev rows the programs are written from; the rest score them and "
                        "choose the label model (default 0.5; 1 = write and score on the same rows, in-sample)")
    p.add_argument("--estimate", action="store_true", help="print what writing the programs would cost; send nothing")
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
                       ("remove", "remove a program and its cell"),
                       ("disable", "keep a program and its cell but stop running it (--disabled in its marker)"),
                       ("enable", "run a disabled program again"),
                       ("load", "restore a task from its store (programs verified by their hashes)"),
                       ("config", "show the settings")]:
        s = sub.add_parser(name, help=text, description=text)
        if name in ("remove", "disable", "enable"):
            s.add_argument("name", help="the program")
            s.add_argument("--task", help="task name (default: the last one)")
        elif name != "config":
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

    model = Unicode(help="LLM model name ($ALCHEMIST_MODEL; empty: the one a --base-url server lists, "
                         "else gpt-4o-mini)").tag(config=True)
    base_url = Unicode(help="OpenAI-compatible endpoint ($OPENAI_BASE_URL); empty = OpenAI").tag(config=True)
    api_key_env = Unicode("OPENAI_API_KEY", help="environment variable holding the API key").tag(config=True)
    root = Unicode(help="folder for programs and caches ($ALCHEMIST_ROOT, default .alchemist)").tag(config=True)
    workers = Int(0, help="sandbox worker processes (0 = automatic)").tag(config=True)
    # the LLM client (llm.client.LLMConfig); each has a per-cell option of %%alchemist
    temperature = Float(LLMConfig.temperature, help="sampling temperature of program requests, 0-2").tag(config=True)
    max_tokens = Int(LLMConfig.max_tokens, help="most tokens of one reply").tag(config=True)
    timeout_s = Float(None, allow_none=True, help="seconds one request attempt may take in total; None = automatic "
                      "(60 s for a cloud endpoint; for a local one from the server's measured speed)").tag(config=True)
    concurrency = Int(0, help="requests in flight: 0 = adaptive (starts at 1 for a local server, 4 for a cloud "
                      "one, backs off on timeouts), N = at most N, fixed").tag(config=True)
    max_attempts = Int(LLMConfig.max_attempts, help="attempts per request (retries on timeouts, rate limits "
                       "and unusable replies)").tag(config=True)

    @default("model")
    def _default_model(self):
        return LLMConfig().model or ""

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
        self.fit_lines: list[str] = []  # this magic call's changed fit_line()s, printed after its own output

    # -- helpers ------------------------------------------------------------------------------
    def _variable(self, name: str | None, option: str):
        if name is None:
            return None
        if name not in self.shell.user_ns:
            raise AlchemistError(f"{option} {name}: no variable {name!r} in the notebook")
        return self.shell.user_ns[name]

    def _dataset(self, value, name, text, label, classes, *, need_labels=False, missing="error") -> Dataset:
        if isinstance(value, Dataset):
            if need_labels and not value.has_labels:
                raise AlchemistError(f"{name} has no gold labels; the dev rows must be labeled")
            return value
        if not isinstance(value, pd.DataFrame):
            raise AlchemistError(f"{name} is a {type(value).__name__}; pass a pandas DataFrame or a Dataset")
        label_column = label or "label"
        if label_column not in value.columns:
            if need_labels:
                if label:
                    raise AlchemistError(f"--label {label}: {name} has no column {label!r}; "
                                         f"its columns are {list(map(str, value.columns))}")
                raise AlchemistError(f"{name} has no label column {label_column!r}; pass --label COLUMN")
            label_column = None
        try:
            return from_dataframe(value, text, label_column, classes, name=name, missing=missing)
        except ValueError as e:
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if "missing=" in message:
                message += " (the magic takes --missing drop or --missing empty)"
            raise AlchemistError(message) from None

    def llm_settings(self, **cell) -> dict:
        """The ``LLMConfig`` fields the traitlets and a cell's options (which win) set, checked:
        ``temperature``, ``max_tokens``, ``timeout_s``, ``concurrency`` (fixed when set), ``max_attempts``."""
        settings = {"temperature": self.temperature, "max_tokens": self.max_tokens, "timeout_s": self.timeout_s,
                    "concurrency": self.concurrency or None, "max_attempts": self.max_attempts}
        settings.update({k: v for k, v in cell.items() if k in settings and v is not None})
        if settings["concurrency"] == 0:  # --concurrency 0, like the traitlet's 0: adaptive
            settings["concurrency"] = None
        for name, option, ok, want in (
                ("temperature", "--temperature", lambda v: 0 <= v <= 2, "a number from 0 to 2"),
                ("max_tokens", "--max-tokens", lambda v: v >= 1, "a positive number of tokens"),
                ("timeout_s", "--timeout", lambda v: v is None or v > 0, "a positive number of seconds"),
                ("concurrency", "--concurrency", lambda v: v is None or v >= 1, "at least 1 (0 in %config: adaptive)"),
                ("max_attempts", "--max-attempts", lambda v: v >= 1, "at least 1")):
            value = settings[name]
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                      or value != value or not ok(value)):
                raise AlchemistError(f"{option} {value} (or %config Alchemist.{name}): give {want}")
        settings["adaptive"] = settings["concurrency"] is None
        return settings

    def _client(self, meter: CostMeter, model=None, base_url=None, **cell) -> LLMClient:
        config = LLMConfig(model=model or self.model or None, base_url=base_url or self.base_url or None,
                           api_key_env=self.api_key_env, **self.llm_settings(**cell))
        return LLMClient(config, cache=Path(self.root) / "cache" / "llm", meter=meter)

    def _endpoint_configured(self, base_url=None) -> bool:
        return bool(base_url or self.base_url or os.environ.get(self.api_key_env))

    def _session(self, task: str | None, *, load: bool = False) -> TaskSession:
        name = task or self.last
        if name is None:
            raise AlchemistError("no task yet: run a %%alchemist cell first")
        if name not in self.sessions and load and self._load(name, quiet=True) is not None:
            return self.sessions[name]
        if name not in self.sessions:
            raise AlchemistError(f"no task {name!r} in this kernel (tasks: {sorted(self.sessions)}); "
                                 f"run its %%alchemist cell first")
        return self.sessions[name]

    def cost(self, session: TaskSession) -> dict:
        """The task's cost account (``Workbench.cost``) for the session's model, with the budget."""
        cost = session.workbench.cost(session.model)
        budget = session.meta.get("budget")
        if budget is not None:
            cost["budget_usd"] = budget
            cost["budget_left_usd"] = max(0.0, budget - (cost.get("spent_usd") or 0.0))
        return cost

    def refresh(self, session: TaskSession) -> None:
        """Apply the programs (cached outputs reused: only new or edited ones run), fit, redraw,
        tell the sidebar and record the program set in the store (for ``%alchemist load``)."""
        wb, panel = session.workbench, session.panel
        if session.order:
            wb.reorder(session.order)
        self._save(session)
        if not wb.programs:
            wb.results.clear()
            panel.update(status=f"no programs ({len(wb.disabled)} disabled)")
            self.publish(session)
            return
        panel.begin_apply([p.name for p in wb.programs], list(wb.datasets))
        try:
            wb.apply(progress=False, on_progress=panel.program_progress)
        finally:
            panel.end_apply()
        panel.progress(1, 2, "fitting the label model")
        selection = wb.fit()
        panel.progress(2, 2, "done")
        line = fit_line(wb)
        if line != session.fit_line:
            session.fit_line = line
            if line and line not in self.fit_lines:
                self.fit_lines.append(line)
        analysis, cost = wb.analysis(), self.cost(session)
        unchosen = int((analysis["Status"] == "not_chosen").sum())  # written, passed over by the set choice
        bad = int((~analysis["Status"].isin(["ok", "not_chosen"])).sum())
        counts = ", ".join(x for x in (f"{bad} not ok" if bad else "", f"{unchosen} not chosen" if unchosen else "") if x)
        disabled = f", {len(wb.disabled)} disabled" if wb.disabled else ""
        panel.update(analysis=analysis, scores=selection.scores if selection else None,
                     chosen=wb.model_name, cost=cost,
                     status=f"{len(wb.programs)} programs" + (f" ({counts})" if counts else "")
                            + f"{disabled}, {len(wb.rejected)} rejected; "
                            f"label model {wb.model_name}")
        self.publish(session, analysis, cost)

    def _save(self, session: TaskSession) -> None:
        try:
            session.workbench.save_set(session.meta)
        except OSError as e:  # the store is a convenience for load: never fail a cell over it
            session.notes.append(f"could not record the program set: {e}")

    def publish(self, session: TaskSession, analysis=None, cost=None) -> bool:
        """Send the task's program statistics and cost to the JupyterLab sidebar (no-op elsewhere)."""
        wb = session.workbench
        if analysis is None and wb.programs and "train" in wb.results:
            analysis = wb.analysis()
        cost = self.cost(session) if cost is None else cost
        return send_stats(self.shell, stats_message(session.task.name, session.all_programs(), analysis, cost,
                                                    wb.model_name if wb.label_model is not None else None,
                                                    disabled=set(wb.disabled)))

    def _show_programs(self, session: TaskSession, programs: list[Program], next_cell: bool) -> None:
        cells = [program_cell(session.task.name, p) for p in programs]
        n = len(programs)
        session.line = StatusLine(
            f"{n} programs, shown below; in Python: _alchemist.programs." + (
                " Asked JupyterLab to insert them as cells: no answer from the alchemist extension yet "
                "(without it, copy them from here or re-run with --next-cell)." if session.run else
                " This frontend sent no cell id, so they are not inserted as cells: copy them from here "
                "or re-run with --next-cell."))
        if session.run:
            send_program_cells(self.shell, session.task.name, programs, run=session.run,
                               on_ack=functools.partial(self._on_ack, session))
        display(session.line)
        display(ProgramListing(cells))
        if next_cell:
            self.shell.set_next_input("\n".join(cells), replace=False)

    # -- the extension's messages (after the cell finished) ------------------------------------------
    def _on_ack(self, session: TaskSession, data: dict) -> None:
        """The extension inserted (or could not insert) the cells: bind them, register the edited
        cells it kept (the notebook is the truth), follow its order, redraw."""
        try:
            session.cells.update(data)
            if not data.get("found"):
                session.line.update(f"{len(session.programs)} programs, shown below: JupyterLab could not find "
                                    "the %%alchemist cell to insert them after (was it deleted?).")
                return
            problems = self._reconcile(session, data.get("cells") or [], register_edited=True)
            kept, elsewhere = data.get("kept") or [], data.get("elsewhere") or []
            text = (f"{len(data.get('inserted') or [])} programs sent to JupyterLab as cells below this one "
                    f"(replaced {data.get('replaced', 0)} old cells"
                    + (f"; kept {len(kept)} edited: {', '.join(kept)}, registered with their edits" if kept else "")
                    + (f"; {len(elsewhere)} already in another cell, which the kernel follows: "
                       f"{', '.join(elsewhere)}" if elsewhere else "")
                    + "). Run a program cell to register an edit.")
            session.line.update(text + "".join(f" {p}" for p in problems))
        except Exception as e:  # a comm handler has nowhere to raise to: say it in the cell's line
            if session.line is not None:
                session.line.update(f"alchemist: could not follow the notebook's cells: {type(e).__name__}: {e}")

    def _on_message(self, data: dict) -> None:
        """A message the extension opened: ``sync`` (cells deleted, moved or inserted)."""
        if not isinstance(data, dict) or data.get("kind") != "sync":
            return
        cells = [c for c in data.get("cells") or [] if isinstance(c, dict)]
        for name, session in list(self.sessions.items()):
            try:
                self._reconcile(session, [c for c in cells if c.get("task") == name], register_edited=False)
            except Exception as e:
                session.notes.append(f"sync failed: {type(e).__name__}: {e}")

    def _reconcile(self, session: TaskSession, cells: list[dict], *, register_edited: bool) -> list[str]:
        """Make the kernel's program set follow the task's program cells (in notebook order).

        Programs bound to a cell that is no longer there are removed; with ``register_edited`` the
        cells' sources are registered where they differ from the kernel's (the edited cells a new
        run of the magic kept). Returns one line per edited cell that could not be registered.
        """
        wb, problems, changed = session.workbench, [], False
        present = {c.get("cell_id") for c in cells}
        names_in_cells = {c.get("name") for c in cells}
        for name, cid in list(session.cell_of.items()):
            if cid not in present:
                del session.cell_of[name]
                session.gone.add(cid)
                if name not in names_in_cells and (name in wb.disabled or name in [p.name for p in wb.programs]):
                    wb.remove(name)
                    changed = True
        for c in cells:
            if c.get("name") and c.get("cell_id"):
                session.cell_of[c["name"]] = c["cell_id"]
        session.panel.unrefuse(*(n for n in list(session.panel.refused) if n not in names_in_cells))
        if register_edited:
            current = {p.name: p for p in session.all_programs()}
            for c in cells:
                marker, _, body = str(c.get("source", "")).partition("\n")
                try:
                    options = parse_marker(marker.removeprefix("%%" + CELL_MAGIC))
                except AlchemistError:
                    continue
                name, old = options["name"] or c.get("name"), current.get(options["name"] or c.get("name"))
                disabled = options["disabled"]
                changed = _set_time_limit(wb, name, options["time_limit"]) or changed
                if old is not None and old.source.rstrip() == body.rstrip():
                    if disabled != (name in wb.disabled):
                        (wb.disable if disabled else wb.enable)(name)
                        changed = True
                    continue
                program = Program(body, name=name, provenance={"source": "notebook cell",
                                                               "parent": old.id if old else None})
                if wb.add(program):
                    if disabled:
                        wb.disable(name)
                    changed = True
                else:
                    problems.append(f"Edited cell {name} not registered: {_cell_lines(wb.rejected[-1][1])}.")
        order = [c.get("name") for c in cells]
        if order != session.order:
            session.order = order
            changed = True
        if changed:
            self.refresh(session)
        return problems

    # -- %%alchemist ----------------------------------------------------------------------------
    @cell_magic("alchemist")
    @_one_line
    def alchemist_cell(self, line: str, cell: str):
        """Write programs for a task; ``%%alchemist --help`` lists the options."""
        args = _cell_parser().parse_args(shlex.split(line))
        if args.n < 1:
            raise AlchemistError(f"-n {args.n}: ask for at least 1 program")
        if args.time_limit <= 0:
            raise AlchemistError(f"--time-limit {args.time_limit}: give a positive number of seconds")
        if not 0 < args.writer_share <= 1:
            raise AlchemistError(f"--writer-share {args.writer_share}: give a share in (0, 1]")
        session, offline = self._make_session(args, cell, line)
        wb = session.workbench
        if args.estimate:
            return self._estimate(session, args, offline)
        session.panel.progress(0, args.n, f"writing {args.n} programs")
        display(session.panel)
        accepted = self._write_programs(session, args, session.model, offline)
        # Registered only now: a failed cell leaves the task's previous state in place.
        self.sessions[session.task.name], self.last = session, session.task.name
        self.shell.user_ns["_alchemist"] = session
        session.magic_cell = cell_id(self.shell)
        session.run = uuid.uuid4().hex[:12] if session.magic_cell else None
        session.order = [p.name for p in wb.programs]
        self.refresh(session)
        self._say_guard(session)
        self._show_programs(session, accepted, args.next_cell)

    def _say_guard(self, session: TaskSession) -> None:
        """One line: the programs against a classifier trained on the labeled dev rows (``Workbench.guard``)."""
        dev = session.workbench.datasets.get("dev")
        if dev is not None and dev.has_labels and session.workbench.label_model is not None:
            try:
                report = session.workbench.guard()
            except ValueError as e:
                print(f"guard: {e}")
                return
            print(f"guard: {report.message} ({'; '.join(report.notes)})")

    def _make_session(self, args, cell: str, line: str) -> tuple[TaskSession, bool]:
        """The task, its data splits and its (empty) workbench, from the magic's options and body."""
        description = interpolate(cell.strip(), self.shell.user_ns)
        if not description:
            raise AlchemistError("the cell body is the task description: write what to label below the first line")
        classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
        data = self._variable(args.data, "--data")
        train = self._dataset(data, args.data, args.text, args.label, classes, missing=args.missing)
        classes = classes or train.classes
        dev = self._variable(args.dev, "--dev")
        if dev is not None:
            dev = self._dataset(dev, args.dev, args.text, args.label, classes, need_labels=True, missing=args.missing)
            classes = classes or dev.classes
        test = self._variable(args.test, "--test")
        if test is not None:
            test = self._dataset(test, args.test, args.text, args.label, classes, need_labels=True,
                                 missing=args.missing)
        if not classes:
            if args.label:
                raise AlchemistError(f"--label {args.label}: no column {args.label!r} in {args.data}"
                                     + (f" or {args.dev}" if args.dev else "")
                                     + f" (columns: {list(map(str, data.columns)) if isinstance(data, pd.DataFrame) else '?'})"
                                     "; pass the label column's name, or --classes a,b")
            raise AlchemistError("no class names: pass --classes a,b or --label COLUMN (with labeled rows)")
        task = TaskSpec(args.task, description, list(classes), keywords=parse_keywords(args.keywords), rules=args.rule)
        model = args.model or self.model or DEFAULT_MODEL
        labeled, scored = dev, dev
        if dev is not None and args.writer_share < 1:
            # honest numbers: the rows programs are written from do not score them or choose the label model
            order = np.random.default_rng(args.seed).permutation(len(dev))
            cut = max(1, min(len(dev) - 1, round(len(dev) * args.writer_share)))
            if len(dev) >= 2:
                labeled = dev.subset(np.sort(order[:cut]), name=f"{args.dev} (writer rows)")
                scored = dev.subset(np.sort(order[cut:]), name=f"{args.dev} (scoring rows)")
        wb = Workbench(task, train, scored, test, labeled=labeled, root=self.root, workers=self.workers or None,
                       seed=args.seed, time_limit_s=args.time_limit)
        offline = args.offline or not self._endpoint_configured(args.base_url)
        if offline and dev is None:
            raise AlchemistError(f"no LLM endpoint configured (set ${self.api_key_env} or %config Alchemist.base_url) "
                                 "and the offline synthesizer needs labeled rows: pass --dev VARIABLE")
        llm = {k: getattr(args, k) for k in ("temperature", "max_tokens", "timeout_s", "concurrency", "max_attempts")}
        session = TaskSession(task, wb, Panel(task.name, workbench=wb), model,
                              meta={"line": line, "description": cell, "budget": args.budget},
                              llm={"base_url": args.base_url, **llm})
        self.llm_settings(**llm)  # bad values fail here, in one line, before anything runs
        if args.budget_tokens is not None and args.budget_tokens < 1:
            raise AlchemistError(f"--budget-tokens {args.budget_tokens}: give a positive number of tokens")
        return session, offline

    def _estimate(self, session: TaskSession, args, offline: bool):
        if offline:
            print(f"the offline synthesizer writes the programs: $0, no request ({len(session.workbench.writer_rows)} "
                  "writer rows). Nothing was written or sent.")
            return None
        from ..llm.cost import TYPICAL_PROGRAM_REPLY_TOKENS, estimate_requests
        from ..llm.generate import program_requests

        client = self._client(session.workbench.meter, args.model, **session.llm)
        requests, _ = program_requests(session.task, args.n, first_sample=args.sample)
        estimate = estimate_requests(client.model, [r.messages for r in requests],
                                     reply_tokens=TYPICAL_PROGRAM_REPLY_TOKENS, max_tokens=client.config.max_tokens,
                                     prices=client.meter.prices)
        budget = "" if args.budget is None else f"; --budget ${args.budget:.4f}"
        print(f"estimate for {args.n} programs with {session.model}: {estimate}{budget}. Nothing was sent "
              "(cached replies would cost $0).")
        return estimate

    def _write_programs(self, session: TaskSession, args, model: str, offline: bool) -> list[Program]:
        wb = session.workbench
        dev, writer_rows = wb.datasets.get("dev"), wb.writer_rows
        split = (f"{len(writer_rows)} of the {len(writer_rows) + len(dev)} --dev rows (the other {len(dev)} score "
                 "them and choose the label model, so their numbers are not in-sample)"
                 if writer_rows is not None and dev is not None and writer_rows is not dev else
                 f"{len(writer_rows)} labeled dev rows (the same rows score them: in-sample numbers)"
                 if writer_rows is not None else "")
        if offline:
            why = "--offline" if args.offline else f"no LLM endpoint configured (${self.api_key_env} unset)"
            if writer_rows is dev and dev is not None:  # its programs are scored on their cross-fitted votes
                split = f"{len(dev)} labeled dev rows (each program scored on the rows it was not mined from)"
            print(f"{why}: writing up to {args.n} keyword programs (and concept and classifier programs, with a "
                  f"sentence encoder) with the offline synthesizer from {split}.")
            writer = OfflineWriter()
        else:
            if split:
                print(f"exemplars from {split}.")
            client = self._client(wb.meter, args.model, **session.llm)
            session.model = client.model  # asks a --base-url server for its model when none is set
            client.on_progress = session.panel.writing_progress  # requests done/failed, tokens so far
            writer = LLMWriter(client, budget_usd=args.budget, first_sample=args.sample)
        session.panel.begin_writing()
        try:  # the smoke tests of the new programs show in the panel's live table too
            with wb.meter.limit(None, args.budget_tokens), \
                    reporting_progress(functools.partial(session.panel.program_progress, "train")):
                result = wb.write(writer, args.n)
        finally:
            session.panel.end_writing()
        for failure in result.failures:
            print(f"failed: {failure}")
        if not offline:
            print(result.note)
        for program, why in result.rejected:
            print(f"rejected {program.name}: {why}")
        if not result.programs:
            raise AlchemistError(f"no program was written ({len(result.failures)} of {args.n} requests failed; "
                                 "see the reasons above)")
        if not result.accepted:
            raise AlchemistError(f"none of the {len(result.programs)} programs passed the smoke test; see the reasons above")
        return result.accepted

    def _load(self, task: str, *, quiet: bool = False) -> TaskSession | None:
        """Rebuild a task from ``<root>/<task>/current.json`` (the magic's options, the program set)
        and the store, verifying each program's hash; None when nothing was recorded."""
        from ..llm.provenance import ProgramStore
        from ..workbench import read_current

        entries, meta = read_current(ProgramStore(task, self.root))
        if not meta.get("line"):
            if quiet:
                return None
            raise AlchemistError(f"nothing recorded for task {task!r} under {self.root}: run its %%alchemist cell")
        try:
            args = _cell_parser().parse_args(shlex.split(meta["line"]))
            session, _ = self._make_session(args, meta.get("description", ""), meta["line"])
        except AlchemistError as e:
            raise AlchemistError(f"could not load task {task} (its %%alchemist line: {meta['line']}): {e} "
                                 "(run the cells that define its data first)") from None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            missing = session.workbench.load()
        session.order = [e.get("name") for e in entries]
        self.sessions[task], self.last = session, task
        send(self.shell, {"kind": "sync-request"})  # the extension answers with the cells: binds them
        self.shell.user_ns["_alchemist"] = session
        if session.workbench.programs:
            self.refresh(session)
        else:
            self.publish(session)
        skipped = [str(w.message).split(";")[0] for w in caught] + [f"{m}: not in the store" for m in missing]
        n, d = len(session.workbench.programs), len(session.workbench.disabled)
        print(f"loaded task {task} from {session.workbench.store.folder}: {n} programs"
              + (f" and {d} disabled" if d else "") + ", each verified by its hash"
              + (f"; skipped {len(skipped)}: " + "; ".join(skipped) if skipped else ""))
        return session

    # -- %%alchemist_program ------------------------------------------------------------------------
    @cell_magic("alchemist_program")
    @_one_line
    def alchemist_program(self, line: str, cell: str):
        """``%%alchemist_program TASK [NAME] [--disabled]``: register the cell's source as program NAME
        of TASK (replacing the program of that name) and re-apply only it."""
        options = parse_marker(line)
        session = self._session(options["task"], load=True)
        wb = session.workbench
        cid, meta = cell_id(self.shell), request_metadata(self.shell).get("alchemist") or {}
        refused = self._refusal(session, cid, meta)
        if refused:
            session.notes.append(f"cell {cid}: {refused}")
            print(refused)
            return None
        old = {p.name: p for p in session.all_programs()}
        name = options["name"]
        program = Program(cell, name=name, provenance={"source": "notebook cell",
                                                       "parent": old[name].id if name in old else None})
        limit_changed = _set_time_limit(wb, program.name, options["time_limit"])
        if name in old and old[name].source == program.source:
            program = old[name]  # unchanged: keep its provenance
        else:
            # a check that timed out (or crashed) costs its limit once: the same source, data and limit
            # are refused again at once
            memo = (program.name, program.source, wb.time_limits.get(program.name, wb.sandbox["time_limit_s"]),
                    wb.datasets["train"].fingerprint)
            if memo in session.refused:
                why, status = session.refused[memo]
                session.panel.refuse(program.name, status, why + " (as before: not run again)")
                raise AlchemistError(f"program {program.name} not registered: {why} (as before: the same source, "
                                     "data and time limit are not run again; edit the cell or change --time-limit)")
            try:
                with reporting_progress(functools.partial(session.panel.program_progress, "train")):
                    added = wb.add(program)  # its smoke test shows in the panel's live table
            except BaseException:
                session.panel.end_apply()
                raise
            if not added:
                why = _cell_lines(wb.rejected[-1][1])
                status = why.split(":", 1)[0]
                if status in FAILED_STATUSES:
                    session.refused[memo] = (why, status)
                session.panel.end_apply()
                session.panel.refuse(program.name, status, why)
                raise AlchemistError(f"program {program.name} not registered: {why}")
            session.panel.end_apply()
        session.panel.unrefuse(program.name)
        if cid is not None:
            for other, bound in list(session.cell_of.items()):
                if bound == cid and other != program.name:  # the marker was renamed: the cell holds a new program
                    del session.cell_of[other]
                    if other in old:
                        wb.remove(other)
            session.cell_of[program.name] = cid
        was_disabled = program.name in wb.disabled
        if options["disabled"]:
            wb.disable(program.name)
        elif was_disabled:
            wb.enable(program.name)
        if program.name not in session.order:
            session.order.append(program.name)
        self.refresh(session)
        verb = ("unchanged" if program is old.get(name) and not limit_changed else
                "time limit changed for" if program is old.get(name) else
                "replaced" if program.name in old else "added")
        if options["disabled"]:
            print(f"{verb} {program.name} ({program.id}), disabled: it does not run or vote "
                  f"(%alchemist enable {program.name} or take --disabled off its marker line)")
            return None
        row = session.panel.analysis.loc[program.name]
        acc = row.get("Emp. Acc.")
        print(f"{verb} {program.name} ({program.id}): coverage {row['Coverage']:.3f}"
              + (f", dev accuracy {acc:.3f}" if acc is not None and not pd.isna(acc) else "")
              + f", status {row['Status']}" + (f" ({row['Problem']})" if row.get("Problem") else "")
              + f"; label model {wb.model_name}")

    def _refusal(self, session: TaskSession, cid: str | None, meta: dict) -> str | None:
        """Why an execution of a program cell must not register (one line), or None."""
        if cid is not None and cid in session.gone:
            return ("not registered: this cell is no longer in the notebook (it was deleted or replaced); "
                    "the kernel's programs follow the notebook's cells")
        code = request_code(self.shell)
        # a cell an older run of *this* magic cell made, unedited: the extension replaces it
        if (meta.get("run") and session.run and meta["run"] != session.run
                and meta.get("source_cell") == session.magic_cell
                and code is not None and text_hash(code) == meta.get("source_hash")):
            return ("not registered: this cell was replaced by a newer run of its %%alchemist cell "
                    "(the kernel has that run's programs); run the new cells")
        return None

    # -- %alchemist -------------------------------------------------------------------------------
    @line_magic("alchemist")
    @_one_line
    def alchemist_line(self, line: str):
        """``%alchemist status|list|apply|fit|analyze|cost|zeroshot|repair|distill|export|remove|disable|enable|load|config``."""
        args = _line_parser().parse_args(shlex.split(line))
        if args.command == "config":
            return pd.Series({name: getattr(self, name) for name in self.trait_names(config=True)}, name="Alchemist")
        if args.command == "load":
            self._load(args.task or self.last or "", quiet=False)
            return None
        session = self._session(getattr(args, "task", None))
        return getattr(self, f"_cmd_{args.command}")(session, args)

    def _cmd_status(self, session, args):
        return session.panel

    def _cmd_list(self, session, args):
        wb = session.workbench
        table = session.panel.analysis
        return pd.DataFrame([{"name": p.name, "id": p.id, "source": p.provenance.get("source", "llm"),
                              "cell": session.cell_of.get(p.name),
                              "status": "disabled" if p.name in wb.disabled else
                              table.loc[p.name, "Status"] if table is not None and p.name in table.index else None}
                             for p in session.all_programs()])

    def _named(self, session, name: str) -> str:
        names = [p.name for p in session.all_programs()]
        if name not in names:
            raise AlchemistError(f"task {session.task.name} has no program {name!r}; programs: {names}")
        return name

    def _cmd_remove(self, session, args):
        name = self._named(session, args.name)
        session.workbench.remove(name)
        cid = session.cell_of.pop(name, None)
        if cid:
            session.gone.add(cid)
        session.order = [n for n in session.order if n != name]
        sent = send(self.shell, {"kind": "remove", "task": session.task.name, "name": name, "cell_id": cid})
        self.refresh(session)
        print(f"removed {name}" + (" and asked JupyterLab to delete its cell" if sent else
                                   "; delete its cell too, or running it registers it again"))

    def _cmd_disable(self, session, args):
        self._toggle(session, args.name, disable=True)

    def _cmd_enable(self, session, args):
        self._toggle(session, args.name, disable=False)

    def _toggle(self, session, name, *, disable: bool) -> None:
        name = self._named(session, name)
        wb = session.workbench
        if disable == (name in wb.disabled):
            print(f"{name} is already {'disabled' if disable else 'enabled'}")
            return
        (wb.disable if disable else wb.enable)(name)
        line = f"%%{CELL_MAGIC} {session.task.name} {name}" + (" --disabled" if disable else "")
        sent = send(self.shell, {"kind": "marker", "task": session.task.name, "name": name,
                                 "cell_id": session.cell_of.get(name), "line": line})
        self.refresh(session)
        print(f"{'disabled' if disable else 'enabled'} {name}"
              + (f"; its cell's first line is now {line!r}" if sent else
                 f"; make its cell's first line {line!r} so a re-run keeps it so"))

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
        return CostReport(self.cost(session))

    def _cmd_zeroshot(self, session, args):
        dev = session.workbench.datasets.get("dev")
        if dev is None:
            raise AlchemistError("zeroshot compares with gold labels: run the task with --dev")
        if not self._endpoint_configured(session.llm.get("base_url")):
            raise AlchemistError(f"zeroshot asks the LLM: set ${self.api_key_env} or %config Alchemist.base_url")
        result = session.workbench.zero_shot(self._client(session.workbench.meter, session.model, **session.llm), "dev",
                                             sample=args.sample, budget_usd=args.budget)
        return pd.Series({"rows": len(result.rows), "accuracy": result.accuracy(dev.labels),
                          "cost_usd": result.cost_usd, "failures": result.failures}, name="zero-shot on dev")

    def _cmd_repair(self, session, args):
        wb = session.workbench
        dev = wb.datasets.get("dev")
        if dev is None or not self._endpoint_configured(session.llm.get("base_url")):
            raise AlchemistError("repair needs labeled dev rows (--dev) and an LLM endpoint "
                                 f"(${self.api_key_env} or %config Alchemist.base_url)")
        weak = len(wb.weak_programs(args.min_accuracy))
        if not weak:
            print("no weak program to repair")
            return None
        accepted = wb.repair(self._client(wb.meter, session.model, **session.llm), min_accuracy=args.min_accuracy,
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
        self._say_guard(session)
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
    listen(shell, magics._on_message)
    if _empty_body not in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.append(_empty_body)


def _empty_body(lines: list[str]) -> list[str]:
    """Give ``%%alchemist ...`` with no body a blank one, so ``%%alchemist --help`` prints the help
    (IPython refuses a cell magic with an empty body before the magic sees it)."""
    if lines and re.match(r"%%alchemist(\s|$)", lines[0]) and not any(line.strip() for line in lines[1:]):
        return [lines[0].rstrip("\n") + "\n", "\n"]
    return lines
