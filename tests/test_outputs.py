"""What a data scientist takes out of a Workbench: the rows behind a program's numbers
(``examples``), labels with per-program votes, ``%alchemist labels --to FILE``, and snorkel
``LabelingFunction``s brought in (``add(lf)``, ``from_snorkel``)."""
import re

import numpy as np
import pandas as pd
import pytest

from alchemist_magics import TaskSpec, Workbench
from alchemist_magics.data import from_dataframe
from alchemist_magics.programs.snorkel_compat import from_snorkel, is_labeling_function

TEXTS = ["win a free prize", "free cash now", "see you at lunch", "thanks for lunch", "free lunch thanks",
         "meeting tomorrow", "click to win", "family dinner"]
GOLD = ["spam", "spam", "ham", "ham", "ham", "ham", "spam", "ham"]
FREE = 'def spam_if_free(text):\n    return 1 if "free" in text else -1\n'
LUNCH = 'def ham_if_lunch(text):\n    return 0 if "lunch" in text else -1\n'
BOOM = 'def boom(text):\n    return 1 if "win" in text else (1 // 0 if "family" in text else -1)\n'


@pytest.fixture(scope="module")
def bench():
    frame = pd.DataFrame({"text": TEXTS * 4, "label": GOLD * 4})
    train = from_dataframe(frame.drop(columns="label"), "text", None, ["ham", "spam"], name="train")
    dev = from_dataframe(frame.iloc[:8], "text", "label", ["ham", "spam"], name="dev")
    wb = Workbench(TaskSpec("spam", "spam?", ["ham", "spam"]), train, dev, root=None, smoke_rows=32)
    for source in (FREE, LUNCH, BOOM):
        assert wb.add(source)
    wb.apply(progress=False)
    wb.fit()
    return wb


def test_examples_are_the_rows_behind_the_numbers(bench):
    covered = bench.examples("spam_if_free", "covered")
    assert list(covered.columns) == ["text", "vote"] and covered.attrs["split"] == "train"
    assert len(covered) == 12 and covered["text"].str.contains("free").all() and set(covered["vote"]) == {"spam"}
    # dev: "free lunch thanks" is ham, and spam_if_free says spam
    wrong = bench.examples("spam_if_free", "wrong")
    assert wrong.attrs["split"] == "dev" and list(wrong["text"]) == ["free lunch thanks"]
    assert list(wrong[["vote", "gold"]].iloc[0]) == ["spam", "ham"]
    conflicts = bench.examples("spam_if_free", "conflicts")
    assert set(conflicts["text"]) == {"free lunch thanks"} and set(conflicts["others"]) == {"ham_if_lunch=ham"}
    errors = bench.examples("boom", "errors")
    assert set(errors["text"]) == {"family dinner"} and len(errors) == 4
    assert "ZeroDivisionError" in errors.attrs["message"]
    assert len(bench.examples("spam_if_free", "covered", split="dev", limit=2)) == 2
    assert list(bench.examples("spam_if_free", "covered", split="dev").columns) == ["text", "vote", "gold"]
    with pytest.raises(ValueError, match="unknown kind"):
        bench.examples("spam_if_free", "nope")
    with pytest.raises(KeyError, match="no program named"):
        bench.examples("nope")


def test_labels_with_votes(bench):
    labels = bench.labels("train", votes=True)
    assert list(labels.columns) == ["text", "label", "confidence", "covered", "vote:spam_if_free",
                                    "vote:ham_if_lunch", "vote:boom"]
    row = labels.iloc[4]  # "free lunch thanks": both vote
    assert row["vote:spam_if_free"] == "spam" and row["vote:ham_if_lunch"] == "ham" and pd.isna(row["vote:boom"])
    assert labels.loc[labels["text"] == "meeting tomorrow", "covered"].eq(False).all()
    assert list(bench.labels("train").columns) == ["text", "label", "confidence", "covered"]


