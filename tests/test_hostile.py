"""Hostile programs, run through the public API twice (static check on, and off so that only the OS
layers stand), all batched into one ``apply_programs`` call per mode.

Three groups: MISBEHAVING (accidents and crude attacks with an exact expected status), FORGERIES
(programs that tamper with their own result or overload the check), ATTACKS (written as an attacker
would, through module-private attributes and ctypes, with the audit hook switched off first where
that helps; each returns 1 only if its attack worked). Every run asserts: contained (no attack
worked, no forged output kept), the kernel alive and unchanged (pid, nice, affinity, scheduler), no
file outside the temp dir touched, no process left after ``apply()``, the good programs' columns
identical to a clean run, and a planted secret (an env var of the kernel and a file in $HOME)
nowhere: labels, messages, runtimes, the output cache, the program store.
"""
import builtins
import os
import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from alchemist_magics.llm import ProgramStore
from alchemist_magics.programs import LabelSpace, OutputCache, Program, apply_programs, check_program, isolation_report
from alchemist_magics.programs.supervisor import shared_supervisor

LS = LabelSpace(["ham", "spam"])
INPUTS = [f"row {i} check out my channel" if i % 3 else f"short {i}" for i in range(40)]
INPUTS[7] = "slow"
SECRET = "sk-red-team-" + "c0ffee" * 6
SECRET_ENV = "ALCHEMIST_RED_TEAM_KEY"

GOOD = {
    "kw_check": "def kw_check(text):\n    return 1 if 'check' in text else -1\n",
    "short": "def short(text):\n    return 'ham' if len(text) < 10 else None\n",
    "regex_my": "import re\nMY = re.compile(r'\\bmy\\b')\n\ndef regex_my(text):\n    return 'SPAM' if MY.search(text) else -1\n",
}

# name -> (source, rejected by the static check, status when run with the check bypassed).
# {canary} is an absolute path outside the working dir; relative paths land in the working dir.
MISBEHAVING = {
    "infinite_loop": ("def f(x):\n    while True:\n        pass\n", False, "timeout"),
    "fork_bomb": ("import os\ndef f(x):\n    while True:\n        os.fork()\n", True, "faulted"),
    "os_system": ("import os\ndef f(x):\n    os.system('touch pwned_system')\n    return 1\n", True, "faulted"),
    "file_write": ("def f(x):\n    open({canary!r}, 'w').write('owned')\n    return 1\n", True, "faulted"),
    "file_create_relative": ("import os\ndef f(x):\n    os.open('pwned_new', os.O_CREAT | os.O_WRONLY)\n", True, "faulted"),
    "file_delete": ("import os\ndef f(x):\n    os.remove({canary!r})\n", True, "faulted"),
    "rmtree_cwd": ("import shutil\ndef f(x):\n    shutil.rmtree('.')\n", True, "faulted"),
    "subprocess_rm": ("import subprocess\ndef f(x):\n    subprocess.run(['rm', '-f', {canary!r}])\n", True, "faulted"),
    "numpy_save": ("import numpy as np\ndef f(x):\n    np.save('pwned.npy', np.zeros(3))\n", True, "faulted"),
    "socket_connect": ("import socket\ndef f(x):\n    socket.create_connection(('127.0.0.1', 9), timeout=0.1)\n", True, "faulted"),
    "alloc_20gb": ("def f(x):\n    return len(bytearray(20 * 2**30))\n", False, "memory_limit"),
    "deep_recursion": ("def f(x, n=0):\n    return f(x, n + 1)\n", False, "faulted"),
    "c_recursion_raised_limit": (
        "import sys\ndef g(n):\n    return list(map(g, [n + 1]))\n\ndef f(x):\n    sys.setrecursionlimit(10**8)\n    return g(0)\n",
        True, "crashed"),
    "sys_exit": ("import sys\ndef f(x):\n    sys.exit(0)\n", True, "faulted"),
    "os_exit": ("import os\ndef f(x):\n    os._exit(0)\n", True, "crashed"),
    "kill_parent": ("import os\ndef f(x):\n    os.kill(os.getppid(), 9)\n", True, "faulted"),
    "kill_group": ("import os\ndef f(x):\n    os.killpg(0, 9)\n", True, "faulted"),
    "stdout_flood": ("def f(x):\n    print('x' * 200000)\n    return 1\n", False, "ok"),
    "write_inherited_fds": (
        "import os\ndef f(x):\n    for fd in range(0, 256):\n        try:\n            os.write(fd, b'pwned')\n"
        "        except OSError:\n            pass\n    return 1\n", True, "ok"),
    # memmove is not an audited call: it does overwrite the string, but only the child's private copy.
    "mutate_input_ctypes": (
        "import ctypes\ndef f(x):\n    ctypes.memmove(id(x) + 48, b'PWNED', 5)\n    return 1\n", True, "ok"),
    "mutate_lists_gc": ("import gc\ndef f(x):\n    for o in gc.get_objects():\n        if type(o) is list:\n            o.clear()\n", True, "faulted"),
    "monkeypatch_builtins": (
        "import builtins\ndef f(x):\n    builtins.len = lambda s: 0\n    builtins.type = lambda o: str\n"
        "    builtins.isinstance = lambda *a: False\n    builtins.int = str\n    return 1\n", True, "ok"),
    "monkeypatch_re": ("import re\ndef f(x):\n    re.search = lambda *a, **k: None\n    re.compile = None\n    return -1\n", True, "ok"),
    "raise_rlimit": ("import resource\ndef f(x):\n    resource.setrlimit(resource.RLIMIT_AS, (-1, -1))\n", True, "faulted"),
    "returns_float": ("def f(x):\n    return 0.9\n", False, "ok"),
    "returns_list": ("def f(x):\n    return [1]\n", False, "ok"),
    "returns_dict": ("def f(x):\n    return {'label': 1}\n", False, "ok"),
    "unknown_class": ("def f(x):\n    return 'maybe'\n", False, "ok"),
    "out_of_range": ("def f(x):\n    return 7\n", False, "ok"),
    "slow_one_row": ("import time\ndef f(x):\n    if x == 'slow':\n        time.sleep(60)\n    return 1\n", True, "timeout"),
    "raise_every_row": ("def f(x):\n    raise ValueError('nope')\n", False, "faulted"),
    "segfault_ctypes": ("import ctypes\ndef f(x):\n    return ctypes.c_char_p(1).value\n", True, "crashed"),
    "ctypes_string_at": ("import ctypes\ndef f(x):\n    return ctypes.string_at(0)\n", True, "faulted"),
    "threads_keep_running": (
        "import threading, time\ndef spin():\n    while True:\n        time.sleep(0.01)\n\n"
        "def f(x):\n    threading.Thread(target=spin).start()\n    return 0\n", True, "faulted"),  # no threads at all
    "hostile_at_import": ("import os\nos.remove({canary!r})\n\ndef f(x):\n    return 1\n", True, "load_error"),
    "dunder_escape": (
        "def f(x):\n    for c in ().__class__.__base__.__subclasses__():\n        if c.__name__ == 'Popen':\n"
        "            c(['touch', 'pwned_popen'])\n    return -1\n", True, "faulted"),
}
# -- attacks: each returns 1 only if it worked; otherwise it raises or returns -1 -------------------------
# Gadgets an attacker reaches through allowed imports (module-private attributes pass the static check).
G = ("import collections, statistics, re, functools, numpy as np\n"
     "SYS = collections._sys\nOS = statistics.random._os\nBI = re.enum.bltns\nM = SYS.modules\n"
     "IMP = BI.getattr(BI, '_' * 2 + 'import' + '_' * 2)\nCT = M['ctypes']\nKEEP = []\n")
