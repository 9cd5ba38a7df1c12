"""On-disk cache of program outputs, keyed by (program source, dataset, label space).

Only complete, successful runs are stored (a timeout or memory failure can depend on machine load).
Values are the raw per-row int8 codes, one ``.npy`` file per key, written atomically.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from array import array
from pathlib import Path
from typing import Sequence

import numpy as np

from .labels import LabelSpace
from .program import Program, source_hash

_VERSION = "1"  # bump when the meaning of stored codes changes


def fingerprint_inputs(inputs: Sequence) -> str:
    """A content hash of the rows a program sees (text, or the row objects' fields and values)."""
    h = hashlib.sha256()
    if all(type(row) is str for row in inputs):  # the common case, hashed in a few C calls
        h.update(b"text")
        h.update(array("q", map(len, inputs)).tobytes())  # lengths make the joined text unambiguous
        h.update("".join(inputs).encode("utf-8", "surrogatepass"))
        return h.hexdigest()[:32]
    fields = getattr(type(inputs[0]), "_fields", None) if len(inputs) else None
    h.update(repr(fields).encode())
    for row in inputs:
        h.update(repr(row).encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()[:32]


class OutputCache:
    """Per-row outcome codes of programs, stored under ``directory`` (created when missing).

    ``get``/``put`` take the program, a dataset fingerprint (see :func:`fingerprint_inputs`) and the
    label space; editing a program changes its source hash, so only that program is re-run.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, program: Program, fingerprint: str, label_space: LabelSpace) -> Path:
        key = "\0".join([_VERSION, source_hash(program.source), fingerprint, label_space.signature])
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npy"

    def get(self, program: Program, fingerprint: str, label_space: LabelSpace, n_rows: int) -> np.ndarray | None:
        """The stored codes, or None on a miss (a damaged or mismatched file counts as a miss)."""
        path = self._path(program, fingerprint, label_space)
        try:
            codes = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None
        if codes.dtype != np.int8 or codes.shape != (n_rows,):
            return None
        return codes

    def put(self, program: Program, fingerprint: str, label_space: LabelSpace, codes: np.ndarray) -> None:
        """Store codes atomically (temp file in the same directory, then ``os.replace``)."""
        path = self._path(program, fingerprint, label_space)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.asarray(codes, dtype=np.int8), allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*.npy"))