def test_snorkel_labeling_functions_come_in(bench):
    snorkel = pytest.importorskip("snorkel.labeling")
    import re as re_module  # noqa: F401  (the LF below uses the module global `re`)

    SPAM, ABSTAIN = 1, -1

    @snorkel.labeling_function()
    def lf_click(x):
        return SPAM if re.search(r"click|win", x.text) else ABSTAIN

    def keyword(x, words):
        return 0 if any(w in x.text for w in words) else -1

    lf_words = snorkel.LabelingFunction("lf_words", keyword, resources={"words": ["thanks", "meeting"]})
    assert is_labeling_function(lf_click) and not is_labeling_function(keyword)
    wb = Workbench(bench.task, bench.datasets["train"], bench.datasets["dev"], root=None, smoke_rows=32)
    assert wb.add(lf_click) and wb.add(lf_words)
    assert [p.name for p in wb.programs] == ["lf_click", "lf_words"]
    assert wb.programs[0].provenance["source"] == "snorkel" and "SPAM = 1" in wb.programs[0].source
    wb.apply(progress=False)
    texts = np.array(TEXTS * 4)
    L = wb.matrix("train")
    assert ((L[:, 0] == 1) == np.char.find(texts, "win").__ge__(0) | (np.char.find(texts, "click") >= 0)).all()
    assert ((L[:, 1] == 0) == ((np.char.find(texts, "thanks") >= 0) | (np.char.find(texts, "meeting") >= 0))).all()
    # the same votes as snorkel's own applier
    from snorkel.labeling import PandasLFApplier

    theirs = PandasLFApplier([lf_click, lf_words]).apply(pd.DataFrame({"text": texts}), progress_bar=False)
    assert (theirs == L).all()


def test_from_snorkel_says_what_cannot_be_carried():
    snorkel = pytest.importorskip("snorkel.labeling")
    helper = object()

    def uses_object(x):
        return 1 if helper else -1

    with pytest.raises(ValueError, match="uses 'helper'"):
        from_snorkel([snorkel.LabelingFunction("uses_object", uses_object)])
    with pytest.raises(ValueError, match="lambda"):
        from_snorkel([snorkel.LabelingFunction("lam", lambda x: 1)])
    with pytest.raises(TypeError, match="not a snorkel LabelingFunction"):
        from_snorkel([uses_object])


def test_labels_magic_writes_csv(tmp_path, capsys):
    from IPython.testing.globalipapp import get_ipython, start_ipython

    ip = start_ipython() or get_ipython()  # the test shell is a singleton: another module may have started it
    ip.run_line_magic("load_ext", "alchemist_magics")
    ip.run_line_magic("config", f"Alchemist.root = {str(tmp_path / 'root')!r}")
    ip.run_line_magic("config", "Alchemist.api_key_env = 'ALCHEMIST_TEST_NO_SUCH_KEY'")
    ip.run_line_magic("config", "Alchemist.base_url = ''")
    frame = pd.DataFrame({"text": TEXTS * 10, "label": GOLD * 10})
    ip.user_ns.update(rows=frame.drop(columns="label"), labeled=frame.iloc[:40])
    assert ip.run_cell("%%alchemist outputs -d rows --dev labeled -n 3 --keywords 'spam: free, win; ham: lunch'\n"
                       "Is this message spam?").success
    out = tmp_path / "labels.csv"
    capsys.readouterr()
    result = ip.run_cell(f"labels = %alchemist labels outputs --votes --to {out}")
    assert result.success, result.error_in_exec
    text = capsys.readouterr().out
    assert re.search(rf"wrote 80 rows \(\d+ labeled by the programs\) to {re.escape(str(out))}", text)
    labels = ip.user_ns["labels"]
    back = pd.read_csv(out, index_col=0)
    assert list(back.columns[:4]) == ["text", "label", "confidence", "covered"] and len(back) == 80
    assert any(c.startswith("vote:") for c in back.columns) and list(back["text"]) == list(labels["text"])
    bad = ip.run_cell(f"%alchemist labels outputs --to {tmp_path / 'labels.xlsx'}")
    assert not bad.success and "a .csv or .parquet file" in str(bad.error_in_exec)


def test_overview_plots_a_fitted_workbench(bench):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from alchemist_magics.notebook.plots import overview

    fig = overview(bench)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Programs: coverage and accuracy", "Labels of the 32 rows", "Cost as the data grows"]
    assert len(fig.axes[0].collections) == 3


def test_a_cached_run_reports_the_faults_of_its_first_run(tmp_path):
    from alchemist_magics.programs import LabelSpace, OutputCache, apply_programs

    ls, cache = LabelSpace(["ham", "spam"]), OutputCache(tmp_path)
    sources = [BOOM, FREE, "def every_row(text):\n    return 1 // 0\n"]
    first = apply_programs(sources, TEXTS, ls, cache=cache, progress=False).runs
    again = apply_programs(sources, TEXTS, ls, cache=cache, progress=False).runs
    assert [r.cached for r in again] == [True, True, True]
    assert [r.status for r in again] == ["ok", "ok", "faulted"]
    for before, after in zip(first, again):
        assert (after.status, after.message, after.runtime_s) == (before.status, before.message, before.runtime_s)
    assert again[0].faults == 1 and "(first: row 7: ZeroDivisionError: integer division or modulo by zero)" in again[0].message
    assert "raised on every row (first: row 0: ZeroDivisionError" in again[2].message
