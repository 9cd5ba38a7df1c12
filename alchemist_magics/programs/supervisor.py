"""The sandbox's supervisor: a small long-lived process that forks the program children.

Forking straight from a notebook kernel is slow once torch and friends are loaded (here ~12 ms to
fork and ~15 ms to tear down a 700 MB process, per program run, the fork serialised in the
kernel). So the kernel starts one lean interpreter (stdlib, numpy and this package only), sends it
the rows once, keyed by their content fingerprint, and that process forks one child per program
as :class:`~alchemist_magics.programs.sandbox.Sandbox` describes; each fork costs ~1 ms there. Rows
stay in the supervisor for later runs (the most recent few sets), so re-applying an edited program
sends nothing but its source. The supervisor starts with a scrubbed environment (no API keys for a
program to find), in its own session (a Ctrl-C in a terminal does not kill it) and, where the OS
allows, in new user, pid, network and IPC namespaces: it is then pid 1 of its namespace, which no
program child can signal, and when it dies the OS kills every process a program could have left.

Protocol: the frames of ``frames.py`` over the supervisor's stdin/stdout, never pickle. Kernel to
supervisor: ``INPUTS`` (key + rows), ``DROP`` (key), ``RUN`` (key, jobs as plain source/name/entry,
the label space as class names and aliases, limits). Supervisor to kernel: one ``HELLO`` (the
isolation report of its start-up probe), then per run any number of ``START``/``PROGRESS`` (and
``JOB_ROWS``, how far each running job is, when the kernel asks for them), one ``RESULT`` per job
and ``DONE`` or ``ERROR``. The kernel validates every frame (``frames.py``) and
treats a malformed one like a dead supervisor.
"""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

from . import frames
from .frames import ProtocolError
from .isolation import become_subreaper, die_with_parent, prepare, probe, unshare_namespaces
from .labels import LabelSpace
from .program import Program
from .rows import make_row_type
from .sandbox import Sandbox

KEEP_INPUT_SETS = 4  # row sets kept in the supervisor (train, dev, test and a smoke sample)
START_TIMEOUT_S = 60.0
HEARTBEAT_S = 0.5  # a running supervisor sends a PROGRESS frame at least this often
SILENCE_LIMIT_S = 20.0  # no frame for this long: the supervisor is stopped or hung, and is replaced
# what the supervisor's environment keeps from the kernel's: locale settings only
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
# One BLAS/OpenMP thread: the children run in parallel already, and a process with threads cannot
# enter a new user namespace (unshare fails with EINVAL), so numpy must not start a thread pool.
_ENV_SET = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
_KERNEL_LIMITS = {frames.INPUTS: frames.MAX_INPUTS, frames.DROP: frames.MAX_CONTROL, frames.RUN: frames.MAX_INPUTS}


class SupervisorDied(RuntimeError):
    """The supervisor process ended (or broke the protocol) in the middle of a request.

    ``running``: the job indices it had started and not reported; ``reported``: those it reported.
    """

    def __init__(self, message: str, running: set[int] | None = None, reported: set[int] | None = None):
        super().__init__(message)
        self.running = set(running or ())
        self.reported = set(reported or ())