# Disables the audit hook the way the red team did: overwrite the hook's default arguments with ctypes.
HOOK_OFF = ("def hook_off():\n"
            "    hook = M['alchemist_magics.programs.sandbox']._audit_hook\n"
            "    d = BI.getattr(hook, '_' * 2 + 'defaults' + '_' * 2)\n"
            "    empty, zero = frozenset(), 0\n"
            "    KEEP.append((empty, zero, d[0], d[1]))\n"
            "    CT.memmove(id(d) + 24, CT.byref(CT.c_void_p(id(empty))), 8)\n"
            "    CT.memmove(id(d) + 32, CT.byref(CT.c_void_p(id(zero))), 8)\n"
            "    return d\n\n")
FORK_EXEC = ("M['_posixsubprocess'].fork_exec([b'/bin/sh', b'-c', CMD], [b'/bin/sh'], False, (), None, None,"
             " -1, -1, -1, -1, -1, -1, -1, -1, False, SETSID, -1, None, None, None, -1, None, False)")


def _attack(body, hook_off=False):
    """A program whose entry runs ``body``; ``LIBC`` (libc through ctypes) needs the hook off first (dlopen is audited)."""
    hook_off = hook_off or "LIBC" in body
    lines = "\n".join("    " + line for line in body.strip("\n").splitlines())
    call = "    hook_off()\n    LIBC = CT.CDLL(None, use_errno=True)\n" if hook_off else ""
    return G + (HOOK_OFF if hook_off else "") + "def attack(x):\n" + call + lines + "\n"


def _syscall(number, *args, ok="r >= 0"):
    """An attack through a raw system call (ctypes): it worked when the call did not fail."""
    rendered = ", ".join(str(a) for a in args)
    return _attack(f"r = LIBC.syscall({number}{', ' if args else ''}{rendered})\nreturn 1 if {ok} else -1")


def _read(path_expr, how="bltns", hook_off=False):
    """Read a file the program must not see; a success leaks its bytes into the message."""
    reader = {
        "bltns": f"d = BI.open({path_expr}, 'rb').read(4096)",
        "os": f"fd = OS.open({path_expr}, OS.O_RDONLY)\nd = OS.read(fd, 4096)",
        "np": f"d = np.lib._datasource.open({path_expr}, 'rb').read(4096)",
        "ctypes": (f"fd = LIBC.open(OS.fsencode({path_expr}), 0)\nbuf = CT.create_string_buffer(4096)\n"
                   "n = LIBC.read(fd, buf, 4096)\nd = buf.raw[:n] if fd >= 0 and n > 0 else b''"),
        "openat": (f"fd = LIBC.syscall(257, -100, CT.c_char_p(OS.fsencode({path_expr})), 0, 0)\n"
                   "buf = CT.create_string_buffer(4096)\nn = LIBC.read(fd, buf, 4096)\nd = buf.raw[:n] if fd >= 0 and n > 0 else b''"),
        "listdir": f"d = repr(OS.listdir({path_expr})).encode()",
    }[how]
    return _attack(reader + "\nif d:\n    raise ValueError('LEAKED ' + repr(d[:300]))\nreturn -1", hook_off)


def _write(body):
    """A file-system change outside the sandbox, with the audit hook switched off first."""
    return _attack(body + "\nreturn 1", hook_off=True)


