"""The sandbox's supervisor: a small long-lived process that forks the program children.

Forking straight from a notebook kernel is slow once torch and friends are loaded (here ~12 ms to
fork and ~15 ms to tear down a 700 MB process, per program run, the fork serialised in the
kernel). So the kernel starts one lean interpreter (stdlib, numpy and this package only), sends it
the rows once, keyed by their content fingerprint, and that process forks one child per program
as :class:`~alchemist_magics.programs.sandbox.Sandbox` describes; each fork costs ~1 ms there. Rows
stay in the supervisor for later runs (the most recent few sets), so re-applying an edited program
sends nothing but its source. The supervisor also starts with a scrubbed environment (no API keys
for a program to find) and in its own session (a Ctrl-C in a terminal does not kill it).

Protocol: length-prefixed pickles over the supervisor's stdin/stdout. Kernel to supervisor:
``("inputs", key, rows)``, ``("drop", key)``, ``("run", key, jobs, label_space, time_limit_s,
memory_limit_mb, workers, progress)``. Supervisor to kernel, per run: any number of
``("progress", rows_done)``, one ``("result", j, status, message, codes, runtime_s)`` per job, then
``("done",)`` or ``("error", message)``.
"""
from __future__ import annotations

import atexit
import os
import pickle
import signal
import struct
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

_HEADER = struct.Struct("<Q")
KEEP_INPUT_SETS = 4  # row sets kept in the supervisor (train, dev, test and a smoke sample)
# what the supervisor's environment keeps from the kernel's: locale and thread settings only
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "OMP_NUM_THREADS", "OMP_WAIT_POLICY",
             "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class SupervisorDied(RuntimeError):
    """The supervisor process ended in the middle of a request."""


def _send(stream, message) -> None:
    data = pickle.dumps(message, protocol=5)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream):
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class Supervisor:
    """Kernel-side handle on the supervisor process (started on first use, restarted if it dies)."""

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.loaded: OrderedDict[str, None] = OrderedDict()

    def _start(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        code = f"import sys; sys.path.insert(0, {root!r}); from alchemist_magics.programs.supervisor import serve; serve({os.getpid()})"
        env = {name: os.environ[name] for name in _ENV_KEEP if name in os.environ}
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=env, cwd="/", close_fds=True, start_new_session=True)
        self.loaded.clear()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        """End the supervisor (it also ends by itself when the kernel goes away)."""
        if self.process is None:
            return
        process, self.process = self.process, None
        try:
            process.stdin.close()
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()

    def run(self, key: str, inputs, jobs, label_space, time_limit_s, memory_limit_mb, workers, on_progress=None):
        """Yield ``(job index, status, message, codes bytes, runtime_s)`` as the supervisor reports them.

        Retries once on a fresh supervisor if the process died before reporting anything.
        """
        for attempt in (0, 1):
            reported = False
            try:
                for item in self._run_once(key, inputs, jobs, label_space, time_limit_s, memory_limit_mb, workers, on_progress):
                    reported = True
                    yield item
                return
            except SupervisorDied:
                if reported or attempt:
                    raise

    def _run_once(self, key, inputs, jobs, label_space, time_limit_s, memory_limit_mb, workers, on_progress):
        if not self.alive():
            self._start()
        stdin, stdout = self.process.stdin, self.process.stdout
        try:
            if key in self.loaded:
                self.loaded.move_to_end(key)
            else:
                while len(self.loaded) >= KEEP_INPUT_SETS:
                    _send(stdin, ("drop", self.loaded.popitem(last=False)[0]))
                _send(stdin, ("inputs", key, inputs))
                self.loaded[key] = None
            _send(stdin, ("run", key, jobs, label_space, time_limit_s, memory_limit_mb, workers, on_progress is not None))
            while True:
                message = _receive(stdout)
                kind = message[0]
                if kind == "progress":
                    on_progress(message[1])
                elif kind == "result":
                    yield message[1:]
                elif kind == "done":
                    return
                else:
                    raise RuntimeError(f"sandbox supervisor: {message[1]}")
        except (EOFError, BrokenPipeError) as exc:
            code = self.process.wait()
            self.process = None
            raise SupervisorDied(f"the sandbox supervisor process ended unexpectedly (exit code {code})") from exc
        except BaseException:  # interrupted: its children must stop now, and its state is unknown
            self._kill()
            raise

    def _kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)  # it kills its children, then exits
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


_shared: Supervisor | None = None


def shared_supervisor() -> Supervisor:
    """The process-wide supervisor (one per kernel)."""
    global _shared
    if _shared is None:
        _shared = Supervisor()
        atexit.register(_shared.close)
    return _shared


def _terminate(signum, frame):
    raise KeyboardInterrupt  # unwinds Sandbox.run, whose cleanup kills the running children


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the kernel dies (e.g. a Dask worker killed mid-run), not only EOF later."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: EOF on stdin still ends the supervisor
        pass


def serve(kernel_pid: int) -> None:
    """The supervisor's main loop (runs in the child interpreter until its stdin closes)."""
    try:
        _serve(kernel_pid)
    except KeyboardInterrupt:  # SIGTERM: running children were killed on the way out
        pass


def _serve(kernel_pid: int) -> None:
    from .sandbox import Sandbox

    signal.signal(signal.SIGTERM, _terminate)
    _die_with_parent()
    if os.getppid() != kernel_pid:  # the kernel died before the signal was armed
        return
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing may write into the protocol stream by accident
    rows: dict[str, list] = {}
    while True:
        try:
            message = _receive(stdin)
        except EOFError:
            return
        kind = message[0]
        if kind == "inputs":
            rows[message[1]] = message[2]
        elif kind == "drop":
            rows.pop(message[1], None)
        elif kind == "run":
            key, jobs, label_space, time_limit_s, memory_limit_mb, workers, progress = message[1:]
            sandbox = Sandbox(rows[key], label_space, time_limit_s, memory_limit_mb)
            report = (lambda done: _send(stdout, ("progress", done))) if progress else None
            try:
                for j, run in sandbox.run(jobs, workers, report):
                    _send(stdout, ("result", j, run.status, run.message, run.codes.tobytes(), run.runtime_s))
            except Exception as exc:  # a bug of ours, not the program's: tell the kernel, keep serving
                _send(stdout, ("error", f"{type(exc).__name__}: {exc}"))
                continue
            _send(stdout, ("done",))
