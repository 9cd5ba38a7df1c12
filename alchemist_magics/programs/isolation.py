"""Operating-system isolation of program children: seccomp-bpf, Landlock, namespaces, no capabilities.

The supervisor prepares everything once, before it forks any child (:func:`prepare`): a Landlock
ruleset (read-only access to the Python install, site-packages and system libraries; nothing else:
not /proc, not $HOME, not the project or its caches; no TCP; no signals or abstract sockets out of
the domain) and a compiled seccomp-bpf allowlist (built with libseccomp through ``pyseccomp``).
Each child then applies both with three system calls (:meth:`Confinement.apply`) before the
program's code is compiled: no-new-privileges, all capabilities dropped, Landlock, seccomp. The
supervisor itself runs in new user, pid, network and IPC namespaces where the OS allows them
(:func:`unshare_namespaces`).

Every layer is checked at start-up by a probe child that tries what each layer must stop
(:func:`probe`); :func:`isolation_report` runs the same probe from any process (the ``doctor``
command prints it) and :func:`describe_isolation` says it in one line. ``"os"`` means seccomp and
Landlock both held in the probe; anything less is ``"audit-hook only"`` and is said once, loudly.
"""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import sys
import sysconfig
import time
import warnings
from pathlib import Path

_LINUX = sys.platform.startswith("linux")
_libc = ctypes.CDLL(None, use_errno=True) if _LINUX else None

# -- constants (Linux UAPI; the syscall numbers are the same on x86_64 and arm64) ----------------------
_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_ABI1 = (1 << 13) - 1  # execute .. make_sym
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1, 2
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER = 1, 36
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET, _CLONE_NEWIPC = 0x10000000, 0x20000000, 0x40000000, 0x08000000
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_TCGETS, _FIONREAD = 0x5401, 0x541B
_O_TMPFILE_BIT = 0o20000000
_OPEN_WRITE_MASK = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | _O_TMPFILE_BIT

# System calls a program child may make; everything else fails with EPERM (see seccomp_program for
# the ones allowed only with certain arguments). No process or thread creation, no signals, no
# sockets, no ptrace or cross-process memory access, no scheduling or priority changes, no prctl,
# no mounts or namespaces, no file creation, deletion, renaming, truncation or metadata changes.
SECCOMP_ALLOW = (
    "read", "write", "readv", "writev", "pread64", "preadv", "preadv2", "close", "close_range", "lseek",
    "fstat", "newfstatat", "stat", "lstat", "statx", "fstatfs", "statfs", "getdents64", "readlink",
    "readlinkat", "access", "faccessat", "faccessat2", "getcwd", "dup", "dup2", "dup3",
    "mmap", "munmap", "mprotect", "mremap", "brk", "madvise", "msync",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "rt_sigpending",
    "futex", "set_robust_list", "rseq", "set_tid_address", "sched_yield", "sched_getaffinity", "getcpu",
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid",
    "getpgrp", "getpgid", "getsid", "getgroups", "getrandom", "uname", "sysinfo", "getrusage", "times",
    "getrlimit", "getpriority", "sched_getscheduler", "sched_getparam", "sched_get_priority_max",
    "sched_get_priority_min", "poll", "ppoll", "select", "pselect6", "exit", "exit_group", "arch_prctl",
)
_FCNTL_OK = (0, 1, 2, 3, 1030)  # F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_DUPFD_CLOEXEC (not F_SETOWN/F_SETSIG)


class IsolationError(OSError):
    """A layer that was prepared could not be applied in a child."""


def _syscall(number: int, *args) -> int:
    result = _libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _prctl(option: int, arg2: int = 0, arg3=0) -> None:
    if _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), arg3, ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


# -- Landlock -------------------------------------------------------------------------------------------

