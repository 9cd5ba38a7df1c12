import os
import signal

import numpy as np
import pandas as pd
import pytest

from alchemist_magics.programs import (
    LabelSpace, OutputCache, Program, apply_programs, fingerprint_inputs, smoke_test, to_snorkel_lfs,
)
from alchemist_magics.programs.rows import make_row_type
from alchemist_magics.programs.supervisor import shared_supervisor

LS = LabelSpace(["ham", "spam"], aliases={"junk": "spam"})
TEXTS = ["check out my channel", "great song", "subscribe pls", "lol", "I love this song so much", "http://spam.example"] * 5
PROGRAMS = [
    Program("def kw(text):\n    return 1 if 'check' in text or 'subscribe' in text else -1\n"),
    Program("import re\nURL = re.compile(r'https?://')\n\ndef link(text):\n    return 'junk' if URL.search(text) else None\n"),
    Program("def song(text):\n    return 'HAM' if 'song' in text else -1\n"),
    Program("def short(text):\n    return len(text) < 5\n"),
    Program("def sometimes_bad(text):\n    if text == 'lol':\n        raise KeyError(text)\n    return 2.5 if 'song' in text else 0\n"),
]
EXPECTED = np.array([[1, -1, -1, 0, 0], [-1, -1, 0, 0, -1], [1, -1, -1, 0, 0],
                     [-1, -1, -1, 1, -1], [-1, -1, 0, 0, -1], [-1, 1, -1, 0, 0]] * 5, dtype=np.int8)


def test_matrix_counts_and_messages():
    result = apply_programs(PROGRAMS, TEXTS, LS, progress=False)
    assert result.L.dtype == np.int8 and result.L.shape == (30, 5)
    assert (result.L == EXPECTED).all()
    bad = result.runs[4]
    assert (bad.status, bad.faults, bad.invalid, bad.abstains) == ("ok", 5, 10, 0)
    assert bad.message == "labeled 15/30 rows, 5 faults (first: row 3: KeyError: 'lol'), 10 invalid outputs (first: row 1: 2.5 (float))"
    assert [r.cached for r in result.runs] == [False] * 5
    assert result.summary()[0]["name"] == "kw"


def test_one_worker_gives_the_same_matrix():
    assert (apply_programs(PROGRAMS, TEXTS, LS, workers=1, progress=False).L == EXPECTED).all()


def test_row_objects_for_several_columns():
    Row = make_row_type(["title", "body"])  # the data layer's read-only row: x.col and x["col"]
    rows = [Row("Hi", "check this"), Row("Song", "nice")]
    source = "def f(x):\n    return 1 if 'check' in x.body else (0 if x['title'] == 'Song' else -1)\n"
    assert apply_programs([source], rows, LS, progress=False).L[:, 0].tolist() == [1, 0]


def test_rejected_and_timeout_programs_leave_abstain_columns():
    programs = ["import os\ndef f(x):\n    return 1\n", "def g(x):\n    while True:\n        pass\n", PROGRAMS[0]]
    result = apply_programs(programs, TEXTS, LS, time_limit_s=0.5, progress=False)
    assert [r.status for r in result.runs] == ["rejected", "timeout", "ok"]
    assert "import of 'os' is not allowed" in result.runs[0].message
    assert (result.L[:, :2] == -1).all() and (result.L[:, 2] == EXPECTED[:, 0]).all()


def test_empty_inputs():
    result = apply_programs(PROGRAMS[:2], [], LS, progress=False)
    assert result.L.shape == (0, 2) and [r.status for r in result.runs] == ["ok", "ok"]


def test_cache_reapplies_only_edited_programs(tmp_path):
    cache = OutputCache(tmp_path / "cache")
    first = apply_programs(PROGRAMS, TEXTS, LS, cache=cache, progress=False)
    assert len(cache) == 5 and not any(r.cached for r in first.runs)
    edited = PROGRAMS[:2] + [Program(PROGRAMS[2].source.replace("'song'", "'love'"))] + PROGRAMS[3:]
    second = apply_programs(edited, TEXTS, LS, cache=cache, progress=False)
    assert [r.cached for r in second.runs] == [True, True, False, True, True]
    assert (second.L[:, [0, 1, 3, 4]] == first.L[:, [0, 1, 3, 4]]).all()
    assert second.L[:, 2].tolist()[:6] == [-1, -1, -1, -1, 0, -1]
    # another dataset or label space misses; a damaged file is a miss, not a crash
    other = apply_programs(PROGRAMS[:1], TEXTS[:7], LS, cache=cache, progress=False)
    assert not other.runs[0].cached
    for path in (tmp_path / "cache").glob("*.npy"):
        path.write_bytes(b"garbage")
    assert not apply_programs(PROGRAMS[:1], TEXTS, LS, cache=cache, progress=False).runs[0].cached
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_failed_runs_are_not_cached(tmp_path):
    cache = OutputCache(tmp_path)
    apply_programs(["def g(x):\n    while True:\n        pass\n"], TEXTS, LS, cache=cache, time_limit_s=0.3, progress=False)
    assert len(cache) == 0


