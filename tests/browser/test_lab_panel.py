"""The analysis panel and the sidebar in a real JupyterLab and Chromium, in the light and the dark
theme: every matrix cell and sidebar row reads at >= 4.5:1 (WCAG AA), no column of the matrix is
cut off at a 1280 px window with the sidebar open, the sort control and the drill-down work, and
the sidebar is open again after a page reload. Screenshots go to tests/browser/artifacts/."""

import pytest

from labsession import ARTIFACTS, MAGIC, open_notebook, require_browser
from panelcheck import add_program_cell, clipping, contrast, layout, panel, run_task, set_theme

require_browser()

AA = 4.5


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with open_notebook(tmp_path_factory.mktemp("panel"), n=5, viewport=(1280, 900), screenshot="panel-last.png") as notebook:
        run_task(notebook, MAGIC)
        add_program_cell(notebook, MAGIC)  # a program that raises on some rows: a failing one
        layout(notebook.page)
        yield notebook


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_every_cell_reads_at_aa_contrast_and_no_column_is_cut(lab, theme):
    page = lab.page
    set_theme(page, theme)
    view = panel(lab, MAGIC)
    cells = contrast(view.locator("table.alchemist-matrix"), "td, th")
    assert len(cells) >= len(lab.kernel_programs()) * 13  # the programs x the columns, and the header
    low = [c for c in cells if c["ratio"] < AA]
    assert not low, f"{theme}: {low[:5]}"
    tinted = [c for c in cells if "alc-good" in c["cls"] or "alc-bad" in c["cls"] or "alc-warn" in c["cls"]]
    assert tinted, "the status and accuracy cells carry their tint"
    assert any("alc-status alc-bad" in c["cls"] for c in cells), "boom's status is a failing one"
    problems = view.locator("table.alchemist-matrix tr.alc-problem").all_inner_texts()
    assert problems and all("problem: " in t for t in problems)
    for table in ("table.alc-scores",):
        assert all(c["ratio"] >= AA for c in contrast(view.locator(table), "td, th"))
    assert all(c["ratio"] >= AA for c in contrast(view, "p"))  # captions, cost sentence, status
    sidebar = page.locator("#alchemist-sidebar")
    assert sidebar.locator(".jp-alchemist-program.jp-alchemist-bad[data-name=boom]").count() == 1
    rows = contrast(sidebar, ".jp-alchemist-name, .jp-alchemist-stat, .jp-alchemist-cost, h3")
    assert rows and all(c["ratio"] >= AA for c in rows), [c for c in rows if c["ratio"] < AA][:5]
    # 1280 px, the sidebar open: every column is inside the visible part of the matrix
    where = clipping(view)
    assert where["viewport"] == 1280 and page.locator("#alchemist-sidebar").is_visible()
    cut = [c["text"] for c in where["columns"] if not c["fits"]]
    assert not cut, f"columns cut off: {cut} ({where['box']})"
    assert where["box"]["right"] <= where["area"]["right"] + 1
    page.screenshot(path=ARTIFACTS / f"panel-{'dark' if 'Dark' in theme else 'light'}.png")


def test_sort_control_and_drill_down(lab):
    page = lab.page
    set_theme(page, "JupyterLab Light")
    cell = lab.cell(MAGIC)
    view = panel(lab, MAGIC)

    def names():
        return [n.replace("\u200b", "") for n in view.locator("table.alchemist-matrix tbody td.alc-name").all_inner_texts()]

    def coverage():
        column = view.locator("table.alchemist-matrix thead th").all_inner_texts().index("Coverage")
        return [float(r.locator("td").nth(column).inner_text())
                for r in view.locator("table.alchemist-matrix tbody tr:not(.alc-problem)").all()]

    added = names()
    sort = cell.locator("select").nth(0)
    sort.select_option(label="Coverage, lowest first")
    page.wait_for_function("(el) => el.innerText.includes('sorted by Coverage, lowest first')", arg=cell.element_handle())
    assert coverage() == sorted(coverage()) and sorted(names()) == sorted(added)
    sort.select_option(label="the order the programs were added")
    page.wait_for_function("(el) => el.innerText.includes('in the order they were added')", arg=cell.element_handle())
    assert names() == added
    # drill-down: the rows a program votes on, with their text; then the dev rows it gets wrong
    program, kind = cell.locator("select").nth(1), cell.locator("select").nth(2)
    program.select_option(label=added[0])
    examples = cell.locator(".alc-examples")
    examples.wait_for(state="visible")
    assert examples.locator("tbody tr").count() == 10  # the first 10 of them
    assert f"{added[0]}: " in cell.locator(".jp-OutputArea").inner_text()
    assert all(len(t) > 3 for t in examples.locator("tbody td.alc-text").all_inner_texts())
    kind.select_option(label="dev rows it gets wrong")
    page.wait_for_function("(el) => el.innerText.includes('dev rows it gets wrong (dev)')", arg=cell.element_handle())
    page.screenshot(path=ARTIFACTS / "panel-drill-down.png")


