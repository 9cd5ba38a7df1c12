"""A labeling program: Python source that defines one entry function taking one row's input."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def source_hash(source: str) -> str:
    """Full sha256 of a program's source (cache keys); ``Program.id`` is its first 12 hex digits."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


@dataclass(eq=False)
class Program:
    """Source text plus where it came from.

    Args:
        source: Python source defining the entry function (helpers, imports and constants allowed).
        name: display name; defaults to the entry function's name (or ``program_<id>`` when the
            source does not parse).
        provenance: free-form dict (prompt, model, tokens, parent...); carried, never interpreted.
    """

    source: str
    name: str | None = None
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.source, str):
            raise TypeError(f"Program source must be a str, got {type(self.source).__name__}")
        self.provenance = dict(self.provenance or {})
        if self.name is None:
            from .check import find_entry  # local: check imports nothing from here, but keep modules independent

            self.name = find_entry(self.source)[0] or f"program_{self.id}"

    @property
    def id(self) -> str:
        """Short content hash of the source: equal sources have equal ids."""
        return source_hash(self.source)[:12]

    def __eq__(self, other):
        return isinstance(other, Program) and other.source == self.source and other.name == self.name

    def __hash__(self):
        return hash((self.source, self.name))

    def __repr__(self) -> str:
        return f"Program(name={self.name!r}, id={self.id!r}, lines={self.source.count(chr(10)) + 1})"
