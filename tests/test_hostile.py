"""Hostile programs: every one is contained, statically (check) and at runtime (check bypassed)."""
import builtins
import os
import re

import pytest

from alchemist_magics.programs import LabelSpace, apply_programs, check_program

LS = LabelSpace(["ham", "spam"])
INPUTS = [f"row {i} check out my channel" if i % 3 else f"short {i}" for i in range(40)]
INPUTS[7] = "slow"

GOOD = {
    "kw_check": "def kw_check(text):\n    return 1 if 'check' in text else -1\n",
    "short": "def short(text):\n    return 'ham' if len(text) < 10 else None\n",
    "regex_my": "import re\nMY = re.compile(r'\\bmy\\b')\n\ndef regex_my(text):\n    return 'SPAM' if MY.search(text) else -1\n",
}

# name -> (source, rejected by the static check, status when run with the check bypassed).
# {canary} is an absolute path outside the working dir; relative paths land in the working dir.
HOSTILE = {
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
        "def f(x):\n    threading.Thread(target=spin).start()\n    return 0\n", True, "ok"),
    "hostile_at_import": ("import os\nos.remove({canary!r})\n\ndef f(x):\n    return 1\n", True, "load_error"),
    "dunder_escape": (
        "def f(x):\n    for c in ().__class__.__base__.__subclasses__():\n        if c.__name__ == 'Popen':\n"
        "            c(['touch', 'pwned_popen'])\n    return -1\n", True, "faulted"),
}
INVALID_OUTPUTS = {"returns_float", "returns_list", "returns_dict", "unknown_class", "out_of_range"}


@pytest.fixture
def arena(tmp_path, monkeypatch):
    """A working dir with files, a canary outside it, and a snapshot of both."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("data.csv", "notes.txt"):
        (work / name).write_text(name)
    canary = tmp_path / "canary.txt"
    canary.write_text("canary")
    monkeypatch.chdir(work)

    def snapshot():
        files = sorted(p for p in tmp_path.rglob("*"))
        return {str(p): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"") for p in files}

    return canary, snapshot


def _programs(canary, names):
    return [(name, HOSTILE[name][0].replace("{canary!r}", repr(str(canary)))) for name in names]


def _good_only():
    return apply_programs(list(GOOD.values()), INPUTS, LS, progress=False).L


def _run(canary, snapshot, check):
    names = list(HOSTILE)
    mixed = []
    for (name, source), good in zip(_programs(canary, names), list(GOOD.values()) * len(names)):
        mixed += [source, good]  # good programs interleaved so they run beside hostile ones
    texts = list(INPUTS)
    original = (builtins.len, builtins.type, re.search, re.compile)
    with open("parent.log", "w"):  # an fd the children inherit; nothing may reach it
        before = snapshot()
        result = apply_programs(mixed, INPUTS, LS, check=check, time_limit_s=2.0, memory_limit_mb=512, progress=False)
        assert snapshot() == before, "a hostile program changed a file"
    assert (builtins.len, builtins.type, re.search, re.compile) == original
    assert INPUTS == texts and INPUTS[1].startswith("row 1")
    good_L = _good_only()
    for j in range(len(names)):
        assert (result.L[:, 2 * j + 1] == good_L[:, j % len(GOOD)]).all()
    return {name: result.runs[2 * j] for j, name in enumerate(names)}


def test_corpus_is_large_enough():
    assert len(HOSTILE) >= 25


def test_static_check_rejects_with_reasons(tmp_path):
    for name, source in _programs(tmp_path / "canary.txt", HOSTILE):
        result = check_program(source)
        assert result.ok == (not HOSTILE[name][1]), (name, result.reasons)
        if not result.ok:
            assert result.reasons and all(len(r) > 10 for r in result.reasons), name


def test_runtime_containment_without_static_check(arena):
    canary, snapshot = arena
    runs = _run(canary, snapshot, check=False)
    for name, run in runs.items():
        assert run.status == HOSTILE[name][2], (name, run.status, run.message)
        assert run.message and "\n" not in run.message, name
    assert runs["infinite_loop"].message.startswith("exceeded the 2 s time limit")
    assert runs["slow_one_row"].codes[:7].tolist() == [1] * 7  # progress before the slow row survives
    assert "PermissionError: sandbox: os.system" in runs["os_system"].message
    assert "PermissionError: sandbox: os.kill" in runs["kill_parent"].message
    assert "SIGSEGV" in runs["segfault_ctypes"].message
    for name in INVALID_OUTPUTS:
        assert runs[name].invalid == len(INPUTS), name
    assert runs["stdout_flood"].codes.tolist() == [1] * len(INPUTS)
    assert runs["monkeypatch_builtins"].codes.tolist() == [1] * len(INPUTS)
    assert runs["raise_every_row"].faults == len(INPUTS)


def test_checked_run_rejects_statically_and_contains_the_rest(arena):
    canary, snapshot = arena
    runs = _run(canary, snapshot, check=True)
    for name, run in runs.items():
        source, rejected, status = HOSTILE[name]
        assert run.status == ("rejected" if rejected else status), (name, run.status, run.message)
