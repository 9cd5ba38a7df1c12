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
    for path in (tmp_path / "cache").glob("*.codes"):
        path.write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="integrity check"):
        assert not apply_programs(PROGRAMS[:1], TEXTS, LS, cache=cache, progress=False).runs[0].cached
    assert cache.corrupt == 1
    assert not list((tmp_path / "cache").glob("*.tmp"))


HANGS = "def g(x):\n    while True:\n        pass\n"


def test_failed_runs_keep_their_outcome_not_their_codes(tmp_path):
    cache = OutputCache(tmp_path)
    first = apply_programs([HANGS], TEXTS, LS, cache=cache, time_limit_s=0.3, progress=False).runs[0]
    assert first.status == "timeout" and not first.cached
    assert len(cache) == 0 and len(list(tmp_path.glob("*.outcome"))) == 1  # no codes, one outcome
    again = apply_programs([HANGS], TEXTS, LS, cache=cache, time_limit_s=0.3, progress=False).runs[0]
    assert again.cached and (again.status, again.message) == (first.status, first.message)
    # another limit, another source or other data: run again
    assert not apply_programs([HANGS], TEXTS, LS, cache=cache, time_limit_s=0.4, progress=False).runs[0].cached
    edited = HANGS.replace("pass", "x = 1")
    assert not apply_programs([edited], TEXTS, LS, cache=cache, time_limit_s=0.3, progress=False).runs[0].cached
    assert not apply_programs([HANGS], TEXTS[:-1], LS, cache=cache, time_limit_s=0.3, progress=False).runs[0].cached
    # a tampered outcome is a counted miss, never trusted
    for path in tmp_path.glob("*.outcome"):
        path.write_text('{"key": "x", "status": "ok", "message": "", "runtime_s": 0}')
    rerun = apply_programs([HANGS], TEXTS, LS, cache=cache, time_limit_s=0.3, progress=False).runs[0]
    assert not rerun.cached and rerun.status == "timeout" and cache.corrupt >= 1


def test_fingerprint_changes_with_content():
    assert fingerprint_inputs(TEXTS) == fingerprint_inputs(list(TEXTS))
    assert fingerprint_inputs(TEXTS) != fingerprint_inputs(TEXTS[:-1] + ["x"])
    # rows are not run together: ["a", "b"], ["a\xffb"], ["ab"] and [] / [""] all differ
    assert len({fingerprint_inputs(rows) for rows in (["a", "b"], ["a\xffb"], ["ab"], [], [""], ["\ud800"])}) == 6


def test_rows_changed_in_place_are_hashed_again(tmp_path):
    cache, rows = OutputCache(tmp_path), list(TEXTS)
    assert not apply_programs(PROGRAMS[:1], rows, LS, cache=cache, progress=False).runs[0].cached
    assert apply_programs(PROGRAMS[:1], tuple(rows), LS, cache=cache, progress=False).runs[0].cached
    rows[3] = "subscribe"  # the same list object, one row edited: not the same data
    again = apply_programs(PROGRAMS[:1], rows, LS, cache=cache, progress=False)
    assert not again.runs[0].cached and again.L[3, 0] == 1 and (again.L[4:, 0] == EXPECTED[4:, 0]).all()


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


# -- integrity of what is persisted ----------------------------------------------------------------------

def _entry(cache, program, fingerprint):
    return cache.directory / f"{cache._key(program, fingerprint, LS)}.codes"


