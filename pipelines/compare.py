"""Comparator job: prediction difference (PD) between models, accuracy, ensembles, churn gate.

    python -m pipelines.compare --models=runs/relu1,runs/relu2 --data='data/tfrecords/eval-*.tfrecord.gz' \\
        --output=compare_out [--ensemble_size=k] [--query_key=<feature>] [--max_relative_pd=0.05] [--bootstrap=200]
        [--self_pd]

Scores every SavedModel (`<dir>/saved_model/` of a trainer workdir, or a SavedModel directory itself) on the
TFRecords in batches through its `serving_default(examples) -> {"probabilities"}` signature, using plain
TensorFlow only; `--predictions=a.npy,b.txt` adds models scored elsewhere (same examples, same order). Labels
(and the query key) come from `--data` parsed with `features.json` beside it, or from `--labels=<file>`.

The library does the work: `recsys.serving.scorer` loads and scores the SavedModels, `recsys.metrics.comparison`
reads the data and prediction files and writes the outputs, `recsys.metrics.report` computes the report.
Writes `<output>/report.json`, `report.md`, `pd_vs_auc.png`, `pd_hist.png` (see docs/compare.md).
Exit status: 0 ok; 3 when `--max_relative_pd` is given and the mean relative PD over pairs exceeds it (the
churn gate; a fraction, as in the report); 1 with a one-line message on any error.
"""
from __future__ import annotations

import os
import sys

import numpy as np
from absl import app, flags, logging

import recsys  # noqa: F401  (selects tf-keras before TensorFlow is imported anywhere)
from recsys import console
from recsys.data.features import FeatureSet, default_features_path
from recsys.metrics import comparison
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
flags.DEFINE_bool("self_pd", False, "Also score each trainer-exported model at its checkpoint before the final one "
                  "(exported to <output>/snapshots/) and report its self PD next to the PD between models.")

GATE_EXIT_CODE = 3
ERROR_EXIT_CODE = 1


class CompareError(Exception):
    """A user-facing problem with the job's inputs; its message is printed as the one-line error."""


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


def _load_column(path: str, flag: str):
    try:
        return comparison.load_column(path)
    except comparison.ComparisonInputError as e:
        raise CompareError(f"{flag}: {e}") from e


def _load_features() -> FeatureSet:
    """features.json of --data (or --features), with --query_key checked against it."""
    features_path = FLAGS.features or default_features_path(FLAGS.data)
    try:
        features = FeatureSet.load(features_path)
    except (FileNotFoundError, ValueError, KeyError, TypeError) as e:
        raise CompareError(f"--features: cannot use {features_path}: {comparison.first_line(e)}") from e
    if FLAGS.query_key:
        try:
            features[FLAGS.query_key]
        except KeyError as e:
            raise CompareError(
                f"--query_key={FLAGS.query_key} is not a feature of {features_path}; "
                f"known: {[f.name for f in features.features]}"
            ) from e
    return features


def _load_models(data_fingerprint: str | None) -> tuple[list[str], list]:
    """Each --models entry as its SavedModel folder, and a scorer for it; all are checked before --data is read,
    against the feature fingerprint of --data (`data_fingerprint`) first."""
    if not FLAGS.models:
        return [], []
    from recsys.serving import scorer  # TensorFlow only when there are models

    try:
        model_dirs = [scorer.resolve_saved_model(path) for path in FLAGS.models]
        scorers = [scorer.SavedModelScorer(path) for path in model_dirs]
        if data_fingerprint is not None:
            features_path = FLAGS.features or default_features_path(FLAGS.data)
            for path in model_dirs:
                scorer.check_fingerprint(path, data_fingerprint, f"--data's {features_path}")
        return model_dirs, scorers
    except scorer.SavedModelError as e:
        raise CompareError(f"--models: {e}") from e


def _check_data() -> tuple[FeatureSet, str]:
    """--data matches files, has a usable features.json and every file carries its feature fingerprint: checked
    before any model is loaded. Returns the features and the fingerprint."""
    try:
        comparison.list_data_files(FLAGS.data)
    except comparison.ComparisonInputError as e:
        raise CompareError(f"--data: {e}") from e
    features = _load_features()
    try:
        features_path = FLAGS.features or default_features_path(FLAGS.data)
        stamp = comparison.check_data_contract(FLAGS.data, features, features_path)
    except comparison.ComparisonInputError as e:
        raise CompareError(f"--data: {e}") from e
    return features, stamp


def _earlier_snapshots(model_dirs: list[str], names: list[str], data_fingerprint: str | None
                       ) -> tuple[dict[str, str], dict[str, int], dict[str, str]]:
    """--self_pd: each model's earlier snapshot (`recsys.training.snapshots`), exported under <output>/snapshots/.
    Returns (SavedModel path by model name, examples apart by name, why not by name for models without one)."""
    from recsys.serving import scorer
    from recsys.training import snapshots

    paths, apart, unavailable = {}, {}, {}
    for path, name in zip(model_dirs, names, strict=True):
        found = snapshots.trainer_workdir_of(path)
        if found is None:
            unavailable[name] = "not a trainer workdir's export (no config.json beside it)"
            continue
        workdir, index = found
        try:
            snapshot = snapshots.export_earlier_snapshot(workdir, os.path.join(FLAGS.output, "snapshots", name))
        except snapshots.NoEarlierSnapshot as e:
            unavailable[name] = str(e)
            continue
        except ValueError as e:
            raise CompareError(f"--self_pd: cannot export {workdir}'s earlier checkpoint: {comparison.first_line(e)}"
                               ) from e
        if data_fingerprint is not None:
            features_path = FLAGS.features or default_features_path(FLAGS.data)
            try:
                scorer.check_fingerprint(snapshot.paths[index], data_fingerprint, f"--data's {features_path}")
            except scorer.SavedModelError as e:
                raise CompareError(f"--self_pd: {e}") from e
        paths[name], apart[name] = snapshot.paths[index], snapshot.examples_apart
        logging.info("%s: earlier snapshot at step %d, %d examples before the end", name, snapshot.step,
                     snapshot.examples_apart)
    return paths, apart, unavailable


