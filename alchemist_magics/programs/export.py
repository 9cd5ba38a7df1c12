"""Programs out as a plain ``.py`` file: their sources, a loader for the plain functions and one for
snorkel ``LabelingFunction``s (what ``%alchemist export`` and ``Workbench.export`` write)."""
from __future__ import annotations

from ..task import TaskSpec
from .program import Program


def export_source(task: TaskSpec, programs: list[Program]) -> str:
    """A .py file holding the programs' sources, with loaders for plain functions and snorkel LFs."""
    sources = ",\n".join(f"    {p.name!r}: {p.source!r}" for p in programs)
    return f'''"""Labeling programs of task {task.name!r}, exported by alchemist_magics."""
CLASSES = {list(task.classes)!r}
SOURCES = {{
{sources},
}}


def programs() -> dict:
    """Each program's entry function, by name (each program runs in its own namespace, unsandboxed)."""
    from alchemist_magics.programs import find_entry

    out = {{}}
    for name, source in SOURCES.items():
        namespace = {{}}
        exec(compile(source, name, "exec"), namespace)
        out[name] = namespace[find_entry(source)[0]]
    return out


def snorkel_lfs(field: str = "text") -> list:
    """The programs as snorkel LabelingFunctions (outputs normalised to class indices, -1 = abstain)."""
    from alchemist_magics.programs import LabelSpace, Program, to_snorkel_lfs

    return to_snorkel_lfs([Program(s, name=n) for n, s in SOURCES.items()], LabelSpace(CLASSES), field)
'''