def test_cache_entries_are_bound_to_their_key_and_content(tmp_path):
    import warnings

    cache = OutputCache(tmp_path / "c")
    fp = fingerprint_inputs(TEXTS)
    a, b = PROGRAMS[0], PROGRAMS[2]
    codes_a = apply_programs([a], TEXTS, LS, cache=cache, progress=False).runs[0].codes
    apply_programs([b], TEXTS, LS, cache=cache, progress=False)
    assert np.array_equal(cache.get(a, fp, LS, len(TEXTS)).codes, codes_a) and cache.corrupt == 0
    path_a, path_b = _entry(cache, a, fp), _entry(cache, b, fp)
    good_a = path_a.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        path_a.write_bytes(path_b.read_bytes())  # another key's (valid) entry copied over
        assert cache.get(a, fp, LS, len(TEXTS)) is None
        forged = bytearray(good_a)
        forged[-1] = 1 if forged[-1] != 1 else 0  # one code changed, hash not updated
        path_a.write_bytes(bytes(forged))
        assert cache.get(a, fp, LS, len(TEXTS)) is None
        path_a.write_bytes(b"")  # empty
        assert cache.get(a, fp, LS, len(TEXTS)) is None
        path_a.unlink()
        (tmp_path / "elsewhere.codes").write_bytes(good_a)
        path_a.symlink_to(tmp_path / "elsewhere.codes")  # a symlink to a valid entry: never followed
        assert cache.get(a, fp, LS, len(TEXTS)) is None
    assert cache.corrupt == 4
    path_a.unlink()
    assert cache.get(a, fp, LS, len(TEXTS)) is None and cache.corrupt == 4  # plain miss: not corrupt


def test_out_of_range_codes_in_a_cache_entry_are_refused(tmp_path):
    import hashlib
    import struct
    import warnings

    cache = OutputCache(tmp_path)
    fp = fingerprint_inputs(TEXTS)
    key = cache._key(PROGRAMS[0], fp, LS)

    def plant(codes: bytes, meta: bytes) -> None:  # hash and key right
        body = codes + meta
        header = struct.pack("<8s32s32sQI", b"ALCODES2", key.encode(), hashlib.sha256(body).digest(), len(codes), len(meta))
        (tmp_path / f"{key}.codes").write_bytes(header + body)

    good_meta = b'{"message": "labeled 0/9 rows", "runtime_s": 0.5}'
    plant(bytes(len(TEXTS)), good_meta)
    assert cache.get(PROGRAMS[0], fp, LS, len(TEXTS)).message == "labeled 0/9 rows" and cache.corrupt == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        plant(bytes([57]) * len(TEXTS), good_meta)  # codes out of range
        assert cache.get(PROGRAMS[0], fp, LS, len(TEXTS)) is None and cache.corrupt == 1
        plant(bytes(len(TEXTS)), b'{"message": "forged\\nline", "runtime_s": 0.5}')  # a control character
        assert cache.get(PROGRAMS[0], fp, LS, len(TEXTS)) is None and cache.corrupt == 2
        plant(bytes(len(TEXTS)), b'{"message": "x", "runtime_s": -1}')
        assert cache.get(PROGRAMS[0], fp, LS, len(TEXTS)) is None and cache.corrupt == 3


