"""The label space: class names, aliases, and the normalisation of one program output.

Per-row outcomes are int8 codes: ``0..k-1`` a class, ``ABSTAIN`` (-1), ``INVALID`` (-2, the program
returned something that is not a label), ``FAULT`` (-3, the row raised). ``NOT_RUN`` (-4) marks rows a
program never reached (it timed out or died); it only appears in raw codes, never in a label matrix.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

ABSTAIN = -1
INVALID = -2
FAULT = -3
NOT_RUN = -4

MAX_CLASSES = 100  # codes are int8 and negative values are reserved


def _key(name: str) -> str:
    """Case- and whitespace-insensitive form of a class name or alias."""
    return " ".join(name.split()).casefold()


class LabelSpace:
    """Classes ``0..k-1`` (abstain is -1) and how a program's return value maps onto them.

    Args:
        classes: class names in task order; the index of a name is its label.
        aliases: extra names for a class, ``{"junk": "spam", "unsure": -1}`` (a class name or an
            index; -1 makes the alias mean abstain).

    ``normalize`` accepts: an int or numpy integer in ``-1..k-1``; ``None`` (abstain); a class name
    or alias (case and whitespace do not matter); ``True``/``False`` for binary tasks only (1/0).
    Anything else (floats, out-of-range ints, unknown names, containers...) is ``INVALID``.
    """

    def __init__(self, classes: list[str], aliases: dict[str, str | int] | None = None):
        classes = [str(c) for c in classes]
        if not 2 <= len(classes) <= MAX_CLASSES:
            raise ValueError(f"a label space needs 2 to {MAX_CLASSES} classes, got {len(classes)}: {classes}")
        self.classes = classes
        self.aliases = dict(aliases or {})
        self.k = len(classes)
        self._names: dict[str, int] = {}
        for i, name in enumerate(classes):
            if _key(name) in self._names:
                raise ValueError(f"class names must differ ignoring case/whitespace: {name!r} repeats")
            self._names[_key(name)] = i
        for alias, target in self.aliases.items():
            index = target if isinstance(target, int) and not isinstance(target, bool) else self._names.get(_key(str(target)))
            if index is None or not -1 <= index < self.k:
                raise ValueError(f"alias {alias!r} points to {target!r}, which is neither a class name nor -1..{self.k - 1}")
            if self._names.get(_key(alias), index) != index:
                raise ValueError(f"alias {alias!r} clashes with a class or alias of another label")
            self._names[_key(alias)] = index

    @property
    def binary(self) -> bool:
        return self.k == 2

    def normalize(self, value) -> int:
        """Map one program output to a class index, ``ABSTAIN`` or ``INVALID`` (never raises for plain values)."""
        if value is None:
            return ABSTAIN
        if isinstance(value, (bool, np.bool_)):
            return int(value) if self.k == 2 else INVALID
        if isinstance(value, (int, np.integer)):
            value = int(value)
            return value if -1 <= value < self.k else INVALID
        if isinstance(value, str):
            return self._names.get(_key(value), INVALID)
        return INVALID

    def name(self, index: int) -> str:
        """The class name of a label (``"ABSTAIN"`` for -1)."""
        return "ABSTAIN" if index == ABSTAIN else self.classes[index]

    @property
    def signature(self) -> str:
        """A hash of everything that changes normalisation (part of output-cache keys)."""
        spec = json.dumps([self.classes, sorted((_key(a), self._names[_key(a)]) for a in self.aliases)])
        return hashlib.sha256(spec.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        alias = f", aliases={self.aliases!r}" if self.aliases else ""
        return f"LabelSpace({self.classes!r}{alias})"


def to_label_matrix(codes: np.ndarray) -> np.ndarray:
    """Raw outcome codes -> labels: invalid, fault and not-run rows become abstain (-1)."""
    return np.where(codes >= 0, codes, ABSTAIN).astype(np.int8)
