"""Kernel-side program application: static check, output cache, dispatch to the sandbox's supervisor.

The kernel never runs a program itself. What comes back from the supervisor has been validated
frame by frame (``frames.py``); a supervisor that dies or breaks the protocol costs the programs
that were running at that moment a ``crashed`` status, and the others run on a fresh supervisor.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .cache import FAILED_STATUSES, OutputCache, fingerprint_inputs, fingerprint_texts
from .check import check_program, find_entry
from .isolation import isolation_report, warn_once
from .labels import ABSTAIN, NOT_RUN, LabelSpace, to_label_matrix
from .program import Program
from .results import ApplyResult, ProgramRun
from .supervisor import SupervisorDied, shared_supervisor

MAX_SUPERVISOR_DEATHS = 3  # deaths in a row with no program running before apply() gives up


@dataclass(frozen=True)
class ProgramProgress:
    """Where one program of an :func:`apply_programs` call is (what ``on_progress`` receives).

    ``state``: ``queued`` (it will run), ``running`` (``rows_done`` of ``rows`` so far) or ``done``
    (``status`` as in the result; ``rows_done``: the rows it ran on; ``cached``: it did not run,
    its output or its failed outcome came from the cache).
    """

    index: int  # the program's position in ``programs`` (its column)
    name: str
    state: str
    rows_done: int
    rows: int
    status: str | None = None
    cached: bool = False


_REPORT_TO: contextvars.ContextVar = contextvars.ContextVar("alchemist_apply_progress", default=None)


@contextlib.contextmanager
def reporting_progress(on_progress: Callable[[ProgramProgress], None] | None):
    """Within the block, every :func:`apply_programs` call of this thread (or task) that is given no
    ``on_progress`` of its own reports to this one: e.g. the smoke tests ``Workbench.add`` runs, which
    take no callback."""
    token = _REPORT_TO.set(on_progress)
    try:
        yield
    finally:
        _REPORT_TO.reset(token)


def default_workers() -> int:
    """Concurrent program children by default: the CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def apply_programs(
    programs: Sequence[Program | str],
    inputs: Sequence,
    label_space: LabelSpace,
    *,
    cache: OutputCache | None = None,
    dataset_fingerprint: str | None = None,
    workers: int | None = None,
    time_limit_s: float = 60.0,
    memory_limit_mb: int | None = 2048,
    check: bool = True,
    allowed_imports: set[str] | None = None,
    progress: bool = True,
    on_progress: Callable[[ProgramProgress], None] | None = None,
) -> ApplyResult:
    """Run every program on every input in the sandbox and build the label matrix.

    Args:
        programs: :class:`Program` objects (plain source strings are wrapped).
        inputs: one entry per row, exactly what the program function receives (a str, or a read-only
            row object for several input columns).
        label_space: normalises outputs (see :class:`LabelSpace`).
        cache: an :class:`OutputCache`; hits skip the run, ``ok`` runs are stored, and so are the
            outcomes of failed runs (timeout, crash, ...) under the same time and memory limits.
        dataset_fingerprint: identifies ``inputs`` for the cache; computed from them when omitted.
        workers: concurrent child processes (default: usable CPUs).
        time_limit_s: wall-clock limit per program run (all rows); past it the child is killed.
        memory_limit_mb: address space a child may add on top of its size at fork (None: no limit).
        check: run :func:`check_program` first (``False`` only to test the sandbox on its own).
        allowed_imports: import allow-list for the check.
        progress: show a progress bar for runs longer than a second.
        on_progress: called with a :class:`ProgramProgress` for every program: ``done`` at once for
            the ones the cache or the check settles, else ``queued``, then ``running`` (when it
            starts and as its rows get done, at most ten times a second), then ``done``. Called in
            this thread; an exception it raises is ignored (a display never breaks an apply).
            Default: the one of an enclosing :func:`reporting_progress` block, if any.

    The result's ``isolation`` says which layers contained the programs (see docs/security.md).
    """
    if not hasattr(os, "fork"):
        raise RuntimeError("the program sandbox needs os.fork (Linux or macOS); this platform has none")
    programs = [p if isinstance(p, Program) else Program(p) for p in programs]
    inputs = inputs if isinstance(inputs, (list, tuple)) else list(inputs)
    n, m = len(inputs), len(programs)
    runs: list[ProgramRun | None] = [None] * m
    todo = []
    fingerprint = dataset_fingerprint or _fingerprint(inputs)
    for j, program in enumerate(programs):
        if check:
            entry, why = _checked(program.source, None if allowed_imports is None else frozenset(allowed_imports))
        else:
            entry, why = find_entry(program.source)
        if why:
            runs[j] = ProgramRun(program, "rejected", why)
            continue
        if cache is not None:
            hit = cache.get(program, fingerprint, label_space, n)
            if hit is not None:  # reported as its first run was: the same message, faults and runtime
                runs[j] = ProgramRun(program, "ok", hit.message, hit.codes, hit.runtime_s, cached=True)
                continue
            failed = cache.get_outcome(program, fingerprint, label_space, time_limit_s, memory_limit_mb)
            if failed is not None:  # the same source, data and limits failed before: not run again
                status, message, runtime_s = failed
                runs[j] = ProgramRun(program, status, message, np.full(n, NOT_RUN, np.int8), runtime_s, cached=True)
                continue
        todo.append((j, entry))
    tell = _teller(on_progress if on_progress is not None else _REPORT_TO.get(), programs, n)
    if tell is not None:
        for j, run in enumerate(runs):
            if run is not None:
                tell(j, "done", run)
        for j, _ in todo:
            tell(j, "queued")
    report = None
    if todo:
        failed_writes: list[OSError] = []

        def store(run: ProgramRun) -> None:
            """Cache a run as its result arrives: the fsync'd write overlaps the children still running.
            (A run lost to a supervisor death never comes here: that is not its own outcome.)"""
            try:
                if run.status == "ok":
                    cache.put(run.program, fingerprint, label_space, run.codes, run.message, run.runtime_s)
                elif run.status in FAILED_STATUSES:
                    cache.put_outcome(run.program, fingerprint, label_space, time_limit_s, memory_limit_mb,
                                      run.status, run.message, run.runtime_s)
            except OSError as exc:  # raised once the run is over, not into the supervisor's stream
                failed_writes.append(exc)

        report = _run_in_supervisor(programs, todo, runs, inputs, fingerprint, label_space, time_limit_s,
                                    memory_limit_mb, workers or default_workers(), progress, tell,
                                    store if cache is not None else None)
        if failed_writes:
            raise failed_writes[0]
    report = report or shared_supervisor().report or _local_report()
    warn_once(report)
    L = np.full((n, m), ABSTAIN, dtype=np.int8)
    for j, run in enumerate(runs):
        if run.status == "ok":
            L[:, j] = to_label_matrix(run.codes)
    return ApplyResult(L, runs, isolation=report["isolation"], layers=dict(report))