K, PPID = "@KERNEL_PID@", "OS.getppid()"
ATTACKS = {
    # process creation, with and without audit events
    "fork_exec_no_audit_event": _attack(f"CMD, SETSID = b'touch ' + @CANARY@.encode() + b'.pps', False\npid = {FORK_EXEC}\nreturn 1"),
    "fork_exec_setsid_daemon": _attack(f"CMD, SETSID = b'sleep 300', True\npid = {FORK_EXEC}\nreturn 1"),
    "fork_exec_hook_off": _attack(f"CMD, SETSID = b'touch /tmp/pwned_fe', False\npid = {FORK_EXEC}\nreturn 1", hook_off=True),
    "os_fork_private_module": _attack("pid = OS.fork()\nif pid == 0:\n    OS._exit(0)\nreturn 1"),
    "os_fork_hook_off": _attack("pid = OS.fork()\nif pid == 0:\n    OS._exit(0)\nreturn 1", hook_off=True),
    "fork_daemon_hook_off": _attack("pid = OS.fork()\nif pid == 0:\n    OS.setsid()\n    IMP('time').sleep(300)\nreturn 1", hook_off=True),
    "os_system_hook_off": _attack("r = OS.system('touch /tmp/pwned_system')\nreturn 1 if r == 0 else -1", hook_off=True),
    "popen_hook_off": _attack("IMP('subprocess').Popen(['sleep', '300'], start_new_session=True)\nreturn 1", hook_off=True),
    "posix_spawn_hook_off": _attack("OS.posix_spawn('/bin/sleep', ['sleep', '300'], {})\nreturn 1", hook_off=True),
    "execv_hook_off": _attack("OS.execv('/bin/sh', ['sh', '-c', 'touch /tmp/pwned_exec'])\nreturn 1", hook_off=True),
    "ctypes_libc_fork": _attack("pid = LIBC.fork()\nif pid == 0:\n    LIBC._exit(0)\nreturn 1 if pid > 0 else -1"),
    "ctypes_libc_system": _attack("r = LIBC.system(b'touch /tmp/pwned_libc_system')\nreturn 1 if r == 0 else -1"),
    "syscall_fork": _syscall(57, ok="r > 0"),
    "syscall_vfork": _syscall(58, ok="r > 0"),
    "syscall_clone_process": _syscall(56, 17, 0, 0, 0, 0, ok="r > 0"),
    "syscall_clone3": _syscall(435, 0, 0, ok="r > 0"),
    "syscall_execve": _attack("r = LIBC.execve(b'/bin/sh', None, None)\nreturn 1 if r >= 0 else -1"),
    "builtins_getattr_import_system": _attack(
        "imp = BI.getattr(BI, '_' * 2 + 'import' + '_' * 2)\nr = imp('os').system('touch /tmp/pwned_getattr')\nreturn 1 if r == 0 else -1"),
    "eval_attribute_call": _attack("r = BI.eval(\"M['os'].system('touch /tmp/pwned_eval')\", {'M': M})\nreturn 1 if r == 0 else -1"),
    # files outside the sandbox: create, change, delete, link, and the project's caches and store
    "write_canary": _attack("BI.open(@CANARY@, 'w').write('owned')\nreturn 1"),
    "append_canary_hook_off": _write("BI.open(@CANARY@, 'a').write('owned')"),
    "create_via_os_open": _attack("OS.open(@CANARY@ + '.new', OS.O_CREAT | OS.O_WRONLY)\nreturn 1"),
    "create_hook_off": _write("OS.close(OS.open(@CANARY@ + '.new2', OS.O_CREAT | OS.O_WRONLY))"),
    "create_tmp_hook_off": _write("OS.close(OS.open('/tmp/pwned_tmp', OS.O_CREAT | OS.O_WRONLY))"),
    "create_dev_shm_hook_off": _write("OS.close(OS.open('/dev/shm/pwned_shm', OS.O_CREAT | OS.O_WRONLY))"),
    "create_relative_hook_off": _write("OS.close(OS.open('pwned_relative', OS.O_CREAT | OS.O_WRONLY))"),
    "tmpfile_hook_off": _write("OS.close(OS.open('/tmp', OS.O_TMPFILE | OS.O_WRONLY))"),
    "remove_canary_hook_off": _write("OS.remove(@CANARY@)"),
    "rename_canary_hook_off": _write("OS.rename(@CANARY@, @CANARY@ + '.moved')"),
    "truncate_canary_hook_off": _write("OS.truncate(@CANARY@, 0)"),
    "chmod_canary_hook_off": _write("OS.chmod(@CANARY@, 0o777)"),
    "utime_canary_hook_off": _write("OS.utime(@CANARY@, (0, 0))"),
    "hardlink_canary_hook_off": _write("OS.link(@CANARY@, '/tmp/pwned_link')"),
    "mkdir_tmp_hook_off": _write("OS.mkdir('/tmp/pwned_dir')"),
    "rmtree_work_hook_off": _write("IMP('shutil').rmtree(@WORK_DIR@)"),
    "chdir_then_write_hook_off": _write("OS.chdir(@WORK_DIR@)\nBI.open('pwned_cwd', 'w').write('x')"),
    "numpy_datasource_write": _attack("np.lib._datasource.open(@CANARY@, 'w').write('owned')\nreturn 1"),
    "ctypes_creat": _attack("fd = LIBC.creat(OS.fsencode(@CANARY@ + '.c'), 0o644)\nreturn 1 if fd >= 0 else -1"),
    "ctypes_open_truncate": _attack("fd = LIBC.open(OS.fsencode(@CANARY@), 0o1001)\nreturn 1 if fd >= 0 else -1"),
    "ctypes_unlink": _attack("r = LIBC.unlink(OS.fsencode(@CANARY@))\nreturn 1 if r == 0 else -1"),
    "syscall_openat2": _syscall(437, -100, "CT.c_char_p(b'/tmp/pwned_openat2')", 0, 0),
    "syscall_io_uring_setup": _syscall(425, 8, "CT.create_string_buffer(120)"),
    "forge_output_cache_entry": _write("fd = OS.open(@CACHE_DIR@ + '/' + '0' * 32 + '.codes', OS.O_CREAT | OS.O_WRONLY)\nOS.write(fd, b'ALCODES1')"),
    "symlink_into_output_cache": _write("OS.symlink('/etc/passwd', @CACHE_DIR@ + '/' + '1' * 32 + '.codes')"),
    "forge_program_store": _write("fd = OS.open(@STORE_DIR@ + '/manifest.json', OS.O_TRUNC | OS.O_WRONLY)\nOS.write(fd, b'{}')"),
    "fill_disk_hook_off": _write("fd = OS.open('/tmp/pwned_fill', OS.O_CREAT | OS.O_WRONLY)\nfor _ in range(100):\n    OS.write(fd, b'x' * 2**20)"),
    # secrets: other processes' /proc, $HOME, the notebook folder, the environment, inherited fds
    "read_kernel_environ": _read("'/proc/@KERNEL_PID@/environ'"),
    "read_kernel_environ_hook_off": _read("'/proc/@KERNEL_PID@/environ'", "os", hook_off=True),
    "read_kernel_mem": _read("'/proc/@KERNEL_PID@/mem'", "os"),
    "read_kernel_cmdline": _read("'/proc/@KERNEL_PID@/cmdline'"),
    "read_kernel_maps": _read("'/proc/@KERNEL_PID@/maps'", "ctypes"),
    "read_kernel_fd_dir": _read("'/proc/@KERNEL_PID@/fd'", "listdir"),
    "read_supervisor_environ": _read(f"'/proc/%d/environ' % {PPID}"),
    "read_init_environ": _read("'/proc/1/environ'", "openat"),
    "read_proc_self_root_home": _read("'/proc/self/root' + @HOME_SECRET@"),
    "read_home_secret": _read("@HOME_SECRET@"),
    "read_home_secret_os": _read("@HOME_SECRET@", "os"),
    "read_home_secret_numpy": _read("@HOME_SECRET@", "np"),
    "read_home_secret_ctypes": _read("@HOME_SECRET@", "ctypes"),
    "read_home_secret_openat": _read("@HOME_SECRET@", "openat"),
    "read_home_secret_hook_off": _read("@HOME_SECRET@", hook_off=True),
    "list_home": _read("OS.path.dirname(@HOME_SECRET@)", "listdir"),
    "read_notebook_folder_file": _read("@WORK_DIR@ + '/notebook_secret.txt'"),
    "list_notebook_folder": _read("@WORK_DIR@", "listdir"),
    "read_output_cache": _read("@CACHE_DIR@", "listdir"),
    "read_etc_passwd": _read("'/etc/passwd'", "os"),
    "environment_has_the_key": _attack("return 1 if any('RED_TEAM' in k for k in OS.environ) else -1"),
    "environ_from_libc": _attack("return 1 if LIBC.getenv(b'ALCHEMIST_RED_TEAM_KEY') else -1"),
    "read_inherited_fds": _attack(
        "got = b''\nfor fd in range(3, 256):\n    try:\n        got += OS.read(fd, 100)\n    except OSError:\n        pass\n"
        "if got:\n    raise ValueError('LEAKED ' + repr(got[:200]))\nreturn -1"),
    "drain_supervisor_pipe": _read(f"'/proc/%d/fd/0' % {PPID}", "os"),
    "forge_frame_into_supervisor_pipe": _attack(
        f"fd = OS.open('/proc/%d/fd/1' % {PPID}, OS.O_WRONLY)\nOS.write(fd, b'AM\\x0d\\x00' + b'\\xff' * 4)\nreturn 1", hook_off=True),
    "process_vm_readv_kernel": _attack(
        "buf = CT.create_string_buffer(64)\nlocal = (CT.c_void_p * 2)(CT.addressof(buf), 64)\nremote = (CT.c_void_p * 2)(0x400000, 64)\n"
        "r = LIBC.syscall(310, @KERNEL_PID@, local, 1, remote, 1, 0)\nreturn 1 if r > 0 else -1"),
    "ptrace_attach_kernel": _syscall(101, 16, K, 0, 0, ok="r == 0"),
    "ptrace_attach_supervisor": _syscall(101, 16, PPID, 0, 0, ok="r == 0"),
    # signals and pidfds: the kernel, the supervisor, siblings
    "kill_kernel": _attack(f"OS.kill({K}, 9)\nreturn 1"),
    "kill_kernel_hook_off": _attack(f"OS.kill({K}, 9)\nreturn 1", hook_off=True),
    "stop_supervisor_hook_off": _attack(f"OS.kill({PPID}, 19)\nreturn 1", hook_off=True),
    "kill_supervisor_hook_off": _attack(f"OS.kill({PPID}, 9)\nreturn 1", hook_off=True),
    "term_supervisor_hook_off": _attack(f"OS.kill({PPID}, 15)\nreturn 1", hook_off=True),
    "killpg_hook_off": _attack("OS.killpg(0, 9)\nreturn 1", hook_off=True),
    "kill_everyone_hook_off": _attack("OS.kill(-1, 0)\nreturn 1", hook_off=True),
    "kill_siblings_hook_off": _attack(
        "hit = 0\nfor pid in range(2, 64):\n    if pid != OS.getpid():\n        try:\n            OS.kill(pid, 0)\n            hit += 1\n"
        "        except OSError:\n            pass\nreturn 1 if hit else -1", hook_off=True),
    "pidfd_send_signal_kernel": _attack(f"fd = OS.pidfd_open({K})\nIMP('signal').pidfd_send_signal(fd, 9)\nreturn 1"),
    "pidfd_send_signal_supervisor": _attack(f"fd = OS.pidfd_open({PPID})\nIMP('signal').pidfd_send_signal(fd, 19)\nreturn 1"),
    "syscall_kill_kernel": _syscall(62, K, 9, ok="r == 0"),
    "syscall_tgkill_kernel": _syscall(234, K, K, 9, ok="r == 0"),
    "syscall_tkill_supervisor": _syscall(200, PPID, 19, ok="r == 0"),
    "syscall_rt_sigqueueinfo_kernel": _syscall(129, K, 9, "CT.create_string_buffer(128)", ok="r == 0"),
    "syscall_pidfd_getfd_supervisor": _syscall(438, 0, 0, 0, ok="r >= 0"),
    # scheduling of other processes (none of these raise an audit event)
    "renice_kernel": _attack(f"OS.setpriority(OS.PRIO_PROCESS, {K}, 19)\nreturn 1"),
    "renice_supervisor": _attack(f"OS.setpriority(OS.PRIO_PROCESS, {PPID}, 19)\nreturn 1"),
    "renice_everyone": _attack("OS.setpriority(OS.PRIO_USER, 0, 19)\nreturn 1"),
    "affinity_kernel": _attack(f"OS.sched_setaffinity({K}, {{0}})\nreturn 1"),
    "scheduler_idle_kernel": _attack(f"OS.sched_setscheduler({K}, OS.SCHED_IDLE, OS.sched_param(0))\nreturn 1"),
    "scheduler_supervisor": _attack(f"OS.sched_setscheduler({PPID}, OS.SCHED_BATCH, OS.sched_param(0))\nreturn 1"),
    "syscall_sched_setattr_kernel": _syscall(314, K, "CT.create_string_buffer(56)", 0, ok="r == 0"),
    "syscall_ioprio_set_kernel": _syscall(251, 1, K, 3 << 13, ok="r == 0"),
    # networking
    "socket_create": _attack("IMP('socket').socket()\nreturn 1"),
    "socket_connect_kernel_port": _attack("s = IMP('socket').create_connection(('127.0.0.1', @PORT@), timeout=0.5)\nreturn 1", hook_off=True),
    "syscall_socket": _syscall(41, 2, 1, 0),
    "syscall_socketpair": _syscall(53, 1, 1, 0, "CT.create_string_buffer(8)", ok="r == 0"),
    "abstract_unix_socket_hook_off": _attack(
        "s = IMP('socket').socket(IMP('socket').AF_UNIX)\ns.connect('\\0alchemist-red-team')\nreturn 1", hook_off=True),
    # privileges, namespaces, kernel interfaces
    "unshare_user_namespace": _attack("return 1 if LIBC.unshare(0x10000000) == 0 else -1"),
    "setns": _syscall(308, 0, 0, ok="r == 0"),
    "mount_tmpfs": _attack("return 1 if LIBC.mount(b'none', b'/tmp', b'tmpfs', 0, None) == 0 else -1"),
    "chroot": _attack("return 1 if LIBC.chroot(b'/tmp') == 0 else -1"),
    "bpf_syscall": _syscall(321, 0, "CT.create_string_buffer(128)", 128),
    "perf_event_open": _syscall(298, "CT.create_string_buffer(128)", 0, -1, -1, 0),
    "userfaultfd": _syscall(323, 0),
    "keyctl": _syscall(250, 0, -3, 0, ok="r >= 0"),
    "memfd_create": _syscall(319, "CT.c_char_p(b'x')", 0),
    "capset_regain_all": _attack(
        "hdr = (CT.c_uint32 * 2)(0x20080522, 0)\ndata = (CT.c_uint32 * 6)(*([0xffffffff] * 6))\n"
        "return 1 if LIBC.capset(hdr, data) == 0 else -1"),
    "prctl_ptracer_any": _attack("return 1 if LIBC.prctl(0x59616d61, -1, 0, 0, 0) == 0 else -1"),
    "prctl_dumpable": _attack("return 1 if LIBC.prctl(4, 1, 0, 0, 0) == 0 else -1"),
    "personality": _syscall(135, 0x0400000, ok="r >= 0"),
    "fcntl_setown_kernel": _attack(f"return 1 if LIBC.fcntl(0, 8, {K}) == 0 else -1"),
    "setrlimit_raise": _attack("IMP('resource').setrlimit(IMP('resource').RLIMIT_AS, (-1, -1))\nreturn 1", hook_off=True),
    "x32_abi_syscall": _syscall(0x40000000 + 39, ok="r > 0"),  # getpid through the x32 ABI: the filter kills it
}
# programs that must not keep their labels (output forgery, result-map corruption, messages)
FORGERIES = {
    "forge_out_of_range_codes": (
        "import sys\ndef f(x):\n    sys._getframe(1).f_locals['out'][0] = 57\n    return 1\n", True, "crashed"),
    "forge_done_and_exit": (
        "import sys, os\ndef f(x):\n    mm = sys._getframe(1).f_locals['mm']\n    mm[0] = 1\n    os._exit(0)\n", True, "crashed"),
    "forge_memory_flag": ("import sys\ndef f(x):\n    sys._getframe(1).f_locals['mm'][1] = 7\n    return 1\n", True, "crashed"),
    "forge_state_byte": ("import sys, os\ndef f(x):\n    sys._getframe(1).f_locals['mm'][0] = 200\n    os._exit(0)\n", True, "crashed"),
    "control_chars_in_message": ("def f(x):\n    raise ValueError('\\x1b[2J\\r\\nforged status: ok\\x00\\x07')\n", False, "faulted"),
    "huge_message": ("def f(x):\n    raise ValueError('x' * 1000000)\n", False, "faulted"),
    "deep_nesting_source": ("def f(x):\n    return " + "-" * 5000 + "1\n", True, "rejected"),
    "huge_source": ("def f(x):\n    return 1\n" + "# padding\n" * 20000, True, "rejected"),
    "thread_bomb": ("import threading, time\ndef f(x):\n    threading.stack_size(32768)\n    for _ in range(100000):\n"
                    "        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n    return 1\n", True, "faulted"),
    "hook_defaults_then_fork": (G + HOOK_OFF + "def f(x):\n    hook_off()\n    OS.fork()\n    return 1\n", False, "faulted"),
}

