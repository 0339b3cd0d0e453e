"""Comparator job: prediction difference (PD) between models, accuracy, ensembles, churn gate.

    python -m pipelines.compare --models=runs/relu1,runs/relu2 --data='data/tfrecords/eval-*.tfrecord.gz' \\
        --output=compare_out [--ensemble_size=k] [--query_key=<feature>] [--max_relative_pd=0.05] [--bootstrap=200]

Scores every SavedModel (`<dir>/saved_model/` of a trainer workdir, or a SavedModel directory itself) on the
TFRecords in batches through its `serving_default(examples) -> {"probabilities"}` signature, using plain
TensorFlow only; `--predictions=a.npy,b.txt` adds models scored elsewhere (same examples, same order). Labels
(and the query key) come from `--data` parsed with `features.json` beside it, or from `--labels=<file>`.

Writes `<output>/report.json`, `report.md`, `pd_vs_auc.png`, `pd_hist.png` (see docs/compare.md).
Exit status: 0 ok; 3 when `--max_relative_pd` is given and the mean relative PD over pairs exceeds it (the
churn gate; a fraction, as in the report); 1 with a one-line message on any error.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np
from absl import app, flags, logging

import recsys  # noqa: F401  (selects tf-keras before TensorFlow is imported anywhere)
from recsys.data.features import FeatureSet, default_features_path
from recsys.metrics import report as report_lib

FLAGS = flags.FLAGS
flags.DEFINE_list("models", [], "Comma-separated trainer workdirs or SavedModel directories.")
flags.DEFINE_list("predictions", [], "Comma-separated prediction files (.npy or one-column text), one per model.")
flags.DEFINE_string("data", None, "Glob of TFRecord files of tf.train.Example (GZIP when names end in .gz).")
flags.DEFINE_string("features", None, "features.json describing --data. Default: features.json beside --data.")
flags.DEFINE_string("labels", None, "Labels file (.npy or one-column text of 0/1) when there is no --data.")
flags.DEFINE_string("output", None, "Output directory for report.json, report.md and the PNGs.")
flags.DEFINE_integer("ensemble_size", None, "k: compare disjoint k-model ensembles (needs at least 2k models).")
flags.DEFINE_string("query_key", None, "Feature of --data that identifies a query: adds PQAUC, swap rate, top-k.")
flags.DEFINE_float("max_relative_pd", None, "Churn gate: exit 3 if the mean relative PD (a fraction) exceeds this.")
flags.DEFINE_integer("bootstrap", 200, "Bootstrap resamples for the confidence intervals; 0 turns them off.")
flags.DEFINE_float("confidence", 0.95, "Confidence level of the intervals.")
flags.DEFINE_integer("seed", 0, "Seed of the bootstrap.")
flags.DEFINE_integer("batch_size", 8192, "Examples per scoring batch.")
flags.DEFINE_float("flip_threshold", 0.5, "Decision threshold for the flip rate.")
flags.DEFINE_integer("top_k", 10, "k of the per-query top-k overlap.")

GATE_EXIT_CODE = 3
ERROR_EXIT_CODE = 1


class CompareError(Exception):
    """A user-facing problem with the job's inputs; its message is printed as the one-line error."""


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _remote(path: str) -> bool:
    """Paths like gs://... go through tf.io.gfile; local paths use the standard library (no TF import needed)."""
    return "://" in path


def _exists(path: str) -> bool:
    return _tf().io.gfile.exists(path) if _remote(path) else os.path.exists(path)


def _isdir(path: str) -> bool:
    return _tf().io.gfile.isdir(path) if _remote(path) else os.path.isdir(path)


def _open(path: str, mode: str):
    return _tf().io.gfile.GFile(path, mode) if _remote(path) else open(path, mode)


def _makedirs(path: str) -> None:
    if _remote(path):
        _tf().io.gfile.makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def resolve_saved_model(path: str) -> str:
    """The SavedModel directory for a trainer workdir (`<path>/saved_model`) or a SavedModel directory."""
    if not _isdir(path):
        raise CompareError(f"--models: model directory not found: {path}")
    for candidate in (os.path.join(path, "saved_model"), path):
        if _exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    raise CompareError(
        f"--models: no SavedModel in {path} (expected {os.path.join(path, 'saved_model', 'saved_model.pb')} "
        f"or {os.path.join(path, 'saved_model.pb')})"
    )


