"""Smoke test: reject a program that is useless on a sample before it joins the set."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .check import CheckResult
from .labels import ABSTAIN, FAULT, INVALID, LabelSpace
from .program import Program
from .apply import apply_programs


def smoke_test(program: Program | str, sample_inputs: Sequence, label_space: LabelSpace, **apply_kwargs) -> CheckResult:
    """Run ``program`` (checked, sandboxed) on a few rows; ``ok`` unless it is clearly useless.

    Rejected, with the reason: failing the static check or not finishing; raising on every sample
    row; abstaining on every row; returning invalid outputs on every row; returning one and the same
    class on every row. ``apply_kwargs`` go to :func:`apply_programs` (e.g. ``time_limit_s``).
    """
    apply_kwargs.setdefault("progress", False)
    apply_kwargs.setdefault("time_limit_s", 10.0)
    run = apply_programs([program], sample_inputs, label_space, **apply_kwargs).runs[0]
    if run.status != "ok":
        return CheckResult(False, [f"{run.status}: {run.message}"])
    codes = run.codes
    entry = run.program.name
    if len(codes) == 0:
        return CheckResult(True, [], entry)
    if np.all((codes == FAULT) | (codes == ABSTAIN)) and np.any(codes == FAULT):
        return CheckResult(False, [f"abstains or raises on every sample row ({run.message})"], entry)
    for code, why in ((ABSTAIN, "abstains on every sample row"), (INVALID, f"returns invalid outputs on every sample row ({run.message})")):
        if np.all(codes == code):
            return CheckResult(False, [why], entry)
    if codes.min() >= 0 and codes.min() == codes.max():
        return CheckResult(False, [f"returns the same class ({label_space.name(int(codes[0]))!r}) on every sample row and never abstains"], entry)
    return CheckResult(True, [], entry)
