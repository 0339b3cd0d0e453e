"""The comparator's inputs and outputs around `report.compare_predictions` (docs/compare.md).

- `list_data_files`: the files of a `--data` glob, checked before any model is loaded.
- `check_data_contract`: every file of `--data` carries the feature fingerprint of its features.json (the models
  are then checked against it with `recsys.serving.scorer.check_fingerprint`).
- `score_records`: reads TFRecords once, in sorted file order; returns the labels, the optional query ids and
  every SavedModel's predictions (`recsys.serving.scorer`).
- `load_column`: predictions or labels from another system (`.npy` or one-column text).
- `model_name`: a report name from a trainer workdir, SavedModel folder or prediction file.
- `write_outputs`: report.json, report.md and the two figures.

Paths with a scheme (gs://...) go through `tf.io.gfile`; local paths use the standard library, so comparing
prediction files needs no TensorFlow. Problems with an input raise `ComparisonInputError`; problems with a
SavedModel raise `recsys.serving.scorer.SavedModelError`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from recsys import console
from recsys.data.features import FeatureSet
from recsys.metrics import report as report_lib
from recsys.serving import contract


class ComparisonInputError(ValueError):
    """Data, labels or predictions that cannot be read or used; the message names the file or glob."""


@dataclasses.dataclass(frozen=True)
class ScoredRecords:
    """What `score_records` read: labels [N], query ids [N] (or None) and one prediction array [N] per model."""

    labels: np.ndarray
    query_ids: np.ndarray | None
    predictions: list[np.ndarray]


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _remote(path: str) -> bool:
    return "://" in path


def _exists(path: str) -> bool:
    return _tf().io.gfile.exists(path) if _remote(path) else os.path.exists(path)


def _open(path: str, mode: str):
    return _tf().io.gfile.GFile(path, mode) if _remote(path) else open(path, mode)


def _makedirs(path: str) -> None:
    if _remote(path):
        _tf().io.gfile.makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (TensorFlow's run to many lines), or its type name."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def list_data_files(data: str) -> list[str]:
    """The TFRecord files of glob `data` in the order they are read (sorted names).

    Raises:
      ComparisonInputError: no file matches.
    """
    _tf()  # before recsys.data.input imports TensorFlow
    from recsys.data.input import list_files

    try:
        return list_files(data)
    except (FileNotFoundError, ValueError) as e:
        raise ComparisonInputError(f"no files match {data}") from e


def check_data_contract(data: str, features: FeatureSet, features_path: str) -> str:
    """The feature fingerprint of glob `data`: `features_path`'s, which every file of the glob must carry.

    Raises:
      ComparisonInputError: features.json has no (or an edited) fingerprint, or a file carries another or none;
        one line naming the file, both fingerprints and what to do.
    """
    _tf()
    from recsys.data import input as input_lib
    from recsys.data.fingerprint import RERUN_PREPROCESS

    try:
        expected = input_lib.contract_fingerprint(features, features_path)
        input_lib.check_fingerprints(list_data_files(data), expected, features_path,
                                     f"{RERUN_PREPROCESS}, or pass --features with the features.json it was "
                                     "written with")
    except input_lib.InputDataError as e:
        raise ComparisonInputError(str(e)) from None
    return expected


def score_records(
    data: str,
    features: FeatureSet,
    scorers: Sequence[Callable[[Any], np.ndarray]],
    query_key: str | None,
    batch_size: int,
    progress_every_seconds: float = console.PROGRESS_EVERY_SECONDS,
) -> ScoredRecords:
    """Reads the TFRecords of glob `data` once; returns labels, query ids and each scorer's predictions.

    Files are read in sorted name order (`recsys.data.input.list_files`), the records of each file in file
    order, so every model (and every prediction file made elsewhere) sees the examples in one order. Scorers
    are `recsys.serving.scorer.SavedModelScorer`s; their predictions are kept as float32.

    Logs progress (`console.Progress`) at most every `progress_every_seconds`: predictions made of examples ×
    models, the number of examples from the data's summary.json or counted (`recsys.data.input.expected_records`).

    Raises:
      ComparisonInputError: no file matches, the records cannot be read or parsed, or there are none.
      SavedModelError: a model's output breaks the serving contract.
    """
    tf = _tf()
    from recsys.data.input import expected_records
    from recsys.serving.scorer import serialized_batches

    parse_spec = features.parse_spec()
    spec = {features.label.name: parse_spec[features.label.name]}
    if query_key is not None:
        spec[query_key] = parse_spec[query_key]
    files = list_data_files(data)
    labels, queries, predictions = [], [], [[] for _ in scorers]
    try:
        examples = expected_records(data, files) if scorers else None
        progress = console.Progress(
            f"scoring {len(scorers)} model(s) on {examples if examples is not None else 'the'} examples of {data}",
            examples * len(scorers) if examples is not None else None, "predictions", progress_every_seconds)
        for serialized in serialized_batches(files, batch_size):
            parsed = tf.io.parse_example(serialized, spec)
            labels.append(parsed[features.label.name].numpy())
            if query_key is not None:
                queries.append(parsed[query_key].numpy())
            for scorer, out in zip(scorers, predictions, strict=True):
                out.append(np.asarray(scorer(serialized), dtype=np.float32))
                progress.add(len(out[-1]))
        progress.finish()
    except tf.errors.OpError as e:
        raise ComparisonInputError(f"cannot read or parse {data}: {first_line(e)}") from e
    if not labels:
        raise ComparisonInputError(f"{data} holds no examples")
    return ScoredRecords(
        np.concatenate(labels),
        np.concatenate(queries) if query_key is not None else None,
        [np.concatenate(p) for p in predictions],
    )


def load_column(path: str) -> np.ndarray:
    """A 1-D array from a .npy file or a one-column text file.

    Raises:
      ComparisonInputError: the file is missing, unreadable, or not one column of numbers.
    """
    if not _exists(path):
        raise ComparisonInputError(f"file not found: {path}")
    try:
        if path.endswith(".npy"):
            with _open(path, "rb") as f:
                array = np.load(f, allow_pickle=False)
        else:
            with _open(path, "r") as f:
                array = np.loadtxt(f, dtype=np.float64, ndmin=1)
    except (ValueError, OSError) as e:
        raise ComparisonInputError(f"cannot read {path}: {first_line(e)}") from e
    array = np.squeeze(array)
    if array.ndim != 1:
        raise ComparisonInputError(f"{path} must hold one column of numbers; got shape {array.shape}")
    return array


def model_name(path: str, taken: set[str]) -> str:
    """The report name of a model at `path`, unique among `taken` (to which it is added).

    A trainer workdir or its `saved_model/` gives the workdir's name; the trainer's replica r >= 1
    (`<workdir>/saved_model_<r>`) gives `<workdir>_r<r>`; a file gives its name without extension. Repeated
    names get `_2`, `_3`, ...
    """
    base = os.path.normpath(path)
    name = os.path.basename(base)
    replica_prefix = f"{contract.WORKDIR_SAVED_MODEL}_"
    if name == contract.WORKDIR_SAVED_MODEL:
        name = os.path.basename(os.path.dirname(base)) or name
    elif name.startswith(replica_prefix):
        name = f"{os.path.basename(os.path.dirname(base))}_r{name[len(replica_prefix):]}"
    name = os.path.splitext(name)[0] if not os.path.isdir(path) else name
    unique, k = name, 2
    while unique in taken:
        unique, k = f"{name}_{k}", k + 1
    taken.add(unique)
    return unique


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


def write_outputs(output: str, comparison: report_lib.Comparison) -> None:
    """Writes report.json, report.md, pd_vs_auc.png and pd_hist.png into `output` (created if missing)."""
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