class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: not available)."""
    if not _LINUX:
        return 0
    try:
        return _syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    except OSError:
        return 0


def read_paths() -> list[str]:
    """What a child may read: the Python install (stdlib, lib-dynload, site-packages) and system libraries.

    The project folder is deliberately absent even when it is on ``sys.path`` (an editable install):
    the supervisor imported everything of this package a child needs before forking.
    """
    paths = {sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.add(sysconfig.get_config_var("LIBDIR") or "")
    try:
        import site

        paths.update(site.getsitepackages())
    except (AttributeError, ImportError):
        pass
    for module in ("numpy",):  # where the allowed third-party imports live (lazy submodule imports)
        found = sys.modules.get(module)
        if found is not None and getattr(found, "__file__", None):
            paths.add(str(Path(found.__file__).resolve().parents[1]))
    paths.update(("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/etc/ld.so.cache",
                  "/etc/localtime", "/usr/share/zoneinfo"))
    project = Path(__file__).resolve().parents[2]
    keep = {}
    for p in sorted(filter(None, paths)):
        resolved = Path(p).resolve()
        if not resolved.exists() or resolved == project or project.is_relative_to(resolved):
            continue  # never the project folder or anything above it
        keep[str(resolved)] = None
    return list(keep)


def _landlock_ruleset(abi: int, paths: list[str]) -> int:
    fs = _FS_ABI1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0) | (_FS_IOCTL_DEV if abi >= 5 else 0)
    attr = _RulesetAttr(fs, (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0,
                        (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    fd = _syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        os.set_inheritable(fd, True)
        for path in paths:
            try:
                target = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                allowed = _FS_READ_FILE | (_FS_READ_DIR if os.path.isdir(path) else 0)
                rule = _PathBeneathAttr(allowed, target)
                _syscall(_SYS_LANDLOCK_ADD_RULE, ctypes.c_int(fd), ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
                         ctypes.byref(rule), ctypes.c_uint32(0))
            finally:
                os.close(target)
    except BaseException:
        os.close(fd)
        raise
    return fd


# -- seccomp --------------------------------------------------------------------------------------------

class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_program() -> bytes:
    """The compiled BPF allowlist (raw ``struct sock_filter`` array) for this machine's architecture."""
    import pyseccomp as sc

    f = sc.SyscallFilter(sc.ERRNO(errno.EPERM))
    for name in SECCOMP_ALLOW:
        _add_rule(sc, f, sc.ALLOW, name)
    _add_rule(sc, f, sc.ALLOW, "openat", sc.Arg(2, sc.MASKED_EQ, _OPEN_WRITE_MASK, 0))
    _add_rule(sc, f, sc.ALLOW, "open", sc.Arg(1, sc.MASKED_EQ, _OPEN_WRITE_MASK, 0))
    _add_rule(sc, f, sc.ERRNO(errno.ENOSYS), "openat2")  # its flags are behind a pointer: make libc fall back
    # No clone at all, not even for threads: RLIMIT_NPROC does not bind uid 0, and a thread bomb
    # would exhaust the machine's pids (32768 here). clone3 answers ENOSYS so libc falls back to
    # clone, which fails with EPERM ("can't start new thread").
    _add_rule(sc, f, sc.ERRNO(errno.ENOSYS), "clone3")
    for request in (_TCGETS, _FIONREAD):
        _add_rule(sc, f, sc.ALLOW, "ioctl", sc.Arg(1, sc.EQ, request))
    for command in _FCNTL_OK:
        _add_rule(sc, f, sc.ALLOW, "fcntl", sc.Arg(1, sc.EQ, command))
    _add_rule(sc, f, sc.ALLOW, "prlimit64", sc.Arg(2, sc.EQ, 0))  # read limits, never set them
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        f.export_bpf(_Fileno(fd))
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


class _Fileno:
    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd


def _add_rule(sc, f, action, name, *args) -> None:
    try:
        f.add_rule(action, name, *args)
    except (OSError, ValueError, RuntimeError):  # a call this architecture does not have
        pass


# -- what a child applies ---------------------------------------------------------------------------------

