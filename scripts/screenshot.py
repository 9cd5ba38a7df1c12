"""Regenerate the screenshots in docs/img: the analysis panel and the programs sidebar in a real
JupyterLab, in the light and the dark theme, at a 1280 px window with the sidebar open.

Uses the browser tests' setup (tests/browser/labsession.py, panelcheck.py): a fresh ``jupyter lab``
on 127.0.0.1, the WRENCH youtube notebook run with the offline synthesizer, Debian's Chromium.

    .venv/bin/python scripts/screenshot.py [--out docs/img] [-n 5]

Writes notebook.png (the whole window), panel-light.png, panel-dark.png, sidebar-light.png and
sidebar-dark.png, and prints the lowest text contrast it measured in each theme.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))

from labsession import MAGIC, LabServer, Notebook, chromium, launch_browser  # noqa: E402
from panelcheck import contrast, layout, panel, run_task, set_theme  # noqa: E402


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
        browser.close()
    print(f"wrote {args.out}/notebook.png, panel-*.png, sidebar-*.png")


if __name__ == "__main__":
    main()