_PASSED: dict[tuple, str] = {}  # (source, allowed imports) -> entry, for sources that passed the check
_KEEP_PASSED = 256


def _checked(source: str, allowed_imports: frozenset[str] | None) -> tuple[str | None, str]:
    """``(entry, reasons)`` of :func:`check_program`. A pass is kept (the same source and allow-list
    pass again), so a program is not re-checked before every run (the 10 programs of
    ``bench/apply.py`` take 4-7 ms); a rejection is not, since one for nesting depends on the stack."""
    key = (source, allowed_imports)
    entry = _PASSED.get(key)
    if entry is not None:
        return entry, ""
    result = check_program(source, allowed_imports)
    if result.ok:
        if len(_PASSED) >= _KEEP_PASSED:  # bounded: start over rather than track the oldest
            _PASSED.clear()
        _PASSED[key] = result.entry
    return result.entry, "; ".join(result.reasons)


# fingerprint -> a copy of those text rows, kept while the supervisor holds them (it holds a few sets)
_TEXT_ROWS: dict[str, list] = {}


def _fingerprint(inputs: list | tuple) -> str:
    """:func:`fingerprint_inputs`, hashed once per row set: text rows equal (``==``, i.e. the same
    strings) to a set the supervisor holds get that set's fingerprint (a ~0.3 ms comparison at 100k
    rows, where hashing them takes ~40 ms before every run)."""
    held = shared_supervisor().loaded
    rows = inputs if isinstance(inputs, list) else list(inputs)
    for key, known in list(_TEXT_ROWS.items()):
        if key not in held:
            _TEXT_ROWS.pop(key, None)
        elif known == rows:
            return key
    key = fingerprint_texts(rows)
    if key is None:
        return fingerprint_inputs(rows)
    _TEXT_ROWS[key] = list(rows)
    return key


