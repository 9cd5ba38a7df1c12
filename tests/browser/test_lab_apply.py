"""Applying programs in a real JupyterLab and a real browser (Debian's Chromium): a program cell
that hangs costs its --time-limit once (a second run of the cell takes < 2 s, the outcome is
remembered) and is shown red in the panel; a slow program's progress shows in the panel while it
runs. After each, the kernel's program list equals the notebook's program cells, in order, with
their sources. Screenshots go to tests/browser/artifacts/."""
import re
import time

import pytest

from labsession import ARTIFACTS, MAGIC, open_notebook, require_browser

require_browser()

HANG = "%%alchemist_program spam hangs --time-limit 3\ndef hangs(text):\n    while True:\n        pass\n"
SLOW = ("%%alchemist_program spam slow_check --time-limit 300\ndef slow_check(text):\n    total = 0\n"
        "    for i in range(40000):\n        total += i\n    return 1 if 'check' in text.lower() else -1\n")
TRAIN_ROWS = "1,586"  # WRENCH youtube's train split


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    with open_notebook(tmp_path_factory.mktemp("lab-apply"), n=3, screenshot="apply-last.png") as notebook:
        yield notebook


def timed_run(notebook, index: int) -> float:
    start = time.monotonic()
    notebook.run(index, timeout_s=120)
    return time.monotonic() - start


def test_a_hanging_program_costs_its_limit_once_and_is_shown_red(notebook):
    notebook.run(0)
    notebook.run(MAGIC, timeout_s=180)
    notebook.cell(MAGIC).locator(".alchemist-status-line", has_text="sent to JupyterLab as cells").wait_for()
    before = notebook.assert_kernel_is_notebook()
    at = len(notebook.cells())
    notebook.insert_cell(at, HANG)
    took = timed_run(notebook, at)
    output = notebook.output(at)
    assert took >= 3 and "AlchemistError: program hangs not registered: timeout" in output, (took, output)
    # the panel (the %%alchemist cell's output) shows it red, as a timeout
    panel = notebook.cell(MAGIC)
    red = panel.locator(".alc-refused-table tr", has_text="hangs").locator("td.alc-bad", has_text="timeout")
    red.first.wait_for()
    assert "exceeded the 3 s time limit" in panel.locator(".alc-refused-table").inner_text()
    notebook.page.screenshot(path=ARTIFACTS / "apply-1-timeout.png")
    # the kernel has the other programs, in the notebook's order; the refused cell is not one of them
    kernel = notebook.kernel_programs()
    assert [{**p, "source": p["source"].rstrip()} for p in kernel] == [
        {**p, "source": p["source"].rstrip()} for p in notebook.notebook_programs() if p["name"] != "hangs"]
    assert len(kernel) == len(before)

    # a second run of the same cell does not wait for it again
    again = timed_run(notebook, at)
    assert again < 2, again
    output = notebook.output(at)
    assert "AlchemistError: program hangs not registered: timeout" in output and "not run again" in output
    red.first.wait_for()
    # a refresh of the others (%alchemist apply) is quick too: nothing hangs in it
    notebook.insert_cell(at + 1, "%alchemist apply")
    assert timed_run(notebook, at + 1) < 2
    # delete the refused cell and the command: the kernel's programs are exactly the notebook's
    notebook.delete_cell(at + 1)
    notebook.delete_cell(at)
    assert notebook.assert_kernel_is_notebook() == before
    panel.locator(".alc-refused-table").wait_for(state="detached")  # its cell is gone: so is its red row


def test_a_slow_programs_progress_shows_while_it_runs(notebook):
    at = len(notebook.cells())
    notebook.insert_cell(at, SLOW)
    cell_id = notebook.cells()[at]["id"]
    notebook.page.evaluate("""(index) => {
        const panel = window.jupyterapp.shell.currentWidget;
        panel.content.activeCellIndex = index;
        window.jupyterapp.commands.execute('notebook:run-cell');  // not awaited: we watch it run
    }""", at)
    # while the cell still executes, the panel's live table shows slow_check running, rows done of n
    seen = notebook.page.wait_for_function("""([magic, id]) => {
        const panel = window.jupyterapp.shell.currentWidget;
        const cell = panel.content.widgets.find(c => c.model.id === id);
        const out = panel.content.widgets[magic].node;
        const row = [...out.querySelectorAll('.alc-live-table tr')].find(
            tr => tr.querySelector('td') && tr.querySelector('td').innerText.replace(/\\s/g, '') === 'slow_check');
        const running = row && row.querySelector('td.alc-running');
        const m = running && running.innerText.match(/running ([\\d,]+)\\/([\\d,]+)/);
        // still executing: this new cell has no execution count until its run is done
        if (!m || !cell || cell.model.executionCount !== null) { return null; }
        const done = Number(m[1].replace(/,/g, ''));
        return done > 0 ? [running.innerText, out.querySelector('.alc-live-line').innerText] : null;
    }""", arg=[MAGIC, cell_id], timeout=120_000, polling=100).json_value()
    notebook.page.screenshot(path=ARTIFACTS / "apply-2-running.png")
    text, line = seen
    done, total = re.fullmatch(r"running ([\d,]+)/([\d,]+)", text.strip()).groups()
    assert total == TRAIN_ROWS and 0 < int(done.replace(",", "")) < 1586
    assert re.search(r"running slow_check on train \([\d,]+/1,586 rows\)", line), line
    notebook.wait_idle(240)
    assert notebook.output(at).startswith("added slow_check")
    # done: the live table gave way to the matrix, where slow_check is ok
    panel = notebook.cell(MAGIC)
    assert panel.locator(".alc-live-table").count() == 0
    row = panel.locator("table.alchemist-matrix tr", has_text="slow_check")
    assert row.locator("td.alc-status").inner_text() == "ok"
    programs = notebook.assert_kernel_is_notebook()
    assert programs[-1]["name"] == "slow_check"
