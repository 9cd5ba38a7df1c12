"""The magics driven in-process by IPython's InteractiveShell (no kernel): options, {var}
interpolation, the offline path end to end, program cells, one-line errors, export, restart."""
import importlib.util
import re
import threading

import numpy as np
import pandas as pd
import pytest
from IPython.testing.globalipapp import start_ipython

from alchemist_magics.notebook.magics import Alchemist, AlchemistError, interpolate, parse_keywords

SPAM = ["free", "win", "prize", "click", "offer", "cash"]
HAM = ["meeting", "lunch", "tomorrow", "thanks", "family", "see"]
FILLER = ["the", "a", "you", "is", "to", "and", "for", "today"]


def toy(n: int, seed: int) -> pd.DataFrame:
    """Spam/ham texts: two class words among four filler words."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        y = int(rng.integers(2))
        words = list(rng.choice(SPAM if y else HAM, 2)) + list(rng.choice(FILLER, 4))
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": ["ham", "spam"][y]})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def ip(tmp_path_factory):
    shell = start_ipython()
    shell.run_line_magic("load_ext", "alchemist_magics")
    root = tmp_path_factory.mktemp("alchemist")
    shell.run_line_magic("config", f"Alchemist.root = {str(root)!r}")
    shell.run_line_magic("config", "Alchemist.api_key_env = 'ALCHEMIST_TEST_NO_SUCH_KEY'")
    shell.run_line_magic("config", "Alchemist.base_url = ''")
    nan_df = toy(20, 3)
    nan_df.loc[3, "text"] = None
    shell.user_ns.update(df=toy(300, 1).drop(columns="label"), dev=toy(40, 2), kind="SMS", nan_df=nan_df)
    return shell


@pytest.fixture(scope="module")
def offline(ip):
    """The offline path, run once for the module: (cell result, printed output)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = ip.run_cell("%%alchemist spam -d df --dev dev -n 4 --keywords 'spam: free'\nIs this {kind} message spam?")
    return result, out.getvalue()


def run(ip, capsys, cell):
    capsys.readouterr()
    result = ip.run_cell(cell)
    return result, capsys.readouterr().out


def test_interpolation_and_keywords():
    assert interpolate("Is this {kind} spam? {{literal}}", {"kind": "SMS"}) == "Is this SMS spam? {literal}"
    with pytest.raises(AlchemistError, match="no variable 'nope'"):
        interpolate("{nope}", {})
    assert parse_keywords("spam: free, win; ham: thanks") == {"spam": ["free", "win"], "ham": ["thanks"]}
    with pytest.raises(AlchemistError, match="CLASS: word"):
        parse_keywords("free win")


def test_offline_path_end_to_end(ip, offline):
    result, out = offline
    assert result.error_in_exec is None
    # honest numbers: half the dev rows write the programs, the other half score them
    assert "offline synthesizer from 20 of the 40 --dev rows (the other 20 score them" in out
    assert len(ip.user_ns["_alchemist"].workbench.writer_rows) == 20
    assert len(ip.user_ns["_alchemist"].workbench.datasets["dev"]) == 20
    # no cell id (no JupyterLab): the output says where the programs are, not "sent as cells"
    assert "not inserted as cells: copy them from here or re-run with --next-cell" in out
    assert "sent to JupyterLab" not in out
    session = ip.user_ns["_alchemist"]
    assert session.task.description == "Is this SMS message spam?"
    assert session.task.classes == ["ham", "spam"] and session.task.keywords == {"spam": ["free"]}
    names = [p.name for p in session.programs]
    assert 2 <= len(names) <= 4 + 5  # -n 4 keyword programs, at most 2 nearest + 2 margin + 1 classifier program
    assert "%%alchemist_program spam " + names[0] in out  # the program cells are in the output
    table = session.panel.analysis
    assert list(table.index) == names
    # ok, or written but passed over by the set choice (the classifier alone unless a set beats it
    # with 95 % bootstrap confidence: on 20 scoring rows of separable toy data nothing can)
    assert set(table["Status"]) <= {"ok", "not_chosen"} and (table["Status"] == "ok").any()
    assert (table["Coverage"] > 0).all()
    passed_over = int((table["Status"] == "not_chosen").sum())
    unchosen = f" ({passed_over} not chosen)" if passed_over else ""
    # the toy data are separable by their class words: the label model is near perfect on dev
    assert session.panel.scores.loc[session.panel.chosen].iloc[0] >= 0.9
    assert repr(session.panel) == (f"Panel(task='spam', programs={len(names)}, label_model={session.panel.chosen!r}, "
                                   f"status='{len(names)} programs{unchosen}, 0 rejected; label model {session.panel.chosen}')")
    assert "background" in session.panel._repr_html_() and "zero-shot" in session.panel._repr_html_()


