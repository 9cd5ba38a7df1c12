"""The child-side executor: run programs over a dataset in forked, OS-isolated child processes.

One fresh child per program run, at most ``workers`` at a time. The children are forked by the
supervisor process (``supervisor.py``), which received the rows once and keeps them: the rows are
inherited rather than sent per program, and whatever a program monkeypatches dies with its child.
The child writes one int8 outcome code per row into an anonymous shared mmap allocated before the
fork (partial progress survives a crash; the supervisor reads progress from it), then leaves with
``os._exit``. The supervisor enforces a wall-clock limit with SIGKILL and reads a death by signal or
an early exit as a crash. Everything a child wrote is data: the state byte, the messages and every
code are validated before they become a :class:`ProgramRun`.

Containment inside the child, in this order, all before the program's source is compiled: sibling
result maps unmapped; every inherited fd closed and stdio on /dev/null; RLIMIT_AS/FSIZE/CORE;
no-new-privileges, all capabilities dropped, Landlock and seccomp-bpf (``isolation.py``); then an
audit hook (early, readable feedback, not a boundary).

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

import numpy as np

from .frames import clean_message
from .isolation import Confinement, IsolationError, kill_strays
from .labels import FAULT, INVALID, NOT_RUN, LabelSpace
from .program import Program
from .results import ProgramRun, ok_message

_RUNNING, _DONE, _LOAD_FAILED, _ISOLATION_FAILED = 0, 1, 2, 3
_FAULT_MSG, _INVALID_MSG, _MSG_LEN, _CODES = 8, 264, 256, 520
_NOT_RUN_BYTE = bytes([NOT_RUN & 0xFF])
_PROGRESS_EVERY_S = 0.1
_COST_PER_ROW: dict[str, float] = {}  # program id -> seconds per row in its last ok run (this supervisor)

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


class Sandbox:
    """Forks one child per program and supervises them (see the module docstring).

    It runs inside the supervisor process (``supervisor.py``), which holds the rows.
    """

    def __init__(self, inputs, label_space: LabelSpace, time_limit_s: float, memory_limit_mb: int | None,
                 confinement: Confinement | None = None):
        self.inputs = inputs
        self.label_space = label_space
        self.time_limit_s = time_limit_s
        self.memory_limit_mb = memory_limit_mb
        self.confinement = confinement or Confinement()
        self.n = len(inputs)

    def run(self, jobs: list[tuple[Program, str]], workers: int, on_progress=None, on_start=None, on_rows=None):
        """Yield ``(job index, ProgramRun)`` as children finish.

        ``on_progress(rows done)`` is called every 0.1 s and ``on_start(job index)`` when a child is
        forked; ``on_rows([(job index, rows done), ...])``, every 0.1 s too, says how far each
        running child is. When the run ends, any process a program left behind is killed.
        """
        # longest first (by what each program cost per row last time; new programs first), so that
        # no worker is left alone with a slow program at the end
        cost = [_COST_PER_ROW.get(program.id, float("inf")) for program, _ in jobs]
        pending = sorted(range(len(jobs)), key=lambda j: (cost[j], -j))  # popped from the end
        running: dict[int, tuple] = {}  # pid -> (job index, mmap, start time, pidfd or None)
        finished_rows, last_progress = 0, 0.0
        try:
            while pending or running:
                now = time.perf_counter()
                finished = []  # (job index, mmap, wait status, timed out, runtime)
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
                    finished.append((j, mm, status, timed_out, time.perf_counter() - start))
                # the next children start before the results are read: on a machine with as many cores as
                # workers, a core must not wait while this process validates and sends a result
                while pending and len(running) < max(1, workers):
                    j = pending.pop()
                    mm = mmap.mmap(-1, _CODES + max(self.n, 1))
                    mm[_CODES:_CODES + self.n] = _NOT_RUN_BYTE * self.n
                    siblings = [entry[1] for entry in running.values()] + [entry[1] for entry in finished]
                    pid = os.fork()
                    if pid == 0:  # child: never returns
                        _child(mm, siblings, *jobs[j], self.inputs, self.label_space, self.memory_limit_mb, self.confinement)
                    running[pid] = (j, mm, time.perf_counter(), _pidfd(pid))
                    if on_start is not None:
                        on_start(j)
                for j, mm, status, timed_out, runtime_s in finished:
                    run = self._collect(jobs[j][0], mm, status, timed_out, runtime_s)
                    if run.status == "ok" and self.n:
                        _COST_PER_ROW[run.program.id] = run.runtime_s / self.n
                        if len(_COST_PER_ROW) > 10_000:
                            _COST_PER_ROW.pop(next(iter(_COST_PER_ROW)))
                    finished_rows += self.n
                    yield j, run
                if (on_progress is not None or on_rows is not None) and now - last_progress > _PROGRESS_EVERY_S:
                    done_by = [(entry[0], _rows_done(entry[1], self.n)) for entry in running.values()]
                    if on_rows is not None:
                        on_rows(done_by)
                    if on_progress is not None:
                        on_progress(finished_rows + sum(rows for _, rows in done_by))
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
            kill_strays()

    def _collect(self, program: Program, mm: mmap.mmap, status: int, timed_out: bool, runtime_s: float) -> ProgramRun:
        """The child's result map, read as untrusted data: state, flags, messages and codes are checked."""
        codes = np.frombuffer(mm, np.int8, self.n, _CODES).copy()
        state, memory_error = mm[0], mm[1]
        first_fault, first_invalid = _read_msg(mm, _FAULT_MSG), _read_msg(mm, _INVALID_MSG)
        mm.close()
        done = _first_not_run(codes)
        bad = np.flatnonzero((codes < NOT_RUN) | (codes >= self.label_space.k)) if self.n else []
        if len(bad) or state > _ISOLATION_FAILED or memory_error > 1:
            where = f" (code {int(codes[bad[0]])} on row {int(bad[0])})" if len(bad) else ""
            return ProgramRun(program, "crashed", f"the program corrupted its result map{where}; its output is discarded",
                              np.full(self.n, NOT_RUN, np.int8), runtime_s)
        if state == _ISOLATION_FAILED:
            return ProgramRun(program, "crashed", f"not run: {first_fault}", codes, runtime_s)
        if state == _DONE and done < self.n and not timed_out:
            return ProgramRun(program, "crashed", f"the program claimed to finish but row {done} never ran", codes, runtime_s)
        if timed_out:
            return ProgramRun(program, "timeout", f"exceeded the {self.time_limit_s:g} s time limit after {done}/{self.n} rows", codes, runtime_s)
        if os.WIFSIGNALED(status):
            try:
                sig = signal.Signals(os.WTERMSIG(status)).name
            except ValueError:  # a real-time signal has no name
                sig = f"signal {os.WTERMSIG(status)}"
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
    """A message the child wrote: at most 256 bytes, undecodable bytes replaced, control characters removed."""
    raw = mm[offset:offset + _MSG_LEN]
    end = raw.find(b"\0")
    return clean_message(raw[: end if end >= 0 else _MSG_LEN].decode("utf-8", "replace"))


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


