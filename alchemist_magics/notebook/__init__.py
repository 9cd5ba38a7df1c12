"""Notebook display: the analysis panel (ipywidgets, with an HTML fallback) and the comm that asks
the JupyterLab extension to insert one editable cell per program."""
from .comm import COMM_TARGET, cell_id, program_cell, send_program_cells
from .panel import Panel

__all__ = ["COMM_TARGET", "Panel", "cell_id", "program_cell", "send_program_cells"]