INVALID_OUTPUTS = {"returns_float", "returns_list", "returns_dict", "unknown_class", "out_of_range"}
OS_ISOLATION = isolation_report()
needs_os = pytest.mark.skipif(OS_ISOLATION["isolation"] != "os",
                              reason=f"no OS isolation here: {OS_ISOLATION.get('problems')}")


@pytest.fixture(scope="module")
def clean_good():
    return apply_programs(list(GOOD.values()), INPUTS, LS, progress=False).L


@pytest.fixture
def arena(tmp_path, monkeypatch):
    """A working dir (the "notebook folder") with files, a canary beside it, a temp $HOME holding a
    secret, the secret in the kernel's environment, a listening port, and a fresh supervisor started
    from that environment."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    for name in ("data.csv", "notes.txt"):
        (work / name).write_text(name)
    (work / "notebook_secret.txt").write_text(SECRET)
    (home / ".secret").write_text(SECRET)
    canary = tmp_path / "canary.txt"
    canary.write_text("canary")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(SECRET_ENV, SECRET)
    shared_supervisor().close()  # the next run starts one from this environment
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    values = {"@KERNEL_PID@": str(os.getpid()), "@CANARY@": repr(str(canary)), "@HOME_SECRET@": repr(str(home / ".secret")),
              "@WORK_DIR@": repr(str(work)), "@CACHE_DIR@": repr(str(tmp_path / "cache")),
              "@STORE_DIR@": repr(str(tmp_path / "store" / "red")), "@PORT@": str(listener.getsockname()[1])}
    yield {"tmp": tmp_path, "work": work, "canary": canary, "values": values, "listener": listener}
    listener.close()
    shared_supervisor().close()


def _render(source, values):
    for token, value in values.items():
        source = source.replace(token, value)
    return source.replace("{canary!r}", values["@CANARY@"])


def _snapshot(tmp):
    skip = (tmp / "cache", tmp / "store")
    files = sorted(p for p in tmp.rglob("*") if not any(p == s or s in p.parents for s in skip))
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_mode, p.read_bytes() if p.is_file() else b"") for p in files}


def _outside(names=("/", "/tmp", "/dev/shm")):
    return {d: sorted(n for n in os.listdir(d) if "pwned" in n) for d in names}


def _kernel_state():
    return (os.getpid(), os.getpriority(os.PRIO_PROCESS, 0), sorted(os.sched_getaffinity(0)), os.sched_getscheduler(0))


def _processes():
    """pid -> (ppid, pid-namespace inode) for every visible process."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
                out[int(entry)] = (ppid, os.readlink(f"/proc/{entry}/ns/pid"))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _supervisor_family(root):
    """The supervisor's descendants, plus every process in its pid namespace."""
    procs = _processes()
    family, changed = {root}, True
    while changed:
        changed = False
        for pid, (ppid, _) in procs.items():
            if ppid in family and pid not in family:
                family.add(pid)
                changed = True
    namespaces = {procs[p][1] for p in family if p in procs} - {procs.get(os.getpid(), (0, None))[1]}
    family |= {pid for pid, (_, ns) in procs.items() if ns in namespaces}
    return family