def _child(mm, siblings, program: Program, entry: str, inputs, label_space: LabelSpace, memory_limit_mb,
           confinement: Confinement):
    """Body of the forked child: isolate, load the program, label every row, ``os._exit``."""
    try:
        faulthandler.disable()
        gc.freeze()  # inherited objects: do not let the child's GC touch (and copy) their pages
        for other in siblings:  # other programs' result maps must not be writable from here
            other.close()
        sys.dont_write_bytecode = True
        _limit_resources(memory_limit_mb)
        _first_to_go()
        _isolate_io(confinement.keep_fds)
        try:
            confinement.apply()  # from here on the OS refuses what the program must not do
        except IsolationError as exc:
            _write_msg(mm, _FAULT_MSG, str(exc))
            mm[0] = _ISOLATION_FAILED
            os._exit(0)
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
    _array, _int8, _OverflowError = np.array, np.int8, OverflowError
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
            try:  # one C pass; numpy refuses a Python int outside int8 (-> the slow path)
                chunk = _array(values, dtype=_int8)
            except _OverflowError:
                chunk = None
            if chunk is not None and chunk.min() >= -1 and chunk.max() < k:
                out[start:end] = chunk
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


def _isolate_io(keep: tuple[int, ...] = ()) -> None:
    """Close every inherited fd (pipes, pidfds, log files, the kernel's channels) but ``keep``; stdio on /dev/null."""
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        fds = range(3, 4096)
    for fd in fds:
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sys.stdin = None
    sys.stdout = sys.stderr = open(null, "w", closefd=False)


def _first_to_go() -> None:
    """Under memory pressure the OS kills a program child before the supervisor, the kernel or anything else."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


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
