"""recsys.training."""