def _corpus():
    """(name, source, group, expected) for every hostile program."""
    items = [(n, s, "misbehaving", (r, st)) for n, (s, r, st) in MISBEHAVING.items()]
    items += [(n, s, "forgery", (r, st)) for n, (s, r, st) in FORGERIES.items()]
    items += [(n, s, "attack", None) for n, s in ATTACKS.items()]
    return items


def test_corpus_is_large_enough_and_covers_every_class():
    assert len(_corpus()) >= 100 and len(ATTACKS) >= 70
    names = " ".join(name for name, *_ in _corpus())
    for needed in ("fork_exec", "daemon", "environ", "mem", "home", "kill", "pidfd", "renice", "affinity",
                   "scheduler", "hook_off", "forge_output_cache", "symlink", "forge_out_of_range", "supervisor",
                   "drain", "deep_nesting", "socket", "ptrace", "process_vm", "forge_frame", "notebook"):
        assert needed in names, needed


def test_static_check_rejects_with_reasons(tmp_path):
    for name, (source, rejected, _) in MISBEHAVING.items():
        result = check_program(source.replace("{canary!r}", repr(str(tmp_path / "canary.txt"))))
        assert result.ok == (not rejected), (name, result.reasons)
        if not result.ok:
            assert result.reasons and all(len(r) > 10 for r in result.reasons), name
    for name in ("deep_nesting_source", "huge_source"):  # never raises, whatever the source
        assert not check_program(FORGERIES[name][0]).ok