class Supervisor:
    """Kernel-side handle on the supervisor process (started on first use, restarted if it dies)."""

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.loaded: OrderedDict[str, None] = OrderedDict()
        self.report: dict | None = None  # the isolation report of the running supervisor
        self.lock = threading.RLock()  # one request at a time (e.g. Dask threads sharing a worker process)
        self.owner = os.getpid()  # a forked copy of the kernel must not talk into its parent's pipes

    def _start(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        code = f"import sys; sys.path.insert(0, {root!r}); from alchemist_magics.programs.supervisor import serve; serve({os.getpid()})"
        env = {name: os.environ[name] for name in _ENV_KEEP if name in os.environ} | _ENV_SET
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=env, cwd="/", close_fds=True, start_new_session=True, bufsize=0)
        self.loaded.clear()
        self.owner = os.getpid()
        try:
            kind, payload = frames.read_frame(self.process.stdout, {frames.HELLO: frames.MAX_CONTROL}, START_TIMEOUT_S)
            report = frames.load_json(payload)
            if not isinstance(report, dict) or report.get("isolation") not in ("os", "audit-hook only"):
                raise ProtocolError("malformed isolation report")
        except (EOFError, ProtocolError, OSError) as exc:
            code = self._kill()
            why = str(exc) or ("it ended before its start-up report" if isinstance(exc, EOFError) else type(exc).__name__)
            raise SupervisorDied(f"the sandbox supervisor did not start ({why}; exit code {code}); "
                                 f"its errors went to this process's stderr") from None
        self.report = report

    def alive(self) -> bool:
        if self.process is not None and self.owner != os.getpid():  # we are a fork: that one is our parent's
            self.process, self.loaded = None, OrderedDict()
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
        finally:
            process.stdout.close()

    def ensure_started(self) -> dict:
        """Start the supervisor if needed; its isolation report."""
        if not self.alive():
            self._start()
        return self.report

    def run(self, key: str, inputs, jobs, label_space: LabelSpace, time_limit_s, memory_limit_mb, workers, on_progress=None,
            on_job=None):
        """Yield ``(job index, status, message, codes, runtime_s)`` as the supervisor reports them (all validated).

        ``on_progress(rows done by all jobs)`` and ``on_job(job index, rows done by it)`` (0 when it
        starts, then as it goes; at most ten times a second per job) are called as frames arrive.

        Raises :class:`SupervisorDied` (with the jobs that were running) if the process dies or
        sends anything malformed; it is killed then, and the next call starts a fresh one.
        """
        self.ensure_started()
        stdin, stdout = self.process.stdin, self.process.stdout
        n, k = len(inputs), label_space.k
        running: set[int] = set()
        reported: set[int] = set()
        wait_s = SILENCE_LIMIT_S
        limits = {frames.START: 4, frames.PROGRESS: 8, frames.RESULT: frames.result_limit(n),
                  frames.DONE: 0, frames.ERROR: frames.MAX_CONTROL, frames.JOB_ROWS: frames.JOB_ROWS_SIZE}
        try:
            if key in self.loaded:
                self.loaded.move_to_end(key)
            else:
                while len(self.loaded) >= KEEP_INPUT_SETS:
                    frames.write_frame(stdin, frames.DROP, frames.dump_json(self.loaded.popitem(last=False)[0]))
                rows = _inputs_payload(key, inputs)
                frames.write_frame(stdin, frames.INPUTS, rows)
                wait_s += len(rows) / 2e6  # the supervisor decodes the rows before it can answer
                self.loaded[key] = None
            request = {"key": key, "jobs": [[p.source, p.name, entry] for p, entry in jobs],
                       "classes": label_space.classes, "aliases": label_space.aliases,
                       "time_limit_s": float(time_limit_s), "memory_limit_mb": memory_limit_mb,
                       "workers": int(workers), "progress": on_progress is not None, "rows": on_job is not None}
            frames.write_frame(stdin, frames.RUN, frames.dump_json(request))
            while True:
                kind, payload = frames.read_frame(stdout, limits, wait_s)
                wait_s = SILENCE_LIMIT_S
                if kind == frames.PROGRESS:
                    if on_progress is not None:
                        on_progress(min(frames.parse_u64(payload), n * len(jobs)))
                elif kind == frames.START:
                    j = frames.parse_u32(payload)
                    if j >= len(jobs) or j in running or j in reported:
                        raise ProtocolError(f"unexpected start of job {j}")
                    running.add(j)
                    if on_job is not None:
                        on_job(j, 0)
                elif kind == frames.JOB_ROWS:
                    j, rows = frames.parse_job_rows(payload, len(jobs), n)
                    if j not in running:
                        raise ProtocolError(f"progress of job {j}, which is not running")
                    if on_job is not None:
                        on_job(j, rows)
                elif kind == frames.RESULT:
                    j, status, message, codes, runtime_s = frames.parse_result(payload, len(jobs), n, k)
                    if j not in running:
                        raise ProtocolError(f"result for job {j}, which was not running")
                    running.discard(j)
                    reported.add(j)
                    yield j, status, message, codes, runtime_s
                elif kind == frames.DONE:
                    if len(reported) != len(jobs):
                        raise ProtocolError(f"done after {len(reported)} of {len(jobs)} results")
                    return
                else:  # ERROR: a bug of the supervisor's; the running programs pay, apply() goes on
                    raise ProtocolError(f"supervisor error: {frames.clean_message(payload.decode('utf-8', 'replace'))}")
        except (EOFError, OSError, ProtocolError) as exc:
            code = self._kill()
            why = f"protocol violation: {exc}" if isinstance(exc, ProtocolError) else f"exit code {code}"
            raise SupervisorDied(f"the sandbox supervisor process ended unexpectedly ({why})", running, reported) from None
        except BaseException:  # interrupted: its children must stop now, and its state is unknown
            self._kill()
            raise

    def _kill(self) -> int | None:
        process, self.process = self.process, None
        self.loaded.clear()
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # it kills its children, then exits
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        return process.returncode


def _inputs_payload(key: str, inputs) -> bytes:
    rows = frames.encode_rows(inputs)  # b'{"texts":[...]}' or b'{"columns":...,"rows":...}'
    return b'{"key":' + frames.dump_json(key) + b"," + rows[1:]


