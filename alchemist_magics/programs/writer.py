"""The one interface every source of programs implements: a *program writer*.

A writer gets the task, the labeled rows it may learn from (``None`` when there are none), the
unlabeled inputs and how many programs to write, and returns a :class:`WriteResult`. The offline
synthesizer (``synth.OfflineWriter``), the LLM (``llm.LLMWriter``), a fixed list of programs and a
plain function are all writers, so the Workbench drives them the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from .program import Program


@dataclass
class WriteResult:
    """What a writer returned: the programs, and what writing them cost and failed.

    Attributes:
        programs: the programs written (not yet checked against the data: the Workbench does that).
        failures: one line per request or candidate that gave no program, with its reason.
        cost_usd: what the writing cost (``None``: unknown; ``0.0`` for offline writers).
        cache_hits: replies served from the response cache (no request made).
        estimate_usd: the writer's estimate before spending, when it made one.
        note: one line saying how the programs were written (shown to the user).
        accepted, rejected: filled by ``Workbench.write``: the programs that joined the task and
            ``(program, reason)`` for those refused by the check or the smoke test.
    """

    programs: list[Program]
    failures: list[str] = field(default_factory=list)
    cost_usd: float | None = 0.0
    cache_hits: int = 0
    estimate_usd: float | None = None
    note: str = ""
    accepted: list[Program] = field(default_factory=list)
    rejected: list[tuple[Program, str]] = field(default_factory=list)


class ProgramWriter(Protocol):
    """Anything with ``write(task, labeled, unlabeled, n, seed) -> WriteResult``."""

    name: str

    def write(self, task, labeled, unlabeled: Sequence, n: int, seed: int) -> WriteResult:
        ...


class FixedPrograms:
    """A writer that returns the same programs every time (hand-written or stored ones)."""

    name = "programs"

    def __init__(self, programs: Sequence[Program | str]):
        self.programs = [p if isinstance(p, Program) else Program(p) for p in programs]
        if not self.programs:
            raise ValueError("no programs given: pass at least one program")

    def write(self, task, labeled, unlabeled, n, seed) -> WriteResult:
        return WriteResult(list(self.programs), note=f"{len(self.programs)} given programs")


class FunctionWriter:
    """A writer from a function ``f(task, labeled_texts, labels, unlabeled, seed) -> list[Program]``;
    cost is summed from the programs' ``provenance["cost_usd"]`` (missing counts as 0)."""

    def __init__(self, function: Callable[..., Sequence[Program]]):
        self.function = function
        self.name = getattr(function, "__name__", "callable")

    def write(self, task, labeled, unlabeled, n, seed) -> WriteResult:
        texts = labeled.texts if labeled is not None else []
        labels = labeled.labels if labeled is not None else []
        programs = list(self.function(task, texts, labels, unlabeled, seed))
        return WriteResult(programs, cost_usd=float(sum(p.provenance.get("cost_usd") or 0.0 for p in programs)),
                           note=f"{self.name}: {len(programs)} programs")


def as_writer(source) -> ProgramWriter:
    """A writer from a writer, a list of programs, or a function (see :class:`FunctionWriter`)."""
    if hasattr(source, "write"):
        return source
    if callable(source):
        return FunctionWriter(source)
    return FixedPrograms(source)