class SavedModelScorer:
    """Calls a SavedModel's `serving_default(examples: string[None]) -> {"probabilities": float[None]}`."""

    def __init__(self, path: str):
        tf = _tf()
        self.path = path
        try:
            self._loaded = tf.saved_model.load(path)
        except Exception as e:  # TF raises several types for unreadable SavedModels; all mean the same here
            raise CompareError(f"--models: cannot load SavedModel {path}: {_first_line(e)}") from e
        signatures = dict(self._loaded.signatures)
        if "serving_default" not in signatures:
            raise CompareError(
                f"--models: SavedModel {path} has no 'serving_default' signature (found: {sorted(signatures)})"
            )
        self._signature = signatures["serving_default"]
        _, inputs = self._signature.structured_input_signature
        spec = inputs.get("examples")
        if spec is None or spec.dtype != tf.string or spec.shape.rank != 1:
            described = {k: f"{v.dtype.name}{v.shape}" for k, v in inputs.items()}
            raise CompareError(
                f"--models: SavedModel {path} serving_default must take `examples` (string [None]); "
                f"it takes {described}"
            )
        outputs = self._signature.structured_outputs
        if "probabilities" not in outputs:
            raise CompareError(
                f"--models: SavedModel {path} serving_default must return `probabilities`; "
                f"it returns {sorted(outputs)}"
            )

    def __call__(self, serialized) -> np.ndarray:
        probabilities = self._signature(examples=serialized)["probabilities"].numpy()
        probabilities = np.asarray(probabilities, dtype=np.float32)
        if probabilities.ndim == 2 and probabilities.shape[1] == 1:
            probabilities = probabilities[:, 0]
        if probabilities.shape != (int(serialized.shape[0]),):
            raise CompareError(
                f"--models: SavedModel {self.path} returned probabilities of shape {probabilities.shape} "
                f"for a batch of {int(serialized.shape[0])} examples (expected [batch])"
            )
        return probabilities


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _data_files(pattern: str) -> list[str]:
    tf = _tf()
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise CompareError(f"--data: no files match {pattern}")
    return files


def _dataset(files: list[str], batch_size: int):
    tf = _tf()
    # Files are read one after another in sorted name order, so every model (and every --predictions file
    # produced elsewhere) sees the examples in the same order. Consecutive files of the same compression share
    # one reader; a change of compression starts the next reader.
    runs: list[tuple[str, list[str]]] = []
    for path in files:
        compression = "GZIP" if path.endswith(".gz") else ""
        if runs and runs[-1][0] == compression:
            runs[-1][1].append(path)
        else:
            runs.append((compression, [path]))
    dataset = None
    for compression, paths in runs:
        reader = tf.data.TFRecordDataset(paths, compression_type=compression)
        dataset = reader if dataset is None else dataset.concatenate(reader)
    return dataset.batch(batch_size).prefetch(2)


def score_data(
    data: str, features: FeatureSet, scorers: list[SavedModelScorer], query_key: str | None, batch_size: int
) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """Reads the TFRecords once; returns labels, query ids (or None) and each scorer's predictions."""
    tf = _tf()
    spec = {features.label.name: features.parse_spec()[features.label.name]}
    if query_key is not None:
        spec[query_key] = features.parse_spec()[query_key]
    labels, queries, predictions = [], [], [[] for _ in scorers]
    files = _data_files(data)
    try:
        for batch_index, serialized in enumerate(_dataset(files, batch_size)):
            parsed = tf.io.parse_example(serialized, spec)
            labels.append(parsed[features.label.name].numpy())
            if query_key is not None:
                queries.append(parsed[query_key].numpy())
            for scorer, out in zip(scorers, predictions, strict=True):
                out.append(scorer(serialized))
            if batch_index % 100 == 99:
                logging.info("scored %d examples", sum(len(b) for b in labels))
    except tf.errors.OpError as e:
        raise CompareError(f"--data: cannot read or parse {data}: {_first_line(e)}") from e
    if not labels:
        raise CompareError(f"--data: {data} holds no examples")
    return (
        np.concatenate(labels),
        np.concatenate(queries) if query_key is not None else None,
        [np.concatenate(p) for p in predictions],
    )