def test_program_cell_replaces_and_reapplies_only_it(ip, offline, capsys):
    session = ip.user_ns["_alchemist"]
    first = session.programs[0].name
    before = [p.id for p in session.programs]
    cell = f"%%alchemist_program spam {first}\ndef f(text):\n    return 1 if 'free' in text else -1\n"
    result, out = run(ip, capsys, cell)
    assert result.error_in_exec is None
    assert out.startswith(f"replaced {first} (")
    assert [p.name for p in session.programs][0] == first and session.programs[0].id != before[0]
    runs = session.workbench.results["train"].runs
    assert [r.cached for r in runs] == [False] + [True] * (len(runs) - 1)
    texts = ip.user_ns["df"]["text"]
    assert session.panel.analysis.loc[first, "Coverage"] == pytest.approx(texts.str.contains("free").mean())
    assert session.programs[0].provenance["parent"] == before[0]
    # running the unchanged cell again runs nothing
    result, out = run(ip, capsys, cell)
    assert out.startswith(f"unchanged {first}") and all(r.cached for r in session.workbench.results["train"].runs)


@pytest.mark.parametrize("cell, message", [
    ("%%alchemist spam -d nope\nx", "--data nope: no variable 'nope' in the notebook"),
    ("%%alchemist spam -d df --dev dev --bogus\nx", "%%alchemist: unrecognized arguments: --bogus"),
    ("%%alchemist spam -d df --classes a,b\nx", "no LLM endpoint configured"),
    ("%%alchemist spam -d df --dev df\nx", "df has no label column 'label'; pass --label COLUMN"),
    ("%%alchemist spam -d df --dev dev --label category\nx", "--label category: dev has no column 'category'; "
                                                               "its columns are ['text', 'label']"),
    ("%%alchemist spam -d df --label category --classes a,b\nx", "no LLM endpoint"),
    ("%%alchemist spam -d nan_df --dev dev\nx", "--missing drop or --missing empty"),
    ("%%alchemist spam -d df --dev dev --time-limit 0\nx", "--time-limit 0.0: give a positive number"),
    ("%alchemist disable nosuch", "task spam has no program 'nosuch'"),
    ("%%alchemist_program other\ndef f(t):\n    return 1\n", "no task 'other' in this kernel"),
    ("%alchemist fit nosuch", "no task 'nosuch'"),
])
def test_errors_are_one_line(ip, offline, capsys, cell, message):
    result, out = run(ip, capsys, cell)
    assert isinstance(result.error_in_exec, AlchemistError)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("AlchemistError: ") and message in lines[0], out


def test_rejected_program_cell_is_one_line(ip, offline, capsys):
    result, out = run(ip, capsys, "%%alchemist_program spam broken\ndef f(text):\n    return -1\n")
    assert isinstance(result.error_in_exec, AlchemistError)
    assert out.startswith("AlchemistError: program broken not registered:") and out.count("\n") == 1


def test_syntax_error_line_counts_the_marker_line(ip, offline, capsys):
    # the error is on the cell's third line (the marker is line 1)
    result, out = run(ip, capsys, "%%alchemist_program spam broken\ndef f(text):\n    return 1 +\n")
    assert isinstance(result.error_in_exec, AlchemistError)
    assert "syntax error on line 3 of the cell" in out and out.count("\n") == 1


def test_faulty_and_invalid_programs_are_not_ok(ip, offline, capsys):
    """> 5% of rows raising is 'faulty', > 5% invalid outputs 'invalid', with the first exception and row."""
    session = ip.user_ns["_alchemist"]
    names = [p.name for p in session.programs]
    faulty = ("%%alchemist_program spam raises_often\ndef raises_often(text):\n"
              "    if 'the' in text:\n        raise ValueError('no the')\n    return 1 if 'free' in text else -1\n")
    result, out = run(ip, capsys, faulty)
    assert result.error_in_exec is None, out
    row = session.panel.analysis.loc["raises_often"]
    texts = ip.user_ns["df"]["text"]
    assert row["Faults"] == texts.str.contains("the").sum() and row["Status"] == "faulty"
    assert "ValueError" in row["Problem"] and f"first raised on train row {int(texts.str.contains('the').idxmax())}" in row["Problem"]
    assert "status faulty (" in out
    invalid = ("%%alchemist_program spam says_maybe\ndef says_maybe(text):\n"
               "    return 'maybe' if 'the' in text else ('spam' if 'free' in text else -1)\n")
    result, out = run(ip, capsys, invalid)
    row = session.panel.analysis.loc["says_maybe"]
    assert row["Status"] == "invalid" and "maybe" in row["Problem"] and "first invalid on train row" in row["Problem"]
    for name in ("raises_often", "says_maybe"):
        run(ip, capsys, f"%alchemist remove {name}")
    assert [p.name for p in session.programs] == names