def _run(arena, check):
    values, tmp = arena["values"], arena["tmp"]
    corpus = _corpus()
    mixed, hostile_cols, good_cols = [], {}, []
    goods = list(GOOD.values())
    for i, (name, source, _, _) in enumerate(corpus):
        hostile_cols[name] = len(mixed)
        mixed.append(Program(_render(source, values), name=name))
        if i % 2:  # a good program after every other hostile one, running beside them
            good_cols.append((len(mixed), i % len(goods)))
            mixed.append(goods[i % len(goods)])
    store = ProgramStore("red", tmp / "store")
    for name in hostile_cols:
        store.save(mixed[hostile_cols[name]])
    original = (builtins.len, builtins.type, re.search, re.compile)
    kernel = _kernel_state()
    before, outside = _snapshot(tmp), _outside()
    with open("parent.log", "w"):  # an fd the children could inherit; nothing may reach it
        before = _snapshot(tmp)
        result = apply_programs(mixed, INPUTS, LS, check=check, time_limit_s=2.0, memory_limit_mb=512, progress=False,
                                cache=OutputCache(tmp / "cache"))
    supervisor = shared_supervisor()
    return result, {"kernel": kernel, "before": before, "outside": outside, "original": original,
                    "supervisor": supervisor.process.pid, "corpus": corpus, "hostile": hostile_cols, "good": good_cols}


