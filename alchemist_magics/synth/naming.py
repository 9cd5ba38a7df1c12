"""Shared by the offline writers: class indices from labels, function names, distinct names."""
from __future__ import annotations

import re

import numpy as np

from ..task import TaskSpec


def class_indices(task: TaskSpec, labels, n: int) -> np.ndarray:
    """Labels (indices or class names, case-insensitive) as class indices; one per labeled row."""
    labels = list(labels)
    if len(labels) != n:
        raise ValueError(f"got {n} labeled texts but {len(labels)} labels; pass one label per text")
    by_name = {c.casefold(): i for i, c in enumerate(task.classes)}
    out = []
    for value in labels:
        if isinstance(value, str):
            index = by_name.get(value.strip().casefold())
        else:
            index = int(value) if 0 <= int(value) < task.cardinality else None
        if index is None:
            raise ValueError(f"label {value!r} is not a class of {task.classes!r} (use 0..k-1 or a name)")
        out.append(index)
    return np.asarray(out, dtype=int)


def identifier(text: str) -> str:
    """A Python function name made from free text."""
    ident = re.sub(r"\W+", "_", text.lower(), flags=re.ASCII).strip("_")[:48].rstrip("_")
    return ident if ident and not ident[0].isdigit() else f"vote_{ident}"


def unique_names(sources: list[str]) -> list[str]:
    """Give repeated function names a numeric suffix so every program is named distinctly."""
    seen: dict[str, int] = {}
    out = []
    for source in sources:
        name = re.search(r"^def (\w+)\(", source, re.M).group(1)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            source = source.replace(f"def {name}(", f"def {name}_{seen[name]}(", 1)
        out.append(source)
    return out
