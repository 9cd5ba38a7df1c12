"""Programs as snorkel ``LabelingFunction``s, normalised exactly like the sandbox normalises them.

These run *in-process, without the sandbox*: only for programs that passed :func:`check_program`
(which this enforces) and whose authors you trust, e.g. to compare against snorkel's appliers.
"""
from __future__ import annotations

from typing import Sequence

from .check import check_program
from .labels import ABSTAIN, LabelSpace
from .program import Program


def to_snorkel_lfs(programs: Sequence[Program | str], label_space: LabelSpace, field: str | None = "text") -> list:
    """One snorkel ``LabelingFunction`` per program.

    ``field``: the column passed to the program (a single-input dataset); ``None`` passes the whole
    snorkel row (a pandas Series, which also allows ``x.col`` and ``x["col"]``). A raising row or an
    invalid output abstains, as in the sandbox's label matrix. Raises ``ValueError`` for a program
    that fails the static check.
    """
    from snorkel.labeling import LabelingFunction

    lfs = []
    for program in programs:
        program = program if isinstance(program, Program) else Program(program)
        result = check_program(program.source)
        if not result.ok:
            raise ValueError(f"program {program.name} fails the check: {'; '.join(result.reasons)}")
        namespace = {"__name__": f"program_{program.id}"}
        exec(compile(program.source, f"<program {program.name}>", "exec"), namespace)
        lfs.append(LabelingFunction(program.name, _wrap(namespace[result.entry], label_space, field)))
    return lfs


def _wrap(fn, label_space: LabelSpace, field: str | None):
    k, normalize = label_space.k, label_space.normalize

    def lf(x):
        try:
            v = fn(x if field is None else x[field])
        except Exception:
            return ABSTAIN
        if type(v) is int and -1 <= v < k:
            return v
        code = normalize(v)
        return code if code >= 0 else ABSTAIN

    return lf
