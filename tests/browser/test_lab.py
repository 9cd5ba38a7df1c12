"""The notebook experience in a real JupyterLab and a real browser (Debian's Chromium).

The scenarios share one JupyterLab and run in order: the %%alchemist cell's programs land as cells
below it, running them fills the panel and the sidebar, the sidebar jumps to a cell, an edited
program changes its row, re-running the magic neither duplicates cells nor destroys (or moves) the
edited one and registers it, the sidebar comes back after a page reload; Run All after changing
-n; deleting a cell; %alchemist disable/remove; a faulty program shown red; a kernel restart then
one program cell (the task is loaded from the store). After each, the kernel's program list equals
the notebook's program cells, in order, with their sources. Screenshots go to tests/browser/artifacts/.
"""
import re

import pytest

from labsession import (ARTIFACTS, EDIT, EXTRA, MAGIC, disable_then_remove_last, faulty_program_shown_red, open_notebook,
                        require_browser)

require_browser()

N = 5


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    with open_notebook(tmp_path_factory.mktemp("lab"), n=N, viewport=(1500, 950), screenshot="last.png") as notebook:
        yield notebook


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
    # the honest line changes to "sent" only once the extension answered
    notebook.cell(MAGIC).locator(".alchemist-status-line", has_text="sent to JupyterLab as cells").wait_for()
    output = notebook.output(MAGIC)
    sent = int(re.search(r"(\d+) programs sent to JupyterLab as cells", output).group(1))
    assert 2 <= sent <= N + EXTRA
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
    rows = panel.locator("table.alchemist-matrix tr:not(.alc-problem)")
    assert rows.count() == 1 + sent
    assert [rows.nth(i + 1).locator("td").first.inner_text() for i in range(sent)] == names
    # the cost meter's wording is the panel's (issue 18): only its substance is checked here
    assert re.search(r"(?is)cost.*spent.*zero-shot.*\$\d+\.\d{4}", panel.inner_text())

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
    assert notebook.cells()[edited]["id"] == edited_id  # kept in place: the order does not change
    # the kernel has the edited source (the cell was not run again), in the notebook's order
    programs = notebook.assert_kernel_is_notebook()
    assert programs[0]["source"].rstrip() == EDIT.rstrip() and [p["name"] for p in programs] == names
    page.screenshot(path=ARTIFACTS / "4-rerun.png")

    # the sidebar reads the notebook metadata: it survives a reload of the page
    notebook.save()
    page.reload()
    notebook.open()
    assert list(sidebar_rows(notebook)) == names


def magic_source(n: int) -> str:
    return f"%%alchemist spam -d train --dev dev -n {n}\nIs this YouTube comment spam (SPAM) or not (HAM)?"


def test_run_all_after_changing_n(notebook):
    """The old cells were queued before the magic replaced them: they are refused, not registered."""
    before = len(notebook.notebook_programs())
    notebook.set_source(MAGIC, magic_source(3))
    notebook.run_all()
    notebook.cell(MAGIC).locator(".alchemist-status-line", has_text="sent to JupyterLab as cells").wait_for()
    notebook.wait_idle()
    programs = notebook.assert_kernel_is_notebook()
    generated = [c for c in notebook.program_cells() if not c["source"].endswith(EDIT)]
    assert 1 <= len(generated) <= 3 + EXTRA and len(programs) < before
    notes = notebook.kernel_eval("print('\\n'.join(_alchemist.notes))")
    assert "replaced by a newer run of its %%alchemist cell" in notes  # the stale queued cells ran and were refused
    assert list(sidebar_rows(notebook)) == [p["name"] for p in programs]
    notebook.page.screenshot(path=ARTIFACTS / "5-run-all.png")


def test_deleting_a_cell_unregisters_its_program(notebook):
    programs = notebook.assert_kernel_is_notebook()
    cells = notebook.cells()
    last = max(i for i, c in enumerate(cells) if c["source"].startswith("%%alchemist_program spam "))
    notebook.delete_cell(last)
    after = notebook.assert_kernel_is_notebook()
    assert [p["name"] for p in after] == [p["name"] for p in programs][:-1]
    notebook.page.wait_for_function("(n) => document.querySelectorAll('#alchemist-sidebar .jp-alchemist-program')"
                                    ".length === n", arg=len(after))
    assert list(sidebar_rows(notebook)) == [p["name"] for p in after]


def test_disable_then_remove(notebook):
    disable_then_remove_last(notebook)


def test_faulty_program_is_shown_red(notebook):
    faulty_program_shown_red(notebook)
    notebook.page.screenshot(path=ARTIFACTS / "6-faulty.png")


def test_restart_then_one_program_cell_loads_the_task(notebook):
    expected = notebook.assert_kernel_is_notebook()
    notebook.restart_kernel()
    notebook.run(0)
    first = next(i for i, c in enumerate(notebook.cells()) if c["source"].startswith("%%alchemist_program spam "))
    notebook.run(first)
    output = notebook.output(first)
    assert "loaded task spam from " in output and "each verified by its hash" in output
    assert notebook.assert_kernel_is_notebook() == expected
    # the loaded task knows its cells (the extension answered its sync-request): deleting one that
    # never ran in this kernel unregisters its program
    last = max(i for i, c in enumerate(notebook.cells()) if c["source"].startswith("%%alchemist_program spam "))
    assert last != first
    notebook.delete_cell(last)
    assert notebook.assert_kernel_is_notebook() == expected[:-1]


def test_moving_cells_and_a_program_that_already_has_a_cell(notebook):
    """The kernel's order follows moved cells; re-running the magic inserts no second cell for a
    program that already has one elsewhere (tutorial 1's edit cell) and registers that cell."""
    notebook.run(MAGIC, timeout_s=120)
    notebook.cell(MAGIC).locator(".alchemist-status-line", has_text="sent to JupyterLab as cells").wait_for()
    programs = notebook.assert_kernel_is_notebook()
    assert len(programs) >= 2
    cells = notebook.cells()
    first, second = [i for i, c in enumerate(cells) if c["source"].startswith("%%alchemist_program spam ")][:2]
    notebook.page.evaluate("([a, b]) => window.jupyterapp.shell.currentWidget.content.model.sharedModel"
                           ".moveCell(a, b)", [first, second])
    moved = notebook.assert_kernel_is_notebook()
    assert [p["name"] for p in moved[:2]] == [programs[1]["name"], programs[0]["name"]]

    generated = [c["alchemist"]["name"] for c in notebook.program_cells() if not c["source"].endswith(EDIT)]
    name = generated[-1]
    mine = f"%%alchemist_program spam {name}\ndef {name}(text):\n    return 1 if 'subscribe' in text.lower() else -1"
    notebook.insert_cell(len(notebook.cells()), mine)
    notebook.run(MAGIC, timeout_s=120)
    notebook.cell(MAGIC).locator(".alchemist-status-line",
                                 has_text=f"already in another cell, which the kernel follows: {name}").wait_for()
    holding = [c for c in notebook.cells() if c["source"].startswith(f"%%alchemist_program spam {name}")]
    assert len(holding) == 1 and holding[0]["source"] == mine
    after = notebook.assert_kernel_is_notebook()
    assert after[-1] == {"name": name, "source": mine.partition("\n")[2], "disabled": False}