def test_remove_disable_enable(ip, offline, capsys):
    from alchemist_magics.notebook.magics import program_list

    session = ip.user_ns["_alchemist"]
    names = [p.name for p in session.programs]
    result, out = run(ip, capsys, f"%alchemist disable {names[1]}")
    assert result.error_in_exec is None and out.startswith(f"disabled {names[1]}; make its cell's first line")
    assert [p.name for p in session.programs] == names[:1] + names[2:]
    assert list(session.panel.analysis.index) == names[:1] + names[2:]
    # the kernel's list keeps it, in place, marked disabled
    listed = program_list(ip, "spam")
    assert [p["name"] for p in listed] == names and [p["disabled"] for p in listed] == [n == names[1] for n in names]
    assert list(ip.run_line_magic("alchemist", "list")["status"])[1] == "disabled"
    # a program cell whose marker says --disabled registers it disabled; without it, enabled again
    source = session.workbench.disabled[names[1]].source
    result, out = run(ip, capsys, f"%%alchemist_program spam {names[1]}\n{source}")
    assert names[1] not in session.workbench.disabled and [p.name for p in session.programs] == names
    result, out = run(ip, capsys, f"%%alchemist_program spam {names[1]} --disabled\n{source}")
    assert out.startswith(f"unchanged {names[1]}") and "disabled" in out and names[1] in session.workbench.disabled
    result, out = run(ip, capsys, f"%alchemist enable {names[1]}")
    assert [p.name for p in session.programs] == names and not session.workbench.disabled
    # remove: gone from the kernel and the panel
    extra = "%%alchemist_program spam extra\ndef extra(text):\n    return 1 if 'win' in text else -1\n"
    run(ip, capsys, extra)
    assert [p.name for p in session.programs] == names + ["extra"]
    result, out = run(ip, capsys, "%alchemist remove extra")
    assert out.startswith("removed extra; delete its cell too")
    assert [p.name for p in session.programs] == names and "extra" not in session.panel.analysis.index


def test_load_restores_the_program_set_verified_by_hash(ip, offline, capsys):
    """A fresh magics instance (a kernel restart): `%alchemist load` and a program cell's automatic
    load rebuild the task from the store without writing programs."""
    session = ip.user_ns["_alchemist"]
    expected = [(p.name, p.source) for p in session.programs]
    registered = ip.magics_manager.registry["Alchemist"]
    fresh = Alchemist(shell=ip)
    fresh.root, fresh.api_key_env = registered.root, "ALCHEMIST_TEST_NO_SUCH_KEY"
    capsys.readouterr()
    fresh.alchemist_line("load spam")
    out = capsys.readouterr().out
    assert out.startswith(f"loaded task spam from ") and f": {len(expected)} programs, each verified by its hash" in out
    loaded = fresh.sessions["spam"]
    assert [(p.name, p.source) for p in loaded.programs] == expected
    assert loaded.task.description == session.task.description
    # automatic: a program cell in a kernel that has no session for its task
    other = Alchemist(shell=ip)
    other.root, other.api_key_env = registered.root, "ALCHEMIST_TEST_NO_SUCH_KEY"
    name, source = expected[0]
    other.alchemist_program(f"spam {name}", source)
    out = capsys.readouterr().out
    assert "loaded task spam" in out and f"unchanged {name}" in out
    assert [(p.name, p.source) for p in other.sessions["spam"].programs] == expected
    ip.user_ns["_alchemist"] = session


def test_help_is_printed_without_error(ip, capsys):
    result, out = run(ip, capsys, "%%alchemist --help\n(IPython refuses an empty cell body)")
    assert result.error_in_exec is None and "--budget BUDGET" in out and "{name}" in out
    result, out = run(ip, capsys, "%%alchemist --help")  # no body at all
    assert result.error_in_exec is None and "--budget BUDGET" in out and "--missing" in out
    result, out = run(ip, capsys, "%%alchemist spam -d df --dev dev")
    assert "the cell body is the task description" in out
    result, out = run(ip, capsys, "%alchemist --help")
    assert result.error_in_exec is None and "zeroshot" in out and "export" in out


