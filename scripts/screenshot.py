"""Regenerate the screenshots in docs/img: the analysis panel and the programs sidebar in a real
JupyterLab, in the light and the dark theme, at a 1280 px window with the sidebar open.

Uses the browser tests' setup (tests/browser/labsession.py, panelcheck.py): a fresh ``jupyter lab``
on 127.0.0.1, the WRENCH youtube notebook run with the offline synthesizer, Debian's Chromium.

    .venv/bin/python scripts/screenshot.py [--out docs/img] [-n 5]

Writes notebook.png (the whole window), panel-light.png, panel-dark.png, sidebar-light.png,
sidebar-dark.png and, when the ``notebook`` package is installed, notebook7.png (the same notebook
in Notebook 7, the sidebar opened from View > Right Sidebar); prints the lowest text contrast it
measured in each theme.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))

from labsession import MAGIC, NOTEBOOK, LabServer, Notebook, chromium, launch_browser  # noqa: E402
from panelcheck import add_program_cell, contrast, layout, panel, run_task, set_theme  # noqa: E402


def notebook7(browser, server, out: Path) -> None:
    """The same notebook in Notebook 7 (when the ``notebook`` package is installed): run all, open
    the sidebar from View > Right Sidebar > Show Alchemist programs, screenshot the window."""
    try:
        import notebook  # noqa: F401
    except ImportError:
        print("no Notebook 7 (pip install notebook): notebook7.png not written")
        return
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"http://127.0.0.1:{server.port}/notebooks/{NOTEBOOK}?token={server.token}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(state="visible", timeout=60_000)
    page.wait_for_timeout(6000)  # the kernel starts
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.wait_for_timeout(500)
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    page.locator(".alc-widget table.alchemist-matrix").first.wait_for(state="visible", timeout=180_000)
    page.get_by_role("menuitem", name="View", exact=True).click()
    page.wait_for_timeout(500)
    page.locator(".lm-Menu-itemLabel", has_text="Right Sidebar").hover()
    page.wait_for_timeout(500)
    page.locator(".lm-Menu-itemLabel", has_text="Show Alchemist programs").click()
    page.locator("#alchemist-sidebar .jp-alchemist-program").first.wait_for(state="visible", timeout=60_000)
    page.locator(".alc-widget").first.evaluate("node => node.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(800)
    page.screenshot(path=out)
    page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("-n", type=int, default=5, help="programs to ask for")
    args = parser.parse_args()
    if chromium() is None:
        sys.exit("no Chromium at /usr/bin/chromium: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder, LabServer(Path(folder), n=args.n) as server, \
            sync_playwright() as p:
        browser = launch_browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        notebook = Notebook(page, server).open()
        run_task(notebook, MAGIC)
        add_program_cell(notebook, MAGIC)  # one failing program, to show how it reads
        layout(page)
        view = panel(notebook, MAGIC)
        view.evaluate("node => node.closest('.jp-Cell').scrollIntoView({block: 'start'})")
        page.wait_for_timeout(500)
        page.screenshot(path=args.out / "notebook.png")
        for theme, suffix in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
            set_theme(page, theme)
            widget = notebook.cell(MAGIC).locator(".jp-OutputArea .alc-widget").first
            widget.screenshot(path=args.out / f"panel-{suffix}.png")
            page.locator("#alchemist-sidebar").screenshot(path=args.out / f"sidebar-{suffix}.png")
            lowest = min(c["ratio"] for c in contrast(view, "td, th"))
            print(f"{theme}: lowest contrast in the matrix {lowest:.2f}:1")
        set_theme(page, "JupyterLab Light")
        notebook7(browser, server, args.out / "notebook7.png")
        browser.close()
    print(f"wrote {args.out}/notebook.png, panel-*.png, sidebar-*.png, notebook7.png")


if __name__ == "__main__":
    main()
