"""The same flows in Notebook 7 (the `notebook` package): program cells inserted by the extension,
Run All after changing -n, deleting a cell, the sidebar opened from the notebook toolbar's icon,
and a kernel restart followed by one program cell; a program cell that hangs costs its --time-limit
once (a second run takes < 2 s). After each, the kernel's program list equals the notebook's program
cells, in order, with their sources. Then an edited program cell and a re-run of the magic (the
edit stays in place and in the kernel), %alchemist disable / remove, and a faulty program shown red."""
import time

import pytest

from labsession import (ARTIFACTS, EDIT, EXTRA, MAGIC, disable_then_remove_last, faulty_program_shown_red, open_notebook,
                        require_browser)

require_browser("notebook", minversion="7")



@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    with open_notebook(tmp_path_factory.mktemp("nb7"), n=4, app="notebook", screenshot="nb7-last.png") as notebook:
        yield notebook


def test_notebook7_cells_run_all_delete_sidebar_restart(notebook):
    page = notebook.page
    notebook.run(0)
    notebook.run(MAGIC, timeout_s=120)
    notebook.cell(MAGIC).locator(".alchemist-status-line", has_text="sent to JupyterLab as cells").wait_for()
    programs = notebook.assert_kernel_is_notebook()
    assert 2 <= len(programs) <= 4 + EXTRA and len(notebook.program_cells()) == len(programs)

    # Run All after asking for fewer programs: the old queued cells are refused
    notebook.set_source(MAGIC, "%%alchemist spam -d train --dev dev -n 2\n"
                               "Is this YouTube comment spam (SPAM) or not (HAM)?")
    notebook.run_all()
    notebook.cell(MAGIC).locator(".alchemist-status-line", has_text="sent to JupyterLab as cells").wait_for()
    notebook.wait_idle()
    programs = notebook.assert_kernel_is_notebook()
    assert 1 <= len(programs) <= 2 + EXTRA

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


def test_notebook7_edit_rerun_disable_remove_faulty(notebook):
    page = notebook.page
    cells = notebook.cells()
    first = next(i for i, c in enumerate(cells) if c["source"].startswith("%%alchemist_program spam "))
    name, edited_id = cells[first]["alchemist"]["name"], cells[first]["id"]
    notebook.set_source(first, f"%%alchemist_program spam {name}\n{EDIT}")
    notebook.run(first)
    assert notebook.output(first).startswith(f"replaced {name}")

    # re-running the magic keeps the edited cell in place, and the kernel keeps its edited source
    old_ids = sorted(c["id"] for c in notebook.program_cells())
    notebook.run(MAGIC, timeout_s=120)
    page.wait_for_function("(old) => { const cells = window.jupyterapp.shell.currentWidget.content.model"
                           ".sharedModel.cells; return cells.filter(c => old.includes(c.id)).length === 1; }",
                           arg=old_ids)
    notebook.wait_idle()
    assert notebook.cells()[first]["id"] == edited_id and notebook.cells()[first]["source"].endswith(EDIT)
    programs = notebook.assert_kernel_is_notebook()
    assert programs[0]["name"] == name and programs[0]["source"].rstrip() == EDIT.rstrip()

    disable_then_remove_last(notebook)
    faulty_program_shown_red(notebook)
    page.screenshot(path=ARTIFACTS / "nb7-faulty.png")
