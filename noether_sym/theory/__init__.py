"""theory: stage package (docstring to write)."""
