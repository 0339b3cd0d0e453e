"""Runs a study: prepare data, train every cell (resumably), score on held-out data, write the results.

Workdir layout:

    data/, raw/                     the preprocessed (and generated) log, when the config names a raw one
    eval_labels.npy                 labels of the held-out examples, in scoring order
    cells/<noise>/<activation>/
      train/                        replica mode: one trainer workdir training the R replicas on one stream
      replica_<r>/                  separate mode: one trainer workdir per replica
      predictions.npy, predictions.json   held-out probabilities [R, T] and what they were computed from
    results.json, results.md, pd_vs_accuracy.png
    convergence.png                 with distillation cells: progressive AUC over the stream, per cell

Training. By default (`study.replica_mode` `auto` or `replicas`) a cell is one trainer run in replica mode
(`replicas.count`, `replicas.noise`) over one parsed stream that exports `saved_model`, `saved_model_1`, …
(`recsys.training.modes.saved_model_names`); the cell then also has the trainer's progressive PD. With
`study.replica_mode = "separate"` each replica is its own run with the seeds of `recsys.training.noise`. The
trainer runs in this process (`recsys.training.loop.train`), so TensorFlow starts once per study.

Resuming. A trainer run is finished when its workdir has `metrics.json` and its SavedModel(s): it is not run
again. An unfinished one resumes from its last checkpoint (the trainer's own resume). A finished run whose
`config.json` differs from the config the study would give it (`recsys.training.loop.config_differences`, the
trainer's own rule) is refused (a new workdir is needed). Held-out
predictions are stored per cell with, for each replica, its SavedModel (path and a digest of its files): a
replica already scored on the same held-out data is not scored again. So raising `grid.replicas` later (separate
mode) trains and scores only the new replicas. The analysis (PD, intervals, accuracy) is recomputed from the
stored predictions on every run; it is cheap and deterministic (seeded), so a rerun gives identical results.
"""
from __future__ import annotations

import copy
import datetime
import gc
import hashlib
import json
import os
import platform
import subprocess
import time
from typing import Any

import numpy as np
from absl import logging

import recsys
from recsys import atomic
from recsys.metrics import accuracy, bootstrap
from recsys.study import analysis, grid, sources
from recsys.study.data import EvalSet, StudyData, prepare_data
from recsys.training import metrics_record
from recsys.training.lock import workdir_lock
from recsys.training.loop import config_differences
from recsys.training.modes import saved_model_names

RESULTS_FORMAT_VERSION = 1
REPLICA_MODES = ("auto", "replicas", "separate")


class CellTrainingError(RuntimeError):
    """A cell's training stopped (e.g. non-finite loss); the study records it and goes on with the next cell."""


def _read_json(path: str) -> dict[str, Any] | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def use_replica_mode(config: Any) -> bool:
    """Whether the cells train as one trainer run in replica mode (`auto`, `replicas`) or one run per replica."""
    mode = config.study.replica_mode
    if mode not in REPLICA_MODES:
        raise ValueError(f"`study.replica_mode` must be one of {REPLICA_MODES}. Received: {mode!r}")
    return mode != "separate"


