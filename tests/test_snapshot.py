"""The panel's static snapshot in an executed tutorial: after nbconvert runs tutorial 1, the
%%alchemist cell's stored output is the panel's last real state (not "writing 10 programs"), and
the HTML export shows that analysis table, as nbviewer, GitHub and a closed kernel would."""
import copy
import json
import re
from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")
nbconvert = pytest.importorskip("nbconvert")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TUTORIAL = NOTEBOOKS / "01_text_youtube.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"


def magic_cell(nb) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.startswith("%%alchemist "))


@pytest.fixture(scope="module")
def executed():
    if not TUTORIAL.is_file():
        pytest.skip("no tutorial 1")
    nb = nbformat.read(TUTORIAL, as_version=4)
    # one cell more at the end: the panel's state when the notebook is done
    nb.cells.append(nbformat.v4.new_code_cell("import json\nprint(json.dumps(_alchemist.panel._repr_html_()))"))
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def test_the_stored_panel_is_the_last_state(executed):
    outputs = executed.cells[magic_cell(executed)].outputs
    panels = [o for o in outputs if o.output_type == "display_data" and "text/html" in o.data
              and o.data.get("text/plain", "").startswith("Panel(")]
    assert len(panels) == 1
    data = panels[0].data
    final = json.loads(executed.cells[-1].outputs[0].text)
    assert data["text/html"] == final  # the snapshot was updated by every later refresh, edits included
    assert "writing 10 programs" not in data["text/plain"] and "label model" in data["text/plain"]
    widget = outputs[outputs.index(panels[0]) - 1]  # the live widget for JupyterLab, right before it
    assert WIDGET in widget.data and WIDGET not in data


def test_the_html_export_shows_the_final_analysis_table(executed):
    nb = copy.deepcopy(executed)
    nb.cells.pop()
    html, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    tables = re.findall(r'<table class="alc-table alc-matrix">.*?</table>', html, re.S)
    assert len(tables) == 1  # the panel's matrix as HTML, not only a widget for a script to draw
    final = json.loads(executed.cells[-1].outputs[0].text)
    text = lambda h: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", h)).strip()  # noqa: E731
    final_table = re.search(r'<table class="alc-table alc-matrix">.*?</table>', final, re.S).group(0)
    assert text(tables[0]) == text(final_table)  # the same numbers as the last state
    rows = re.findall(r'<td class="alc-name">(.*?)</td>', tables[0])
    names = [re.sub(r"<wbr\s*/?>", "", r) for r in rows]
    program_names = [n.strip("'") for n in re.findall(r"'[a-z0-9_]+'", executed.cells[7].outputs[0].text)]
    assert set(program_names) <= set(names) and len(names) >= 2
    assert "Cost:</b> spent" in html and "writing 10 programs" not in html