def test_fingerprint_changes_with_content():
    assert fingerprint_inputs(TEXTS) == fingerprint_inputs(list(TEXTS))
    assert fingerprint_inputs(TEXTS) != fingerprint_inputs(TEXTS[:-1] + ["x"])


@pytest.mark.parametrize("source, reason", [
    ("def f(x):\n    return 1 / 0\n", "faulted: raised on every row (first: row 0: ZeroDivisionError"),
    ("def f(x):\n    return 1 / 0 if 'o' in x else -1\n", "abstains or raises on every sample row"),
    ("def f(x):\n    return -1\n", "abstains on every sample row"),
    ("def f(x):\n    return 'nope'\n", "returns invalid outputs on every sample row"),
    ("def f(x):\n    return 'spam'\n", "returns the same class ('spam') on every sample row"),
    ("import os\ndef f(x):\n    return 1\n", "rejected: line 1: import of 'os'"),
    ("def f(x):\n    while True:\n        pass\n", "timeout: exceeded the 0.5 s"),
])
def test_smoke_test_rejects_useless_programs(source, reason):
    result = smoke_test(source, TEXTS[:6], LS, time_limit_s=0.5)
    assert not result.ok and reason in result.reasons[0], result.reasons


def test_smoke_test_accepts_a_useful_program():
    assert smoke_test(PROGRAMS[0], TEXTS[:6], LS).ok


def test_snorkel_lfs_give_the_same_matrix():
    from snorkel.labeling import PandasLFApplier

    lfs = to_snorkel_lfs(PROGRAMS, LS)
    L = PandasLFApplier(lfs).apply(pd.DataFrame({"text": TEXTS}), progress_bar=False)
    assert (L == EXPECTED).all() and [lf.name for lf in lfs] == [p.name for p in PROGRAMS]
    with pytest.raises(ValueError, match="fails the check"):
        to_snorkel_lfs(["import os\ndef f(x):\n    return 1\n"], LS)


# -- the supervisor process -------------------------------------------------------------------------

def test_supervisor_keeps_rows_and_survives_being_killed():
    texts = [f"row {i} spam" if i % 3 == 0 else f"row {i}" for i in range(500)]
    program = "def spam(text):\n    return 1 if 'spam' in text else -1\n"
    first = apply_programs([program], texts, LS, progress=False)
    supervisor = shared_supervisor()
    keys = list(supervisor.loaded)
    pid = supervisor.process.pid
    again = apply_programs([program], texts, LS, progress=False)
    assert list(supervisor.loaded) == keys and supervisor.process.pid == pid  # same process, rows not re-sent
    os.kill(pid, signal.SIGKILL)
    supervisor.process.wait()
    after = apply_programs([program], texts, LS, progress=False)  # a fresh supervisor takes over
    assert supervisor.process.pid != pid
    assert np.array_equal(first.L, again.L) and np.array_equal(first.L, after.L)
    assert int((first.L[:, 0] == 1).sum()) == 167


def test_programs_do_not_see_the_kernels_environment(monkeypatch):
    shared_supervisor().close()  # the next run starts a supervisor from this environment
    monkeypatch.setenv("ALCHEMIST_TEST_SECRET", "sk-not-a-real-key")
    peek = "import os\n\ndef peek(text):\n    return 1 if 'ALCHEMIST_TEST_SECRET' in os.environ else 0\n"
    result = apply_programs([peek], ["a", "b"], LS, check=False, progress=False)
    assert result.runs[0].status == "ok" and result.L[:, 0].tolist() == [0, 0]


def test_row_objects_travel_to_the_supervisor_intact():
    import pickle

    Row = make_row_type(["title", "body text"])
    row = pickle.loads(pickle.dumps(Row("t", "b")))
    assert (row.title, row["body text"], row._1) == ("t", "b", "b")


def test_supervisor_ends_when_its_kernel_dies(tmp_path):
    import subprocess
    import sys
    import time

    script = ("from alchemist_magics.programs import LabelSpace, apply_programs\n"
              "from alchemist_magics.programs.supervisor import shared_supervisor\n"
              "apply_programs(['def f(t):\\n    return 1\\n'], ['a', 'b'], LabelSpace(['x', 'y']), progress=False)\n"
              "print(shared_supervisor().process.pid, flush=True)\n"
              "import time; time.sleep(60)\n")
    kernel = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    supervisor_pid = int(kernel.stdout.readline())
    kernel.kill()
    kernel.wait()
    for _ in range(100):  # it gets SIGTERM from the kernel's death (Linux), or EOF at the latest
        try:
            os.kill(supervisor_pid, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{supervisor_pid}/stat") as f:
            if f.read().split()[2] == "Z":  # exited, waiting to be reaped by init
                return
        time.sleep(0.05)
    pytest.fail("the supervisor outlived its kernel")
