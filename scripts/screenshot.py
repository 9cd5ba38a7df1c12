"""Regenerate docs/img/notebook.png: the analysis panel and the programs sidebar in a real JupyterLab.

Uses the browser test's setup (tests/browser/labsession.py): a fresh ``jupyter lab`` on 127.0.0.1,
the WRENCH youtube notebook run with the offline synthesizer, Debian's Chromium.

    .venv/bin/python scripts/screenshot.py [--out docs/img/notebook.png]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))

from labsession import MAGIC, LabServer, Notebook, chromium, launch_browser  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "notebook.png")
    parser.add_argument("-n", type=int, default=5, help="programs to ask for")
    args = parser.parse_args()
    if chromium() is None:
        sys.exit("no Chromium at /usr/bin/chromium: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder, LabServer(Path(folder), n=args.n) as server, \
            sync_playwright() as p:
        browser = launch_browser(p)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        notebook = Notebook(page, server).open()
        notebook.run(0)
        notebook.run(MAGIC, timeout_s=120)
        page.wait_for_function(f"() => window.jupyterapp.shell.currentWidget.content.widgets.length > {MAGIC + 1}")
        for index in range(MAGIC + 1, len(notebook.cells())):
            notebook.run(index)
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        notebook.open_sidebar()
        # the panel (sort bar, matrix, label models, cost meter) at the top of the view
        notebook.cell(MAGIC).locator(".jp-OutputArea").evaluate("node => node.scrollIntoView({block: 'start'})")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=args.out)
        browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
