"""Live progress: per program while programs apply (``apply_programs(on_progress=...)``, through
``Workbench.apply`` to the panel), and per request while the LLM writes them (the client's hook)."""
import re

import numpy as np
import pytest

from alchemist_magics.programs import LabelSpace, OutputCache, Program, apply_programs
from alchemist_magics.programs.apply import ProgramProgress
from alchemist_magics.programs.labels import NOT_RUN

LS = LabelSpace(["ham", "spam"])
TEXTS = [f"row {i} " + ("check out my channel" if i % 3 == 0 else "great song") for i in range(3000)]
FAST = Program("def fast(text):\n    return 1 if 'check' in text else -1\n")
SLOW = Program("def slow(text):\n    total = 0\n    for i in range(4000):\n        total += i\n"
               "    return 0 if 'song' in text else -1\n")
HANGS = Program("def hangs(text):\n    while True:\n        pass\n")
REJECTED = Program("import os\n\ndef rejected(text):\n    return os.getpid()\n")
PROGRAMS = [FAST, SLOW, HANGS, REJECTED]


def events_by_program(events: list[ProgramProgress]) -> dict[str, list[ProgramProgress]]:
    out: dict[str, list[ProgramProgress]] = {}
    for event in events:
        out.setdefault(event.name, []).append(event)
    return out


def test_apply_reports_queued_running_done_per_program_with_counts_that_add_up(tmp_path):
    cache = OutputCache(tmp_path / "cache")
    events: list[ProgramProgress] = []
    result = apply_programs(PROGRAMS, TEXTS, LS, cache=cache, workers=2, time_limit_s=3.0, progress=False,
                            on_progress=events.append)
    n = len(TEXTS)
    by = events_by_program(events)
    # the settled ones first, then the queue in program order
    assert list(by) == ["rejected", "fast", "slow", "hangs"]
    # settled without running: one event, done
    assert [(e.state, e.status, e.cached) for e in by["rejected"]] == [("done", "rejected", False)]
    for name, status in (("fast", "ok"), ("slow", "ok"), ("hangs", "timeout")):
        states = "".join(e.state[0] for e in by[name])  # q(ueued) r(unning) d(one)
        assert re.fullmatch("qr+d", states), (name, states)
        rows = [e.rows_done for e in by[name]]
        assert rows == sorted(rows) and all(0 <= r <= n for r in rows) and all(e.rows == n for e in by[name])
        assert by[name][-1].status == status and not by[name][-1].cached
    # the slow program was seen part-way through
    assert any(0 < e.rows_done < n for e in by["slow"] if e.state == "running")
    # the done events' rows are the rows each program really ran on, and agree with the result
    for j, run in enumerate(result.runs):
        last = by[run.program.name][-1]
        assert last.index == j and last.status == run.status
        ran = 0 if run.codes is None else int((run.codes != NOT_RUN).sum())
        assert last.rows_done == ran
    assert by["fast"][-1].rows_done == by["slow"][-1].rows_done == n and by["hangs"][-1].rows_done < n
    assert sum(by[p.name][-1].rows_done for p in PROGRAMS) == int((np.stack(
        [r.codes for r in result.runs if r.codes is not None]) != NOT_RUN).sum())
    # every event of a program precedes nothing of its own after "done"
    assert all(e.state != "done" for name in by for e in by[name][:-1])

    # again: everything comes from the cache (the timeout too), one "done" event each, nothing runs
    again: list[ProgramProgress] = []
    apply_programs(PROGRAMS, TEXTS, LS, cache=cache, workers=2, time_limit_s=3.0, progress=False,
                   on_progress=again.append)
    assert [(e.name, e.state, e.status, e.cached) for e in again] == [
        ("fast", "done", "ok", True), ("slow", "done", "ok", True), ("hangs", "done", "timeout", True),
        ("rejected", "done", "rejected", False)]
    assert [e.rows_done for e in again] == [n, n, 0, 0]


def test_a_progress_callback_that_raises_costs_no_program_its_run():
    def broken(event):
        raise RuntimeError("display gone")

    result = apply_programs([FAST], TEXTS[:50], LS, progress=False, on_progress=broken)
    assert result.runs[0].status == "ok" and (result.L[:, 0] >= -1).all()


def test_job_rows_frames_are_validated():
    from alchemist_magics.programs import frames

    assert frames.parse_job_rows(frames.encode_job_rows(1, 30), 2, 30) == (1, 30)
    for payload in (frames.encode_job_rows(2, 1), frames.encode_job_rows(0, 31), b"\x00" * 5,
                    frames.encode_job_rows(0, 1) + b"\x00"):
        with pytest.raises(frames.ProtocolError):
            frames.parse_job_rows(payload, 2, 30)