def _assert_contained(arena, result, state, clean_good):
    tmp = arena["tmp"]
    corpus = state["corpus"]
    assert result.isolation == "os"
    for layer in ("seccomp", "landlock", "user_ns", "pid_ns", "net_ns"):  # the supervisor got every layer the OS offers
        assert result.layers[layer] == OS_ISOLATION[layer], layer
    # the kernel: alive, same pid, nice, affinity, scheduler; nothing of its Python state changed
    assert _kernel_state() == state["kernel"]
    assert (builtins.len, builtins.type, re.search, re.compile) == state["original"]
    assert INPUTS[1].startswith("row 1") and len(INPUTS) == 40
    # files: nothing outside the sandbox touched
    assert _snapshot(tmp) == state["before"], "a hostile program changed a file"
    assert _outside() == state["outside"], "a hostile program created a file outside the temp dir"
    # processes: the supervisor (and its pid-1 twin) only
    family = _supervisor_family(state["supervisor"])
    assert len(family) <= 2, f"processes left after apply(): {sorted(family)}"
    # nothing connected to the kernel's port
    with pytest.raises(BlockingIOError):
        arena["listener"].accept()
    # good programs: exactly the clean run's columns
    assert len(state["good"]) >= 80
    for col, g in state["good"]:
        assert (result.L[:, col] == clean_good[:, g]).all(), result.runs[col - 1].program.name
    # attacks: none worked, none leaked what it read
    runs = {name: result.runs[col] for name, col in state["hostile"].items()}
    for name, _, group, _ in corpus:
        run = runs[name]
        assert run.message and "\n" not in run.message and all(c.isprintable() for c in run.message), name
        assert len(run.message) <= 1000, name
        assert "LEAKED" not in run.message, (name, run.message)
        if group == "attack":
            assert not (result.L[:, state["hostile"][name]] == 1).any(), (name, run.status, run.message)
    # the secret: nowhere in results, caches or the program store
    blob = repr(result.summary()) + repr([r.runtime_s for r in result.runs]) + result.L.tobytes().hex()
    assert SECRET not in blob
    for path in tmp.rglob("*"):
        if path.is_file() and path.name not in (".secret", "notebook_secret.txt"):
            assert SECRET.encode() not in path.read_bytes(), path
    return runs


@needs_os
def test_runtime_containment_without_static_check(arena, clean_good):
    result, state = _run(arena, check=False)
    runs = _assert_contained(arena, result, state, clean_good)
    for name, (source, rejected, status) in {**MISBEHAVING, **FORGERIES}.items():
        assert runs[name].status == status, (name, runs[name].status, runs[name].message)
    assert runs["infinite_loop"].message.startswith("exceeded the 2 s time limit")
    assert runs["slow_one_row"].codes[:7].tolist() == [1] * 7  # progress before the slow row survives
    assert "PermissionError: sandbox: os.system" in runs["os_system"].message
    assert "SIGSEGV" in runs["segfault_ctypes"].message
    for name in INVALID_OUTPUTS:
        assert runs[name].invalid == len(INPUTS), name
    assert runs["stdout_flood"].codes.tolist() == [1] * len(INPUTS)
    assert runs["monkeypatch_builtins"].codes.tolist() == [1] * len(INPUTS)
    assert "corrupted its result map" in runs["forge_out_of_range_codes"].message
    assert "never ran" in runs["forge_done_and_exit"].message
    # with the audit hook switched off, the OS refuses: seccomp (EPERM) or Landlock (EACCES)
    for name in ("fork_exec_no_audit_event", "os_fork_hook_off", "popen_hook_off", "create_hook_off",
                 "remove_canary_hook_off", "read_home_secret_hook_off", "kill_kernel_hook_off", "renice_kernel",
                 "affinity_kernel", "scheduler_idle_kernel", "stop_supervisor_hook_off"):
        assert runs[name].status == "faulted", (name, runs[name].status, runs[name].message)
        assert "Operation not permitted" in runs[name].message or "Permission denied" in runs[name].message, (name, runs[name].message)
    assert runs["read_kernel_environ"].status == "faulted" and "Permission denied" in runs["read_kernel_environ"].message


@needs_os
def test_checked_run_rejects_statically_and_contains_the_rest(arena, clean_good):
    result, state = _run(arena, check=True)
    runs = _assert_contained(arena, result, state, clean_good)
    for name, (source, rejected, status) in {**MISBEHAVING, **FORGERIES}.items():
        # the check may grow stricter; what it lets through must behave as without it
        assert runs[name].status in (("rejected",) if rejected else (status, "rejected")), (name, runs[name].status)


def test_a_dead_supervisor_costs_only_the_running_program():
    sleeper = "import time\ndef slow(x):\n    time.sleep(30)\n    return 1\n"
    quick = [f"def q{i}(x):\n    return {i % 2}\n" for i in range(4)]
    supervisor = shared_supervisor()
    supervisor.ensure_started()
    killer = threading.Timer(2.0, lambda: os.kill(supervisor.process.pid, 9))
    killer.start()
    try:
        result = apply_programs([sleeper] + quick, INPUTS, LS, check=False, workers=1, time_limit_s=20, progress=False)
    finally:
        killer.cancel()
    assert result.runs[0].status == "crashed" and "supervisor died" in result.runs[0].message
    assert [r.status for r in result.runs[1:]] == ["ok"] * 4
    assert [int(result.L[0, j]) for j in range(1, 5)] == [0, 1, 0, 1]