# ----------------------------------------------------------------------------------------------------------------
class CellRunner:
    """Trains and scores one cell (see the module docstring for the layout and the resume rules)."""

    def __init__(self, config: Any, cell: grid.Cell, workdir: str, data: StudyData, replica_mode: bool):
        self.config = config
        self.cell = cell
        self.directory = os.path.join(workdir, "cells", cell.cell_id)
        self.data = data
        self.replica_mode = replica_mode

    # Trainer configs -------------------------------------------------------------------------------------------
    def _base_trainer_config(self) -> Any:
        if self.cell.equal_budget and not self.cell.overrides:
            raise ValueError(f"{self.cell.cell_id}: an equal-budget cell needs its widths from "
                             "`grid.size_equal_budget` (after the data is prepared) before it is trained.")
        train = copy.deepcopy(self.config.train)
        train.data.train = self.data.train
        train.data.features = self.data.features_path
        train.model.activation = self.cell.spec
        for key, value in self.cell.overrides:
            section, name = key.split(".")
            setattr(getattr(train, section), name, value)
        if self.config.analysis.checkpoint_pd:  # the checkpoint before the final one stays on disk
            train.keep_checkpoints = max(2, int(train.keep_checkpoints))
        return train

    def trainer_runs(self) -> list[tuple[str, Any]]:
        """(trainer workdir, trainer config) of each run of this cell."""
        if self.replica_mode:
            train = self._base_trainer_config()
            train.replicas.count = self.cell.replicas
            train.replicas.noise = self.cell.noise
            return [(os.path.join(self.directory, "train"), train)]
        runs = []
        for r in range(self.cell.replicas):
            train = self._base_trainer_config()
            train.seed.init, train.seed.data = grid.replica_seeds(
                self.cell.noise, r, int(self.config.train.seed.init), int(self.config.train.seed.data))
            runs.append((os.path.join(self.directory, f"replica_{r}"), train))
        return runs

    def parameters(self) -> int:
        """Parameters of one replica's model (`recsys.model.parameters.count_parameters`; equals Keras'
        `count_params()`), from the cell's trainer config and the data's features.json."""
        from recsys.data.features import FeatureSet
        from recsys.model.ctr import ModelSpec
        from recsys.model.parameters import count_parameters

        model = self._base_trainer_config().model
        return count_parameters(ModelSpec.from_config(model, FeatureSet.load(self.data.features_path)))

    # State -----------------------------------------------------------------------------------------------------
    def saved_models(self) -> list[str]:
        """The replicas' SavedModel directories, in replica order."""
        if self.replica_mode:
            workdir = os.path.join(self.directory, "train")
            return [os.path.join(workdir, name) for name in saved_model_names(self.cell.replicas)]
        return [os.path.join(workdir, saved_model_names(1)[0]) for workdir, _ in self.trainer_runs()]

    def trained(self) -> bool:
        runs_done = all(metrics_record.exists(w) for w, _ in self.trainer_runs())
        return runs_done and all(os.path.exists(os.path.join(p, "saved_model.pb")) for p in self.saved_models())

    def trainer_metrics(self) -> list[dict[str, Any]]:
        return [metrics_record.read_json(w) or {} for w, _ in self.trainer_runs()]

    # Work ------------------------------------------------------------------------------------------------------
    def train(self) -> None:
        """Runs (or resumes) every trainer run of the cell that has not finished."""
        import tensorflow as tf

        from recsys.training.loop import NonFiniteLossError, train

        for workdir, trainer_config in self.trainer_runs():
            if metrics_record.exists(workdir) and self._run_exported(workdir):
                continue
            logging.info("Training %s in %s", self.cell.label, workdir)
            try:
                train(trainer_config, workdir)
            except NonFiniteLossError as e:
                raise CellTrainingError(f"{self.cell.cell_id}: {e}") from None
            finally:
                tf.keras.backend.clear_session()
                gc.collect()

    def _run_exported(self, workdir: str) -> bool:
        if self.replica_mode:
            return all(os.path.exists(os.path.join(p, "saved_model.pb")) for p in self.saved_models())
        return os.path.exists(os.path.join(workdir, "saved_model", "saved_model.pb"))

    def _model_keys(self, saved_models: list[str]) -> list[str]:
        """One key per replica: its SavedModel directory and a digest of its saved graph and fingerprint, so a
        re-exported or retrained model is scored again and an unchanged one is not."""
        keys = []
        for path in saved_models:
            digest = hashlib.sha1()
            for name in ("fingerprint.pb", "saved_model.pb"):
                file = os.path.join(path, name)
                if os.path.exists(file):
                    with open(file, "rb") as f:
                        digest.update(f.read())
            keys.append(f"{path}:{digest.hexdigest()[:16]}")
        return keys

    def predictions(self, eval_set: EvalSet, saved_models: list[str] | None = None,
                    name: str = "predictions") -> np.ndarray:
        """Held-out probabilities [R, T] of `saved_models` (default: the replicas' final ones), stored as
        `<name>.npy`: replicas already scored on this data (same SavedModel) are reused, the others are scored;
        everything is stored again."""
        path = os.path.join(self.directory, f"{name}.npy")
        meta_path = os.path.join(self.directory, f"{name}.json")
        saved_models = self.saved_models() if saved_models is None else saved_models
        keys = self._model_keys(saved_models)
        stored = _read_json(meta_path) or {}
        reusable: dict[str, np.ndarray] = {}
        if stored.get("eval_fingerprint") == eval_set.fingerprint and os.path.exists(path):
            rows = np.load(path)
            reusable = {key: rows[i] for i, key in enumerate(stored.get("models", [])) if i < len(rows)}
        if all(key in reusable for key in keys) and stored.get("models") == keys:
            return np.load(path).astype(np.float64)
        predictions = np.stack([
            reusable[key] if key in reusable else eval_set.score(model)
            for key, model in zip(keys, saved_models, strict=True)
        ]).astype(np.float32)
        os.makedirs(self.directory, exist_ok=True)
        np.save(path, predictions)
        atomic.write_json(meta_path, {"eval_fingerprint": eval_set.fingerprint, "models": keys})
        # Analysis always reads back the stored float32 values, so a first run and a rerun agree exactly.
        return np.load(path).astype(np.float64)

    def earlier_snapshots(self) -> tuple[list[str], int] | None:
        """The replicas at the last checkpoint before the final one of each trainer run, exported once to
        `<trainer workdir>/checkpoint_exports/step_<step>/`: (SavedModel paths in replica order, examples between
        that checkpoint and the end). None when a run has no earlier checkpoint on disk."""
        from recsys.training import snapshots

        paths, apart = [], []
        for workdir, trainer_config in self.trainer_runs():
            try:
                snapshot = snapshots.export_earlier_snapshot(
                    workdir, os.path.join(workdir, "checkpoint_exports"), trainer_config)
            except snapshots.NoEarlierSnapshot as e:
                logging.warning("%s gets no self PD: %s", self.cell.cell_id, e)
                return None
            finally:
                _clear_tensorflow()
            paths += snapshot.paths
            apart.append(snapshot.examples_apart)
        return paths, min(apart)

    def check_not_stale(self) -> None:
        """Refuses trainer workdirs of this cell that were trained with another config.

        The trainer refuses them too, but only when it runs; finished runs are not run again, so the study checks
        their config.json itself. Keys that do not change what is computed (logging, checkpoint cadence) may differ.
        """
        for workdir, trainer_config in self.trainer_runs():
            saved = _read_json(os.path.join(workdir, "config.json"))
            if saved is None:
                continue
            differences = config_differences(saved, json.loads(trainer_config.to_json()))
            if differences:
                raise ValueError(
                    f"{workdir} was trained with a different config ({'; '.join(differences[:3])}); use a new "
                    "--workdir, or delete that folder to retrain it."
                )