class Confinement:
    """Layers prepared in the supervisor; :meth:`apply` confines the calling (freshly forked) process."""

    def __init__(self):
        self.landlock_abi = 0
        self.ruleset_fd: int | None = None
        self.bpf: bytes | None = None
        self._fprog = None
        self._buffer = None
        self.problems: list[str] = []

    @property
    def keep_fds(self) -> tuple[int, ...]:
        return () if self.ruleset_fd is None else (self.ruleset_fd,)

    def apply(self) -> None:
        """No new privileges, no capabilities, Landlock, seccomp; raises :class:`IsolationError` if one fails."""
        if not _LINUX:
            return
        try:
            _prctl(_PR_SET_NO_NEW_PRIVS, 1)
            _drop_capabilities()
            if self.ruleset_fd is not None:
                _syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(self.ruleset_fd), ctypes.c_uint32(0))
                os.close(self.ruleset_fd)
            if self._fprog is not None:
                _prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(self._fprog))
        except OSError as exc:
            raise IsolationError(exc.errno, f"sandbox isolation failed: {exc.strerror}") from None

    def close(self) -> None:
        if self.ruleset_fd is not None:
            os.close(self.ruleset_fd)
            self.ruleset_fd = None


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities() -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def prepare() -> Confinement:
    """Build the Landlock ruleset and the seccomp program once (in the supervisor, before any fork)."""
    confinement = Confinement()
    if not _LINUX:
        confinement.problems.append(f"{sys.platform} has neither seccomp nor Landlock")
        return confinement
    confinement.landlock_abi = abi = landlock_abi()
    if abi:
        try:
            confinement.ruleset_fd = _landlock_ruleset(abi, read_paths())
        except OSError as exc:
            confinement.problems.append(f"Landlock ruleset failed ({exc.strerror})")
    else:
        confinement.problems.append("Landlock is not available (kernel < 5.13 or disabled)")
    try:
        bpf = seccomp_program()
    except ImportError:
        confinement.problems.append("seccomp: the pyseccomp package is not installed")
    except OSError as exc:
        confinement.problems.append(f"seccomp: libseccomp failed ({exc})")
    else:
        confinement.bpf = bpf
        confinement._buffer = ctypes.create_string_buffer(bpf, len(bpf))
        confinement._fprog = _SockFprog(len(bpf) // 8, ctypes.addressof(confinement._buffer))
    return confinement


# -- namespaces (the supervisor's own) ---------------------------------------------------------------------

def unshare_namespaces(pid: bool = True) -> dict[str, bool]:
    """Move this process into new user, network, IPC (and pid) namespaces where the OS allows it.

    The uid and gid map to themselves, so files look the same; the new network namespace has only
    a downed loopback. With ``pid``, this process's *next* child is pid 1 of a new pid namespace
    (the supervisor forks its real self there). Returns which namespaces were entered.
    """
    entered = {"user": False, "pid": False, "net": False}
    if not _LINUX:
        return entered
    uid, gid = os.getuid(), os.getgid()
    for flags in ((_CLONE_NEWUSER | _CLONE_NEWNET | _CLONE_NEWIPC | (_CLONE_NEWPID if pid else 0)),
                  (_CLONE_NEWUSER | _CLONE_NEWNET | _CLONE_NEWIPC)):
        if _libc.unshare(ctypes.c_int(flags)) == 0:
            break
    else:
        err = ctypes.get_errno()
        entered["problem"] = (f"namespaces: unshare failed ({os.strerror(err)}"
                              + ("; the process has threads" if err == errno.EINVAL else "") + ")")
        return entered
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    except OSError:
        pass  # unmapped: we are "nobody" inside, which only takes more rights away
    entered.update(user=True, net=True, pid=bool(flags & _CLONE_NEWPID))
    return entered


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Linux: get ``sig`` when the parent process dies."""
    if _LINUX:
        try:
            _prctl(_PR_SET_PDEATHSIG, int(sig))
        except OSError:
            pass


def become_subreaper() -> bool:
    """Orphaned descendants (a program's escaped daemon) are re-parented to this process, not to init."""
    if not _LINUX:
        return False
    try:
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        return True
    except OSError:
        return False


def kill_strays() -> int:
    """SIGKILL and reap every remaining descendant (a program's escaped process); returns how many rounds it took.

    As pid 1 of its own pid namespace this is one ``kill(-1)``; otherwise (a subreaper) the
    children are found through /proc. Called when no program child is running.
    """
    for rounds in range(200):
        while True:  # reap whatever ended (strays and zombies); no child left is the common, fast case
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return rounds
            if pid == 0:
                break
        _signal_descendants()
        time.sleep(0.001)
    return rounds


def _signal_descendants() -> None:
    if os.getpid() == 1:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return
    if not _LINUX:
        return
    me = str(os.getpid()).encode()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[1] == me:
            try:
                os.kill(int(entry), signal.SIGKILL)
            except ProcessLookupError:
                pass


# -- the start-up check -------------------------------------------------------------------------------------

_PROBE_APPLY_FAILED, _PROBE_READ_PROJECT, _PROBE_READ_PROC, _PROBE_SIGNAL, _PROBE_SOCKET, _PROBE_FORK = 1, 2, 4, 8, 16, 32


def probe(confinement: Confinement, namespaces: dict[str, bool] | None = None) -> dict:
    """Fork a child that applies ``confinement`` and tries what each layer must stop; report what held."""
    report = {"platform": sys.platform, "landlock_abi": confinement.landlock_abi,
              "seccomp": False, "landlock": False, "capabilities_dropped": False,
              "user_ns": False, "pid_ns": False, "net_ns": False, "problems": list(confinement.problems)}
    namespaces = dict(namespaces or {})
    if namespaces.get("problem"):
        report["problems"].append(namespaces.pop("problem"))
    report.update({f"{k}_ns": v for k, v in namespaces.items() if k in ("user", "pid", "net")})
    if not _LINUX or not hasattr(os, "fork"):
        return _finish(report)
    project = str(Path(__file__).resolve().parents[2])
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            try:
                confinement.apply()
            except OSError:
                os._exit(_PROBE_APPLY_FAILED)
            for path, bit in ((project, _PROBE_READ_PROJECT), ("/proc/self/status", _PROBE_READ_PROC)):
                try:
                    os.close(os.open(path, os.O_RDONLY))
                    code |= bit
                except OSError:
                    pass
            try:
                os.kill(parent, 0)
                code |= _PROBE_SIGNAL
            except OSError:
                pass
            try:
                socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
                code |= _PROBE_SOCKET
            except OSError:
                pass
            try:
                child = os.fork()
                if child == 0:
                    os._exit(0)
                code |= _PROBE_FORK
            except OSError:
                pass
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 255
    if code == _PROBE_APPLY_FAILED or code == 255:
        report["problems"].append("the isolation layers could not be applied in a child")
        return _finish(report)
    if confinement.ruleset_fd is not None:
        report["landlock"] = not code & (_PROBE_READ_PROJECT | _PROBE_READ_PROC)
        if not report["landlock"]:
            report["problems"].append("Landlock was applied but a child could still read outside the install")
    if confinement.bpf is not None:
        report["seccomp"] = not code & (_PROBE_SIGNAL | _PROBE_SOCKET | _PROBE_FORK)
        if not report["seccomp"]:
            report["problems"].append("seccomp was applied but a child could still signal, open a socket or fork")
    report["capabilities_dropped"] = True
    return _finish(report)


def _finish(report: dict) -> dict:
    report["isolation"] = "os" if report["seccomp"] and report["landlock"] else "audit-hook only"
    return report


def describe(report: dict) -> str:
    """One line: which layers are active, and what is missing."""
    layers = [name for name, on in (("seccomp-bpf", report.get("seccomp")),
                                    (f"Landlock (ABI {report.get('landlock_abi')})", report.get("landlock")),
                                    ("user namespace", report.get("user_ns")), ("pid namespace", report.get("pid_ns")),
                                    ("network namespace", report.get("net_ns"))) if on]
    line = f"sandbox isolation: {report['isolation']} ({', '.join(layers) or 'no OS layer'})"
    missing = [name for key, name in (("user_ns", "user"), ("pid_ns", "pid"), ("net_ns", "network")) if not report.get(key)]
    if report["isolation"] == "os" and missing:
        line += f"; no {'/'.join(missing)} namespace (defence in depth only)"
    if report["isolation"] != "os":
        line += ("; programs are contained only by the audit hook and static check, which an attacker can "
                 "walk around: " + "; ".join(report.get("problems") or ["unknown reason"]))
    return line


_warned = False


def warn_once(report: dict) -> None:
    """Say once per process, in one line, when the programs are not isolated by the OS."""
    global _warned
    if report.get("isolation") != "os" and not _warned:
        _warned = True
        warnings.warn(describe(report), RuntimeWarning, stacklevel=3)


def isolation_report() -> dict:
    """Which isolation layers this machine gives program children, checked by a probe child right now.

    Keys: ``isolation`` (``"os"`` or ``"audit-hook only"``), ``seccomp``, ``landlock``,
    ``landlock_abi``, ``capabilities_dropped``, ``user_ns``/``pid_ns``/``net_ns`` (whether the
    supervisor can enter them), ``problems`` (why a layer is missing), ``platform``.
    """
    confinement = prepare()
    try:
        namespaces = _namespaces_possible()
        return probe(confinement, namespaces)
    finally:
        confinement.close()


def _namespaces_possible() -> dict[str, bool]:
    """Try the supervisor's unshare in a throwaway child."""
    if not _LINUX or not hasattr(os, "fork"):
        return {"user": False, "pid": False, "net": False}
    pid = os.fork()
    if pid == 0:
        try:
            entered = unshare_namespaces()
            os._exit(entered["user"] | entered["pid"] << 1 | entered["net"] << 2)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 0
    return {"user": bool(code & 1), "pid": bool(code & 2), "net": bool(code & 4)}


def describe_isolation() -> str:
    """:func:`isolation_report` in one line (what ``alchemist doctor`` prints)."""
    return describe(isolation_report())
