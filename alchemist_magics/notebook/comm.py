"""The kernel side of the JupyterLab extension (src/): comm messages on target ``alchemist_magics``.

The kernel cannot wait for the frontend inside a cell, so every message is a fire-and-forget
``comm_open`` whose data says its ``kind``:

- ``"cells"``: ``{"kind", "cell_id", "task", "run", "programs": [{"id", "name", "source", "cell"}]}``
  (``cell`` is the full text of the cell to insert; ``run`` identifies this execution of the magic
  cell and goes into each new cell's metadata). The extension inserts one cell per program
  below cell ``cell_id`` and answers on the comm with ``{"kind": "ack", "found", "inserted",
  "replaced", "kept", "cells": [{"cell_id", "task", "name", "source", "edited"}]}`` (``kept``:
  edited cells it left in place; ``cells``: the task's program cells in notebook order after the
  insertion); the ack lands in ``on_ack``.
- ``"remove"``: ``{"kind", "task", "name", "cell_id"}``: delete the program's cell(s).
- ``"marker"``: ``{"kind", "task", "name", "cell_id", "line"}``: replace the first line of the
  program's cell (``%alchemist disable`` adds ``--disabled`` there, ``enable`` takes it away).
- ``"sync-request"``: answer with a ``sync`` now (a task loaded in a fresh kernel learns its cells).
- ``"stats"``: ``{"kind", "task", "label_model", "programs": [{"name", "id", "coverage",
  "accuracy", "conflicts", "faults", "invalid", "status"}], "cost": {...}}``. The extension keeps
  it in the notebook metadata (``alchemist.tasks[task]``) for the sidebar.

The extension also opens comms to the kernel (target ``alchemist_magics``, registered by
:func:`listen`): ``{"kind": "sync", "cells": [...]}`` with every program cell of the notebook in
order (as in the ack) whenever cells are deleted, moved or inserted.

JupyterLab sends each cell's metadata with its execute request, so the kernel reads a program
cell's ``alchemist`` metadata (:func:`request_metadata`) and the cell's exact text
(:func:`request_code`) while it runs.

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
                 "Faults": "faults", "Invalid": "invalid", "Status": "status", "Problem": "problem"}
COST_KEYS = ("spent_usd", "estimate_usd", "budget_usd", "zero_shot_usd", "ratio", "requests", "cache_hits",
             "cost_text", "unknown_cost_requests")


def program_cell(task: str, program: Program) -> str:
    """The text of the editable cell for one program: the marker line, then its source.

    Running the cell registers the (possibly edited) program under this name, replacing the old one.
    """
    return f"%%{CELL_MAGIC} {task} {program.name}\n{program.source.rstrip()}\n"


def _parent(shell) -> dict:
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return {}
    try:
        return kernel.get_parent() or {}
    except Exception:  # an old or unusual kernel: no request data is the documented fallback
        return {}


def cell_id(shell) -> str | None:
    """The id of the cell being executed, when the frontend sent one (JupyterLab does), else None."""
    return request_metadata(shell).get("cellId")


def request_metadata(shell) -> dict:
    """The metadata of the execute request being handled (JupyterLab: the cell's metadata, its
    ``cellId`` and ``deletedCells``); {} outside a kernel."""
    meta = _parent(shell).get("metadata")
    return meta if isinstance(meta, dict) else {}


def request_code(shell) -> str | None:
    """The exact text of the cell being executed (None outside a kernel)."""
    code = (_parent(shell).get("content") or {}).get("code")
    return code if isinstance(code, str) else None


def text_hash(text: str) -> str:
    """The extension's ``textHash`` (src/cells.ts): FNV-1a over UTF-16 code units, 8 hex digits."""
    data = text.encode("utf-16-le", "surrogatepass")
    h = 0x811C9DC5
    for i in range(0, len(data), 2):
        h ^= data[i] | (data[i + 1] << 8)
        h = (h * 0x01000193) & 0xFFFFFFFF
    return f"{h:08x}"


def send(shell, data: dict) -> bool:
    """Send one message to the extension; False (nothing sent) outside a kernel."""
    if getattr(shell, "kernel", None) is None:
        return False
    _open(data)
    return True


def listen(shell, handler: Callable[[dict], None]) -> bool:
    """Receive the extension's messages (comms it opens on our target): ``handler(data)``."""
    kernel = getattr(shell, "kernel", None)
    manager = getattr(kernel, "comm_manager", None)
    if manager is None:
        try:
            from comm import get_comm_manager

            manager = get_comm_manager() if kernel is not None else None
        except ImportError:
            manager = None
    if manager is None:
        return False

    def opened(comm, msg):
        handler(msg["content"]["data"])

    manager.register_target(COMM_TARGET, opened)
    return True


def _open(data: dict, on_msg: Callable[[dict], None] | None = None) -> None:
    from comm import create_comm  # ipykernel installs the real implementation

    comm = create_comm(target_name=COMM_TARGET, data=data)
    if on_msg is not None:
        comm.on_msg(lambda msg: on_msg(msg["content"]["data"]))


def send_program_cells(shell, task: str, programs: list[Program], run: str | None = None,
                       on_ack: Callable[[dict], None] | None = None) -> bool:
    """Ask the extension to insert the programs of ``task`` as cells below the running cell.

    Returns False (and sends nothing) without a kernel or a cell id. ``on_ack`` is called with the
    extension's answer when it arrives, after the cell has finished.
    """
    cell = cell_id(shell)
    if cell is None:
        return False
    _open({"kind": "cells", "cell_id": cell, "task": task, "run": run,
           "programs": [{"id": p.id, "name": p.name, "source": p.source, "cell": program_cell(task, p)}
                        for p in programs]}, on_ack)
    return True


def _plain(value):
    """A JSON value: numpy scalars become Python numbers, NaN becomes None."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def stats_message(task: str, programs: list[Program], analysis: pd.DataFrame | None, cost: dict,
                  label_model: str | None, disabled: set[str] = frozenset()) -> dict:
    """The ``kind: "stats"`` message: each program's key numbers (from ``analysis``) and the cost.

    Programs named in ``disabled`` are listed with status ``disabled`` and no numbers."""
    rows = []
    for program in programs:
        row = analysis.loc[program.name] if analysis is not None and program.name in analysis.index else {}
        stats = {key: _plain(row.get(column)) for column, key in STATS_COLUMNS.items()}
        if program.name in disabled:
            stats = {**{key: None for key in stats}, "status": "disabled", "problem": "disabled"}
        rows.append({"name": program.name, "id": program.id, **stats})
    return {"kind": "stats", "task": task, "label_model": label_model, "programs": rows,
            "cost": {key: _plain(cost.get(key)) for key in COST_KEYS}}


def send_stats(shell, message: dict) -> bool:
    """Send a :func:`stats_message` to the extension; False (nothing sent) outside a kernel."""
    if getattr(shell, "kernel", None) is None:
        return False
    _open(message)
    return True