def _clear_tensorflow() -> None:
    import tensorflow as tf

    tf.keras.backend.clear_session()
    gc.collect()


# ----------------------------------------------------------------------------------------------------------------
def held_out_frequency(config: Any, data: StudyData, eval_set: EvalSet) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Each held-out example's training frequency over the model's categorical inputs (`recsys.study.sources`),
    or None, and what results.json says about it (buckets, where the counts came from or why there are none)."""
    from recsys.model.ctr import ModelSpec

    names = [e.name for e in ModelSpec.from_config(config.train.model, eval_set.features).embeddings]
    counts, description = sources.vocabulary_counts(os.path.dirname(data.features_path), eval_set.features, names)
    about = {"buckets": {name: [low, high] for name, low, high in sources.FREQUENCY_BUCKETS}, "counts": description}
    if counts is None:
        return None, about
    return sources.example_frequency(eval_set.categorical_ids(tuple(counts)), counts), about


def source_keys(runner: CellRunner, eval_set: EvalSet, predictions: np.ndarray, frequency: np.ndarray | None,
                replica_pd: float | None, config: Any) -> dict[str, Any]:
    """Where the cell's PD comes from: `pd_by_frequency`, and with `analysis.checkpoint_pd` the PD between each
    replica's last two checkpoints (`self_relative_pd`, ...; None when no earlier checkpoint is on disk)."""
    keys: dict[str, Any] = {
        "pd_by_frequency": sources.pd_by_frequency(predictions, frequency) if frequency is not None else None}
    if config.analysis.checkpoint_pd:
        snapshots = runner.earlier_snapshots()
        if snapshots is None:
            keys.update({"self_relative_pd": None, "self_relative_pd_replicas": None, "self_pd_examples_apart": None,
                         "self_to_replica_pd": None})
        else:
            earlier = runner.predictions(eval_set, snapshots[0], name="checkpoint_predictions")
            keys.update(sources.self_pd_summary(earlier, predictions, snapshots[1], replica_pd))
    return keys