def test_line_subcommands(ip, offline, capsys):
    result, _ = run(ip, capsys, "table = %alchemist analyze --sort Coverage")
    table = ip.user_ns["table"]
    assert list(table["Coverage"]) == sorted(table["Coverage"], reverse=True)
    ip.run_cell("cost = %alchemist cost")
    cost = ip.user_ns["cost"]
    assert cost["requests"] == 0 and cost["spent_usd"] == 0 and cost["zero_shot_rows"] == 300
    assert cost["zero_shot_usd"] > 0 and cost["ratio"] is None
    assert repr(cost).startswith("Cost: spent $0.0000 so far") and "zero-shot" in repr(cost)
    ip.run_cell("config = %alchemist config")
    assert ip.user_ns["config"]["api_key_env"] == "ALCHEMIST_TEST_NO_SUCH_KEY"
    result, out = run(ip, capsys, "%alchemist zeroshot")
    assert "zeroshot asks the LLM: set $ALCHEMIST_TEST_NO_SUCH_KEY" in out


def test_export_loads_as_functions_and_snorkel_lfs(ip, offline, tmp_path, capsys):
    target = tmp_path / "spam_programs.py"
    result, out = run(ip, capsys, f"%alchemist export spam --to {target}")
    assert result.error_in_exec is None and str(target) in out
    spec = importlib.util.spec_from_file_location("exported", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    session = ip.user_ns["_alchemist"]
    functions = module.programs()
    assert list(functions) == [p.name for p in session.programs]
    texts = list(ip.user_ns["df"]["text"])
    column = [functions[session.programs[0].name](t) for t in texts]
    assert np.array_equal(np.array(column), session.workbench.matrix("train")[:, 0])
    assert [lf.name for lf in module.snorkel_lfs()] == list(functions)


def test_restart_rebuilds_the_same_state_from_the_root(ip, offline):
    """A fresh magics instance (a kernel restart) with the same root: same programs, all cached."""
    old = ip.user_ns["_alchemist"]
    fresh = Alchemist(shell=ip)
    fresh.root = ip.magics_manager.registry["Alchemist"].root
    fresh.api_key_env = "ALCHEMIST_TEST_NO_SUCH_KEY"
    fresh.alchemist_cell("spam -d df --dev dev -n 4 --keywords 'spam: free'", "Is this {kind} message spam?")
    new = ip.user_ns["_alchemist"]
    generated = [p.id for p in new.programs]
    assert all(r.cached for r in new.workbench.results["train"].runs)
    assert generated[1:] == [p.id for p in old.programs][1:]  # the first one was edited in a cell before
    ip.user_ns["_alchemist"] = old


REPLIES = [  # structurally different programs, so none is dropped as a near-duplicate
    "```python\ndef label_function(text):\n    return 1 if 'free' in text else -1\n```",
    "```python\nimport re\n\ndef label_function(text):\n    n = len(re.findall(r'prize|cash', text))\n"
    "    return 1 if n > 0 else -1\n```",
    "```python\nWORDS = {'lunch', 'meeting', 'family'}\n\ndef label_function(text):\n"
    "    return 0 if WORDS & set(text.split()) else -1\n```",
]


def numbered(body, _count=[0], _lock=threading.Lock()):
    """The i-th request gets the i-th reply."""
    with _lock:
        i = _count[0] % len(REPLIES)
        _count[0] += 1
    return {"content": "Here it is.\n" + REPLIES[i]}


def test_llm_path_through_the_magic_then_restart_costs_nothing(ip, fake_server, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ALCHEMIST_TEST_FAKE_KEY", "test-key-not-secret")
    fake_server.responder = numbered

    def magics():
        m = Alchemist(shell=ip)
        m.root, m.base_url, m.api_key_env, m.model = str(tmp_path), fake_server.base_url, "ALCHEMIST_TEST_FAKE_KEY", "gpt-4o"
        return m

    first = magics()
    capsys.readouterr()
    first.alchemist_cell("llmspam -d df --dev dev -n 3 --budget 0.5", "Is this spam?")
    out = capsys.readouterr().out
    assert "gpt-4o: 3 of 3 programs, 0 from the cache" in out and len(fake_server.requests) == 3
    session = ip.user_ns["_alchemist"]
    cost = first.cost(session)
    assert cost["requests"] == 3 and cost["spent_usd"] > 0 and cost["ratio"] > 0
    magics().alchemist_cell("llmspam -d df --dev dev -n 3 --budget 0.5", "Is this spam?")
    assert "3 from the cache" in capsys.readouterr().out and len(fake_server.requests) == 3
    assert [p.id for p in ip.user_ns["_alchemist"].programs] == [p.id for p in session.programs]


def test_stats_message_is_plain_json(ip, offline):
    """The sidebar's message: the panel's numbers per program, NaN as null, numpy as Python."""
    import json

    from alchemist_magics.notebook.comm import send_stats, stats_message

    session = ip.user_ns["_alchemist"]
    table = session.panel.analysis.copy()
    first = session.programs[0].name
    table.loc[first, "Emp. Acc."] = float("nan")  # a program that never fires on dev
    cost = {"spent_usd": 0.0, "requests": np.int64(2), "ratio": None, "prompt_tokens": 7}
    message = stats_message("spam", session.programs, table, cost, "majority")
    assert json.loads(json.dumps(message)) == message
    rows = {p["name"]: p for p in message["programs"]}
    assert list(rows) == [p.name for p in session.programs]
    assert rows[first]["accuracy"] is None and rows[first]["coverage"] == pytest.approx(table.loc[first, "Coverage"])
    assert message["cost"] == {"spent_usd": 0.0, "estimate_usd": None, "budget_usd": None, "zero_shot_usd": None,
                               "ratio": None, "requests": 2, "cache_hits": None, "cost_text": None,
                               "unknown_cost_requests": None}
    assert send_stats(ip, message) is False  # no kernel: nothing to send to


HANG = "def hangs(text):\n    while True:\n        pass\n"


def test_time_limit_per_program_cell(ip, offline, capsys):
    """`--time-limit S` on the marker line is that program's limit (smoke test and apply)."""
    import time

    session = ip.user_ns["_alchemist"]
    before = [p.name for p in session.programs]
    start = time.monotonic()
    result, out = run(ip, capsys, f"%%alchemist_program spam hangs --time-limit 1\n{HANG}")
    assert time.monotonic() - start < 8  # not the 10 s smoke limit, nor the task's 60 s
    assert isinstance(result.error_in_exec, AlchemistError) and out.startswith("AlchemistError: program hangs not registered")
    assert out.count("\n") == 1 and [p.name for p in session.programs] == before
    # the Workbench applies each program with its own limit; the others are unaffected
    wb = session.workbench
    wb.time_limits["hangs"] = 1.0
    assert wb.add(HANG, smoke=False)
    start = time.monotonic()
    table = wb.apply(progress=False)
    assert time.monotonic() - start < 15
    assert table.loc["hangs", "status"] == "timeout" and (table.drop(index="hangs")["status"] == "ok").all()
    assert list(table.index) == before + ["hangs"] and wb.matrix("train").shape[1] == len(before) + 1
    # a refresh does not wait for it again: its outcome is cached with its source, data and limit
    again = wb.apply(progress=False)
    assert again.loc["hangs", "status"] == "timeout" and again["cached"].all()
    wb.remove("hangs")
    del wb.time_limits["hangs"]
    run(ip, capsys, "%alchemist apply")


def test_interrupting_a_hung_run_is_one_line(ip, offline, capsys, monkeypatch):
    import os
    import signal

    from alchemist_magics.notebook.panel import Panel

    # Ctrl-C once the program runs (a fixed delay would land before the run on a loaded machine)
    timers, live = [], Panel.program_progress

    def progress(self, split, event):
        if event.state == "running" and not timers:
            timers.append(threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)))
            timers[0].start()
        live(self, split, event)

    monkeypatch.setattr(Panel, "program_progress", progress)
    # Ctrl-C in a kernel raises KeyboardInterrupt; an earlier test module may have left another
    # SIGINT handler installed in this process (seen only in full-suite runs), so restore the default
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result, out = run(ip, capsys, f"%%alchemist_program spam hangs_until_interrupted\n{HANG.replace('hangs', 'hangs_until_interrupted')}")
    finally:
        signal.signal(signal.SIGINT, handler)
        for timer in timers:
            timer.cancel()
    assert timers, "the program never reported running"
    assert isinstance(result.error_in_exec, AlchemistError), out
    assert out.startswith("AlchemistError: interrupted") and out.count("\n") == 1
    assert "hangs_until_interrupted" not in [p.name for p in ip.user_ns["_alchemist"].programs]


