"""recsys.model."""
