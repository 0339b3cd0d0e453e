"""recsys.layers."""