def cell_entry(cell: grid.Cell, predictions: np.ndarray, labels: np.ndarray, runs: list[dict[str, Any]],
               config: Any) -> dict[str, Any]:
    """The results.json entry of one single-model cell (ensemble entries come from `ensemble_entry`)."""
    options = _bootstrap_options(config)
    entry = _identity(cell, ensemble=False)
    entry.update(analysis.replica_summary(predictions, labels, **options))
    entry.update(analysis.progressive_summary(runs, cell.replicas))
    if cell.role == "student" and runs:
        entry["teacher_progressive_auc"] = runs[0].get("teacher_progressive_auc")
    entry["status"] = "ok"
    return entry


def ensemble_entry(cell: grid.Cell, predictions: np.ndarray, labels: np.ndarray, runs: list[dict[str, Any]],
                   config: Any) -> dict[str, Any]:
    """The results.json entry of a cell's k-ensembles: PD between disjoint ensembles, ensemble accuracy."""
    entry = _identity(cell, ensemble=True)
    entry.update(analysis.ensemble_summary(predictions, labels, cell.ensemble_k,
                                           max_splits=int(config.analysis.max_ensemble_splits),
                                           **_bootstrap_options(config)))
    progressive = analysis.progressive_summary(runs, cell.replicas)
    # An ensemble of k models costs k trainings: its throughput is not measured on its own.
    entry.update({key: None for key in progressive})
    entry["trainer_mode"] = progressive["trainer_mode"]
    entry["member_examples_per_sec"] = progressive["examples_per_sec"]
    entry["train_seconds"] = progressive["train_seconds"]
    entry["train_examples"] = progressive["train_examples"]
    entry["status"] = "ok"
    return entry


def _identity(cell: grid.Cell, ensemble: bool) -> dict[str, Any]:
    label = cell.label
    if ensemble:
        label = f"{grid.DISPLAY_NAMES.get(cell.activation, cell.activation)} {cell.ensemble_k}-ensemble"
        if cell.equal_budget:
            label += " (equal budget)"
    group = label if ensemble else cell.group
    return {
        "cell": cell.cell_id + ("#ensemble" if ensemble else ""),
        "label": label,
        "group": group,
        "activation": cell.activation,
        "spec": cell.spec,
        "beta": cell.beta,
        "beta_per_layer": list(cell.beta_per_layer) if cell.beta_per_layer else None,
        "learnable": cell.learnable,
        "noise": cell.noise,
        "replicas": cell.replicas,
        "ensemble": ensemble,
        "ensemble_k": cell.ensemble_k if ensemble else None,
        "equal_budget": cell.equal_budget,
        "overrides": dict(cell.overrides),
        "role": cell.role,
        "teacher": cell.teacher,
        "weight": cell.weight,
    }


def _bootstrap_options(config: Any) -> dict[str, Any]:
    return {"resamples": int(config.analysis.bootstrap), "confidence": float(config.analysis.confidence),
            "seed": int(config.analysis.seed)}


