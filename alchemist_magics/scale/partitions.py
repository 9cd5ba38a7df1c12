"""Partitions: slices of a dataset's rows, each made into inputs on the worker that runs it.

A partition either carries its rows (they travel inside its task, so a retried task still has
them: data scattered to one worker would die with it) or a ``load`` callable that makes them on
the worker (read a file shard, generate synthetic rows...), so the client never holds the column.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class Partition:
    """``n_rows`` rows that one task labels.

    Args:
        name: stable, human-readable id (shown in per-partition reports).
        n_rows: how many rows ``inputs()`` yields; checked on the worker.
        rows: the inputs themselves (what each program receives per row), or
        load: a picklable, deterministic callable returning them (run on the worker, maybe twice
            when a worker dies and the task is retried).
    """

    name: str
    n_rows: int
    rows: Sequence | None = None
    load: Callable[[], Sequence] | None = None

    def __post_init__(self):
        if (self.rows is None) == (self.load is None):
            raise ValueError(f"partition {self.name!r}: give exactly one of rows= or load=")
        if self.rows is not None and len(self.rows) != self.n_rows:
            raise ValueError(f"partition {self.name!r}: n_rows={self.n_rows} but {len(self.rows)} rows given")

    def inputs(self) -> list:
        """The rows as a list (calls ``load`` for a lazy partition)."""
        rows = self.rows if self.rows is not None else self.load()
        rows = rows if isinstance(rows, list) else list(rows)
        if len(rows) != self.n_rows:
            raise ValueError(f"partition {self.name!r}: load() gave {len(rows)} rows, n_rows says {self.n_rows}")
        return rows


def split_rows(inputs: Sequence, partition_rows: int) -> list[Partition]:
    """Cut in-memory inputs into partitions of at most ``partition_rows`` rows, in order."""
    if partition_rows < 1:
        raise ValueError(f"partition_rows must be >= 1, got {partition_rows}")
    inputs = inputs if isinstance(inputs, list) else list(inputs)
    return [
        Partition(f"rows {start}-{min(start + partition_rows, len(inputs)) - 1}",
                  min(partition_rows, len(inputs) - start), rows=inputs[start:start + partition_rows])
        for start in range(0, len(inputs), partition_rows)
    ]
