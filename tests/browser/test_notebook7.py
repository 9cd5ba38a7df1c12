"""The same flows in Notebook 7 (the `notebook` package): program cells inserted by the extension,
Run All after changing -n, deleting a cell, the sidebar opened from the notebook toolbar's icon,
and a kernel restart followed by one program cell; a program cell that hangs costs its --time-limit
once (a second run takes < 2 s). After each, the kernel's program list equals the notebook's program
cells, in order, with their sources."""
import time
from pathlib import Path

import pytest

from labsession import LabServer, MAGIC, Notebook, launch_browser, require_browser

sync_api = require_browser("notebook", minversion="7")

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    ARTIFACTS.mkdir(exist_ok=True)
    with LabServer(tmp_path_factory.mktemp("nb7"), n=4, app="notebook") as server, sync_api.sync_playwright() as p:
        browser = launch_browser(p)
        page = browser.new_page(viewport={"width": 1400, "height": 950})
        try:
            yield Notebook(page, server).open()
        finally:
            page.screenshot(path=ARTIFACTS / "nb7-last.png")
            browser.close()


def test_notebook7_cells_run_all_delete_sidebar_restart(notebook):
    page = notebook.page
    notebook.run(0)
    notebook.run(MAGIC, timeout_s=120)
    notebook.cell(MAGIC).locator(".alchemist-status-line", has_text="sent to JupyterLab as cells").wait_for()
    programs = notebook.assert_kernel_is_notebook()
    assert 2 <= len(programs) <= 4 and len(notebook.program_cells()) == len(programs)

    # Run All after asking for fewer programs: the old queued cells are refused
    notebook.set_source(MAGIC, "%%alchemist spam -d train --dev dev -n 2\n"
                               "Is this YouTube comment spam (SPAM) or not (HAM)?")
    notebook.run_all()
    notebook.cell(MAGIC).locator(".alchemist-status-line", has_text="sent to JupyterLab as cells").wait_for()
    notebook.wait_idle()
    programs = notebook.assert_kernel_is_notebook()
    assert 1 <= len(programs) <= 2

    # the sidebar, from the toolbar icon
    page.locator(".jp-alchemist-toolbar-button").first.click()
    sidebar = page.locator("#alchemist-sidebar")
    sidebar.wait_for(state="visible")
    page.wait_for_function("(n) => document.querySelectorAll('#alchemist-sidebar .jp-alchemist-program').length === n",
                           arg=len(programs))
    rows = sidebar.locator(".jp-alchemist-program")
    assert [rows.nth(i).get_attribute("data-name") for i in range(rows.count())] == [p["name"] for p in programs]
    page.screenshot(path=ARTIFACTS / "nb7-sidebar.png")

    # delete the last program cell: the kernel and the sidebar follow
    if len(programs) > 1:
        last = max(i for i, c in enumerate(notebook.cells()) if c["source"].startswith("%%alchemist_program spam "))
        notebook.delete_cell(last)
        programs = notebook.assert_kernel_is_notebook()
        page.wait_for_function("(n) => document.querySelectorAll('#alchemist-sidebar .jp-alchemist-program')"
                               ".length === n", arg=len(programs))

    # restart, then one program cell: the task comes back from the store
    notebook.restart_kernel()
    notebook.run(0)
    first = next(i for i, c in enumerate(notebook.cells()) if c["source"].startswith("%%alchemist_program spam "))
    notebook.run(first)
    assert "loaded task spam from " in notebook.output(first)
    assert notebook.assert_kernel_is_notebook() == programs


HANG = "%%alchemist_program spam hangs --time-limit 3\ndef hangs(text):\n    while True:\n        pass\n"


def test_notebook7_hanging_program_costs_its_limit_once(notebook):
    before = notebook.assert_kernel_is_notebook()
    at = len(notebook.cells())
    notebook.insert_cell(at, HANG)
    times = []
    for _ in range(2):
        start = time.monotonic()
        notebook.run(at, timeout_s=120)
        times.append(time.monotonic() - start)
        assert "AlchemistError: program hangs not registered: timeout" in notebook.output(at)
    assert times[0] >= 3 and times[1] < 2, times
    assert "not run again" in notebook.output(at)
    kernel = [{**p, "source": p["source"].rstrip()} for p in notebook.kernel_programs()]
    assert kernel == [{**p, "source": p["source"].rstrip()} for p in notebook.notebook_programs() if p["name"] != "hangs"]
    notebook.delete_cell(at)
    assert notebook.assert_kernel_is_notebook() == before