def failed_entry(cell: grid.Cell, message: str) -> dict[str, Any]:
    entry = _identity(cell, ensemble=False)
    entry.update({"status": "failed", "error": message, "relative_pd": None, "relative_pd_ci": None, "auc": None,
                  "logloss": None, "auc_loss_change_pct": None, "examples_per_sec": None})
    return entry


def add_baseline_changes(entries: list[dict[str, Any]]) -> None:
    """Sets `auc_loss_change_pct` (and the PD ratio) of every entry against the ReLU cell of its noise source."""
    baselines = {e["noise"]: e for e in entries if e.get("baseline")}
    for entry in entries:
        base = baselines.get(entry["noise"])
        ok = base is not None and base.get("status") == "ok" and entry.get("status") == "ok"
        entry["auc_loss_change_pct"] = accuracy.auc_loss_change_pct(entry["auc"], base["auc"]) if ok else None
        ratio = None
        if ok and base["relative_pd"]:
            ratio = entry["relative_pd"] / base["relative_pd"]
        entry["relative_pd_vs_relu"] = ratio


def add_paired_comparisons(entries: list[dict[str, Any]], predictions: dict[str, np.ndarray], labels: np.ndarray,
                           config: Any) -> None:
    """Adds `analysis.PAIRED_KEYS` to every entry: for each ok single-model cell other than the baseline, the paired
    comparison with the baseline cell of its noise source (`analysis.paired_to_baseline` on both cells' stored
    held-out predictions, `predictions[cell id]`); None elsewhere (the baseline, ensembles, failed cells)."""
    baselines = {e["noise"]: e for e in entries if e.get("baseline") and e.get("status") == "ok"}
    options = _bootstrap_options(config)
    for entry in entries:
        entry.update(dict.fromkeys((*analysis.PAIRED_KEYS, "paired_baseline")))
        base = baselines.get(entry["noise"])
        if base is None or entry is base or entry.get("ensemble") or entry.get("status") != "ok":
            continue
        entry.update(analysis.paired_to_baseline(
            predictions[base["cell"]], predictions[entry["cell"]], labels, options["resamples"],
            options["confidence"], float(config.analysis.power), options["seed"]))
        entry["paired_baseline"] = base["cell"]


# ----------------------------------------------------------------------------------------------------------------
def _commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=os.path.dirname(recsys.__file__),
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def machine_description() -> str:
    return f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def run_study(config: Any, workdir: str) -> dict[str, Any]:
    """`_run_study` holding the workdir's lock (`recsys.training.lock`): a second study on it fails fast."""
    with workdir_lock(workdir, job="study"):
        return _run_study(config, workdir)


