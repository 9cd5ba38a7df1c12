"""A real JupyterLab in a real browser, for the browser test and scripts/screenshot.py.

:class:`LabServer` starts ``jupyter lab`` on 127.0.0.1 in a folder holding a small notebook (WRENCH
youtube, one ``%%alchemist`` cell) and stops it by its PID; :class:`Notebook` drives the page
through ``window.jupyterapp`` (JupyterLab's application object, exposed by
``--LabApp.expose_app_in_browser``) and Playwright on Debian's Chromium (never a downloaded one).
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).parent / "artifacts"  # screenshots of the last state, for a failing run
DATA = REPO.parent / "shared" / "data" / "youtube"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
NOTEBOOK = "youtube.ipynb"
MAGIC = 1  # index of the %%alchemist cell
# -n counts the offline synthesizer's keyword programs; its concept and classifier programs (at most 5 for two
# classes) come on top
EXTRA = 5
# JupyterLab settings for a quiet, deterministic page: no news or update toasts, every cell in the DOM
SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def chromium() -> str | None:
    """Debian's Chromium binary, or None when it is not installed."""
    for path in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if path and os.access(path, os.X_OK):
            return path
    return None


def notebook_json(data: Path, n: int) -> dict:
    """A notebook: load WRENCH youtube, then one %%alchemist cell asking for ``n`` programs."""
    setup = (f"from alchemist_magics import load_wrench\n"
             f"youtube = load_wrench({str(data)!r})\n"
             f"train, dev = youtube['train'], youtube['valid']\n"
             "%load_ext alchemist_magics\n"
             "%config Alchemist.api_key_env = 'ALCHEMIST_BROWSER_TEST_NO_KEY'  # the offline synthesizer\n"
             "%config Alchemist.base_url = ''")
    magic = f"%%alchemist spam -d train --dev dev -n {n}\nIs this YouTube comment spam (SPAM) or not (HAM)?"
    cells = [{"cell_type": "code", "id": f"cell-{i}", "metadata": {}, "outputs": [], "execution_count": None,
              "source": source} for i, source in enumerate([setup, magic])]
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """``jupyter lab`` on 127.0.0.1 in ``folder`` (with the notebook written there); a context manager.

    Args:
        folder: an empty working folder (the notebook, settings and ``.alchemist/`` go there).
        n: programs the notebook's %%alchemist cell asks for.
    """

    def __init__(self, folder: Path, n: int = 5, data: Path = DATA, disabled_extensions: tuple[str, ...] = (),
                 app: str = "lab"):
        self.folder, self.port, self.token = Path(folder), _free_port(), secrets.token_hex(16)
        self.disabled_extensions = disabled_extensions
        self.app = app  # "lab" (JupyterLab) or "notebook" (Notebook 7)
        self.process: subprocess.Popen | None = None
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / NOTEBOOK).write_text(json.dumps(notebook_json(data, n)))
        for name, value in SETTINGS.items():
            path = self.folder / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))

    @property
    def url(self) -> str:
        """The notebook's page, token included."""
        if self.app == "notebook":
            return f"http://127.0.0.1:{self.port}/notebooks/{NOTEBOOK}?token={self.token}"
        return f"http://127.0.0.1:{self.port}/lab/tree/{NOTEBOOK}?token={self.token}"

    def __enter__(self) -> "LabServer":
        env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(self.folder / "settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(self.folder / "workspaces")}
        if self.disabled_extensions:  # what `jupyter labextension disable NAME` writes, in a private config dir
            config = self.folder / "jupyter-config"
            (config / "labconfig").mkdir(parents=True, exist_ok=True)
            (config / "labconfig" / "page_config.json").write_text(json.dumps(
                {"disabledExtensions": {name: True for name in self.disabled_extensions}}))
            env["JUPYTER_CONFIG_DIR"] = str(config)
        expose = "--JupyterNotebookApp.expose_app_in_browser=True" if self.app == "notebook" else \
            "--LabApp.expose_app_in_browser=True"
        command = [sys.executable, "-m", "notebook" if self.app == "notebook" else "jupyterlab", "--no-browser",
                   "--ip=127.0.0.1", f"--port={self.port}", f"--ServerApp.token={self.token}", expose, "--allow-root",
                   f"--ServerApp.root_dir={self.folder}"]
        self.log = open(self.folder / "jupyter.log", "wb")
        self.process = subprocess.Popen(command, cwd=self.folder, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({self.process.returncode}); see {self.log.name}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status?token={self.token}", timeout=2)
                return self
            except OSError:
                time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"jupyter lab did not answer within 60 s; see {self.log.name}")

    def __exit__(self, *exc) -> None:
        """Stop the server (and its kernels, in its process group) by PID."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def launch_browser(playwright):
    """Debian's Chromium under Playwright, with the flags this machine needs."""
    return playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS, headless=True)


