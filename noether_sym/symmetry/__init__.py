"""symmetry: stage package (docstring to write)."""
