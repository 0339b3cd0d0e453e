"""recsys.serving: a TF-Serving-compatible server for the trainer's SavedModels (docs/serving.md).

- `server`: the model manager (load, warm up, atomic version swap, status) and the gRPC
  `PredictionService` / `ModelService` implementations, plus the transport-free request logic.
- `rest`: TF Serving's REST API over the same manager.
- `versions`: version discovery in a TF Serving base path and the polling thread.
- `contract`: the serving contract's names (signature, input/output keys, assets.extra files), plain strings.
- `scorer`: a SavedModel loaded and checked in this process, scoring batches of serialized records (the
  comparator, the study, the distillation teacher, the benchmark).

Entry points: `python -m pipelines.serve`, `python -m pipelines.predict_client`,
`python -m recsys.bench.serving`. Importing this package imports neither TensorFlow nor gRPC.
"""