def load_column(path: str, what: str) -> np.ndarray:
    """A 1-D array from a .npy file or a one-column text file."""
    if not _exists(path):
        raise CompareError(f"{what}: file not found: {path}")
    try:
        if path.endswith(".npy"):
            with _open(path, "rb") as f:
                array = np.load(f, allow_pickle=False)
        else:
            with _open(path, "r") as f:
                array = np.loadtxt(f, dtype=np.float64, ndmin=1)
    except (ValueError, OSError) as e:
        raise CompareError(f"{what}: cannot read {path}: {_first_line(e)}") from e
    array = np.squeeze(array)
    if array.ndim != 1:
        raise CompareError(f"{what}: {path} must hold one column of numbers; got shape {array.shape}")
    return array


def _model_name(path: str, taken: set[str]) -> str:
    base = os.path.normpath(path)
    name = os.path.basename(base)
    if name == "saved_model":
        name = os.path.basename(os.path.dirname(base)) or name
    elif name.startswith("saved_model_"):  # the trainer's replica r >= 1: <workdir>/saved_model_<r>
        name = f"{os.path.basename(os.path.dirname(base))}_r{name[len('saved_model_'):]}"
    name = os.path.splitext(name)[0] if not os.path.isdir(path) else name
    unique, k = name, 2
    while unique in taken:
        unique, k = f"{name}_{k}", k + 1
    taken.add(unique)
    return unique


def _check_flags() -> None:
    if not FLAGS.models and not FLAGS.predictions:
        raise CompareError("give the models to compare with --models=<dir>,<dir> and/or --predictions=<file>,...")
    if len(FLAGS.models) + len(FLAGS.predictions) < 2:
        raise CompareError(
            f"need at least 2 models to compare; got {len(FLAGS.models)} --models and "
            f"{len(FLAGS.predictions)} --predictions"
        )
    if not FLAGS.output:
        raise CompareError("--output=<dir> is required")
    if FLAGS.models and not FLAGS.data:
        raise CompareError("--models needs --data=<tfrecord glob> to score them on")
    if not FLAGS.data and not FLAGS.labels:
        raise CompareError("--predictions needs labels: give --data=<tfrecord glob> or --labels=<file>")
    if FLAGS.data and FLAGS.labels:
        raise CompareError("give labels either through --data or through --labels, not both")
    if FLAGS.query_key and not FLAGS.data:
        raise CompareError("--query_key needs --data (the query ids are read from the TFRecords)")
    if FLAGS.max_relative_pd is not None and not 0.0 <= FLAGS.max_relative_pd <= 2.0:
        raise CompareError(
            f"--max_relative_pd is a fraction in [0, 2] (0.05 means 5%); got {FLAGS.max_relative_pd}"
        )
    if FLAGS.bootstrap < 0 or FLAGS.bootstrap == 1:
        raise CompareError(f"--bootstrap must be 0 (off) or >= 2 resamples; got {FLAGS.bootstrap}")
    if not 0.0 < FLAGS.confidence < 1.0:
        raise CompareError(f"--confidence must be in (0, 1); got {FLAGS.confidence}")
    if FLAGS.batch_size < 1:
        raise CompareError(f"--batch_size must be positive; got {FLAGS.batch_size}")
    if FLAGS.ensemble_size is not None:
        count = len(FLAGS.models) + len(FLAGS.predictions)
        if FLAGS.ensemble_size < 1:
            raise CompareError(f"--ensemble_size must be a positive integer; got {FLAGS.ensemble_size}")
        if count < 2 * FLAGS.ensemble_size:
            raise CompareError(
                f"--ensemble_size={FLAGS.ensemble_size} needs at least {2 * FLAGS.ensemble_size} models "
                f"(two disjoint ensembles); got {count}"
            )


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def run() -> int:
    """The job; returns the exit status (0, or 3 when the churn gate fails)."""
    _check_flags()
    taken: set[str] = set()
    model_dirs = [resolve_saved_model(path) for path in FLAGS.models]
    names = [_model_name(path, taken) for path in FLAGS.models]
    scorers = [SavedModelScorer(path) for path in model_dirs]
    sources = list(model_dirs)

    query_ids = None
    if FLAGS.data:
        features_path = FLAGS.features or default_features_path(FLAGS.data)
        try:
            features = FeatureSet.load(features_path)
        except (FileNotFoundError, ValueError, KeyError, TypeError) as e:
            raise CompareError(f"--features: cannot use {features_path}: {_first_line(e)}") from e
        if FLAGS.query_key:
            try:
                features[FLAGS.query_key]
            except KeyError as e:
                raise CompareError(
                    f"--query_key={FLAGS.query_key} is not a feature of {features_path}; "
                    f"known: {[f.name for f in features.features]}"
                ) from e
        logging.info("scoring %d model(s) on %s", len(scorers), FLAGS.data)
        labels, query_ids, predictions = score_data(FLAGS.data, features, scorers, FLAGS.query_key, FLAGS.batch_size)
    else:
        labels, predictions = load_column(FLAGS.labels, "--labels"), []

    for path in FLAGS.predictions:
        column = load_column(path, "--predictions")
        if column.size != labels.size:
            raise CompareError(
                f"--predictions: {path} has {column.size} predictions but the data has {labels.size} examples"
            )
        predictions.append(column)
        names.append(_model_name(path, taken))
        sources.append(path)

    try:
        comparison = report_lib.compare_predictions(
            names,
            np.stack(predictions),
            labels,
            query_ids,
            ensemble_size=FLAGS.ensemble_size,
            bootstrap_resamples=FLAGS.bootstrap,
            confidence=FLAGS.confidence,
            seed=FLAGS.seed,
            flip_threshold=FLAGS.flip_threshold,
            top_k=FLAGS.top_k,
        )
    except ValueError as e:
        raise CompareError(_first_line(e)) from e
    report = comparison.report
    for entry, source in zip(report["models"], sources, strict=True):
        entry["source"] = source
    report["settings"].update({"query_key": FLAGS.query_key, "data": FLAGS.data, "labels": FLAGS.labels})
    summary = report["summary"]
    gate_failed = False
    if FLAGS.max_relative_pd is not None:
        gate_failed = summary["mean_relative_pd"] > FLAGS.max_relative_pd
        summary["churn_gate"] = {"max_relative_pd": FLAGS.max_relative_pd, "passed": not gate_failed}

    write_outputs(FLAGS.output, comparison)
    logging.info("mean relative PD %.4f%% over %d pairs; report in %s",
                 100 * summary["mean_relative_pd"], summary["num_pairs"], FLAGS.output)
    print(f"mean relative PD {summary['mean_relative_pd']:.6f} ({100 * summary['mean_relative_pd']:.3f}%) "
          f"over {summary['num_pairs']} pair(s); report: {os.path.join(FLAGS.output, 'report.md')}")
    if gate_failed:
        print(
            f"churn gate failed: mean relative PD {summary['mean_relative_pd']:.6f} exceeds "
            f"--max_relative_pd={FLAGS.max_relative_pd}",
            file=sys.stderr,
        )
        return GATE_EXIT_CODE
    return 0


