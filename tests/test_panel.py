"""The analysis panel: its HTML (classes, polarity names, tidy label-model table, cost sentences,
colours readable in light and dark themes), its controls, its stable repr, and the static snapshot
that every update re-sends under one display id (checked in a real kernel through nbclient)."""
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from alchemist_magics.notebook import panel as panel_module
from alchemist_magics.notebook.panel import CostReport, Panel, cost_sentence, matrix_html, scores_html

ANALYSIS = pd.DataFrame(
    {"j": [0, 1, 2], "Polarity": [[1], [0], [0, 1]], "Coverage": [0.2, 0.005, 0.5],
     "Overlaps": [0.1, 0.0, 0.2], "Conflicts": [0.05, 0.0, 0.15], "Correct": [18, 1, 10],
     "Incorrect": [2, 0, 10], "Emp. Acc.": [0.9, 1.0, 0.5], "Faults": [0, 0, 3], "Invalid": [0, 0, 0],
     "Runtime (s)": [0.01, 0.02, 0.03], "Status": ["ok", "ok", "faulty"], "Problem": ["", "", "3 faults"]},
    index=["spam_if_free", "ham_if_thanks", "both_ways"])
SCORES = pd.DataFrame({"accuracy": [0.9, 0.92], "f1": [0.88, 0.91], "chosen": [False, True]},
                      index=pd.Index(["majority", "snorkel"], name="model"))
COST = {"requests": 0, "cache_hits": 0, "cost_usd": 0.0, "spent_usd": 0.0, "unknown_cost_requests": 0,
        "cost_text": "$0.0000", "by_purpose": {}, "estimate_usd": None, "zero_shot_usd": 0.0273,
        "zero_shot_rows": 1586, "ratio": None, "budget_usd": None}


def cells(html_text: str) -> list[tuple[str, str]]:
    """(class, text) of every body cell of the first table."""
    body = html_text.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'<td(?: class="([^"]*)")?>(.*?)</td>', body.replace("<wbr>", ""))


def test_matrix_names_polarity_and_marks_cells_by_class():
    html_text = matrix_html(ANALYSIS, ["HAM", "SPAM"])
    assert 'class="alc-table alc-matrix alchemist-matrix"' in html_text and "style=" not in html_text
    row = cells(html_text)[:13]
    assert row[0] == ("alc-name", "spam_if_free") and row[1] == ("alc-j", "0")  # j is its own cell
    assert row[2] == ("alc-pol alc-pol-1", "SPAM") and row[3] == ("alc-status alc-good", "ok")  # status early
    polarity = dict((name, text) for (_, name), (_, text) in zip(cells(html_text)[::13], cells(html_text)[2::13]))
    assert polarity == {"spam_if_free": "SPAM", "ham_if_thanks": "HAM", "both_ways": "HAM, SPAM"}
    classes = {text: cls for cls, text in cells(html_text)}
    assert classes["faulty"] == "alc-status alc-bad" and classes["ok"] == "alc-status alc-good"
    assert "alc-warn" in dict(cells(html_text)[13:26])  # coverage 0.005: warned
    assert "<th>Dev acc.</th>" in html_text and ">Problem<" not in html_text
    # a problem is a full-width line right under its program's row
    assert ('<td class="alc-name">both_<wbr>ways</td>' in html_text and
            re.search(r'both_<wbr>ways</td>.*?</tr><tr class="alc-problem"><td></td><td class="alc-text alc-bad" '
                      r'colspan="12">problem: 3 faults</td></tr></tbody>', html_text))
    assert "alc-problem" not in matrix_html(ANALYSIS.assign(Problem=""), ["HAM", "SPAM"])


def test_label_model_table_is_tidy():
    html_text = scores_html(SCORES, "snorkel")
    head = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", html_text)
    assert head == ["label model", "accuracy", "f1"]  # no empty "model" header row, no chosen column
    assert '<tr class="alc-chosen"><td class="alc-name">snorkel (chosen)</td><td>0.920</td>' in html_text
    assert "ham_<wbr>if_<wbr>thanks" in matrix_html(ANALYSIS)  # names break at underscores only


def test_cost_reads_as_sentences_and_unknown_is_never_zero():
    text = cost_sentence(COST)
    assert text == ("spent $0.0000 so far, with no LLM request (offline); labeling every row zero-shot: $0.0273 "
                    "(1,586 rows, one LLM request each). No budget set.")
    assert "None" not in text and "n/a" not in text
    unknown = {**COST, "requests": 3, "cache_hits": 1, "cost_usd": None, "spent_usd": 0.0, "unknown_cost_requests": 3,
               "cost_text": "unknown (5210 tokens; no price for my-model)", "zero_shot_usd": None, "ratio": None}
    text = cost_sentence(unknown)
    assert "$0.0000" not in text and text.startswith("spent unknown (5210 tokens; no price for my-model) so far, on 3 LLM")
    assert "zero-shot: unknown" in text
    paid = {**COST, "requests": 10, "cache_hits": 2, "cost_usd": 0.0021, "spent_usd": 0.0021, "cost_text": "$0.0021",
            "by_purpose": {"program": 0.0021}, "ratio": 13.0, "budget_usd": 0.05, "estimate_usd": 0.0019}
    assert cost_sentence(paid) == (
        "spent $0.0021 so far, on 10 LLM requests (2 answered from the cache), by purpose program $0.0021; labeling every row "
        "zero-shot: $0.0273 (1,586 rows, one LLM request each). The programs cost 13.0x less. Writing the programs "
        "with the LLM: about $0.0019 (estimate). Budget $0.0500.")
    report = CostReport(paid)
    assert report["ratio"] == 13.0 and repr(report) == "Cost: " + cost_sentence(paid) and "alc-cost" in report._repr_html_()