@contextlib.contextmanager
def open_notebook(folder: Path, *, n: int, viewport: tuple[int, int] = (1400, 950), screenshot: str | None = None,
                  **server):
    """A :class:`LabServer` in ``folder`` (a notebook asking for ``n`` programs; ``server``: its other
    options), Chromium on it and the opened :class:`Notebook`; at the end the page is saved as
    ``artifacts/<screenshot>`` (when named) and everything is stopped."""
    from playwright import sync_api

    ARTIFACTS.mkdir(exist_ok=True)
    with LabServer(folder, n=n, **server) as lab, sync_api.sync_playwright() as p:
        browser = launch_browser(p)
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        try:
            yield Notebook(page, lab).open()
        finally:
            if screenshot:
                page.screenshot(path=ARTIFACTS / screenshot)
            browser.close()


# JavaScript run in the page: the notebook's cells as plain data.
_CELLS_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel.content.model.sharedModel.cells.map(c => ({
    id: c.id, source: c.getSource(), alchemist: c.getMetadata('alchemist') ?? null,
    execution_count: c.execution_count ?? null}));
}"""


class Notebook:
    """The notebook page of a :class:`LabServer`, driven through ``window.jupyterapp``."""

    def __init__(self, page, server: LabServer):
        self.page, self.server = page, server

    def open(self) -> "Notebook":
        """Load the page and wait until the notebook's kernel is idle."""
        self.page.goto(self.server.url)
        self.page.wait_for_function(
            "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
            " && w.sessionContext.session.kernel.status === 'idle' && w.content.widgets.length > 0; }",
            timeout=90_000)
        return self

    def cells(self) -> list[dict]:
        """Every cell: id, source, ``metadata.alchemist`` (or None) and execution count."""
        return self.page.evaluate(_CELLS_JS)

    def program_cells(self) -> list[dict]:
        """The cells the extension inserted for the %%alchemist cell."""
        magic = self.cells()[MAGIC]["id"]
        return [c for c in self.cells() if (c["alchemist"] or {}).get("source_cell") == magic]

    def run(self, index: int, timeout_s: float = 90) -> None:
        """Run cell ``index`` and wait until the kernel has finished it."""
        # by id: running the cell may delete cells above it (%alchemist remove), moving its index
        cell_id = self.cells()[index]["id"]
        self.page.evaluate("""async (index) => {
            const panel = window.jupyterapp.shell.currentWidget;
            panel.content.activeCellIndex = index;
            await window.jupyterapp.commands.execute('notebook:run-cell');
        }""", index)
        self.page.wait_for_function("""(id) => {
            const panel = window.jupyterapp.shell.currentWidget;
            const cell = panel.content.widgets.find(c => c.model.id === id);
            return panel.sessionContext.session.kernel.status === 'idle' && cell && cell.model.executionCount !== null
              && !cell.node.classList.contains('jp-mod-executing');
        }""", arg=cell_id, timeout=timeout_s * 1000)

    def set_source(self, index: int, text: str) -> None:
        """Replace the text of cell ``index`` (what typing into it does to the model)."""
        self.page.evaluate("([i, text]) => window.jupyterapp.shell.currentWidget.content.widgets[i]"
                           ".model.sharedModel.setSource(text)", [index, text])

    def active_index(self) -> int:
        return self.page.evaluate("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex")

    def cell(self, index: int):
        """The Playwright locator of cell ``index``."""
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)

    def open_sidebar(self):
        """Show the alchemist sidebar; returns its locator."""
        self.page.evaluate("() => window.jupyterapp.shell.activateById('alchemist-sidebar')")
        sidebar = self.page.locator("#alchemist-sidebar")
        sidebar.wait_for(state="visible")
        return sidebar

    def run_all(self, timeout_s: float = 180) -> None:
        """Run All, then wait until every cell that was queued has finished and the kernel is idle."""
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        self.page.wait_for_timeout(500)
        self.wait_idle(timeout_s)

    def wait_idle(self, timeout_s: float = 120) -> None:
        """Wait until the kernel is idle and no cell is running or queued."""
        self.page.wait_for_function("""() => {
            const panel = window.jupyterapp.shell.currentWidget;
            return panel.sessionContext.session.kernel.status === 'idle'
              && !panel.content.widgets.some(c => c.model.executionState === 'running'
                                                || c.node.classList.contains('jp-mod-executing'));
        }""", timeout=timeout_s * 1000)
        self.page.wait_for_timeout(300)

    def kernel_eval(self, code: str) -> str:
        """Run ``code`` in the notebook's kernel outside any cell; returns what it printed."""
        return self.page.evaluate("""async (code) => {
            const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
            const future = kernel.requestExecute({code, silent: false, store_history: false});
            let out = '';
            future.onIOPub = msg => {
              if (msg.header.msg_type === 'stream') { out += msg.content.text; }
              if (msg.header.msg_type === 'error') { out += msg.content.ename + ': ' + msg.content.evalue; }
            };
            await future.done;
            return out;
        }""", code)

    def kernel_programs(self, task: str = "spam") -> list[dict]:
        """The kernel's program set of ``task`` in order: ``{"name", "source", "disabled"}`` each."""
        out = self.kernel_eval("import json\nfrom alchemist_magics.notebook.magics import program_list\n"
                               f"print(json.dumps(program_list(get_ipython(), {task!r})))")
        return json.loads(out)

    def notebook_programs(self, task: str = "spam") -> list[dict]:
        """The notebook's program cells of ``task`` in order, as the kernel would register them."""
        out = []
        for cell in self.cells():
            marker, _, body = cell["source"].partition("\n")
            words = marker.split()
            if len(words) >= 3 and words[0] == "%%alchemist_program" and words[1] == task:
                out.append({"name": words[2], "source": body, "disabled": "--disabled" in words[3:]})
        return out

    def assert_kernel_is_notebook(self, task: str = "spam", timeout_s: float = 20) -> list[dict]:
        """The kernel's programs equal the notebook's program cells, in order, with their sources
        (waits a little: the extension's messages arrive after the cells change)."""
        deadline = time.monotonic() + timeout_s
        while True:
            kernel = [{**p, "source": p["source"].rstrip()} for p in self.kernel_programs(task)]
            notebook = [{**p, "source": p["source"].rstrip()} for p in self.notebook_programs(task)]
            if kernel == notebook or time.monotonic() > deadline:
                assert kernel == notebook, (kernel, notebook)
                return notebook
            self.page.wait_for_timeout(500)

    def insert_cell(self, index: int, source: str) -> None:
        """Insert a code cell at ``index`` (what the user typing a new cell does)."""
        self.page.evaluate("""([i, source]) => window.jupyterapp.shell.currentWidget.content.model.sharedModel
            .insertCell(i, {cell_type: 'code', source, metadata: {}})""", [index, source])
        self.page.wait_for_function("(i) => window.jupyterapp.shell.currentWidget.content.widgets.length > i", arg=index)

    def delete_cell(self, index: int) -> None:
        self.page.evaluate("(i) => window.jupyterapp.shell.currentWidget.content.model.sharedModel.deleteCell(i)", index)

    def output(self, index: int) -> str:
        return self.cell(index).locator(".jp-OutputArea").inner_text()

    def restart_kernel(self) -> None:
        """Restart the kernel without a dialog and wait until it is idle."""
        self.page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
        self.page.wait_for_timeout(1000)
        self.page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                                    ".status === 'idle'", timeout=60_000)

    def save(self) -> None:
        self.page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        self.page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")


