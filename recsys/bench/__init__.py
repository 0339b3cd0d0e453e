"""recsys.bench."""