_shared: Supervisor | None = None


def shared_supervisor() -> Supervisor:
    """The process-wide supervisor (one per kernel)."""
    global _shared
    if _shared is None:
        _shared = Supervisor()
        atexit.register(_shared.close)
    return _shared


# -- the supervisor process ------------------------------------------------------------------------------

def _terminate(signum, frame):
    raise KeyboardInterrupt  # unwinds Sandbox.run, whose cleanup kills the running children


def serve(kernel_pid: int) -> None:
    """The supervisor's main loop (runs in the child interpreter until its stdin closes)."""
    try:
        _serve(kernel_pid)
    except KeyboardInterrupt:  # SIGTERM: running children were killed on the way out
        pass


def _serve(kernel_pid: int) -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer.raw
    sys.stdout = sys.stderr  # nothing may write into the protocol stream by accident
    confinement = prepare()  # before the namespaces: the ruleset names files as this machine sees them
    namespaces = unshare_namespaces()
    signal.signal(signal.SIGTERM, _terminate)
    die_with_parent(signal.SIGTERM)  # after unshare: a change of credentials clears it
    if os.getppid() != kernel_pid:  # the kernel died before the signal was armed
        return
    if namespaces["pid"]:
        _enter_pid_namespace()
    else:
        become_subreaper()
    report = probe(confinement, namespaces)
    frames.write_frame(stdout, frames.HELLO, frames.dump_json(report))
    rows: dict[str, list] = {}
    while True:
        try:
            kind, payload = frames.read_frame(stdin, _KERNEL_LIMITS)
        except (EOFError, ProtocolError):
            return
        message = frames.load_json(payload)
        if kind == frames.INPUTS:
            rows[message["key"]] = frames.decode_rows(message, make_row_type)
        elif kind == frames.DROP:
            rows.pop(message, None)
        elif kind == frames.RUN:
            _run(message, rows, confinement, stdout)


def _run(request: dict, rows: dict, confinement, stdout) -> None:
    try:
        jobs = [(Program(source, name=name), entry) for source, name, entry in request["jobs"]]
        label_space = LabelSpace(request["classes"], request["aliases"])
        sandbox = Sandbox(rows[request["key"]], label_space, request["time_limit_s"], request["memory_limit_mb"], confinement)
        last = [0.0]

        def report(done):  # progress when asked for, and a heartbeat either way
            now = time.monotonic()
            if request["progress"] or now - last[0] > HEARTBEAT_S:
                last[0] = now
                frames.write_frame(stdout, frames.PROGRESS, frames.encode_u64(done))

        sent: dict[int, int] = {}

        def job_rows(done_by):  # how far each running job is, when it moved (asked for by the kernel)
            for j, rows in done_by:
                if sent.get(j) != rows:
                    sent[j] = rows
                    frames.write_frame(stdout, frames.JOB_ROWS, frames.encode_job_rows(j, rows))

        start = lambda j: frames.write_frame(stdout, frames.START, frames.encode_u32(j))  # noqa: E731
        for j, run in sandbox.run(jobs, request["workers"], report, start, job_rows if request.get("rows") else None):
            frames.write_frame(stdout, frames.RESULT, frames.encode_result(j, run.status, run.message, run.codes, run.runtime_s))
    except Exception as exc:  # a bug of ours, not the program's: tell the kernel, keep serving
        frames.write_frame(stdout, frames.ERROR, f"{type(exc).__name__}: {exc}"[:1000].encode("utf-8", "replace"))
        return
    frames.write_frame(stdout, frames.DONE)


def _enter_pid_namespace() -> None:
    """Fork the real supervisor as pid 1 of the new pid namespace; this process only relays its death.

    The outer process keeps the kernel's SIGTERM (and its own death) meaning: it SIGKILLs pid 1,
    and the OS then kills every process of the namespace. Returns only in the inner process.
    """
    inner = os.fork()
    if inner == 0:
        # (getppid() is 0 here: the parent lives outside this pid namespace. Should the outer die
        # before this line, the kernel still talks to us and its closing our stdin ends us.)
        die_with_parent(signal.SIGKILL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # pid 1: ignored unless sent from outside the namespace
        return
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):  # only the inner process speaks the protocol
        os.dup2(null, fd)

    def relay(signum, frame):
        try:
            os.kill(inner, signal.SIGKILL)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, relay)
    while True:
        try:
            _, status = os.waitpid(inner, 0)
            break
        except InterruptedError:
            continue
        except KeyboardInterrupt:
            relay(None, None)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF if os.WIFEXITED(status) else 1)
