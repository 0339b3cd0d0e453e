"""absl entry points, one per job: `python -m pipelines.<job>`."""