def test_llm_response_cache_verifies_entries(tmp_path):
    import hashlib
    import json
    import warnings

    from alchemist_magics.llm import ResponseCache

    cache = ResponseCache(tmp_path)
    k1, k2 = hashlib.sha256(b"1").hexdigest(), hashlib.sha256(b"2").hexdigest()
    cache.put(k1, {"text": "def f(x):\n    return 1\n"})
    cache.put(k2, {"text": "other"})
    assert cache.get(k1) == {"text": "def f(x):\n    return 1\n"} and cache.corrupt == 0
    p1, p2 = cache._path(k1), cache._path(k2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        record = json.loads(p1.read_text())
        record["entry"]["text"] = "import os"  # forged text, hash not updated
        p1.write_text(json.dumps(record))
        assert cache.get(k1) is None
        p1.write_text(p2.read_text())  # another key's entry
        assert cache.get(k1) is None
        p1.unlink()
        p1.symlink_to(p2)
        assert cache.get(k1) is None
        assert cache.get(hashlib.sha256(b"3").hexdigest()) is None  # a plain miss
    assert cache.corrupt == 3
    with pytest.raises(ValueError):
        cache.get("../../etc/passwd")


def test_program_store_refuses_sources_that_do_not_match_their_id(tmp_path):
    import warnings

    from alchemist_magics.llm import ProgramStore

    store = ProgramStore("t", tmp_path)
    programs = [Program("def a(x):\n    return 1"), Program("def b(x):\n    return 0\n\n\n")]  # exact sources kept
    for program in programs:
        store.save(program)
    loaded = store.load()
    assert [p.id for p in loaded] == [p.id for p in programs] and [p.source for p in loaded] == [p.source for p in programs]
    (store.folder / "programs" / f"{programs[0].id}.py").write_text("import os\ndef a(x):\n    return 1\n")
    target = store.folder / "programs" / f"{programs[1].id}.py"
    (tmp_path / "outside.py").write_text(programs[1].source)
    target.unlink()
    target.symlink_to(tmp_path / "outside.py")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert store.load() == []
    text = " ".join(str(w.message) for w in caught)
    assert "no longer matches its id" in text and "unreadable" in text


# -- isolation layers ---------------------------------------------------------------------------------

def test_a_missing_os_layer_is_reported_never_silent():
    import warnings

    from alchemist_magics.programs import isolation

    bare = isolation.Confinement()  # what a machine without seccomp and Landlock gets
    bare.problems.append("Landlock is not available (kernel < 5.13 or disabled)")
    report = isolation.probe(bare, {"user": False, "pid": False, "net": False})
    assert report["isolation"] == "audit-hook only" and not report["seccomp"] and not report["landlock"]
    line = isolation.describe(report)
    assert line.startswith("sandbox isolation: audit-hook only (no OS layer)") and "Landlock is not available" in line
    assert "\n" not in line
    isolation._warned = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        isolation.warn_once(report)
        isolation.warn_once(report)
    assert [str(w.message) for w in caught] == [line]


def test_every_result_records_its_isolation(tmp_path):
    from alchemist_magics.programs import isolation_report

    expected = isolation_report()["isolation"]
    ran = apply_programs(PROGRAMS[:1], TEXTS, LS, cache=OutputCache(tmp_path), progress=False)
    cached = apply_programs(PROGRAMS[:1], TEXTS, LS, cache=OutputCache(tmp_path), progress=False)
    rejected = apply_programs(["import os\ndef f(x):\n    return 1\n"], TEXTS, LS, progress=False)
    assert cached.runs[0].cached
    for result in (ran, cached, rejected):
        assert result.isolation == expected and result.summary()[0]["isolation"] == expected
        assert set(result.layers) >= {"seccomp", "landlock", "pid_ns"}


def test_children_are_single_threaded_and_cannot_fork_even_without_the_hook():
    hook_off = ("import collections, statistics, re\nOS = statistics.random._os\nBI = re.enum.bltns\n"
                "M = collections._sys.modules\nCT = M['ctypes']\n\n"
                "def f(x):\n    hook = M['alchemist_magics.programs.sandbox']._audit_hook\n"
                "    d = BI.getattr(hook, '_' * 2 + 'defaults' + '_' * 2)\n    keep = [frozenset(), d[0]]\n"
                "    CT.memmove(id(d) + 24, CT.byref(CT.c_void_p(id(keep[0]))), 8)\n"
                "    M['threading'].Thread(target=print).start()\n    return 1\n")
    run = apply_programs([hook_off], ["a"], LS, check=False, progress=False).runs[0]
    assert run.status == "faulted" and "can't start new thread" in run.message


def test_threads_of_the_kernel_share_the_supervisor_safely():
    from concurrent.futures import ThreadPoolExecutor

    def go(i):
        result = apply_programs([f"def f{i}(x):\n    return {i % 2}\n"], TEXTS, LS, progress=False)
        return result.runs[0].status, set(result.L[:, 0].tolist())

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(go, range(8))) == [("ok", {i % 2}) for i in range(8)]