def _teller(on_progress, programs, n: int):
    """``tell(j, state, run=None, rows=0)``: one :class:`ProgramProgress` to ``on_progress``; None without one
    (then nobody asks the supervisor how far each job is: those frames, ten a second per running job,
    would wake the kernel and the supervisor while the children need the cores)."""
    if on_progress is None:
        return None

    def tell(j: int, state: str, run: ProgramRun | None = None, rows: int = 0) -> None:
        if run is not None:
            rows = int((run.codes != NOT_RUN).sum()) if run.codes is not None else 0
        event = ProgramProgress(j, programs[j].name, state, min(int(rows), n), n,
                                run.status if run is not None else None, bool(run is not None and run.cached))
        try:
            on_progress(event)
        except Exception:  # noqa: BLE001 - a progress display never costs a program its run
            pass
    return tell


_report_cache: dict = {}


def _local_report() -> dict:
    """The isolation this process's supervisor would get (probed once), when nothing ran in this call."""
    if not _report_cache:
        _report_cache.update(isolation_report())
    return _report_cache


def _run_in_supervisor(programs, todo, runs, inputs, fingerprint, label_space, time_limit_s, memory_limit_mb,
                       workers, progress, tell=None, on_result=None) -> dict:
    """Hand the jobs to the supervisor; fill ``runs`` (``on_result(run)`` for each one the supervisor
    reported, not for those a supervisor death cost); the isolation report of the supervisor that ran them."""
    from tqdm.auto import tqdm

    n = len(inputs)
    bar = tqdm(total=n * len(todo), unit="row", delay=1.0, disable=not progress, desc="applying programs", mininterval=0.2)
    supervisor = shared_supervisor()
    remaining = list(todo)  # (program index, entry)
    deaths, report, finished = 0, None, 0

    def show(done):
        bar.n = finished * n + done
        bar.refresh()

    supervisor.lock.acquire()
    try:
        while remaining:
            jobs = [(programs[j], entry) for j, entry in remaining]
            try:
                report = supervisor.ensure_started()
                current = remaining
                on_job = None if tell is None else (lambda i, rows: tell(current[i][0], "running", rows=rows))
                for i, status, message, codes, runtime_s in supervisor.run(
                        fingerprint, inputs, jobs, label_space, time_limit_s, memory_limit_mb, workers,
                        show if progress else None, on_job):
                    j = remaining[i][0]
                    runs[j] = ProgramRun(programs[j], status, message, codes, runtime_s)
                    if on_result is not None:
                        on_result(runs[j])
                    if tell is not None:
                        tell(j, "done", runs[j])
                remaining = []
            except SupervisorDied as died:
                for i in died.running:  # the programs running at that moment: a counted fault each
                    j = remaining[i][0]
                    runs[j] = ProgramRun(programs[j], "crashed", f"the sandbox supervisor died while this program ran ({died})",
                                         np.full(n, NOT_RUN, np.int8))
                    if tell is not None:
                        tell(j, "done", runs[j])
                done = died.running | died.reported
                finished += len(done)
                remaining = [job for i, job in enumerate(remaining) if i not in done]
                deaths = 0 if died.running else deaths + 1
                if deaths >= MAX_SUPERVISOR_DEATHS:
                    raise
        show(0)
    finally:
        supervisor.lock.release()
        bar.close()
    return report