def test_estimate_sends_nothing(ip, fake_server, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ALCHEMIST_TEST_FAKE_KEY", "test-key-not-secret")
    fake_server.responder = numbered
    m = Alchemist(shell=ip)
    m.root, m.base_url, m.api_key_env, m.model = str(tmp_path), fake_server.base_url, "ALCHEMIST_TEST_FAKE_KEY", "gpt-4o"
    seen = len(fake_server.requests)
    capsys.readouterr()
    estimate = m.alchemist_cell("estspam -d df --dev dev -n 3 --budget 0.5 --estimate", "Is this spam?")
    out = capsys.readouterr().out
    assert len(fake_server.requests) == seen and "estspam" not in m.sessions  # nothing sent, nothing registered
    assert out.startswith("estimate for 3 programs with gpt-4o: 3 requests") and "Nothing was sent" in out
    assert "--budget $0.5000" in out and estimate.requests == 3 and estimate.expected_usd > 0


def test_missing_texts_dropped_or_empty(ip, capsys):
    m = ip.magics_manager.registry["Alchemist"]
    for how, rows in (("drop", 19), ("empty", 20)):
        dataset = m._dataset(ip.user_ns["nan_df"], "nan_df", "text", None, ["ham", "spam"], missing=how)
        assert len(dataset) == rows


def test_load_without_the_data_says_what_to_run(ip, offline, capsys):
    registered = ip.magics_manager.registry["Alchemist"]
    fresh = Alchemist(shell=ip)
    fresh.root, fresh.api_key_env = registered.root, "ALCHEMIST_TEST_NO_SUCH_KEY"
    df = ip.user_ns.pop("df")
    try:
        with pytest.raises(AlchemistError, match=r"could not load task spam \(its %%alchemist line: spam -d df .*"
                                                 r"no variable 'df' in the notebook \(run the cells that define"):
            fresh.alchemist_line("load spam")
        with pytest.raises(AlchemistError, match="nothing recorded for task 'nosuch'"):
            fresh.alchemist_line("load nosuch")
    finally:
        ip.user_ns["df"] = df


def fake_magics(ip, fake_server, monkeypatch, tmp_path):
    monkeypatch.setenv("ALCHEMIST_TEST_FAKE_KEY", "test-key-not-secret")
    monkeypatch.setitem(ip.user_ns, "_alchemist", ip.user_ns.get("_alchemist"))  # the module's task comes back
    m = Alchemist(shell=ip)
    m.root, m.base_url, m.api_key_env, m.model = str(tmp_path), fake_server.base_url, "ALCHEMIST_TEST_FAKE_KEY", "gpt-4o"
    return m


def test_llm_options_reach_the_request_and_a_rerun_sends_nothing(ip, fake_server, monkeypatch, tmp_path, capsys):
    """Traitlets set the client's defaults, a cell's options win; the writing progress is shown."""
    fake_server.responder = numbered
    m = fake_magics(ip, fake_server, monkeypatch, tmp_path)
    m.temperature, m.max_tokens = 0.25, 300  # %config Alchemist.temperature = 0.25 ...
    line = "optspam -d df --dev dev -n 3 --max-tokens 77 --concurrency 1 --max-attempts 2 --budget-tokens 100000"
    capsys.readouterr()
    m.alchemist_cell(line, "Is this spam?")
    out = capsys.readouterr().out
    assert "gpt-4o: 3 of 3 programs, 0 from the cache" in out, out
    bodies = fake_server.requests
    assert len(bodies) == 3 and {b["max_tokens"] for b in bodies} == {77} and {b["temperature"] for b in bodies} == {0.25}
    assert fake_server.max_in_flight == 1  # --concurrency 1 is a fixed limit, not a starting point
    session = m.sessions["optspam"]
    # the panel followed the requests: all done, none failed, the server's tokens
    writing = session.panel.writing
    assert (writing.total, writing.done, writing.failed, writing.cached) == (3, 3, 0, 0)
    assert (writing.prompt_tokens, writing.completion_tokens) == (fake_server.served["prompt_tokens"],
                                                                 fake_server.served["completion_tokens"])
    assert session.panel.phase is None and session.panel.live_html() == ""
    # the same cell again: every reply from the cache, not one request
    m.alchemist_cell(line, "Is this spam?")
    assert "3 from the cache" in capsys.readouterr().out and len(fake_server.requests) == 3
    # the cell's --temperature wins over the traitlet (a new cache key: new requests)
    m.alchemist_cell("optspam -d df --dev dev -n 1 --temperature 0.9", "Is this spam?")
    capsys.readouterr()
    assert len(fake_server.requests) == 4 and fake_server.requests[-1]["temperature"] == 0.9
    assert fake_server.requests[-1]["max_tokens"] == 300


def test_llm_timeout_and_token_budget_are_honoured(ip, fake_server, monkeypatch, tmp_path, capsys):
    import time

    fake_server.responder = lambda body: {"content": "Here it is.\n" + REPLIES[0], "delay": 3.0}
    m = fake_magics(ip, fake_server, monkeypatch, tmp_path)
    m.timeout_s = 30.0  # %config Alchemist.timeout_s = 30: the cell's --timeout wins
    capsys.readouterr()
    start = time.monotonic()
    with pytest.raises(AlchemistError, match=r"no program was written \(1 of 1 requests failed"):
        m.alchemist_cell("tospam -d df --dev dev -n 1 --timeout 0.5 --max-attempts 1", "Is this spam?")
    out = capsys.readouterr().out
    assert time.monotonic() - start < 2.5 and len(fake_server.requests) == 1  # one attempt, cut at 0.5 s
    assert "failed: request 0: timeout: no complete reply within 0.5s" in out
    # a token budget smaller than one request's worst case sends nothing
    seen = len(fake_server.requests)
    with pytest.raises(AlchemistError, match="no program was written"):
        m.alchemist_cell("tospam -d df --dev dev -n 2 --budget-tokens 50", "Is this spam?")
    assert "budget 50 tokens" in capsys.readouterr().out and len(fake_server.requests) == seen


@pytest.mark.parametrize("options, message", [
    ("--temperature 5", "--temperature 5.0 (or %config Alchemist.temperature): give a number from 0 to 2"),
    ("--max-tokens 0", "--max-tokens 0 (or %config Alchemist.max_tokens): give a positive number of tokens"),
    ("--timeout -1", "--timeout -1.0 (or %config Alchemist.timeout_s): give a positive number of seconds"),
    ("--concurrency -2", "--concurrency -2 (or %config Alchemist.concurrency): give at least 1"),
    ("--max-attempts 0", "--max-attempts 0 (or %config Alchemist.max_attempts): give at least 1"),
    ("--budget-tokens 0", "--budget-tokens 0: give a positive number of tokens"),
    ("--max-tokens many", "argument --max-tokens: invalid int value: 'many'"),
])
def test_bad_llm_options_are_one_line(ip, options, message, capsys):
    result, out = run(ip, capsys, f"%%alchemist spam -d df --dev dev {options}\nIs this spam?")
    assert isinstance(result.error_in_exec, AlchemistError)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], out


