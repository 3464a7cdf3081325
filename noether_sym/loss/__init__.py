"""loss: stage package (docstring to write)."""
