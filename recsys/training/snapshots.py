"""A trained model as it was at its checkpoint before the final one: how far one stretch of the stream moves it.

The PD between a model and its own earlier snapshot ("self PD") next to the PD between replicas tells whether
the replicas differ because they settled in different places (basin) or because each stopped at a different
point of a noisy trajectory (jitter). `export_earlier_snapshot` exports a trainer workdir's models at the last
checkpoint before the final one, once, to a folder of the caller's choosing; the study (`analysis.checkpoint_pd`)
and the comparator (`--self_pd`) both use it.

A trainer run keeps that checkpoint when `keep_checkpoints >= 2` and it wrote a checkpoint before the end
(`checkpoint_every_steps` smaller than its steps).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any

from recsys.serving import contract
from recsys.training.checkpoint import list_checkpoints


@dataclasses.dataclass(frozen=True)
class EarlierSnapshot:
    """The exported earlier snapshot of one trainer workdir.

    Attributes:
      paths: SavedModel paths in the run's state order (`saved_model`, `saved_model_1`, ...).
      step: the global step of the earlier checkpoint.
      examples_apart: examples the run trained between that checkpoint and its end.
    """

    paths: list[str]
    step: int
    examples_apart: int


class NoEarlierSnapshot(Exception):
    """The workdir has no finished run with a checkpoint before its final one; the message says why."""


def trainer_workdir_of(saved_model_dir: str) -> tuple[str, int] | None:
    """(trainer workdir, state index) of a SavedModel that a trainer exported (`<workdir>/saved_model[_r]`,
    symbolic links followed), or None when the folder is not inside a trainer workdir."""
    workdir, name = os.path.split(os.path.realpath(saved_model_dir.rstrip("/")))
    index = trainer_state_index(name)
    if index is None or not os.path.exists(os.path.join(workdir, "config.json")):
        return None
    return workdir, index


def trainer_state_index(name: str) -> int | None:
    """The state index of a trainer export's folder name (`modes.saved_model_names`): saved_model -> 0,
    saved_model_<r> -> r; None for any other name."""
    if name == contract.WORKDIR_SAVED_MODEL:
        return 0
    prefix = f"{contract.WORKDIR_SAVED_MODEL}_"
    return int(name[len(prefix):]) if name.startswith(prefix) and name[len(prefix):].isdigit() else None


def load_trainer_config(workdir: str) -> Any:
    """The config a trainer workdir was trained with, from its config.json (as a ConfigDict)."""
    import ml_collections

    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir} is not a trainer workdir: no config.json")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def export_earlier_snapshot(workdir: str, output_dir: str, config: Any = None) -> EarlierSnapshot:
    """Exports the models of the trainer workdir `workdir` at its last checkpoint before the final one to
    `output_dir/step_<step>/saved_model[_r]`, unless a complete export is already there; the workdir is only read.

    Args:
      workdir: a finished trainer workdir.
      output_dir: where the exports go (one `step_<step>` folder per earlier checkpoint).
      config: the trainer config of the run; default: the workdir's config.json.

    Raises:
      NoEarlierSnapshot: the run is not finished, or has no checkpoint before its final one on disk.
      ValueError: `config` is not the config the run was trained with.
    """
    import tensorflow as tf

    from recsys.training.loop import export_checkpoint

    checkpoints = list_checkpoints(workdir)
    if not checkpoints or not checkpoints[-1].finished:
        raise NoEarlierSnapshot(f"{workdir} holds no finished run")
    if len(checkpoints) < 2:
        raise NoEarlierSnapshot(
            f"{workdir} has no checkpoint before its final one: its {checkpoints[-1].step} steps are fewer than "
            "checkpoint_every_steps, or it was trained with keep_checkpoints=1")
    if config is None:
        config = load_trainer_config(workdir)
    earlier = checkpoints[-2]
    output = os.path.join(output_dir, f"step_{earlier.step}")
    if not os.path.isdir(output):  # only a complete export is renamed into place
        partial = f"{output}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            export_checkpoint(config, workdir, earlier.path, partial)
        finally:
            tf.keras.backend.clear_session()
        os.rename(partial, output)
    paths = sorted((os.path.join(output, name) for name in os.listdir(output) if trainer_state_index(name) is not None),
                   key=lambda path: trainer_state_index(os.path.basename(path)))
    return EarlierSnapshot(paths=paths, step=earlier.step,
                           examples_apart=checkpoints[-1].examples - earlier.examples)
