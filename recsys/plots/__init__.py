"""recsys.plots."""
