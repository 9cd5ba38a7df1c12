"""The offline synthesizer as a program writer (the no-key default)."""
from __future__ import annotations

from ..programs.writer import WriteResult
from .text_rules import synthesize_programs


class OfflineWriter:
    """Writes keyword/shape rule programs from the labeled rows (see :func:`synthesize_programs`)."""

    name = "synth"

    def write(self, task, labeled, unlabeled, n, seed) -> WriteResult:
        if labeled is None or not labeled.has_labels:
            raise ValueError("the offline synthesizer learns from labeled rows: pass a labeled dev split")
        programs = synthesize_programs(task, labeled.inputs(), labeled.labels, unlabeled, n, seed=seed)
        return WriteResult(programs, note=f"offline synthesizer: {len(programs)} programs from {len(labeled)} labeled rows")
