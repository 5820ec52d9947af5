"""The bottom layer: errors, atomic file I/O, file-name constants, image grids, optional imports, hub downloads.

Nothing here imports another part of fsgen_hub (pyproject.toml's import-linter contract holds it so).
"""