def test_a_forked_kernel_gets_its_own_supervisor():
    apply_programs(PROGRAMS[:1], TEXTS, LS, progress=False)
    parent_supervisor = shared_supervisor().process.pid
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            ok = apply_programs(PROGRAMS[:1], TEXTS, LS, progress=False).L[:, 0].tolist() == EXPECTED[:, 0].tolist()
            os.write(write, b"1" if ok and shared_supervisor().process.pid != parent_supervisor else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert shared_supervisor().process.pid == parent_supervisor and shared_supervisor().alive()
    assert (apply_programs(PROGRAMS[:1], TEXTS, LS, progress=False).L[:, 0] == EXPECTED[:, 0]).all()


def test_without_pyseccomp_the_level_drops_loudly_and_programs_still_run(monkeypatch):
    import sys

    from alchemist_magics.programs import isolation
    from alchemist_magics.programs.sandbox import Sandbox

    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # import fails as if it were not installed
    confinement = isolation.prepare()
    try:
        assert confinement.bpf is None and any("pyseccomp" in p for p in confinement.problems)
        report = isolation.probe(confinement)
        assert report["isolation"] == "audit-hook only" and not report["seccomp"]
        assert "pyseccomp package is not installed" in isolation.describe(report)
        sandbox = Sandbox(TEXTS, LS, 10.0, 512, confinement)
        jobs = [(PROGRAMS[0], "kw"), (Program("import os\ndef f(x):\n    os.fork()\n"), "f")]
        runs = dict(sandbox.run(jobs, 1))
        assert runs[0].status == "ok" and (runs[0].codes == EXPECTED[:, 0]).all()
        assert runs[1].status == "faulted" and "sandbox: os.fork is not allowed" in runs[1].message  # the hook still refuses
    finally:
        confinement.close()


def test_rows_travel_as_plain_values_never_pickled():
    import math

    Row = make_row_type(["n", "x", "flag", "when", "text"])
    rows = [Row(np.int64(3), float("nan"), True, pd.Timestamp("2026-01-02"), "a\udcffb"), Row(4, None, False, None, "ok")]
    program = ("import math\ndef f(r):\n    a = type(r.n) is int and r['n'] in (3, 4)\n"
               "    b = r.x is None or (type(r.x) is float and math.isnan(r.x))\n"
               "    c = type(r.flag) is bool and (r.when is None or r.when == '2026-01-02 00:00:00')\n"
               "    return 1 if a and b and c and type(r.text) is str else 0\n")
    result = apply_programs([program], rows, LS, progress=False)
    assert result.runs[0].status == "ok" and result.L[:, 0].tolist() == [1, 1]
    assert math.isnan(rows[0].x)  # the kernel's rows are untouched


def test_the_static_check_never_raises():
    from alchemist_magics.programs import check_program, find_entry

    bombs = ["def f(x):\n    return " + "-" * 5000 + "1\n", "def f(x):\n    return 1\n" + "#" * 200_000,
             "def f(x):\n    return 1\x00\n", "def f(x):\n    return " + "(" * 5000 + ")" * 5000 + "\n"]
    for source in bombs:
        result = check_program(source)
        assert not result.ok and result.reasons and "\n" not in result.reasons[0]
        assert find_entry(source)[0] is None
        Program(source)  # the display name falls back, no RecursionError
    assert not check_program(b"def f(x): return 1").ok
    batch = apply_programs(bombs + [PROGRAMS[0]], TEXTS, LS, progress=False)
    assert [r.status for r in batch.runs] == ["rejected"] * len(bombs) + ["ok"]


def test_a_cache_write_error_is_raised_after_the_run(tmp_path, monkeypatch):
    cache, offered, real_put = OutputCache(tmp_path), [], OutputCache.put

    def put(self, program, *args, **kwargs):  # the disk fills up on the first program's entry
        offered.append(program.name)
        if program.name == "kw":
            raise OSError(28, "No space left on device")
        return real_put(self, program, *args, **kwargs)

    monkeypatch.setattr(OutputCache, "put", put)
    with pytest.raises(OSError, match="No space left"):
        apply_programs(PROGRAMS, TEXTS, LS, cache=cache, progress=False)
    assert sorted(offered) == sorted(p.name for p in PROGRAMS) and len(cache) == 4  # every run finished
    monkeypatch.undo()
    again = apply_programs(PROGRAMS, TEXTS, LS, cache=cache, progress=False)
    assert [r.cached for r in again.runs] == [False, True, True, True, True] and (again.L == EXPECTED).all()
