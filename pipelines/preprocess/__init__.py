"""Click logs to TFRecords: the Apache Beam preprocessing job (`python -m pipelines.preprocess`).

`run(config, pipeline_args)` lists the input, checks the output directory, and runs
`transforms.PreprocessClickLogs` on whatever runner the Beam pipeline options name (DirectRunner by
default). See docs/preprocess.md for the flags and the output contract.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines.preprocess.transforms import PreprocessClickLogs
from recsys import console
from recsys.data import criteo, layout
from recsys.data.preprocessing import PreprocessConfig, list_input_files, resolve_vocab_dir

__all__ = ["PreprocessConfig", "make_pipeline_options", "run"]

DEFAULT_RUNNER = "DirectRunner"


def make_pipeline_options(pipeline_args: Sequence[str]) -> PipelineOptions:
    """Beam options from the arguments the job's own flags did not consume; DirectRunner unless named.

    Beam silently discards arguments it does not know; here they are an error, so a mistyped job flag
    (`--min_cout=5`) fails loudly instead of running with the default.
    """
    options = PipelineOptions(list(pipeline_args))
    unknown = set(options.get_all_options(retain_unknown_options=True)) - set(options.get_all_options())
    if unknown:
        raise ValueError(
            f"unknown flags {sorted('--' + name for name in unknown)}: neither a preprocess flag nor a Beam "
            "pipeline option (see `python -m pipelines.preprocess --helpfull` and docs/preprocess.md)"
        )
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = DEFAULT_RUNNER
    return options


def local_runner(options: PipelineOptions):
    """The in-process FnApiRunner when the DirectRunner is asked for, else None (Beam resolves the named runner).

    Beam's DirectRunner first tries the Prism runner, which downloads a binary from the internet; this
    project never downloads at run time, so the local path goes straight to the runner DirectRunner falls
    back to (it honours --direct_num_workers and --direct_running_mode).
    """
    if options.view_as(StandardOptions).runner not in ("DirectRunner", "direct"):
        return None
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return FnApiRunner()


def _existing_outputs(output_dir: str) -> list[str]:
    patterns = [layout.SHARD_PATTERN, f"{layout.BAD_ROWS_PREFIX}-*", layout.SUMMARY_FILE, layout.FEATURES_FILE,
                f"{layout.TEMPORARY_PREFIX}{layout.SHARD_PREFIX}*",
                os.path.join(layout.VOCAB_SUBDIR, "*" + layout.VOCAB_SUFFIX)]
    found = []
    for pattern in patterns:
        try:
            results = FileSystems.match([os.path.join(output_dir, pattern)])
        except Exception:  # Beam raises when the directory does not exist: nothing there.
            continue
        found += [m.path for result in results for m in result.metadata_list]
    return sorted(found)


def check_output_dir(config: PreprocessConfig, overwrite: bool) -> list[str]:
    """Refuses to mix two runs in one directory; returns the earlier run's outputs (`overwrite` replaces them)."""
    existing = _existing_outputs(config.output_dir)
    if existing and not overwrite:
        raise FileExistsError(
            f"`output_dir` {config.output_dir!r} already holds preprocessing outputs ({len(existing)} files, e.g. "
            f"{existing[0]!r}); choose an empty directory or pass --overwrite to replace them"
        )
    if config.vocab_dir and overwrite and existing:
        vocab = os.path.abspath(resolve_vocab_dir(config.vocab_dir))
        if vocab.startswith(os.path.abspath(config.output_dir) + os.sep) or vocab == os.path.abspath(config.output_dir):
            raise ValueError(
                f"`vocab_dir` {config.vocab_dir!r} lies inside `output_dir` {config.output_dir!r}, which --overwrite "
                "would delete; copy the vocabulary elsewhere first"
            )
    return existing


def prepare_output_dir(config: PreprocessConfig, overwrite: bool) -> None:
    """`check_output_dir`, then deletes the earlier run's outputs: for remote output directories only, which
    `run` cannot build beside and swap in (object stores have no rename of a folder)."""
    existing = check_output_dir(config, overwrite)
    if existing:
        FileSystems.delete(existing)
    if "://" not in config.output_dir:
        os.makedirs(config.output_dir, exist_ok=True)


