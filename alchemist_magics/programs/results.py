"""What applying programs returns: one :class:`ProgramRun` per program and the :class:`ApplyResult`.

Kept apart from the engine (``apply.py``) and the child-side executor (``sandbox.py``) so that
both, the supervisor and the Dask layer share these types without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .labels import ABSTAIN, FAULT, INVALID
from .program import Program

# Every status a run can have; anything else coming back from the sandbox is refused.
STATUSES = ("ok", "faulted", "rejected", "load_error", "timeout", "memory_limit", "crashed")
ISOLATION_LEVELS = ("os", "audit-hook only")


@dataclass
class ProgramRun:
    """How one program fared: ``status`` plus a one-line ``message``, outcome counts and raw codes.

    Statuses: ``ok`` (ran every row), ``faulted`` (raised on every row), ``rejected`` (static check),
    ``load_error`` (its module code raised), ``timeout``, ``memory_limit``, ``crashed`` (died, left
    the process, corrupted its result or lost its supervisor). Only ``ok`` programs contribute
    labels; the others' columns are all -1. ``codes`` keeps the raw per-row outcomes (see
    ``labels.py``) for inspection.
    """

    program: Program
    status: str
    message: str
    codes: np.ndarray | None = field(default=None, repr=False)
    runtime_s: float = 0.0
    cached: bool = False

    def _count(self, code: int) -> int:
        return 0 if self.codes is None else int(np.count_nonzero(self.codes == code))

    @property
    def faults(self) -> int:
        return self._count(FAULT)

    @property
    def invalid(self) -> int:
        return self._count(INVALID)

    @property
    def abstains(self) -> int:
        return self._count(ABSTAIN)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class ApplyResult:
    """``L``: int8 label matrix (n_rows x n_programs, -1..k-1); ``runs``: one :class:`ProgramRun` per program.

    ``isolation`` says what contained the programs that ran: ``"os"`` (seccomp-bpf and Landlock in
    every child, see docs/security.md), ``"audit-hook only"`` (this OS offers neither; only the
    Python-level checks held), or ``"not recorded"`` (nothing ran here, e.g. every run was cached
    or the result was merged from elsewhere). ``layers`` has the detail per layer.
    """

    L: np.ndarray
    runs: list[ProgramRun]
    isolation: str = field(default="not recorded", kw_only=True)
    layers: dict = field(default_factory=dict, kw_only=True, repr=False)

    def summary(self) -> list[dict]:
        """One plain dict per program (name, status, message, counts, runtime, cached, isolation)."""
        return [
            {"name": r.program.name, "id": r.program.id, "status": r.status, "message": r.message,
             "faults": r.faults, "invalid": r.invalid, "abstains": r.abstains,
             "runtime_s": round(r.runtime_s, 3), "cached": r.cached, "isolation": self.isolation}
            for r in self.runs
        ]


def ok_message(codes: np.ndarray, first_fault: str = "", first_invalid: str = "") -> str:
    """The one-line message of an ``ok`` run: rows labeled, faults and invalid outputs with the first of each."""
    n = len(codes)
    labeled = int(np.count_nonzero(codes >= 0))
    parts = [f"labeled {labeled}/{n} rows"]
    for code, what, first in ((FAULT, "faults", first_fault), (INVALID, "invalid outputs", first_invalid)):
        count = int(np.count_nonzero(codes == code))
        if count:
            parts.append(f"{count} {what}" + (f" (first: {first})" if first else ""))
    return ", ".join(parts)
