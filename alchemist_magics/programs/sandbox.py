"""Run programs over a dataset in forked, resource-limited child processes.

One fresh child per program run, at most ``workers`` at a time. The children are forked by the
supervisor process (``supervisor.py``), which received the rows once and keeps them: the rows are
inherited rather than pickled per program, and whatever a program monkeypatches dies with its child. The child writes one int8 outcome code per row into an anonymous
shared mmap allocated before the fork (partial progress survives a crash; the supervisor reads progress
from it), then leaves with ``os._exit``. The supervisor enforces a wall-clock limit with SIGKILL and
reads a death by signal or an early exit as a crash. Containment inside the child: fds closed and
stdio on /dev/null, RLIMIT_AS/FSIZE/CORE, and an audit hook (which cannot be removed) refusing file
writes, process creation, signals, sockets and ctypes.

mmap layout: ``[0]`` state, ``[1]`` MemoryError seen, ``[8:264]`` first fault, ``[264:520]`` first
invalid output (utf-8, NUL padded), ``[520:520+n]`` row codes, initialised to ``NOT_RUN``.
"""
from __future__ import annotations

import faulthandler
import gc
import mmap
import os
import resource
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .cache import OutputCache, fingerprint_inputs
from .check import check_program, find_entry
from .labels import ABSTAIN, FAULT, INVALID, NOT_RUN, LabelSpace, to_label_matrix
from .program import Program

_RUNNING, _DONE, _LOAD_FAILED = 0, 1, 2
_FAULT_MSG, _INVALID_MSG, _MSG_LEN, _CODES = 8, 264, 256, 520
_NOT_RUN_BYTE = bytes([NOT_RUN & 0xFF])
_PROGRESS_EVERY_S = 0.1

# Audit events refused in the child (CPython's names). "open" is handled separately: reads are fine
# (lazy imports need them), anything that could write or create is refused.
_BLOCKED_EVENTS = frozenset(
    {"os.remove", "os.rmdir", "os.rename", "os.mkdir", "os.chmod", "os.chown", "os.link", "os.symlink",
     "os.truncate", "os.utime", "os.chdir", "os.chflags", "os.lchflags", "os.setxattr", "os.removexattr",
     "os.mkfifo", "os.mknod", "shutil.rmtree", "shutil.copyfile", "shutil.copymode", "shutil.copystat",
     "shutil.move", "shutil.chown", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
     "os.forkpty", "os.startfile", "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg",
     "signal.pthread_kill", "socket.__new__", "socket.connect", "socket.bind", "socket.sendto",
     "socket.sendmsg", "socket.getaddrinfo", "socket.gethostbyname", "ctypes.dlopen", "ctypes.dlsym",
     "ctypes.call_function", "ctypes.cdata", "ctypes.cdata/buffer", "ctypes.string_at",
     "ctypes.wstring_at", "resource.setrlimit", "resource.prlimit", "sqlite3.connect", "gc.get_objects",
     "gc.get_referrers", "gc.get_referents", "sys.settrace", "sys.setprofile", "sys.addaudithook"}
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _audit_hook(event, args, _blocked=_BLOCKED_EVENTS, _write=_WRITE_FLAGS, _deny=PermissionError):
    # Defaults, not globals, so a program cannot neuter the hook by rebinding module names; changing
    # the defaults themselves raises "object.__setattr__", refused below.
    if event in _blocked:
        raise _deny(f"sandbox: {event} is not allowed")
    if event == "open":
        mode, flags = args[1], args[2]
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags or 0) & _write:
            raise _deny(f"sandbox: opening {args[0]!r} for writing is not allowed")
    elif event == "mmap.__new__" and args[0] != -1:
        raise _deny("sandbox: mapping files is not allowed")
    elif event == "object.__setattr__" and args[0] is _audit_hook:
        raise _deny("sandbox: the audit hook cannot be changed")


