"""Program cells, kernel side: one comm message asks the JupyterLab extension to insert the cells.

The kernel cannot wait for the frontend inside a cell, so this is fire and forget: the message is
``comm_open`` on target ``alchemist_magics`` with ``{"cell_id", "task", "programs": [{"id", "name",
"source", "cell"}]}`` (``cell`` is the full text of the cell to insert). Frontends without the
extension (nbval, VS Code, Colab, a terminal) ignore it; the magic always shows the programs in
its output as well, and ``set_next_input`` can put them all into one next cell.
"""
from __future__ import annotations

from ..programs import Program

COMM_TARGET = "alchemist_magics"
CELL_MAGIC = "alchemist_program"


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


def send_program_cells(shell, task: str, programs: list[Program]) -> bool:
    """Open the comm with the programs of ``task``; False when there is no kernel or no cell id."""
    cell = cell_id(shell)
    if cell is None:
        return False
    from comm import create_comm  # ipykernel installs the real implementation

    data = {"cell_id": cell, "task": task,
            "programs": [{"id": p.id, "name": p.name, "source": p.source, "cell": program_cell(task, p)}
                         for p in programs]}
    create_comm(target_name=COMM_TARGET, data=data)
    return True