def test_repr_is_stable_and_sort_control_says_what_it_does():
    panel = Panel("spam", classes=["HAM", "SPAM"])
    assert repr(panel) == "Panel(task='spam', programs=0, label_model=None, status='no programs yet')"
    panel.update(analysis=ANALYSIS, scores=SCORES, chosen="snorkel", cost=COST, status="3 programs")
    assert repr(panel) == "Panel(task='spam', programs=3, label_model='snorkel', status='3 programs')"
    assert "0x" not in repr(panel)
    box = panel.widget()
    sort = panel._widgets["sort"]
    labels = [label for label, _ in sort.options]
    assert labels[:3] == ["the order the programs were added", "Coverage, highest first", "Coverage, lowest first"]
    assert "Dev acc., lowest first" in labels and sort.description == "Sort rows by"
    sort.value = "Coverage|asc"
    assert list(panel.sorted_analysis().index) == ["ham_if_thanks", "spam_if_free", "both_ways"]
    assert "sorted by Coverage, lowest first" in panel._widgets["body"].value
    panel.sort("Emp. Acc.", descending=True)  # from Python: the control follows
    assert sort.value == "Emp. Acc.|desc" and list(panel.sorted_analysis().index)[0] == "ham_if_thanks"
    panel.update(analysis=ANALYSIS.iloc[:2], status="2 programs")  # same columns: the order is kept
    assert sort.value == "Emp. Acc.|desc" and "sorted by Dev acc., highest first" in panel._widgets["body"].value
    assert box is panel.widget()


def test_palette_reads_at_least_4_5_to_1_in_light_and_dark():
    css = Path(panel_module.__file__).with_name("panel.css").read_text()
    light, dark = css.split("[data-jp-theme-light='false']", 1)

    def palette(block):
        return dict(re.findall(r"--alc-(\w+-(?:bg|fg)):\s*(#[0-9a-f]{6})", block))

    def luminance(hex_colour):
        rgb = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    for block in (light, dark):
        colours = palette(block)
        assert len(colours) == 6
        for kind in ("good", "warn", "bad"):
            a, b = sorted([luminance(colours[f"{kind}-bg"]), luminance(colours[f"{kind}-fg"])])
            assert (b + 0.05) / (a + 0.05) >= 4.5, (kind, colours)
    assert "#c8e6c9" not in css and "rgb(255" not in css  # no hard-coded light-only backgrounds left
    # the sidebar's failing rows use the same readable pair per theme
    sidebar = (Path(panel_module.__file__).resolve().parents[2] / "style" / "base.css").read_text()
    light, dark = sidebar.split("[data-jp-theme-light='false'] .jp-alchemist-sidebar", 1)
    for block in (light, dark):
        colours = palette(block)
        a, b = sorted([luminance(colours["bad-bg"]), luminance(colours["bad-fg"])])
        assert (b + 0.05) / (a + 0.05) >= 4.5
    assert "--jp-error-color3" not in sidebar  # light red in both themes: unreadable under white text


def test_every_update_resends_the_static_snapshot_in_a_real_kernel(tmp_path):
    """display(panel) then panel.update() in a later cell: the first cell's stored output is the last state."""
    nbclient = pytest.importorskip("nbclient")
    setup = ("import pandas as pd\nfrom alchemist_magics.notebook.panel import Panel\n"
             "panel = Panel('spam', classes=['HAM', 'SPAM'])\npanel.progress(0, 4, 'writing 4 programs')\n"
             "display(panel)")
    update = ("table = pd.DataFrame({'Polarity': [[1]], 'Coverage': [0.25], 'Status': ['ok']}, index=['spam_if_free'])\n"
              "panel.update(analysis=table, status='1 programs; label model majority')")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell(update)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    widget, snapshot = nb.cells[0].outputs  # the live widget, then the snapshot
    assert widget.output_type == snapshot.output_type == "display_data"
    assert "application/vnd.jupyter.widget-view+json" in widget.data and "text/html" not in widget.data
    assert widget.data["text/plain"] == "Panel(task='spam') (live widget)"
    data = snapshot.data
    assert data["text/plain"] == "Panel(task='spam', programs=1, label_model=None, status='1 programs; label model majority')"
    html_text = data["text/html"].replace("<wbr>", "")
    assert "spam_if_free" in html_text and "writing 4 programs" not in html_text and 'class="alc-panel alc-snapshot mathjax_ignore' in html_text
    assert "alchemist-matrix" not in html_text  # the live widget's matrix alone is the one tests look for
    assert nb.cells[1].outputs == []


def test_the_extension_carries_the_same_panel_rules():
    """The JupyterLab extension imports the panel's own stylesheet (one file, for untrusted notebooks),
    and the built extension carries its rules."""
    repo = Path(__file__).resolve().parents[1]
    for entry in ("index.js", "index.css"):
        assert "../alchemist_magics/notebook/panel.css" in (repo / "style" / entry).read_text()
    built = repo / "alchemist_magics" / "labextension" / "static"
    assert any(".alc-snapshot" in f.read_text(errors="ignore") for f in built.glob("*.js"))
    copy = panel_module.CSS
    # the two outputs of one panel: the snapshot hides beside a live widget, a dead widget beside a snapshot
    assert ".jp-OutputArea:has(.alc-widget) .jp-OutputArea-child:has(.alc-snapshot)" in copy