@dataclass
class ProgramRun:
    """How one program fared: ``status`` plus a one-line ``message``, outcome counts and raw codes.

    Statuses: ``ok`` (ran every row), ``faulted`` (raised on every row), ``rejected`` (static check),
    ``load_error`` (its module code raised), ``timeout``, ``memory_limit``, ``crashed`` (died or
    left the process). Only ``ok`` programs contribute labels; the others' columns are all -1.
    ``codes`` keeps the raw per-row outcomes (see ``labels.py``) for inspection.
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
    """``L``: int8 label matrix (n_rows x n_programs, -1..k-1); ``runs``: one :class:`ProgramRun` per program."""

    L: np.ndarray
    runs: list[ProgramRun]

    def summary(self) -> list[dict]:
        """One plain dict per program (name, status, message, counts, runtime, cached)."""
        return [
            {"name": r.program.name, "id": r.program.id, "status": r.status, "message": r.message,
             "faults": r.faults, "invalid": r.invalid, "abstains": r.abstains,
             "runtime_s": round(r.runtime_s, 3), "cached": r.cached}
            for r in self.runs
        ]


def _default_workers() -> int:
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
) -> ApplyResult:
    """Run every program on every input in the sandbox and build the label matrix.

    Args:
        programs: :class:`Program` objects (plain source strings are wrapped).
        inputs: one entry per row, exactly what the program function receives (a str, or a read-only
            row object for several input columns).
        label_space: normalises outputs (see :class:`LabelSpace`).
        cache: an :class:`OutputCache`; hits skip the run, ``ok`` runs are stored.
        dataset_fingerprint: identifies ``inputs`` for the cache; computed from them when omitted.
        workers: concurrent child processes (default: usable CPUs).
        time_limit_s: wall-clock limit per program run (all rows); past it the child is killed.
        memory_limit_mb: address space a child may add on top of its size at fork (None: no limit).
        check: run :func:`check_program` first (``False`` only to test the sandbox on its own).
        allowed_imports: import allow-list for the check.
        progress: show a progress bar for runs longer than a second.
    """
    if not hasattr(os, "fork"):
        raise RuntimeError("the program sandbox needs os.fork (Linux or macOS); this platform has none")
    programs = [p if isinstance(p, Program) else Program(p) for p in programs]
    inputs = inputs if isinstance(inputs, (list, tuple)) else list(inputs)
    n, m = len(inputs), len(programs)
    runs: list[ProgramRun | None] = [None] * m
    todo = []
    fingerprint = dataset_fingerprint or fingerprint_inputs(inputs)
    for j, program in enumerate(programs):
        if check:
            result = check_program(program.source, allowed_imports)
            entry, why = result.entry, "; ".join(result.reasons)
        else:
            entry, why = find_entry(program.source)
        if why:
            runs[j] = ProgramRun(program, "rejected", why)
            continue
        if cache is not None:
            codes = cache.get(program, fingerprint, label_space, n)
            if codes is not None:
                runs[j] = ProgramRun(program, "ok", ok_message(codes), codes, cached=True)
                continue
        todo.append((j, entry))
    if todo:
        for j, run in _run_in_supervisor(programs, todo, inputs, fingerprint, label_space, time_limit_s,
                                         memory_limit_mb, workers or _default_workers(), progress):
            runs[j] = run
            if cache is not None and run.status == "ok":
                cache.put(run.program, fingerprint, label_space, run.codes)
    L = np.full((n, m), ABSTAIN, dtype=np.int8)
    for j, run in enumerate(runs):
        if run.status == "ok":
            L[:, j] = to_label_matrix(run.codes)
    return ApplyResult(L, runs)


def _run_in_supervisor(programs, todo, inputs, fingerprint, label_space, time_limit_s, memory_limit_mb, workers, progress):
    """Hand the jobs to the supervisor process; yield ``(program index, ProgramRun)`` as they finish."""
    from tqdm.auto import tqdm

    from .supervisor import shared_supervisor

    jobs = [(programs[j], entry) for j, entry in todo]
    n = len(inputs)
    bar = tqdm(total=n * len(jobs), unit="row", delay=1.0, disable=not progress, desc="applying programs", mininterval=0.2)

    def show(done):
        bar.n = done
        bar.refresh()

    try:
        for i, status, message, codes, runtime_s in shared_supervisor().run(
                fingerprint, inputs, jobs, label_space, time_limit_s, memory_limit_mb, workers, show if progress else None):
            j = todo[i][0]
            yield j, ProgramRun(programs[j], status, message, np.frombuffer(codes, np.int8).copy(), runtime_s)
        show(bar.total)
    finally:
        bar.close()


def ok_message(codes: np.ndarray, first_fault: str = "", first_invalid: str = "") -> str:
    n = len(codes)
    labeled = int(np.count_nonzero(codes >= 0))
    parts = [f"labeled {labeled}/{n} rows"]
    for code, what, first in ((FAULT, "faults", first_fault), (INVALID, "invalid outputs", first_invalid)):
        count = int(np.count_nonzero(codes == code))
        if count:
            parts.append(f"{count} {what}" + (f" (first: {first})" if first else ""))
    return ", ".join(parts)


class Sandbox:
    """Forks one child per program and supervises them (see the module docstring).

    It runs inside the supervisor process (``supervisor.py``), which holds the rows.
    """

    def __init__(self, inputs, label_space: LabelSpace, time_limit_s: float, memory_limit_mb: int | None):
        self.inputs = inputs
        self.label_space = label_space
        self.time_limit_s = time_limit_s
        self.memory_limit_mb = memory_limit_mb
        self.n = len(inputs)

    def run(self, jobs: list[tuple[Program, str]], workers: int, on_progress=None):
        """Yield ``(job index, ProgramRun)`` as children finish; ``on_progress(rows done)`` every 0.1 s."""
        pending = list(range(len(jobs)))[::-1]
        running: dict[int, tuple] = {}  # pid -> (job index, mmap, start time, pidfd or None)
        finished_rows, last_progress = 0, 0.0
        try:
            while pending or running:
                while pending and len(running) < max(1, workers):
                    j = pending.pop()
                    mm = mmap.mmap(-1, _CODES + max(self.n, 1))
                    mm[_CODES:_CODES + self.n] = _NOT_RUN_BYTE * self.n
                    siblings = [entry[1] for entry in running.values()]
                    pid = os.fork()
                    if pid == 0:  # child: never returns
                        _child(mm, siblings, *jobs[j], self.inputs, self.label_space, self.memory_limit_mb)
                    running[pid] = (j, mm, time.perf_counter(), _pidfd(pid))
                now = time.perf_counter()
                for pid, (j, mm, start, fd) in list(running.items()):
                    timed_out = now - start > self.time_limit_s
                    if timed_out:
                        os.kill(pid, signal.SIGKILL)
                        _, status = os.waitpid(pid, 0)
                    else:
                        done_pid, status = os.waitpid(pid, os.WNOHANG)
                        if not done_pid:
                            continue
                    if fd is not None:
                        os.close(fd)
                    del running[pid]
                    run = self._collect(jobs[j][0], mm, status, timed_out, time.perf_counter() - start)
                    finished_rows += self.n
                    yield j, run
                if on_progress is not None and now - last_progress > _PROGRESS_EVERY_S:
                    on_progress(finished_rows + sum(_rows_done(entry[1], self.n) for entry in running.values()))
                    last_progress = now
                if running and len(running) >= max(1, workers) or not pending:
                    deadline = min((entry[2] + self.time_limit_s for entry in running.values()), default=now)
                    _wait_for_exit([entry[3] for entry in running.values()],
                                   max(0.0, min(_PROGRESS_EVERY_S, deadline - time.perf_counter())))
        finally:
            for pid, (_, mm, _, fd) in running.items():  # interrupted (e.g. KeyboardInterrupt): leave no child behind
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                mm.close()
                if fd is not None:
                    os.close(fd)

    def _collect(self, program: Program, mm: mmap.mmap, status: int, timed_out: bool, runtime_s: float) -> ProgramRun:
        codes = np.frombuffer(mm, np.int8, self.n, _CODES).copy()
        state, memory_error = mm[0], mm[1]
        first_fault, first_invalid = _read_msg(mm, _FAULT_MSG), _read_msg(mm, _INVALID_MSG)
        mm.close()
        done = _first_not_run(codes)
        if timed_out:
            return ProgramRun(program, "timeout", f"exceeded the {self.time_limit_s:g} s time limit after {done}/{self.n} rows", codes, runtime_s)
        if os.WIFSIGNALED(status):
            sig = signal.Signals(os.WTERMSIG(status)).name
            hint = " (likely out of memory)" if sig == "SIGKILL" else ""
            return ProgramRun(program, "crashed", f"process killed by {sig}{hint} on row {done}", codes, runtime_s)
        if state == _LOAD_FAILED:
            status_name = "memory_limit" if memory_error else "load_error"
            return ProgramRun(program, status_name, f"program failed to load: {first_fault}", codes, runtime_s)
        if state != _DONE:
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
            return ProgramRun(program, "crashed", f"program ended its process (exit code {code}) on row {done}", codes, runtime_s)
        if memory_error:
            return ProgramRun(program, "memory_limit", f"exceeded the {self.memory_limit_mb} MB memory limit (first: {first_fault})", codes, runtime_s)
        if self.n and np.all(codes == FAULT):
            return ProgramRun(program, "faulted", f"raised on every row (first: {first_fault})", codes, runtime_s)
        return ProgramRun(program, "ok", ok_message(codes, first_fault, first_invalid), codes, runtime_s)


def _first_not_run(codes: np.ndarray) -> int:
    missing = np.flatnonzero(codes == NOT_RUN)
    return int(missing[0]) if len(missing) else len(codes)


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux >= 5.3); None elsewhere."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _wait_for_exit(pidfds: list, timeout: float) -> None:
    """Sleep until a child exits or ``timeout`` passes; polls in short naps where there are no pidfds."""
    if pidfds and None not in pidfds:
        select.select(pidfds, [], [], timeout)
    else:
        time.sleep(min(timeout, 0.005))


def _rows_done(mm: mmap.mmap, n: int) -> int:
    i = mm.find(_NOT_RUN_BYTE, _CODES, _CODES + n)
    return n if i < 0 else i - _CODES


def _read_msg(mm: mmap.mmap, offset: int) -> str:
    return mm[offset:offset + _MSG_LEN].rstrip(b"\0").decode("utf-8", "replace")


def _write_msg(mm: mmap.mmap, offset: int, text: str) -> None:
    data = text.encode("utf-8", "replace")[: _MSG_LEN - 1]
    mm[offset:offset + len(data)] = data


def _describe(value) -> str:
    """repr of a user value for messages; user __repr__ may raise or be huge."""
    try:
        if isinstance(value, BaseException):
            text = f"{type(value).__name__}: {value}".rstrip(": ")
        else:
            text = f"{value!r} ({type(value).__name__})"
    except BaseException:
        text = f"<unprintable {type(value).__name__}>"
    return text if len(text) <= 200 else text[:197] + "..."


def _child(mm, siblings, program: Program, entry: str, inputs, label_space: LabelSpace, memory_limit_mb):
    """Body of the forked child: isolate, load the program, label every row, ``os._exit``."""
    try:
        faulthandler.disable()
        gc.freeze()  # inherited objects: do not let the child's GC touch (and copy) their pages
        for other in siblings:  # other programs' result maps must not be writable from here
            other.close()
        _isolate_io()
        _limit_resources(memory_limit_mb)
        sys.addaudithook(_audit_hook)
        namespace = {"__name__": f"program_{program.id}"}
        try:
            exec(compile(program.source, f"<program {program.name}>", "exec"), namespace)
            fn = namespace[entry]
        except BaseException as exc:
            mm[1] = isinstance(exc, MemoryError)
            _write_msg(mm, _FAULT_MSG, _describe(exc))
            mm[0] = _LOAD_FAILED
            os._exit(0)
        _label_rows(fn, inputs, label_space, memoryview(mm)[_CODES:].cast("b"), mm)
        mm[0] = _DONE
    finally:
        os._exit(0)


_CHUNK = 2048  # most rows per chunk in the fast path


def _label_rows(fn, inputs, label_space, out, mm):
    """The hot loop. Everything it needs is bound to locals first: the program may monkeypatch builtins.

    Rows go through the program a chunk at a time in a bare loop (no try/except per row; chunks
    grow from 1 to ``_CHUNK`` rows so early progress is visible), and a chunk of in-range ints is stored with one numpy write. The first row that raises is a FAULT and
    switches the program to row-by-row mode for the rest, where each row's exception is its own
    FAULT. Every row is run exactly once either way.
    """
    k, normalize, invalid, fault = label_space.k, label_space.normalize, INVALID, FAULT
    _type, _int, _set, _map, _MemoryError, _BaseException, describe = type, int, set, map, MemoryError, BaseException, _describe
    ints = {int}
    first_fault = first_invalid = None

    def store(i, v):  # the slow path: anything but an in-range int
        nonlocal first_invalid
        try:
            code = normalize(v)
        except _BaseException:
            code = invalid
        out[i] = code
        if code == invalid and first_invalid is None:
            first_invalid = f"row {i}: {describe(v)}"

    n, start, size = len(inputs), 0, 1
    while start < n:
        # chunks double up to _CHUNK: results (and progress) of the first rows land at once
        end, size = min(start + size, n), min(size * 2, _CHUNK)
        values, raised = [], None
        append = values.append
        try:
            for x in inputs[start:end]:
                append(fn(x))
        except _BaseException as exc:  # the row after the last stored value raised
            raised, end = exc, start + len(values)
        if raised is None and _set(_map(_type, values)) == ints:
            chunk = np.array(values, dtype=np.int64) if max(values) < 2**62 and min(values) > -2**62 else None
            if chunk is not None and chunk.min() >= -1 and chunk.max() < k:
                out[start:end] = chunk.astype(np.int8)
                start = end
                continue
        for i, v in enumerate(values, start):
            if _type(v) is _int and -1 <= v < k:
                out[i] = v
            else:
                store(i, v)
        start = end
        if raised is not None:
            mm[1] = mm[1] or isinstance(raised, _MemoryError)
            out[end] = fault
            first_fault = f"row {end}: {describe(raised)}"
            start = end + 1
            break
    for i in range(start, n):
        try:
            v = fn(inputs[i])
        except _MemoryError as exc:
            mm[1] = 1
            out[i] = fault
            first_fault = first_fault or f"row {i}: {describe(exc)}"
            continue
        except _BaseException as exc:  # SystemExit and KeyboardInterrupt too: one row's fault, not the run's
            out[i] = fault
            first_fault = first_fault or f"row {i}: {describe(exc)}"
            continue
        if _type(v) is _int and -1 <= v < k:
            out[i] = v
        else:
            store(i, v)
    for offset, text in ((_FAULT_MSG, first_fault), (_INVALID_MSG, first_invalid)):
        if text:
            _write_msg(mm, offset, text)


def _isolate_io() -> None:
    """Close every inherited fd (sockets, log files, the kernel's channels) and put stdio on /dev/null."""
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        fds = range(3, 4096)
    for fd in fds:
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sys.stdin = None
    sys.stdout = sys.stderr = open(null, "w", closefd=False)


def _limit_resources(memory_limit_mb: int | None) -> None:
    for limit in (resource.RLIMIT_FSIZE, resource.RLIMIT_CORE):
        resource.setrlimit(limit, (0, 0))
    if memory_limit_mb is not None:
        try:
            with open("/proc/self/statm") as f:
                size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:  # no /proc (macOS): RLIMIT_AS is not enforced there anyway
            return
        cap = size + memory_limit_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
