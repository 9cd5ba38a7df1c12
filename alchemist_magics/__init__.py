"""alchemist_magics: label data with LLM-written programs instead of per-row LLM calls."""

__version__ = "0.1.0"
