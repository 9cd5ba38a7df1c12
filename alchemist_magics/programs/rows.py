"""Read-only rows for programs that read several input columns: ``x.col`` and ``x["col"]``.

This lives apart from the data layer (and imports nothing heavy) because rows travel by pickle to
the sandbox's supervisor process, which must not pay for importing pandas.
"""
from __future__ import annotations

from collections import namedtuple
from functools import lru_cache
from typing import Sequence


def make_row_type(columns: Sequence[str]):
    """A namedtuple type for rows with ``x.col`` and ``x["col"]`` access (picklable by column names)."""
    return _row_type(tuple(columns))


@lru_cache(maxsize=None)
def _row_type(columns: tuple[str, ...]):
    base = namedtuple("Row", list(columns), rename=True)
    # rename=True turns names that are not identifiers into _0, _1...: keep the original names too
    position = {name: i for i, name in enumerate(columns)}

    class Row(base):
        __slots__ = ()

        def __getitem__(self, key):
            if isinstance(key, str):
                if key not in position:
                    raise KeyError(key)
                key = position[key]
            return super().__getitem__(key)

        def get(self, key, default=None):
            try:
                return self[key]
            except (KeyError, IndexError):
                return default

        def __reduce__(self):  # the class is made at run time: pickle it as its column names
            return _rebuild_row, (columns, tuple(self))

    return Row


def _rebuild_row(columns: tuple[str, ...], values: tuple):
    return _row_type(columns)(*values)