def test_forged_frames_are_refused_and_never_unpickled(tmp_path, monkeypatch):
    """A fake supervisor that greets correctly, then sends a pickle that would create a file if loaded."""
    import pickle
    import subprocess
    import sys

    from alchemist_magics.programs import frames, supervisor as sup

    marker = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = pickle.dumps(("result", 0, "ok", b"\x01" * len(INPUTS), 0.0))
    evil = pickle.dumps(Evil())
    script = (
        "import sys, json\nout = sys.stdout.buffer\n"
        "def frame(kind, data):\n    out.write(b'AM' + bytes([kind, 0]) + len(data).to_bytes(4, 'little') + data)\n    out.flush()\n"
        "frame(10, json.dumps({'isolation': 'os'}).encode())\n"
        "sys.stdin.buffer.read(8)\n"
        f"frame(11, (0).to_bytes(4, 'little'))\nframe(13, {evil!r} + {payload!r})\n"
        "import time; time.sleep(5)\n")

    def fake_start(self):
        self.process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self.loaded.clear()
        kind, data = frames.read_frame(self.process.stdout, {frames.HELLO: frames.MAX_CONTROL}, 10)
        self.report = frames.load_json(data)

    monkeypatch.setattr(sup.Supervisor, "_start", fake_start)
    fake = sup.Supervisor()
    monkeypatch.setattr(sup, "_shared", fake)
    import alchemist_magics.programs.apply as apply_module

    monkeypatch.setattr(apply_module, "shared_supervisor", lambda: fake)
    result = apply_programs(["def f(x):\n    return 1\n", "def g(x):\n    return 0\n"], INPUTS, LS, progress=False)
    assert [r.status for r in result.runs] == ["crashed", "crashed"]
    assert all("protocol violation" in r.message for r in result.runs)
    assert (result.L == -1).all() and not marker.exists()
    fake.close()


def test_frames_validate_every_field():
    from alchemist_magics.programs import frames

    n, k = 5, 2
    good = frames.encode_result(0, "ok", "labeled 5/5 rows", np.array([0, 1, -1, 0, 1], np.int8), 0.5)
    assert frames.parse_result(good, 1, n, k)[1] == "ok"
    bad_payloads = [
        good[:-1],  # short
        frames.encode_result(3, "ok", "m", np.zeros(n, np.int8), 0.1),  # job out of range
        good[:4] + bytes([99]) + good[5:],  # status code out of range
        frames.encode_result(0, "ok", "m", np.array([0, 1, 57, 0, 1], np.int8), 0.1),  # code out of range
        frames.encode_result(0, "ok", "m", np.array([0, 1, -4, 0, 1], np.int8), 0.1),  # ok but a row never ran
        frames.encode_result(0, "ok", "m", np.zeros(n, np.int8), 0.1).replace(b"m", b"\x1b"),  # control char
        frames.encode_result(0, "ok", "mm", np.zeros(n, np.int8), 0.1).replace(b"mm", b"\xff\xfe"),  # not UTF-8
        frames.encode_result(0, "ok", "m", np.zeros(n, np.int8), float("nan")),
    ]
    bad_payloads[-1] = bad_payloads[-1][:5] + np.float64(-1.0).tobytes() + bad_payloads[-1][13:]
    for payload in bad_payloads:
        with pytest.raises(frames.ProtocolError):
            frames.parse_result(payload, 1, n, k)
    import io

    for stream in (b"XX\x0d\x00\x00\x00\x00\x00", b"AM\x0d\x00" + (10**6).to_bytes(4, "little"), b"AM\x63\x00\x00\x00\x00\x00", b"AM\x0d"):
        with pytest.raises(frames.ProtocolError):
            frames.read_frame(io.BytesIO(stream), {frames.RESULT: 100})
    assert frames.clean_message("a\x1b[2J\r\nb" + "x" * 1000).startswith("a [2J  b") and len(frames.clean_message("x" * 1000)) == 300


def test_isolation_report_names_every_layer():
    from alchemist_magics.programs import describe_isolation

    report = isolation_report()
    for key in ("isolation", "seccomp", "landlock", "landlock_abi", "user_ns", "pid_ns", "net_ns", "problems"):
        assert key in report
    line = describe_isolation()
    assert line.startswith("sandbox isolation: ") and "\n" not in line
    if report["isolation"] == "os":
        assert report["seccomp"] and report["landlock"] and "seccomp-bpf" in line


@needs_os
def test_the_smoke_test_path_holds_too(arena):
    """``Workbench.add`` smoke-tests a program before it joins: the red team killed the kernel from there."""
    from alchemist_magics.programs import smoke_test

    kernel = _kernel_state()
    for name in ("kill_kernel_hook_off", "pidfd_send_signal_kernel", "scheduler_idle_kernel", "kill_supervisor_hook_off"):
        result = smoke_test(_render(ATTACKS[name], arena["values"]), INPUTS[:6], LS, time_limit_s=5)
        assert not result.ok, name
    assert _kernel_state() == kernel
    assert smoke_test(GOOD["kw_check"], INPUTS[:6], LS).ok  # and the supervisor still serves


def test_a_stopped_supervisor_is_replaced_not_waited_for(monkeypatch):
    """The red team SIGSTOPped the supervisor and the kernel hung; now silence past the limit is a death."""
    from alchemist_magics.programs import supervisor as sup

    monkeypatch.setattr(sup, "SILENCE_LIMIT_S", 3.0)
    supervisor = shared_supervisor()
    supervisor.ensure_started()
    procs = _processes()
    outer = supervisor.process.pid
    speaker = next((pid for pid, (ppid, _) in procs.items() if ppid == outer), outer)  # the pid-1 twin, if any
    sleeper = "import time\ndef napper(x):\n    time.sleep(30)\n    return 1\n"
    quick = [f"def quick{i}(x):\n    return {i % 2}\n" for i in range(3)]
    stopper = threading.Timer(1.0, lambda: os.kill(speaker, 19))
    stopper.start()
    start = time.monotonic()
    try:
        result = apply_programs([sleeper] + quick, INPUTS, LS, check=False, workers=1, time_limit_s=25, progress=False)
    finally:
        stopper.cancel()
    assert time.monotonic() - start < 20
    assert result.runs[0].status == "crashed" and "supervisor" in result.runs[0].message
    assert [r.status for r in result.runs[1:]] == ["ok"] * 3
    time.sleep(0.2)
    left = _processes()
    assert outer not in left and speaker not in left, "the stopped supervisor was left behind"
