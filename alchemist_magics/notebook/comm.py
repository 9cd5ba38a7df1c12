"""The kernel side of the JupyterLab extension (src/): comm messages on target ``alchemist_magics``.

The kernel cannot wait for the frontend inside a cell, so every message is a fire-and-forget
``comm_open`` whose data says its ``kind``:

- ``"cells"``: ``{"kind", "cell_id", "task", "programs": [{"id", "name", "source", "cell"}]}``
  (``cell`` is the full text of the cell to insert). The extension inserts one cell per program
  below cell ``cell_id`` and answers on the comm with ``{"kind": "ack", "found", "inserted",
  "replaced", "kept"}`` (``kept``: edited cells it left in place); the ack lands in ``on_ack``.
- ``"stats"``: ``{"kind", "task", "label_model", "programs": [{"name", "id", "coverage",
  "accuracy", "conflicts", "faults", "invalid", "status"}], "cost": {...}}``. The extension keeps
  it in the notebook metadata (``alchemist.tasks[task]``) for the sidebar.

Frontends without the extension (nbval, VS Code, Colab, a terminal) ignore both; the magic always
shows the programs in its output as well, and ``set_next_input`` can put them all into one next cell.
"""
from __future__ import annotations

import math
from typing import Callable

import pandas as pd

from ..programs import Program

COMM_TARGET = "alchemist_magics"
CELL_MAGIC = "alchemist_program"
# analysis column -> stats key; the cost keys the sidebar shows
STATS_COLUMNS = {"Coverage": "coverage", "Emp. Acc.": "accuracy", "Conflicts": "conflicts",
                 "Faults": "faults", "Invalid": "invalid", "Status": "status"}
COST_KEYS = ("spent_usd", "estimate_usd", "budget_usd", "zero_shot_usd", "ratio", "requests", "cache_hits")


def program_cell(task: str, program: Program) -> str:
    """The text of the editable cell for one program: the marker line, then its source.

    Running the cell registers the (possibly edited) program under this name, replacing the old one.
    """
    return f"%%{CELL_MAGIC} {task} {program.name}\n{program.source.rstrip()}\n"


def cell_id(shell) -> str | None:
    """The id of the cell being executed, when the frontend sent one (JupyterLab does), else None."""
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return None
    try:
        parent = kernel.get_parent()
    except Exception:  # an old or unusual kernel: no id is the documented fallback
        return None
    return ((parent or {}).get("metadata") or {}).get("cellId")


def _open(data: dict, on_msg: Callable[[dict], None] | None = None) -> None:
    from comm import create_comm  # ipykernel installs the real implementation

    comm = create_comm(target_name=COMM_TARGET, data=data)
    if on_msg is not None:
        comm.on_msg(lambda msg: on_msg(msg["content"]["data"]))


def send_program_cells(shell, task: str, programs: list[Program],
                       on_ack: Callable[[dict], None] | None = None) -> bool:
    """Ask the extension to insert the programs of ``task`` as cells below the running cell.

    Returns False (and sends nothing) without a kernel or a cell id. ``on_ack`` is called with the
    extension's answer when it arrives, after the cell has finished.
    """
    cell = cell_id(shell)
    if cell is None:
        return False
    _open({"kind": "cells", "cell_id": cell, "task": task,
           "programs": [{"id": p.id, "name": p.name, "source": p.source, "cell": program_cell(task, p)}
                        for p in programs]}, on_ack)
    return True


def _plain(value):
    """A JSON value: numpy scalars become Python numbers, NaN becomes None."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def stats_message(task: str, programs: list[Program], analysis: pd.DataFrame, cost: dict,
                  label_model: str | None) -> dict:
    """The ``kind: "stats"`` message: each program's key numbers (from ``analysis``) and the cost."""
    rows = []
    for program in programs:
        row = analysis.loc[program.name] if program.name in analysis.index else {}
        rows.append({"name": program.name, "id": program.id,
                     **{key: _plain(row.get(column)) for column, key in STATS_COLUMNS.items()}})
    return {"kind": "stats", "task": task, "label_model": label_model, "programs": rows,
            "cost": {key: _plain(cost.get(key)) for key in COST_KEYS}}


def send_stats(shell, message: dict) -> bool:
    """Send a :func:`stats_message` to the extension; False (nothing sent) outside a kernel."""
    if getattr(shell, "kernel", None) is None:
        return False
    _open(message)
    return True