# -- flows both frontends run (tests/browser/test_lab.py and test_notebook7.py) ------------------------

# a program edited by hand, and one that raises on many rows
EDIT = "def check_out(text):\n    return 1 if 'check out' in text.lower() else -1\n"
FAULTY = ("%%alchemist_program spam raises_often\ndef raises_often(text):\n"
          "    if 'a' in text:\n        raise ValueError('no a please')\n    return 1 if 'http' in text else -1")


def disable_then_remove_last(notebook: Notebook) -> None:
    """``%alchemist disable`` then ``remove`` the last program: its cell's marker, the kernel and the
    sidebar follow each step."""
    programs = notebook.assert_kernel_is_notebook()
    name = programs[-1]["name"]
    at = len(notebook.cells())
    notebook.insert_cell(at, f"%alchemist disable {name}")
    notebook.run(at)
    assert notebook.output(at).startswith(f"disabled {name}; its cell's first line is now")
    now = notebook.assert_kernel_is_notebook()
    assert [p["disabled"] for p in now] == [p["name"] == name for p in now]
    notebook.page.wait_for_function(
        "(name) => { const row = document.querySelector(`#alchemist-sidebar [data-name='${name}']`);"
        " return row && row.classList.contains('jp-alchemist-bad') && row.innerText.includes('disabled'); }", arg=name)
    notebook.set_source(at, f"%alchemist remove {name}")
    command = notebook.cells()[at]["id"]
    notebook.run(at)
    at = [c["id"] for c in notebook.cells()].index(command)  # its program cell above it is gone
    assert "asked JupyterLab to delete its cell" in notebook.output(at)
    after = notebook.assert_kernel_is_notebook()
    assert name not in [p["name"] for p in after] and len(after) == len(programs) - 1
    notebook.page.wait_for_function("(name) => !document.querySelector(`#alchemist-sidebar [data-name='${name}']`)",
                                    arg=name)
    notebook.delete_cell(at)


