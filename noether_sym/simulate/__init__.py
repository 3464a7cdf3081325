"""simulate: stage package (docstring to write)."""
