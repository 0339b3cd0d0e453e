"""ml_collections configs; each docstring shows its launch command."""
