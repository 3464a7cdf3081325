"""report: stage package (docstring to write)."""
