"""compile: stage package (docstring to write)."""
