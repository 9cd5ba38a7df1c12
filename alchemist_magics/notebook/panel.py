"""The analysis panel: program matrix, label-model choice, cost meter, progress and a drill-down.

One display, two forms kept in step. Where widgets render, the panel is an ipywidgets box that
redraws in place when a program cell runs; every display of it also carries a static ``text/html``
and ``text/plain`` form of the same content under one ``display_id``, and every :meth:`Panel.update`
re-sends both (``update_display``), so a saved notebook, nbconvert, nbviewer, GitHub, a closed
kernel, nbval and widget-less frontends show the last real state rather than the first.

Colours are JupyterLab's theme variables (``--jp-*``) plus three tints (good, warn, bad) that
set their own text colour, light and dark (``panel.css``); the text repr has no memory address.
"""
from __future__ import annotations

import html
import itertools
import math
import threading
import time
from pathlib import Path

import pandas as pd

CSS = (Path(__file__).with_name("panel.css")).read_text(encoding="utf-8")
STYLE = f"<style>{CSS}</style>"

# Display labels of analysis columns (the DataFrame keeps snorkel's names).
HEADERS = {"Emp. Acc.": "Dev acc.", "Runtime (s)": "Time (s)", "Correct": "Correct (dev)",
           "Incorrect": "Incorrect (dev)"}
DRILL_KINDS = {"covered": "rows it votes on", "wrong": "dev rows it gets wrong",
               "conflicts": "rows where another program disagrees", "errors": "rows that raised"}
_ids = itertools.count(1)
LIVE_EVERY_S = 0.2  # the live progress redraws at most 5 times a second


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not pd.isna(value)


def cell_class(column: str, value) -> str:
    """The CSS class of one matrix cell (``alc-good``, ``alc-warn``, ``alc-bad`` or ``""``)."""
    if column == "Status":
        return "alc-good" if value == "ok" else "alc-bad"
    if not _is_number(value):
        return ""
    if column == "Emp. Acc.":
        return "alc-good" if value >= 0.8 else "alc-warn" if value >= 0.6 else "alc-bad"
    if column in ("Faults", "Invalid"):
        return "alc-bad" if value > 0 else ""
    if column == "Coverage":
        return "alc-warn" if value < 0.01 else ""
    if column == "Conflicts":
        return "alc-warn" if value >= 0.1 else ""
    return ""


def polarity_text(value, classes: list[str] | None) -> str:
    """Polarity as class names (``SPAM``; ``HAM, SPAM``), indices when the names are unknown."""
    if not isinstance(value, (list, tuple)):
        return _fmt(value)
    if not value:
        return "none"
    names = [classes[int(c)] if classes and 0 <= int(c) < len(classes) else str(c) for c in value]
    return ", ".join(names)


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def _cell_text(text: str, css: str) -> str:
    """Escaped text; a program name or a status (``not_above_prior``) may break after its underscores
    (``<wbr>``), nowhere else."""
    escaped = html.escape(text)
    return escaped.replace("_", "_<wbr>") if {"alc-name", "alc-status"} & set(css.split()) else escaped


