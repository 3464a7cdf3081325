"""data: stage package (docstring to write)."""
