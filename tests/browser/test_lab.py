"""The notebook experience in a real JupyterLab and a real browser (Debian's Chromium).

One scenario, in order: the %%alchemist cell's programs land as cells below it, running them
fills the panel and the sidebar, the sidebar jumps to a cell, an edited program changes its row,
re-running the magic neither duplicates cells nor destroys the edited one, and the sidebar comes
back after a page reload. Screenshots go to tests/browser/artifacts/.
"""
import re
from pathlib import Path

import pytest

from labsession import DATA, MAGIC, LabServer, Notebook, chromium, launch_browser

if chromium() is None:
    pytest.skip("no Chromium at /usr/bin/chromium: apt-get install -y chromium (scripts/setup.sh does it as root)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("jupyterlab")
if not (DATA / "train.json").is_file():
    pytest.skip(f"no WRENCH youtube data at {DATA}", allow_module_level=True)

ARTIFACTS = Path(__file__).parent / "artifacts"
N = 5
EDIT = "def check_out(text):\n    return 1 if 'check out' in text.lower() else -1\n"


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    ARTIFACTS.mkdir(exist_ok=True)
    with LabServer(tmp_path_factory.mktemp("lab"), n=N) as server, sync_api.sync_playwright() as p:
        browser = launch_browser(p)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        try:
            yield Notebook(page, server).open()
        finally:
            page.screenshot(path=ARTIFACTS / "last.png")
            browser.close()


def sidebar_rows(notebook) -> dict[str, list[str]]:
    """Program name -> the texts of its sidebar row (program, coverage, dev acc., conflicts, faults, status)."""
    rows = notebook.open_sidebar().locator(".jp-alchemist-program")
    return {rows.nth(i).get_attribute("data-name"): [rows.nth(i).locator(".jp-alchemist-name").inner_text(),
                                                     *rows.nth(i).locator(".jp-alchemist-stat").all_inner_texts()]
            for i in range(rows.count())}


def test_program_cells_panel_sidebar_edit_and_rerun(notebook):
    page = notebook.page
    notebook.run(0)
    notebook.run(MAGIC, timeout_s=120)
    # the programs arrive by comm after the cell finished: wait for the cells
    page.wait_for_function(f"() => window.jupyterapp.shell.currentWidget.content.widgets.length > {MAGIC + 1}")
    output = notebook.cell(MAGIC).locator(".jp-OutputArea").inner_text()
    sent = int(re.search(r"(\d+) programs sent to JupyterLab as cells", output).group(1))
    assert 2 <= sent <= N
    cells = notebook.cells()
    programs = notebook.program_cells()
    assert len(cells) == 2 + sent and cells[MAGIC + 1: MAGIC + 1 + sent] == programs  # right below, in order
    names = []
    for cell in programs:
        meta = cell["alchemist"]
        assert meta["task"] == "spam" and len(meta["program_id"]) == 12 and meta["source_cell"] == cells[MAGIC]["id"]
        assert cell["source"].startswith(f"%%alchemist_program spam {meta['name']}\n") and "\ndef " in cell["source"]
        names.append(meta["name"])
    page.screenshot(path=ARTIFACTS / "1-cells-inserted.png")

    for index in range(MAGIC + 1, MAGIC + 1 + sent):
        notebook.run(index)
        assert "unchanged" in notebook.cell(index).locator(".jp-OutputArea").inner_text()
    # the panel (an ipywidget in the magic's output): one matrix row per program, and the cost meter
    panel = notebook.cell(MAGIC)
    assert panel.locator("table.alchemist-matrix tr").count() == 1 + sent
    assert [panel.locator("table.alchemist-matrix tr").nth(i + 1).locator("td").first.inner_text()
            for i in range(sent)] == names
    assert re.search(r"Cost: spent \$0\.0000 .* labeling every row zero-shot: \$\d", panel.inner_text())

    rows = sidebar_rows(notebook)
    assert list(rows) == names
    sidebar = notebook.open_sidebar()
    assert "zero-shot every row $" in sidebar.locator(".jp-alchemist-cost").inner_text()
    target = MAGIC + 1 + sent - 1
    sidebar.locator(f".jp-alchemist-program[data-name='{names[-1]}']").click()
    page.wait_for_function(f"() => window.jupyterapp.shell.currentWidget.content.activeCellIndex === {target}")
    page.screenshot(path=ARTIFACTS / "2-sidebar.png")

    # edit the first program and run its cell: its row changes in the sidebar and in the panel
    edited = MAGIC + 1
    panel_row = panel.locator("table.alchemist-matrix tr").nth(1)
    before = panel_row.inner_text()
    notebook.set_source(edited, f"%%alchemist_program spam {names[0]}\n{EDIT}")
    notebook.run(edited)
    assert notebook.cell(edited).locator(".jp-OutputArea").inner_text().startswith(f"replaced {names[0]}")
    page.wait_for_function(
        "([name, old]) => { const row = document.querySelector(`#alchemist-sidebar [data-name='${name}']`);"
        " return row && row.querySelector('[data-key=coverage]').innerText !== old; }", arg=[names[0], rows[names[0]][1]])
    assert panel_row.inner_text() != before
    now = sidebar_rows(notebook)
    assert now[names[0]][1] != rows[names[0]][1] and now[names[0]][5] == "ok"
    assert re.fullmatch(r"cov 0\.\d{3}", now[names[0]][1]) and now[names[0]][4] == "faults 0"
    # the other programs did not run again: same coverage and dev accuracy (conflicts may move)
    assert all(now[name][1:3] == rows[name][1:3] for name in names[1:])
    page.screenshot(path=ARTIFACTS / "3-edited.png")

    # re-running the magic replaces the unedited cells and keeps the edited one, without duplicates
    old_ids = {c["id"] for c in notebook.program_cells()}
    edited_id = notebook.cells()[edited]["id"]
    notebook.run(MAGIC, timeout_s=120)
    page.wait_for_function("(old) => { const cells = window.jupyterapp.shell.currentWidget.content.model"
                           ".sharedModel.cells; return cells.filter(c => old.includes(c.id)).length === 1; }",
                           arg=sorted(old_ids))
    after = notebook.program_cells()
    assert len(notebook.cells()) == 2 + sent and len(after) == sent
    assert sorted(c["alchemist"]["name"] for c in after) == sorted(names)
    kept = [c for c in after if c["id"] == edited_id]
    assert len(kept) == 1 and kept[0]["source"].endswith(EDIT)
    page.screenshot(path=ARTIFACTS / "4-rerun.png")

    # the sidebar reads the notebook metadata: it survives a reload of the page
    notebook.save()
    page.reload()
    notebook.open()
    assert list(sidebar_rows(notebook)) == names
