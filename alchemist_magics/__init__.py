"""alchemist_magics: label data with LLM-written programs instead of per-row LLM calls.

The main entry points, usable from plain Python::

    from alchemist_magics import Workbench, TaskSpec, load_wrench, from_dataframe, load_csv
"""
import os

# torch's OpenMP threads otherwise spin while idle, which slows everything on a busy 2-core machine
# by 10x and more (measured: 256 s instead of 14 s for one MLP fit). Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import importlib

__version__ = "0.1.0"

# Loaded on first use (PEP 562): importing a light layer such as ``alchemist_magics.programs``
# must not pull in torch, which also makes every sandbox fork ~10x dearer (45 ms vs 5 ms measured).
_PUBLIC = {
    "DataError": ".data", "Dataset": ".data", "from_dataframe": ".data", "load_csv": ".data",
    "load_wrench": ".data", "TaskSpec": ".task", "Workbench": ".workbench",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    raise AttributeError(f"module 'alchemist_magics' has no attribute {name!r}")


def _jupyter_labextension_paths():
    """Where the built JupyterLab extension lives (``jupyter labextension develop`` reads this)."""
    return [{"src": "labextension", "dest": "alchemist_magics"}]


def load_ipython_extension(shell):
    """``%load_ext alchemist_magics`` (the magics live in ``alchemist_magics.notebook.magics``)."""
    from .notebook.magics import load_ipython_extension as load
    load(shell)