def _run_study(config: Any, workdir: str) -> dict[str, Any]:
    """Runs (or resumes) the study of `config` in `workdir`; returns the content of results.json.

    Raises:
      ValueError: a bad grid/analysis/data config (before anything is trained), or a workdir whose cells were
        trained with another config.
    """
    started = time.perf_counter()
    cells = grid.expand_grid(config)
    replica_mode = use_replica_mode(config)  # validates study.replica_mode before anything runs
    bootstrap.check_options(int(config.analysis.bootstrap), float(config.analysis.confidence),
                            "analysis.bootstrap", "analysis.confidence")
    os.makedirs(workdir, exist_ok=True)
    data = prepare_data(config.data, workdir)
    from recsys.data.features import FeatureSet

    cells = grid.size_equal_budget(cells, config, FeatureSet.load(data.features_path))
    runners = [CellRunner(config, cell, workdir, data, replica_mode) for cell in cells]
    trainer_mode = "replicas" if replica_mode else "separate"
    for runner in runners:
        runner.check_not_stale()
    logging.info("Study %s: %d cells, trainer mode %s; train %s; held-out %s", config.name, len(cells),
                 trainer_mode, data.train, list(data.eval_files))
    eval_set = EvalSet(data.eval_files, data.features_path, int(config.data.max_eval_examples),
                       int(config.analysis.score_batch_size))
    np.save(os.path.join(workdir, "eval_labels.npy"), eval_set.labels)
    frequency, frequency_about = held_out_frequency(config, data, eval_set)

    entries: list[dict[str, Any]] = []
    cell_predictions: dict[str, np.ndarray] = {}
    trained_now = skipped = 0
    for index, runner in enumerate(runners):
        cell = runner.cell
        cell_started = time.perf_counter()
        if runner.trained():
            skipped += 1
        else:
            try:
                runner.train()
            except CellTrainingError as e:
                logging.error("Cell %s failed: %s", cell.cell_id, e)
                entries.append(failed_entry(cell, str(e)))
                entries[-1]["parameters"] = runner.parameters()
                continue
            trained_now += 1
        predictions = runner.predictions(eval_set)
        cell_predictions[cell.cell_id] = predictions
        runs = runner.trainer_metrics()
        entry = cell_entry(cell, predictions, eval_set.labels, runs, config)
        entry["baseline"] = cell.is_baseline
        entry["parameters"] = runner.parameters()
        entry.update(source_keys(runner, eval_set, predictions, frequency, entry["relative_pd"], config))
        entries.append(entry)
        if cell.ensemble_k:
            ensemble = ensemble_entry(cell, predictions, eval_set.labels, runs, config)
            ensemble["baseline"] = False
            ensemble["parameters"] = cell.ensemble_k * entry["parameters"]
            entries.append(ensemble)
        elapsed = time.perf_counter() - started
        logging.info(
            "[%d/%d] %s (%s): relative PD %.3f%% (CI %s), AUC %.4f, %.0f s for this cell; %s elapsed",
            index + 1, len(runners), cell.label, cell.noise, 100 * entry["relative_pd"],
            [round(100 * v, 3) for v in entry["relative_pd_ci"]] if entry["relative_pd_ci"] else None,
            entry["auc"] or float("nan"), time.perf_counter() - cell_started,
            datetime.timedelta(seconds=round(elapsed)),
        )
    add_baseline_changes(entries)
    add_paired_comparisons(entries, cell_predictions, eval_set.labels, config)
    distillation = analysis.distillation_summary(entries)
    results = {
        "format_version": RESULTS_FORMAT_VERSION,
        "study": {
            "name": config.name,
            "pd_unit": "fraction",
            "train": data.train,
            "eval_files": list(data.eval_files),
            "eval_examples": eval_set.size,
            "eval_positives": int(np.count_nonzero(eval_set.labels)),
            "ground_truth": data.ground_truth,
            "trainer_mode": trainer_mode,
            "grid": json.loads(config.grid.to_json()),
            "analysis": json.loads(config.analysis.to_json()),
            "frequency": frequency_about,
            "train_config": json.loads(config.train.to_json()),
        },
        "cells": entries,
        "distillation": distillation,
        "run": {
            "wall_seconds": time.perf_counter() - started,
            "cells_trained": trained_now,
            "cells_skipped": skipped,
            "commit": _commit(),
            "machine": machine_description(),
            "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
    }
    write_outputs(results, workdir)
    return results


def write_outputs(results: dict[str, Any], workdir: str) -> None:
    """results.json, results.md and pd_vs_accuracy.png in `workdir`."""
    from recsys.plots import study as study_plots
    from recsys.study import report

    atomic.write_json(os.path.join(workdir, "results.json"), results)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(report.to_markdown(results))
    study_plots.plot_pd_vs_accuracy(results["cells"], os.path.join(workdir, "pd_vs_accuracy.png"), grid.NOISE_SOURCES,
                                    title=f"{results['study']['name']}: PD vs AUC loss change from ReLU")
    if results.get("distillation"):
        study_plots.plot_convergence(results["cells"], os.path.join(workdir, "convergence.png"), grid.NOISE_SOURCES,
                                     title=f"{results['study']['name']}: progressive AUC over the stream")
