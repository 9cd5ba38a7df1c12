"""alchemist_magics: label data with LLM-written programs instead of per-row LLM calls.

The main entry points, usable from plain Python::

    from alchemist_magics import Workbench, TaskSpec, load_wrench, from_dataframe, load_csv
"""
import os

# torch's OpenMP threads otherwise spin while idle, which slows everything on a busy 2-core machine
# by 10x and more (measured: 256 s instead of 14 s for one MLP fit). Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .data import DataError, Dataset, from_dataframe, load_csv, load_wrench
from .task import TaskSpec
from .workbench import Workbench

__version__ = "0.1.0"
__all__ = ["DataError", "Dataset", "TaskSpec", "Workbench", "from_dataframe", "load_csv", "load_wrench"]


def load_ipython_extension(shell):
    """``%load_ext alchemist_magics`` (the magics live in ``alchemist_magics.magics``)."""
    from .magics import load_ipython_extension as load
    load(shell)
