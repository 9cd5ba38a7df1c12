"""Example programs shipped with the package (readable sources, used by the demo and the docs)."""