def test_sidebar_names_have_tooltips_and_it_stays_open_after_reload(lab):
    page = lab.page
    rows = page.locator("#alchemist-sidebar .jp-alchemist-program")
    n = len(lab.kernel_programs())
    assert n >= 3 and rows.count() == n
    for i in range(rows.count()):
        name = rows.nth(i).get_attribute("data-name")
        assert rows.nth(i).locator(".jp-alchemist-name").get_attribute("title").startswith(name)
    assert page.locator("#alchemist-sidebar .jp-alchemist-stat[data-key=coverage]").first.get_attribute("title")
    lab.save()
    page.reload()
    lab.open()
    page.locator("#alchemist-sidebar").wait_for(state="visible", timeout=30_000)
    assert page.locator("#alchemist-sidebar .jp-alchemist-program").count() == n
    # closed by the user: closed after the next reload too
    page.evaluate("() => window.jupyterapp.shell.collapseRight()")
    page.wait_for_timeout(300)
    page.reload()
    lab.open()
    page.wait_for_timeout(1500)
    assert not page.locator("#alchemist-sidebar").is_visible()


def test_with_the_kernel_gone_the_snapshot_shows_the_last_state(lab):
    """Live, the static snapshot beside the widget is hidden; after a kernel shutdown and a reload the
    widget cannot render ("model not found"), so its output is hidden and the snapshot shows."""
    page = lab.page
    cell = lab.cell(MAGIC)
    snapshot = cell.locator(".alc-snapshot")
    assert snapshot.count() == 1 and not snapshot.is_visible() and panel(lab, MAGIC).is_visible()
    live_rows = panel(lab, MAGIC).locator("table.alchemist-matrix tbody tr").all_inner_texts()
    lab.save()
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    page.wait_for_timeout(1000)
    page.reload()
    lab.open()  # a fresh kernel: it knows no widget models
    snapshot.wait_for(state="visible", timeout=30_000)
    page.wait_for_timeout(2000)  # the widget manager gives up on the old model
    assert snapshot.locator("table.alc-matrix tbody tr").all_inner_texts() == live_rows
    assert "Cost: spent $0.0000 so far" in snapshot.inner_text()  # dollars stay dollars (no MathJax)
    page.screenshot(path=ARTIFACTS / "panel-no-kernel.png")
    # the panel's own widget output (the one right before its snapshot) is hidden, not an error box
    before = snapshot.evaluate("""n => { const child = n.closest('.jp-OutputArea-child').previousElementSibling;
        return [child.innerText, getComputedStyle(child).display]; }""")
    assert before[0].startswith(("Error displaying widget", "Loading widget")) and before[1] == "none", before
    assert all(c["ratio"] >= AA for c in contrast(snapshot, "td, th"))
    page.screenshot(path=ARTIFACTS / "panel-no-kernel.png")

def test_notebook7_shows_the_panel_and_the_sidebar(lab):
    """Notebook 7 (same server): Run All fills the panel; the sidebar opens from View > Right Sidebar."""
    pytest.importorskip("notebook")
    from labsession import NOTEBOOK

    page = lab.page.context.browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"http://127.0.0.1:{lab.server.port}/notebooks/{NOTEBOOK}?token={lab.server.token}")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(state="visible", timeout=60_000)
        page.wait_for_timeout(6000)  # the kernel connects
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        matrix = page.locator(".alc-widget table.alchemist-matrix").first
        matrix.wait_for(state="visible", timeout=180_000)
        assert matrix.locator("tbody tr").count() >= 5
        page.get_by_role("menuitem", name="View", exact=True).click()
        page.locator(".lm-Menu-itemLabel", has_text="Right Sidebar").hover()
        page.locator(".lm-Menu-itemLabel", has_text="Show Alchemist programs").click()
        rows = page.locator("#alchemist-sidebar .jp-alchemist-program")
        rows.first.wait_for(state="visible", timeout=60_000)
        assert rows.count() >= 5
        assert all(c["ratio"] >= AA for c in contrast(page.locator(".alc-widget .alc-panel").first, "td, th"))
        page.screenshot(path=ARTIFACTS / "notebook7.png")
    finally:
        page.close()