def _table(head: list[tuple[str, str]], rows: list[list[tuple[str, str]]], row_classes=None,
           css: str = "alc-table") -> str:
    """An HTML table: ``head`` and each row are ``(text, class)`` pairs; texts are escaped here."""
    th = "".join(f'<th class="{c}">{_cell_text(t, c)}</th>' if c else f"<th>{html.escape(t)}</th>" for t, c in head)
    body = []
    for i, row in enumerate(rows):
        tds = "".join(f'<td class="{c}">{_cell_text(t, c)}</td>' if c else f"<td>{html.escape(t)}</td>" for t, c in row)
        extra = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{extra}>{tds}</tr>")
    return (f'<div class="alc-scroll"><table class="{css}"><thead><tr>{th}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def matrix_html(table: pd.DataFrame, classes: list[str] | None = None, css: str | None = None) -> str:
    """The analysis table as HTML: one row per program, polarity as class names, a class per cell;
    a program's problem (``Problem``), when it has one, is a full-width line under its row."""
    columns = [c for c in table.columns if c != "Problem"]
    if "Status" in columns and "Polarity" in columns:  # the status early: it is what people look for first
        columns.remove("Status")
        columns.insert(columns.index("Polarity") + 1, "Status")
    head = [("program", "alc-name")] + [(HEADERS.get(c, c), _column_class(c)) for c in columns]
    rows = []
    problems = {}
    for name, row in table.iterrows():
        cells = [(str(name), "alc-name")]
        for column in columns:
            value = row[column]
            if column == "Polarity":
                cells.append((polarity_text(value, classes), _polarity_classes(value)))
            else:
                cells.append((_fmt(value), " ".join(filter(None, [_column_class(column), cell_class(column, value)]))))
        rows.append(cells)
        problem = row.get("Problem") if "Problem" in table.columns else None
        if isinstance(problem, str) and problem:
            problems[len(rows) - 1] = problem
    out = _table(head, rows, css=css or "alc-table alc-matrix alchemist-matrix")
    if problems:  # insert the problem lines after their rows
        parts = out.split("</tr>")
        # parts[0] is the head row; body row i ends at parts[i + 1]
        for i in sorted(problems, reverse=True):
            line = (f'<tr class="alc-problem"><td></td><td class="alc-text alc-bad" colspan="{len(columns)}">'
                    f"problem: {html.escape(problems[i])}</td>")
            parts.insert(i + 2, line)
        out = "</tr>".join(parts)
    return out


def _column_class(column: str) -> str:
    return {"Polarity": "alc-pol", "Status": "alc-status", "j": "alc-j", "Problem": "alc-text"}.get(column, "")


def _polarity_classes(value) -> str:
    if not isinstance(value, (list, tuple)):
        return "alc-pol"
    return " ".join(["alc-pol", *(f"alc-pol-{int(c)}" for c in value)])


def scores_html(scores: pd.DataFrame, chosen: str | None) -> str:
    """The label models' dev scores, one row per model, the chosen one marked and in bold."""
    frame = scores.drop(columns=[c for c in ("chosen",) if c in scores.columns])
    head = [("label model", "alc-name")] + [(str(c).replace("_", " "), "") for c in frame.columns]
    rows, marks = [], []
    for name, row in frame.iterrows():
        label = f"{name} (chosen)" if str(name) == str(chosen) else str(name)
        rows.append([(label, "alc-name")] + [(_fmt(v), "") for v in row.tolist()])
        marks.append("alc-chosen" if str(name) == str(chosen) else "")
    return _table(head, rows, marks, css="alc-table alc-scores")


def _money(value) -> str:
    return f"${value:.4f}" if _is_number(value) else "unknown"


def cost_sentence(cost: dict) -> str:
    """The cost meter in words, after a ``Cost:`` label: what was spent (never $0 for an unknown
    price), what labeling every row zero-shot would cost, the ratio, the estimate and the budget."""
    requests, hits = int(cost.get("requests") or 0), int(cost.get("cache_hits") or 0)
    unknown = bool(cost.get("unknown_cost_requests"))
    if unknown:
        spent = cost.get("cost_text") or "unknown"
        spent = spent if spent.startswith(("unknown", "local")) else f"unknown ({spent})"
    else:
        spent = _money(cost.get("cost_usd", cost.get("spent_usd")))
    if requests == 0 and hits == 0:
        how = "with no LLM request (offline)"
    else:
        how = f"on {requests} LLM request{'s' if requests != 1 else ''} ({hits} answered from the cache)"
    first = f"spent {spent} so far, {how}"
    by = {k: v for k, v in (cost.get("by_purpose") or {}).items() if v}
    if by and not unknown:
        first += ", by purpose " + ", ".join(f"{k} {_money(v)}" for k, v in sorted(by.items()))
    rows = cost.get("zero_shot_rows")
    rows = f"{rows:,} rows" if _is_number(rows) else "every row"
    parts = [f"{first}; labeling every row zero-shot: {_money(cost.get('zero_shot_usd'))} "
             f"({rows}, one LLM request each)."]
    ratio, estimate = cost.get("ratio"), cost.get("estimate_usd")
    if _is_number(ratio):
        parts.append(f"The programs cost {ratio:.1f}x less.")
    if _is_number(estimate):
        parts.append(f"Writing the programs with the LLM: about {_money(estimate)} (estimate).")
    budget = cost.get("budget_usd")
    left = cost.get("budget_left_usd")
    parts.append(f"Budget {_money(budget)}" + (f", {_money(left)} left." if _is_number(left) else ".")
                 if _is_number(budget) else "No budget set.")
    return " ".join(parts)


def cost_html(cost: dict) -> str:
    """The cost meter as a paragraph (see :func:`cost_sentence`)."""
    return f'<p class="alc-cost"><b>Cost:</b> {html.escape(cost_sentence(cost))}</p>'


class CostReport(dict):
    """The task's cost account (``Workbench.cost``): a dict whose repr reads as sentences."""

    def __repr__(self) -> str:
        return "Cost: " + cost_sentence(self)

    def _repr_html_(self) -> str:
        return f'<div class="alc-panel mathjax_ignore tex2jax_ignore">{STYLE}{cost_html(self)}</div>'


def examples_html(frame: pd.DataFrame, limit: int = 10) -> str:
    """The first ``limit`` rows of a :meth:`Workbench.examples` frame (text columns wrap)."""
    shown = frame.head(limit)
    columns = list(shown.columns)
    text = {c for c in columns if not pd.api.types.is_numeric_dtype(shown[c]) and c not in ("vote", "gold")}
    head = [("row", "alc-name")] + [(c, "alc-text" if c in text else "") for c in columns]
    rows = [[(str(i), "alc-name")] + [(_fmt(v), "alc-text" if c in text else "") for c, v in row.items()]
            for i, row in shown.iterrows()]
    return _table(head, rows, css="alc-table alc-examples")


class Panel:
    """Live view of one task: call :meth:`update` with new results, :meth:`progress` while working.

    Args:
        task: the task name (shown in the title and the repr).
        workbench: the task's ``Workbench`` (optional): class names for polarity and the drill-down.
        classes: class names in index order (taken from ``workbench`` when not given).
    """

    def __init__(self, task: str, workbench=None, classes: list[str] | None = None):
        self.task = task
        self.workbench = workbench
        self.classes = list(classes) if classes else (list(workbench.task.classes) if workbench is not None else None)
        self.analysis: pd.DataFrame | None = None
        self.scores: pd.DataFrame | None = None
        self.chosen: str | None = None
        self.cost: dict = {}
        self.status = "no programs yet"
        self.sort_by: str | None = None
        self.descending = True
        self.display_id = f"alchemist-panel-{next(_ids)}"
        self.displayed = False
        self._widgets = None
        self._syncing = False
        # live progress: per program and split while programs apply; the client's numbers while they are written
        self.live: dict[str, dict[str, tuple]] = {}  # program -> split -> (state, rows done, rows, status, cached)
        self.live_splits: list[str] = []
        self.phase: str | None = None  # "writing" or "applying" while that goes on
        self.refused: dict[str, tuple[str, str]] = {}  # program cells refused by their check: name -> (status, why)
        self._status_before = self.status
        self.writing = None  # the LLM client's last ``Progress`` while programs are written
        self.redraws = 0  # live redraws sent (throttled to LIVE_EVERY_S)
        self._live_at = 0.0
        self._live_lock = threading.Lock()
        self._flush_timer: threading.Timer | None = None

    # -- state ----------------------------------------------------------------------------------
    def update(self, *, analysis=None, scores=None, chosen=None, cost=None, status: str = "ready") -> None:
        """Replace the shown results (arguments left None keep their value) and redraw in place,
        the widget and the static HTML of every display of this panel."""
        if analysis is not None:
            self.analysis = analysis
        if scores is not None:
            self.scores, self.chosen = scores, chosen
        if cost is not None:
            self.cost = cost
        self.status = status
        self._redraw()
        self._publish()

    def progress(self, done: int, total: int, text: str) -> None:
        """Show a step of work (generating, applying, fitting) on the progress bar."""
        self.status = text
        if self._widgets is not None:
            bar = self._widgets["progress"]
            bar.max, bar.value, bar.description = max(total, 1), done, f"{done}/{total}"
            self._widgets["status"].value = f'<span class="alc-status-line">{html.escape(text)}</span>'

    # -- live progress ----------------------------------------------------------------------------
    def begin_writing(self) -> None:
        """Programs are about to be written (``writing_progress`` follows the requests)."""
        with self._live_lock:
            if self.phase is None:
                self._status_before = self.status
            self.phase, self.writing = "writing", None

    def writing_progress(self, progress) -> None:
        """The LLM client's ``Progress`` (``LLMClient(on_progress=...)``, called from its threads):
        requests done and failed, tokens so far; redrawn at most every ``LIVE_EVERY_S`` seconds."""
        with self._live_lock:
            if self.writing is not None and progress.total == self.writing.total and progress.done < self.writing.done:
                return  # an older snapshot from a slower thread
            self.writing = progress
        self._draw_live(force=progress.done >= progress.total)

    def end_writing(self) -> None:
        """Writing finished (its smoke tests may have turned the phase into "applying": that one ends too)."""
        with self._live_lock:
            if self.phase is None:
                return
            self.phase = None
            self.status = self._status_before
        self._draw_live(force=True)

    def begin_apply(self, names: list[str], splits: list[str]) -> None:
        """Programs ``names`` are about to be applied over ``splits``: show each as waiting."""
        with self._live_lock:
            self.live = {name: {} for name in names}
            self.live_splits = list(splits)
            if self.phase is None:
                self._status_before = self.status
            self.phase = "applying"
        self._draw_live(force=True)

    def program_progress(self, split: str, event) -> None:
        """One ``programs.apply.ProgramProgress`` of ``split`` (``Workbench.apply(on_progress=...)``,
        or the smoke tests of ``Workbench.add`` under ``programs.apply.reporting_progress``);
        redrawn at most every ``LIVE_EVERY_S`` seconds."""
        with self._live_lock:
            if self.phase != "applying":  # a check outside an apply (a new program's smoke test): a fresh table
                if self.phase is None:
                    self._status_before = self.status
                self.live, self.live_splits, self.phase = {}, [], "applying"
            if split not in self.live_splits:
                self.live_splits.append(split)
            self.live.setdefault(event.name, {})[split] = (event.state, int(event.rows_done), int(event.rows),
                                                           event.status, bool(event.cached))
        self._draw_live()

    def end_apply(self) -> None:
        """The apply finished: the live table gives way to the matrix (``live`` keeps the last state)."""
        with self._live_lock:
            if self.phase != "applying":
                return
            self.phase = None
            self.status = self._status_before
        self._draw_live(force=True)

    def refuse(self, name: str, status: str, why: str) -> None:
        """A program cell was refused (its check failed): the matrix will not show it, so the panel
        keeps a red row for it, with the reason, until :meth:`unrefuse` (it registered, or its cell went)."""
        with self._live_lock:
            self.refused[name] = (status, why)
        self._draw_live(force=True)

    def unrefuse(self, *names: str) -> None:
        with self._live_lock:
            gone = [n for n in names if self.refused.pop(n, None) is not None]
        if gone:
            self._draw_live(force=True)

    def _flush(self) -> None:
        with self._live_lock:
            self._flush_timer = None
            busy = self.phase is not None
        if busy:  # still throttled: a forced redraw since the timer was set counts too
            self._draw_live()

    def live_counts(self) -> dict[str, int]:
        """How many (program, split) runs are queued, running and done, and how many rows are done."""
        counts = {"queued": 0, "running": 0, "done": 0, "rows_done": 0}
        for by_split in self.live.values():
            for state, rows_done, *_ in by_split.values():
                counts[state] = counts.get(state, 0) + 1
                counts["rows_done"] += rows_done
        return counts

    def live_text(self) -> str:
        """The live progress in one line of words ("" when nothing is going on)."""
        if self.phase == "applying":
            counts = self.live_counts()
            runs = len(self.live) * max(1, len(self.live_splits))
            running = [f"{name} on {split} ({rows_done:,}/{rows:,} rows)" for name, by_split in self.live.items()
                       for split, (state, rows_done, rows, *_) in by_split.items() if state == "running"]
            return (f"applying {len(self.live)} programs: {counts['done']} of {runs} runs done"
                    + (f", running {'; '.join(running[:3])}" if running else "")
                    + (f", {counts['queued']} queued" if counts["queued"] else ""))
        if self.phase == "writing" and self.writing is not None:
            p = self.writing
            return (f"writing programs: {p.done} of {p.total} requests done ({p.failed} failed, {p.cached} from "
                    "the cache" + (f", {p.in_flight} in flight" if p.in_flight else "") + f"), "
                    f"{p.prompt_tokens:,} prompt + {p.completion_tokens:,} completion tokens so far, {p.elapsed_s:.0f} s")
        return ""

    def live_html(self) -> str:
        """While programs apply: per program and split, queued, running (rows done of n) or done with
        its status; while they are written: the requests and tokens so far; else nothing."""
        text = self.live_text()
        refused = ""
        if self.refused:
            rows = [[(name, "alc-name"), (status, "alc-bad"), (why, "alc-text")] for name, (status, why) in self.refused.items()]
            refused = (f'<p class="alc-caption alc-refused-line">Not registered (their cells\' check failed; '
                       "edit a cell, or change its --time-limit, and run it again):</p>"
                       + _table([("program", "alc-name"), ("status", ""), ("why", "alc-text")], rows,
                                css="alc-table alc-refused-table"))
        if not text:
            return f'<div class="alc-panel alc-live mathjax_ignore tex2jax_ignore">{refused}</div>' if refused else ""
        table = ""
        if self.phase == "applying":
            head = [("program", "alc-name")] + [(split, "") for split in self.live_splits]
            rows = []
            for name, by_split in self.live.items():
                cells = [(name, "alc-name")]
                for split in self.live_splits:
                    state, rows_done, n, status, cached = by_split.get(split, ("waiting", 0, 0, None, False))
                    if state == "running":
                        cells.append((f"running {rows_done:,}/{n:,}", "alc-warn alc-running"))
                    elif state == "done":
                        cells.append((str(status) + (" (cached)" if cached else ""),
                                      "alc-good" if status == "ok" else "alc-bad"))
                    else:
                        cells.append((state, ""))
                rows.append(cells)
            table = _table(head, rows, css="alc-table alc-live-table")
        return (f'<div class="alc-panel alc-live mathjax_ignore tex2jax_ignore">'  # the style is the body's
                f'<p class="alc-caption alc-live-line">{html.escape(text)}</p>{table}{refused}</div>')

    def _draw_live(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._live_lock:
            if not force and now - self._live_at < LIVE_EVERY_S:
                if self._flush_timer is None:  # the last state shows even when no event follows it
                    self._flush_timer = threading.Timer(LIVE_EVERY_S - (now - self._live_at), self._flush)
                    self._flush_timer.daemon = True
                    self._flush_timer.start()
                return
            self._live_at = now
            self.redraws += 1
            text, table, counts, writing = self.live_text(), self.live_html(), self.live_counts(), self.writing
            phase = self.phase
            if text and phase is not None:
                self.status = text
        if self._widgets is None:
            return
        bar = self._widgets["progress"]
        if phase == "applying":
            total = max(1, len(self.live) * max(1, len(self.live_splits)))
            bar.max, bar.value, bar.description = total, min(counts["done"], total), f"{counts['done']}/{total}"
        elif phase == "writing" and writing is not None:
            total = max(1, writing.total)
            bar.max, bar.value, bar.description = total, min(writing.done, total), f"{writing.done}/{writing.total}"
        self._widgets["live"].value = table
        self._widgets["status"].value = f'<span class="alc-status-line">{html.escape(self.status)}</span>'

    def sort(self, column: str | None, descending: bool = True) -> None:
        """Sort the matrix by ``column`` (``None``: the order the programs were added)."""
        if column is not None and self.analysis is not None and column not in self.analysis.columns:
            raise ValueError(f"no column {column!r}; columns: {list(self.analysis.columns)}")
        self.sort_by, self.descending = column, descending
        self._redraw()

    def sorted_analysis(self) -> pd.DataFrame | None:
        """The analysis table in the chosen sort order (programs in order of addition by default)."""
        if self.analysis is None or not self.sort_by or self.sort_by not in self.analysis.columns:
            return self.analysis
        column = self.analysis[self.sort_by]
        key = (lambda s: s.map(len)) if column.map(lambda v: isinstance(v, (list, tuple))).any() else None
        return self.analysis.sort_values(self.sort_by, ascending=not self.descending, kind="stable", key=key)

    def sort_text(self) -> str:
        """What the current order is, in words."""
        if not self.sort_by:
            return "in the order they were added"
        return f"sorted by {HEADERS.get(self.sort_by, self.sort_by)}, {'highest' if self.descending else 'lowest'} first"

    # -- rendering ------------------------------------------------------------------------------
    def _body_html(self, snapshot: bool = False) -> str:
        parts = [f'<h4 class="alc-title">alchemist: {html.escape(self.task)}</h4>']
        table = self.sorted_analysis()
        if table is not None:
            n = len(table)
            parts.append(f'<p class="alc-caption">{n} program{"s" if n != 1 else ""}, '
                         f"{html.escape(self.sort_text())}. Coverage, overlaps and conflicts are shares of the "
                         "train rows; correct, incorrect and accuracy are counted on the labeled dev rows.</p>")
            # the live matrix alone carries "alchemist-matrix" (what scripts and tests look for)
            parts.append(matrix_html(table, self.classes, css="alc-table alc-matrix" if snapshot else None))
        if self.scores is not None:
            parts.append(f'<p class="alc-caption"><b>Label model</b> on dev: <code>{html.escape(str(self.chosen))}'
                         "</code> chosen; majority vote beside it.</p>" + scores_html(self.scores, self.chosen))
        if self.cost:
            parts.append(cost_html(self.cost))
        return "".join(parts)

    def _repr_html_(self) -> str:
        """The static snapshot: the same content as the widget, as plain HTML with its style."""
        return (f'<div class="alc-panel alc-snapshot mathjax_ignore tex2jax_ignore">{STYLE}{self._body_html(snapshot=True)}'
                f'<p class="alc-status-line">{html.escape(self.status)}</p></div>')

    def __repr__(self) -> str:
        programs = 0 if self.analysis is None else len(self.analysis)
        return f"Panel(task={self.task!r}, programs={programs}, label_model={self.chosen!r}, status={self.status!r})"

    def snapshot(self) -> dict:
        """The static form as a mime bundle (``text/html`` and ``text/plain``)."""
        return {"text/plain": repr(self), "text/html": self._repr_html_()}

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = self.snapshot()
        try:
            view = self.widget()._repr_mimebundle_()
        except ImportError:  # no ipywidgets: the HTML is the panel
            return bundle
        bundle.update({k: v for k, v in (view or {}).items() if k != "text/plain"})
        return bundle

    def _ipython_display_(self) -> None:
        """``display(panel)``: two outputs, the live widget and then the static snapshot under this
        panel's display id (the one :meth:`update` re-sends). Where the widget renders, the
        snapshot is hidden by CSS (``panel.css``); where it cannot (no kernel, no widget manager,
        nbconvert offline), the widget's output is hidden and the snapshot shows."""
        from IPython.display import display

        try:
            view = self.widget()._repr_mimebundle_()
        except ImportError:  # no ipywidgets: the snapshot is the panel
            view = None
        if view:
            display({**{k: v for k, v in view.items() if k != "text/plain"},
                     "text/plain": f"Panel(task={self.task!r}) (live widget)"}, raw=True)
        display(self.snapshot(), raw=True, display_id=self.display_id)
        self.displayed = True

    def _publish(self) -> None:
        """Re-send every snapshot of this panel with the current state (in a kernel only)."""
        if not self.displayed:
            return
        try:
            from IPython import get_ipython
            from IPython.display import update_display
        except ImportError:
            return
        shell = get_ipython()
        if shell is None or getattr(shell, "kernel", None) is None:
            return  # a terminal would print the update again
        update_display(self.snapshot(), raw=True, display_id=self.display_id)

    def widget(self):
        """The ipywidgets view (made once; every later :meth:`update` redraws it in place)."""
        if self._widgets is None:
            import ipywidgets as w

            sort = w.Dropdown(options=self._sort_options(), value="added", description="Sort rows by",
                              style={"description_width": "initial"}, layout=w.Layout(width="auto"))
            program = w.Dropdown(options=self._program_options(), value="", description="Show rows of",
                                 style={"description_width": "initial"}, layout=w.Layout(width="auto"))
            kind = w.Dropdown(options=[(text, key) for key, text in DRILL_KINDS.items()], value="covered",
                              description="that is", style={"description_width": "initial"},
                              layout=w.Layout(width="auto"))
            self._widgets = {"sort": sort, "program": program, "kind": kind, "body": w.HTML(), "status": w.HTML(),
                             "examples": w.HTML(), "progress": w.IntProgress(min=0, max=1, value=0),
                             "live": w.HTML()}
            sort.observe(self._on_sort, names="value")
            program.observe(self._on_drill, names="value")
            kind.observe(self._on_drill, names="value")
            drill = [program, kind] if self.workbench is not None else []
            box = w.VBox([w.HBox([sort, *drill], layout=w.Layout(flex_flow="row wrap")), self._widgets["body"],
                          self._widgets["examples"], self._widgets["live"],
                          w.HBox([self._widgets["progress"], self._widgets["status"]])],
                         layout=w.Layout(max_width="100%"))
            box.add_class("alc-widget")
            self._widgets["box"] = box
            self._redraw()
        return self._widgets["box"]

    def _sort_options(self) -> list[tuple[str, object]]:
        options = [("the order the programs were added", "added")]
        for column in [] if self.analysis is None else self.analysis.columns:
            if column in ("j", "Polarity", "Problem"):
                continue
            label = HEADERS.get(column, column)
            if column == "Status":
                options.append((label, f"{column}|asc"))
            else:
                options += [(f"{label}, highest first", f"{column}|desc"), (f"{label}, lowest first", f"{column}|asc")]
        return options

    def _program_options(self) -> list[tuple[str, object]]:
        names = [] if self.analysis is None else [str(n) for n in self.analysis.index]
        return [("(pick a program)", "")] + [(n, n) for n in names]

    def _on_sort(self, _change) -> None:
        if self._syncing:
            return
        value = self._widgets["sort"].value
        if value == "added":
            self.sort_by, self.descending = None, True
        else:
            column, order = value.rsplit("|", 1)
            self.sort_by, self.descending = column, order == "desc"
        self._redraw()

    def _on_drill(self, _change) -> None:
        if self._syncing:
            return
        name, kind = self._widgets["program"].value, self._widgets["kind"].value
        self._widgets["examples"].value = self.drill_html(name, kind) if name else ""

    def drill_html(self, name: str, kind: str = "covered", limit: int = 10) -> str:
        """The drill-down for one program (see ``Workbench.examples``) as HTML."""
        if self.workbench is None:
            return ""
        try:
            frame = self.workbench.examples(name, kind)
        except (ValueError, KeyError) as e:
            return f'<div class="alc-panel mathjax_ignore tex2jax_ignore"><p class="alc-caption">{html.escape(str(e))}</p></div>'
        split = frame.attrs.get("split", "")
        head = (f'<p class="alc-caption"><code>{html.escape(name)}</code>: {len(frame)} '
                f"{html.escape(DRILL_KINDS.get(kind, kind))} ({html.escape(split)})"
                + (f", the first {limit}" if len(frame) > limit else "") + ".")
        message = frame.attrs.get("message")
        if kind == "errors" and message:
            head += f" First error: <code>{html.escape(str(message))}</code>"
        head += "</p>"
        return f'<div class="alc-panel mathjax_ignore tex2jax_ignore">{STYLE}{head}{examples_html(frame, limit) if len(frame) else ""}</div>'

    def _redraw(self) -> None:
        if self._widgets is None:
            return
        order = "added" if not self.sort_by else f"{self.sort_by}|{'desc' if self.descending else 'asc'}"
        for key, options, wanted in (("sort", self._sort_options(), order),
                                     ("program", self._program_options(), self._widgets["program"].value)):
            control = self._widgets[key]
            values = [v for _, v in options]
            self._syncing = True  # the observers must not act on these programmatic changes
            try:
                if list(control.options) != options:
                    control.options = options  # resets the value: put it back
                if control.value != wanted:
                    control.value = wanted if wanted in values else options[0][1]
            finally:
                self._syncing = False
            if key == "sort" and control.value != wanted:
                self.sort_by, self.descending = None, True
        self._widgets["body"].value = f'<div class="alc-panel mathjax_ignore tex2jax_ignore">{STYLE}{self._body_html()}</div>'
        self._widgets["status"].value = f'<span class="alc-status-line">{html.escape(self.status)}</span>'
        if self._widgets["program"].value:
            self._on_drill(None)


def write_labels(frame: pd.DataFrame, path: str | Path | None = None) -> pd.DataFrame:
    """``%alchemist labels --to FILE``: write ``Workbench.labels()`` to ``.csv`` or ``.parquet``
    (the split's row index kept), say so in one line, and return the frame."""
    if path is None:
        return frame
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"--to {path}: write labels to a .csv or .parquet file")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(path, index=True)
    else:
        try:
            frame.to_parquet(path, index=True)
        except ImportError as e:
            raise ValueError(f"--to {path}: parquet needs pyarrow ({e}); pip install pyarrow, or write .csv") from None
    covered = int(frame["covered"].sum()) if "covered" in frame else len(frame)
    print(f"wrote {len(frame)} rows ({covered} labeled by the programs) to {path}")
    return frame
