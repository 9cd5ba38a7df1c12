"""With the alchemist extension disabled in JupyterLab (and in Notebook 7), the magic is honest: it never says the
programs were sent as cells, it says where they are (its output, --next-cell), and the kernel's
program set is what that output lists."""
import pytest

from labsession import MAGIC, open_notebook, require_browser

require_browser()


@pytest.fixture(scope="module", params=["lab", "notebook"])
def notebook(request, tmp_path_factory):
    if request.param == "notebook":
        pytest.importorskip("notebook", minversion="7")
    with open_notebook(tmp_path_factory.mktemp(f"{request.param}-noext"), n=3, viewport=(1400, 900),
                       disabled_extensions=("alchemist_magics",), app=request.param) as notebook:
        yield notebook


def test_extension_disabled_the_magic_says_where_the_programs_are(notebook):
    assert not notebook.page.evaluate("() => window.jupyterapp.hasPlugin('alchemist_magics:plugin')"
                                      " && window.jupyterapp.isPluginActivated('alchemist_magics:plugin')")
    notebook.run(0)
    notebook.run(MAGIC, timeout_s=120)
    notebook.page.wait_for_timeout(2000)  # an ack would have come by now
    output = notebook.output(MAGIC)
    assert "sent to JupyterLab as cells" not in output
    assert "no answer from the alchemist extension yet (without it, copy them from here or re-run with --next-cell)" \
        in output
    assert len(notebook.cells()) == 2  # nothing was inserted
    shown = [line.split()[2] for line in output.splitlines() if line.startswith("%%alchemist_program spam ")]
    kernel = notebook.kernel_programs()
    assert shown and [p["name"] for p in kernel] == shown
