"""Smoke test: reject a program that is useless on the rows it will label before it joins the set.

``Workbench.add`` runs it over *every* train row, with the apply's own limits and output cache (so
``apply`` then reads the outputs back, and a program that hangs costs its limit once): a program is
refused only for what the full apply shows. On a
sample, a rare rule that fires on 11 of 4,571 rows at 100 % would look like one that never votes."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .check import CheckResult
from .labels import ABSTAIN, FAULT, INVALID, LabelSpace
from .program import Program
from .results import ProgramRun
from .apply import apply_programs


def smoke_test(program: Program | str, sample_inputs: Sequence, label_space: LabelSpace, *,
               row_name: str = "sample row", **apply_kwargs) -> CheckResult:
    """See :func:`smoke_run`; only the verdict."""
    return smoke_run(program, sample_inputs, label_space, row_name=row_name, **apply_kwargs)[0]


def smoke_run(program: Program | str, sample_inputs: Sequence, label_space: LabelSpace, *,
              row_name: str = "sample row", **apply_kwargs) -> tuple[CheckResult, ProgramRun]:
    """Run ``program`` (checked, sandboxed) on ``sample_inputs``; ``ok`` unless it is clearly useless there.

    Rejected, with the reason: failing the static check or not finishing; raising on every row;
    abstaining on every row; returning invalid outputs on every row; returning one and the same
    class on every row. Returns the verdict and the run (its message quotes the first exception;
    ``cached`` when the output cache answered). ``row_name`` names the rows in the reasons ("train row" when they are all
    of train). ``apply_kwargs`` go to :func:`apply_programs` (e.g. ``time_limit_s``, ``cache``).
    """
    apply_kwargs.setdefault("progress", False)
    apply_kwargs.setdefault("time_limit_s", 10.0)
    run = apply_programs([program], sample_inputs, label_space, **apply_kwargs).runs[0]
    if run.status != "ok":
        return CheckResult(False, [f"{run.status}: {run.message}"]), run
    codes = run.codes
    entry = run.program.name
    n = len(codes)
    if n == 0:
        return CheckResult(True, [], entry), run
    if np.all((codes == FAULT) | (codes == ABSTAIN)) and np.any(codes == FAULT):
        return CheckResult(False, [f"abstains or raises on every {row_name} (all {n}; {run.message})"], entry), run
    for code, why in ((ABSTAIN, f"abstains on every {row_name} (all {n})"),
                      (INVALID, f"returns invalid outputs on every {row_name} (all {n}; {run.message})")):
        if np.all(codes == code):
            return CheckResult(False, [why], entry), run
    if codes.min() >= 0 and codes.min() == codes.max():
        return CheckResult(False, [f"returns the same class ({label_space.name(int(codes[0]))!r}) on every {row_name} "
                                   f"(all {n}) and never abstains"], entry), run
    return CheckResult(True, [], entry), run