def test_llm_settings_from_config_and_help(ip, capsys):
    m = ip.magics_manager.registry["Alchemist"]
    ip.run_line_magic("config", "Alchemist.max_tokens = 0")
    try:
        with pytest.raises(AlchemistError, match=r"--max-tokens 0 \(or %config Alchemist.max_tokens\)"):
            m.llm_settings()
    finally:
        ip.run_line_magic("config", "Alchemist.max_tokens = 1024")
    settings = m.llm_settings(concurrency=2, timeout_s=9.5)
    assert settings == {"temperature": 0.7, "max_tokens": 1024, "timeout_s": 9.5, "concurrency": 2, "max_attempts": 4,
                        "adaptive": False}
    assert m.llm_settings()["adaptive"] is True and m.llm_settings(concurrency=0)["concurrency"] is None
    result, out = run(ip, capsys, "%%alchemist --help")
    for option in ("--temperature", "--max-tokens", "--timeout", "--concurrency", "--max-attempts", "--budget-tokens"):
        assert option in out
    assert "Alchemist.timeout_s" in out
    config = ip.run_line_magic("alchemist", "config")
    assert {"temperature", "max_tokens", "timeout_s", "concurrency", "max_attempts"} <= set(config.index)


SLOW = ("%%alchemist_program spam slow_free\ndef slow_free(text):\n    total = 0\n    for i in range(30000):\n"
        "        total += i\n    return 1 if 'free' in text else -1\n")


