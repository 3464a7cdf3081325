"""check: stage package (docstring to write)."""