def write_outputs(output: str, comparison: report_lib.Comparison) -> None:
    """Writes report.json, report.md, pd_vs_auc.png and pd_hist.png into `output`."""
    from recsys.plots import pd as pd_plots

    _makedirs(output)
    report = comparison.report
    with _open(os.path.join(output, "report.json"), "w") as f:
        f.write(json.dumps(_json_ready(report), indent=2, allow_nan=False) + "\n")
    with _open(os.path.join(output, "report.md"), "w") as f:
        f.write(report_lib.to_markdown(report))
    key = report_lib.accuracy_key(report)
    baseline = report["models"][0]["name"]
    panel = pd_plots.comparison_panel(
        report_lib.pd_vs_accuracy_points(report),
        title=f"PD vs {key.upper()} loss change from {baseline} (lower-left is better)",
        baseline_name=baseline,
    )
    pd_plots.plot_pd_vs_accuracy([panel], os.path.join(output, "pd_vs_auc.png"),
                                 ylabel=f"{key.upper()} loss change vs baseline (%)")
    pd_plots.plot_pd_histogram(comparison.histograms, report_lib.HISTOGRAM_EDGES, os.path.join(output, "pd_hist.png"))


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"compare: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return ERROR_EXIT_CODE
    try:
        return run()
    except CompareError as e:
        print(f"compare: error: {e}", file=sys.stderr)
    except Exception as e:  # an entry point turns anything else into one line too; details at --verbosity=1
        logging.debug("compare failed", exc_info=True)
        print(f"compare: error: {type(e).__name__}: {_first_line(e)}", file=sys.stderr)
    return ERROR_EXIT_CODE


if __name__ == "__main__":
    app.run(main)