def test_apply_progress_reaches_the_panel_live(ip, offline, capsys):
    """While a program cell applies, the panel shows each program per split (queued, running with
    rows done, done with status), redrawn at most 5 times a second; then the matrix."""
    import time

    from alchemist_magics.notebook.panel import LIVE_EVERY_S

    session = ip.magics_manager.registry["Alchemist"].sessions["spam"]  # not _alchemist: other tests move it
    panel = session.panel
    panel.widget()
    seen, events = [], []
    panel._widgets["live"].observe(lambda change: seen.append(change["new"]), names="value")
    original = panel.program_progress
    panel.program_progress = lambda split, event: (events.append((split, event)), original(split, event))
    draw = panel._draw_live
    forced = []
    panel._draw_live = lambda force=False: (forced.append(force) if force else None, draw(force))
    redraws = panel.redraws
    try:
        start = time.monotonic()
        result, out = run(ip, capsys, SLOW)
        elapsed = time.monotonic() - start
    finally:
        del panel.program_progress, panel._draw_live
    assert result.error_in_exec is None and out.startswith("added slow_free"), out
    names = [p.name for p in session.programs]
    train = len(ip.user_ns["df"])
    mine = [e for split, e in events if e.name == "slow_free" and split == "train"]
    # its check (the smoke test, on train rows) and then the apply: queued, running..., done
    assert re.fullmatch("qr+d+", "".join(e.state[0] for e in mine)), mine
    assert mine[-1].state == "done" and mine[-1].status == "ok"
    assert mine[-1].rows_done == train
    # every other program: one event per split, done from the cache
    others = [(split, e.name, e.state, e.cached) for split, e in events if e.name != "slow_free"]
    assert sorted(others) == sorted((split, name, "done", True) for split in ("train", "dev") for name in names
                                    if name != "slow_free")
    # the widget showed the slow program running, with its rows, before it was done
    running = [v for v in seen if "running" in v and "slow_free" in v]
    assert running and re.search(r"running [\d,]+/" + f"{train:,}", running[0])
    assert "alc-live-table" not in seen[-1]  # then the live table gave way to the matrix (refused cells' rows may stay)
    runs = {r.program.name: r for r in session.workbench.results["train"].runs}
    assert "slow_free" in panel.analysis.index and runs["slow_free"].status == "ok"
    # throttled: besides the forced ones (apply begins, ends, a cell refused), at most one redraw per
    # LIVE_EVERY_S, though events came faster
    assert len(events) > panel.redraws - redraws
    assert panel.redraws - redraws <= len(forced) + 1 + elapsed / LIVE_EVERY_S
    run(ip, capsys, "%alchemist remove slow_free")