def _score_data(scorers: list, features: FeatureSet) -> comparison.ScoredRecords:
    """Labels (and query ids) of --data, and every scorer's predictions on it."""
    from recsys.serving import scorer

    logging.info("scoring %d model(s) on %s", len(scorers), FLAGS.data)
    try:
        return comparison.score_records(FLAGS.data, features, scorers, FLAGS.query_key, FLAGS.batch_size)
    except scorer.SavedModelError as e:
        raise CompareError(f"--models: {e}") from e
    except comparison.ComparisonInputError as e:
        raise CompareError(f"--data: {e}") from e


def run() -> int:
    """The job; returns the exit status (0, or 3 when the churn gate fails)."""
    _check_flags()
    # Every input is checked before the models are loaded (seconds each), so a typo fails in a blink.
    features, data_fingerprint = _check_data() if FLAGS.data else (None, None)
    labels = None if FLAGS.data else _load_column(FLAGS.labels, "--labels")
    columns = [_load_column(path, "--predictions") for path in FLAGS.predictions]
    taken: set[str] = set()
    model_dirs, scorers = _load_models(data_fingerprint)
    names = [comparison.model_name(path, taken) for path in FLAGS.models]
    sources = list(model_dirs)

    earlier_paths, apart, unavailable = {}, {}, {}
    if FLAGS.self_pd:
        earlier_paths, apart, unavailable = _earlier_snapshots(model_dirs, names, data_fingerprint)
        if earlier_paths:
            from recsys.serving import scorer

            scorers = scorers + [scorer.SavedModelScorer(path) for path in earlier_paths.values()]

    query_ids = None
    predictions = []
    earlier = {}
    if FLAGS.data:
        scored = _score_data(scorers, features)
        labels, query_ids, predictions = scored.labels, scored.query_ids, list(scored.predictions)
        earlier = dict(zip(earlier_paths, predictions[len(model_dirs):], strict=True))
        predictions = predictions[:len(model_dirs)]

    for path, column in zip(FLAGS.predictions, columns, strict=True):
        if column.size != labels.size:
            raise CompareError(
                f"--predictions: {path} has {column.size} predictions but the data has {labels.size} examples"
            )
        predictions.append(column)
        names.append(comparison.model_name(path, taken))
        sources.append(path)

    try:
        result = report_lib.compare_predictions(
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
        raise CompareError(comparison.first_line(e)) from e
    report = result.report
    for entry, source in zip(report["models"], sources, strict=True):
        entry["source"] = source
    report["settings"].update({"query_key": FLAGS.query_key, "data": FLAGS.data, "labels": FLAGS.labels})
    summary = report["summary"]
    if FLAGS.self_pd:
        final = dict(zip(names, predictions, strict=True))
        report_lib.add_self_pd(report, final, earlier, apart, unavailable)
    gate_failed = False
    if FLAGS.max_relative_pd is not None:
        gate_failed = summary["mean_relative_pd"] > FLAGS.max_relative_pd
        summary["churn_gate"] = {"max_relative_pd": FLAGS.max_relative_pd, "passed": not gate_failed}

    comparison.write_outputs(FLAGS.output, result)
    logging.info("mean relative PD %.4f%% over %d pairs; report in %s",
                 100 * summary["mean_relative_pd"], summary["num_pairs"], FLAGS.output)
    print(f"mean relative PD {summary['mean_relative_pd']:.6f} ({100 * summary['mean_relative_pd']:.3f}%) "
          f"over {summary['num_pairs']} pair(s); report: {os.path.join(FLAGS.output, 'report.md')}")
    if FLAGS.self_pd:
        self_pd = report["self_pd"]
        if self_pd["mean_self_relative_pd"] is None:
            print("self PD: no model has an earlier checkpoint (see report.md)")
        else:
            print(f"self PD (each model against its checkpoint before the final one) "
                  f"{100 * self_pd['mean_self_relative_pd']:.3f}% = {self_pd['self_to_pair_pd']:.2f} x the PD "
                  "between models")
    if gate_failed:
        print(
            f"churn gate failed: mean relative PD {summary['mean_relative_pd']:.6f} exceeds "
            f"--max_relative_pd={FLAGS.max_relative_pd}",
            file=sys.stderr,
        )
        return GATE_EXIT_CODE
    return 0


def main(argv: list[str]) -> int:
    console.configure(logging.get_verbosity())  # before TensorFlow/Beam are imported; --verbosity=1: all logs
    if len(argv) > 1:
        print(f"compare: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return ERROR_EXIT_CODE
    try:
        return run()
    except CompareError as e:
        print(f"compare: error: {e}", file=sys.stderr)
    except Exception as e:  # an entry point turns anything else into one line too; details at --verbosity=1
        logging.debug("compare failed", exc_info=True)
        print(f"compare: error: {type(e).__name__}: {comparison.first_line(e)}", file=sys.stderr)
    return ERROR_EXIT_CODE


if __name__ == "__main__":
    from pipelines import parse_flags

    app.run(main, flags_parser=parse_flags)