def staging_dir(output_dir: str) -> str:
    """A fresh hidden directory beside `output_dir`, where a run builds its outputs before `swap_outputs`."""
    parent, name = os.path.split(os.path.abspath(output_dir))
    return os.path.join(parent, f".{name}{layout.TEMPORARY_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def swap_outputs(staging: str, output_dir: str, earlier: Sequence[str]) -> None:
    """Moves a finished run's outputs from `staging` into `output_dir`, replacing the earlier run's.

    The earlier summary.json goes first and the new one comes last, so at no point does the folder claim to be a
    finished run that it is not; files in `output_dir` that are not preprocessing outputs stay.
    """
    os.makedirs(output_dir, exist_ok=True)
    new = sorted(os.path.relpath(os.path.join(root, name), staging)
                 for root, _, names in os.walk(staging) for name in names)
    summary = os.path.join(output_dir, layout.SUMMARY_FILE)
    if os.path.exists(summary):
        os.remove(summary)
    for relative in [r for r in new if r != layout.SUMMARY_FILE]:
        os.makedirs(os.path.dirname(os.path.join(output_dir, relative)), exist_ok=True)
        os.replace(os.path.join(staging, relative), os.path.join(output_dir, relative))
    replaced = {os.path.abspath(os.path.join(output_dir, r)) for r in new}
    for path in earlier:
        if os.path.abspath(path) not in replaced and os.path.exists(path):
            os.remove(path)
    os.replace(os.path.join(staging, layout.SUMMARY_FILE), summary)


def check_vocab_dir(vocab_dir: str) -> str:
    """The directory holding C1.txt..C26.txt (an earlier output_dir or its vocab/); raises if incomplete."""
    resolved = resolve_vocab_dir(vocab_dir)
    missing = [f for f in criteo.CAT_COLUMNS if not FileSystems.exists(layout.vocab_path(resolved, f))]
    if missing:
        raise FileNotFoundError(
            f"`vocab_dir` {vocab_dir!r} has no vocabulary files for {missing} (expected "
            f"{layout.vocab_path(resolved, missing[0])!r}); point it at an earlier run's output_dir or its vocab/"
        )
    return resolved


def run(config: PreprocessConfig, pipeline_args: Sequence[str] = (), overwrite: bool = False,
        progress_every_seconds: float = console.PROGRESS_EVERY_SECONDS) -> dict[str, Any]:
    """Runs the job to completion and returns the summary (the contents of summary.json).

    Every pass over the input logs its progress (bytes read of the input's size) at most every
    `progress_every_seconds`.

    Raises:
      FileNotFoundError: no input file matched, or `vocab_dir` lacks vocabulary files.
      FileExistsError: `output_dir` holds an earlier run and `overwrite` is False.

    A local `output_dir` is built in a hidden folder beside it (`staging_dir`) and swapped in only when the
    pipeline succeeded (`swap_outputs`), so a failed run, with or without `overwrite`, leaves `output_dir` as it
    was. A remote one (gs://...) is written in place, after `overwrite` deleted the earlier outputs.
      ValueError: unknown pipeline arguments.
    """
    paths = list_input_files(config.input_pattern)
    if config.vocab_dir:
        check_vocab_dir(config.vocab_dir)
    options = make_pipeline_options(pipeline_args)
    if "://" in config.output_dir:
        prepare_output_dir(config, overwrite)
        _run_pipeline(config, paths, options, progress_every_seconds)
    else:
        # Built beside the earlier outputs and swapped in after success: a failed run leaves them as they were.
        earlier = check_output_dir(config, overwrite)
        staging = staging_dir(config.output_dir)
        try:
            _run_pipeline(dataclasses.replace(config, output_dir=staging), paths, options, progress_every_seconds)
            swap_outputs(staging, config.output_dir, earlier)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    with FileSystems.open(os.path.join(config.output_dir, layout.SUMMARY_FILE)) as f:
        return json.loads(f.read())


def _run_pipeline(config: PreprocessConfig, paths: Sequence[str], options: PipelineOptions,
                  progress_every_seconds: float) -> None:
    if "://" not in config.output_dir:
        os.makedirs(config.output_dir, exist_ok=True)
    with beam.Pipeline(runner=local_runner(options), options=options) as pipeline:
        _ = pipeline | "Preprocess" >> PreprocessClickLogs(config, paths, progress_every_seconds)