HANG_LATE = ("%%alchemist_program spam hangs_late --time-limit 2\ndef hangs_late(text, seen=[0]):\n"
             "    seen[0] += 1\n    while seen[0] > 250:\n        pass\n    return 1 if 'free' in text else -1\n")


def test_a_hanging_program_costs_its_limit_once_and_shows_red(ip, offline, capsys):
    """A program that hangs after 250 rows (past a 200-row sample, inside the 300 train rows): the
    first run waits its --time-limit, a second run of the cell reuses the cached timeout."""
    import time

    session = ip.magics_manager.registry["Alchemist"].sessions["spam"]  # not _alchemist: other tests move it
    before = [p.name for p in session.programs]
    start = time.monotonic()
    first, out1 = run(ip, capsys, HANG_LATE)
    took = time.monotonic() - start
    start = time.monotonic()
    second, out2 = run(ip, capsys, HANG_LATE)
    again = time.monotonic() - start
    assert took >= 2 and again < 1.5, (took, again)
    assert "timeout" in out1 and "timeout" in out2
    shown = session.panel.live_html() + session.panel._body_html()
    assert re.search(r'class="[^"]*alc-bad[^"]*">timeout', shown), shown
    if "hangs_late" in [p.name for p in session.programs]:  # a sample smoke test let it in: the apply timed out
        assert session.panel.analysis.loc["hangs_late", "Status"] == "timeout" and first.error_in_exec is None
        run(ip, capsys, "%alchemist remove hangs_late")
    else:  # the smoke test over every train row timed out: refused, shown red in the live table
        assert isinstance(second.error_in_exec, AlchemistError) and out2.startswith("AlchemistError: program hangs_late not registered: timeout")
        assert session.panel.refused["hangs_late"][0] == "timeout" and "alc-refused-table" in shown
    assert [p.name for p in session.programs] == before
    session.workbench.time_limits.pop("hangs_late", None)


def test_fit_notes_are_one_line_printed_when_they_change(ip, offline, capsys):
    session = ip.magics_manager.registry["Alchemist"].sessions["spam"]  # not _alchemist: other tests move it
    twin = "%%alchemist_program spam free_twin\ndef free_twin(text):\n    return 1 if 'free' in text else -1\n"
    run(ip, capsys, twin.replace("free_twin", "free_first"))
    result, out = run(ip, capsys, twin)  # votes as free_first everywhere: one of the two is a duplicate
    assert result.error_in_exec is None, out
    twin_left_out = [n for n in ("free_first", "free_twin") if n in session.workbench.left_out][-1]
    assert session.workbench.left_out[twin_left_out].startswith("duplicate")
    lines = out.splitlines()
    assert lines[-1].startswith("the label model leaves out") and "duplicate: " in lines[-1], out
    assert twin_left_out in lines[-1] and sum(line.startswith("the label model") for line in lines) == 1
    assert f"of {len(session.programs)} programs" in lines[-1]
    result, out = run(ip, capsys, "%alchemist apply")  # unchanged notes: not printed again
    assert "the label model leaves out" not in out
    for name in ("free_twin", "free_first"):
        run(ip, capsys, f"%alchemist remove {name}")