def faulty_program_shown_red(notebook: Notebook) -> None:
    """A program that raises on many rows registers as ``faulty`` with its first exception, red in the sidebar."""
    at = len(notebook.cells())
    notebook.insert_cell(at, FAULTY)
    notebook.run(at)
    output = notebook.output(at)
    assert "status faulty (" in output and "ValueError" in output and "first raised on train row" in output
    notebook.page.wait_for_function(
        "() => { const row = document.querySelector(\"#alchemist-sidebar [data-name='raises_often']\");"
        " return row && row.classList.contains('jp-alchemist-bad') && row.innerText.includes('faulty'); }")
    notebook.assert_kernel_is_notebook()


def require_browser(frontend: str = "jupyterlab", minversion: str | None = None):
    """Skip the calling test module (at import) unless Chromium, Playwright, ``frontend`` and the youtube
    data are here; returns ``playwright.sync_api``."""
    import pytest

    if chromium() is None:
        pytest.skip("no Chromium at /usr/bin/chromium: apt-get install -y chromium (scripts/setup.sh does it as root)",
                    allow_module_level=True)
    sync_api = pytest.importorskip("playwright.sync_api")
    pytest.importorskip(frontend, minversion=minversion)
    if not (DATA / "train.json").is_file():
        pytest.skip(f"no WRENCH youtube data at {DATA}", allow_module_level=True)
    return sync_api
