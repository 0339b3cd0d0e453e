"""Click logs to TFRecords: the Apache Beam preprocessing job (`python -m pipelines.preprocess`).

`run(config, pipeline_args)` lists the input, checks the output directory, and runs
`transforms.PreprocessClickLogs` on whatever runner the Beam pipeline options name (DirectRunner by
default). See docs/preprocess.md for the flags and the output contract.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines.preprocess.transforms import PreprocessClickLogs
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


def prepare_output_dir(config: PreprocessConfig, overwrite: bool) -> None:
    """Refuses to mix two runs in one directory; with `overwrite`, deletes the earlier run's outputs."""
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
    if existing:
        FileSystems.delete(existing)
    if "://" not in config.output_dir:
        os.makedirs(config.output_dir, exist_ok=True)


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


def run(config: PreprocessConfig, pipeline_args: Sequence[str] = (), overwrite: bool = False) -> dict[str, Any]:
    """Runs the job to completion and returns the summary (the contents of summary.json).

    Raises:
      FileNotFoundError: no input file matched, or `vocab_dir` lacks vocabulary files.
      FileExistsError: `output_dir` holds an earlier run and `overwrite` is False.
      ValueError: unknown pipeline arguments.
    """
    paths = list_input_files(config.input_pattern)
    if config.vocab_dir:
        check_vocab_dir(config.vocab_dir)
    options = make_pipeline_options(pipeline_args)
    prepare_output_dir(config, overwrite)
    with beam.Pipeline(runner=local_runner(options), options=options) as pipeline:
        _ = pipeline | "Preprocess" >> PreprocessClickLogs(config, paths)
    with FileSystems.open(os.path.join(config.output_dir, layout.SUMMARY_FILE)) as f:
        return json.loads(f.read())
