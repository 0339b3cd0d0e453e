"""recsys.serving."""
