"""The analysis panel: program matrix, label-model choice, cost meter and progress, in one widget.

The panel is an ipywidgets box when widgets render (it updates in place when a program cell is
run) and a plain HTML table elsewhere (``_repr_html_``). Its text repr has no memory address, so
nbval can compare it.
"""
from __future__ import annotations

import html

import pandas as pd

# Columns whose higher values are better (green) or worse (red); others are not coloured.
GOOD = {"Coverage", "Emp. Acc.", "Correct"}
BAD = {"Conflicts", "Incorrect", "Faults", "Invalid"}


def _colour(column: str, value) -> str:
    """A background colour for one cell, by column meaning and value."""
    if column == "Status":
        return "#c8e6c9" if value == "ok" else "#ffcdd2"
    if not isinstance(value, (int, float)) or pd.isna(value):
        return ""
    if column == "Emp. Acc.":
        return "#c8e6c9" if value >= 0.8 else "#fff59d" if value >= 0.6 else "#ffcdd2"
    if column in ("Faults", "Invalid"):
        return "#ffcdd2" if value > 0 else ""
    if column in ("Coverage", "Conflicts", "Overlaps") and 0 <= value <= 1:
        shade = int(255 - 90 * value)
        return f"rgb({shade},255,{shade})" if column == "Coverage" else f"rgb(255,{shade},{shade})"
    return ""


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def matrix_html(table: pd.DataFrame) -> str:
    """The analysis table as HTML with a background colour per cell."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["program", *table.columns])
    rows = []
    for name, row in table.iterrows():
        cells = [f"<td><code>{html.escape(str(name))}</code></td>"]
        for column, value in row.items():
            colour = _colour(column, value)
            style = f' style="background:{colour}"' if colour else ""
            cells.append(f"<td{style}>{html.escape(_fmt(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="alchemist-matrix"><tr>{head}</tr>{"".join(rows)}</table>'


def _money(value) -> str:
    return "n/a" if value is None else f"${value:.4f}"


def cost_html(cost: dict) -> str:
    """The cost meter: spent, estimate, budget, the zero-shot counterfactual and the ratio."""
    parts = [f"spent {_money(cost.get('spent_usd'))} ({cost.get('requests', 0)} requests, "
             f"{cost.get('cache_hits', 0)} cache hits)",
             f"estimate {_money(cost.get('estimate_usd'))}", f"budget {_money(cost.get('budget_usd'))}",
             f"labeling every row zero-shot: {_money(cost.get('zero_shot_usd'))}"]
    ratio = cost.get("ratio")
    parts.append(f"programs cost {ratio:.1f}x less" if ratio else "ratio n/a")
    return "<p><b>Cost</b>: " + " · ".join(html.escape(p) for p in parts) + "</p>"


class Panel:
    """Live view of one task: call :meth:`update` with new results, :meth:`progress` while working.

    Args:
        task: the task name (shown in the title and the repr).
    """

    def __init__(self, task: str):
        self.task = task
        self.analysis: pd.DataFrame | None = None
        self.scores: pd.DataFrame | None = None
        self.chosen: str | None = None
        self.cost: dict = {}
        self.status = "no programs yet"
        self.sort_by: str | None = None
        self.descending = True
        self._widgets = None

    # -- state ----------------------------------------------------------------------------------
    def update(self, *, analysis=None, scores=None, chosen=None, cost=None, status: str = "ready") -> None:
        """Replace the shown results (arguments left None keep their value) and redraw in place."""
        if analysis is not None:
            self.analysis = analysis
        if scores is not None:
            self.scores, self.chosen = scores, chosen
        if cost is not None:
            self.cost = cost
        self.status = status
        self._redraw()

    def progress(self, done: int, total: int, text: str) -> None:
        """Show a step of work (generating, applying, fitting) on the progress bar."""
        self.status = text
        if self._widgets is not None:
            bar = self._widgets["progress"]
            bar.max, bar.value, bar.description = max(total, 1), done, f"{done}/{total}"
            self._widgets["status"].value = html.escape(text)

    def sorted_analysis(self) -> pd.DataFrame | None:
        """The analysis table in the chosen sort order (programs in order of addition by default)."""
        if self.analysis is None or not self.sort_by or self.sort_by not in self.analysis.columns:
            return self.analysis
        return self.analysis.sort_values(self.sort_by, ascending=not self.descending, kind="stable")

    # -- rendering ------------------------------------------------------------------------------
    def _body_html(self) -> str:
        parts = [f"<h4>alchemist: {html.escape(self.task)}</h4>"]
        table = self.sorted_analysis()
        if table is not None:
            parts.append(matrix_html(table))
        if self.scores is not None:
            parts.append(f"<p><b>Label model</b> (chosen on dev: <code>{html.escape(str(self.chosen))}</code>; "
                         "majority vote beside it)</p>" + self.scores.to_html(float_format="%.3f"))
        if self.cost:
            parts.append(cost_html(self.cost))
        return "".join(parts)

    def _repr_html_(self) -> str:
        return self._body_html() + f"<p><i>{html.escape(self.status)}</i></p>"

    def __repr__(self) -> str:
        programs = 0 if self.analysis is None else len(self.analysis)
        return f"Panel(task={self.task!r}, programs={programs}, label_model={self.chosen!r}, status={self.status!r})"

    def widget(self):
        """The ipywidgets view (made once; every later :meth:`update` redraws it in place)."""
        if self._widgets is None:
            import ipywidgets as w

            columns = [] if self.analysis is None else list(self.analysis.columns)
            sort = w.Dropdown(options=["(added)", *columns], description="sort by")
            order = w.ToggleButton(value=True, description="descending")
            self._widgets = {"sort": sort, "order": order, "body": w.HTML(), "status": w.HTML(),
                             "progress": w.IntProgress(min=0, max=1, value=0)}
            sort.observe(self._on_sort, names="value")
            order.observe(self._on_sort, names="value")
            self._widgets["box"] = w.VBox([w.HBox([sort, order]), self._widgets["body"],
                                           w.HBox([self._widgets["progress"], self._widgets["status"]])])
            self._redraw()
        return self._widgets["box"]

    def _on_sort(self, _change) -> None:
        value = self._widgets["sort"].value
        self.sort_by = None if value == "(added)" else value
        self.descending = self._widgets["order"].value
        self._redraw()

    def _redraw(self) -> None:
        if self._widgets is None:
            return
        sort, wanted = self._widgets["sort"], self.sort_by
        if self.analysis is not None and list(sort.options) != ["(added)", *self.analysis.columns]:
            sort.options = ["(added)", *self.analysis.columns]  # resets the value: put it back
            sort.value = wanted if wanted in sort.options else "(added)"
        self._widgets["body"].value = self._body_html()
        self._widgets["status"].value = html.escape(self.status)

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/plain": repr(self), "text/html": self._repr_html_()}
        try:
            view = self.widget()._repr_mimebundle_()
        except ImportError:  # no ipywidgets: the HTML is the panel
            return bundle
        bundle.update({k: v for k, v in (view or {}).items() if k != "text/plain"})
        return bundle
