"""Preprocessing cost of Beam: the Beam job on the DirectRunner vs a plain single-process Python loop.

    python -m recsys.bench.preprocess                    # 1M generated rows (a few minutes on 2 cores)
    python -m recsys.bench.preprocess --rows=100000      # quicker
    python -m recsys.bench.preprocess --pipeline_args="--direct_num_workers=2 --direct_running_mode=multi_processing"

Both sides do the same work on the same input in the same process, one after the other: list the input,
pass 1 (line counts and, in frequency mode, categorical value counts), vocabulary files, pass 2 (parse,
encode, write GZIP TFRecord shards and dead letters), summary.json and features.json. Both call the same
per-row code (`recsys.data.preprocessing`), so the ratio is what Beam's orchestration costs; the outputs
are compared file by file and must be identical. Target: Beam time <= 1.5 x plain time.

The input comes from the synthetic click-log generator (`python -m pipelines.generate_clicklogs`) when
it is installed, otherwise from the bundled 10k-row Criteo sample repeated to --rows (said in the output).
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import importlib.util
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import recsys  # noqa: F401  (sets up Keras before anything imports TensorFlow)
from pipelines import preprocess
from recsys.data import criteo, layout, preprocessing
from recsys.data.records import ExampleEncoder

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "data", "criteo_sample", "day_0_head10k.tsv")
TARGET_RATIO = 1.5


def preprocess_plain(config: preprocessing.PreprocessConfig) -> dict[str, Any]:
    """The job as one plain Python loop (frequency or hash mode), writing the same files as the Beam job."""
    paths = preprocessing.list_input_files(config.input_pattern)
    os.makedirs(config.output_dir, exist_ok=True)
    line_counts: dict[int, int] = {}
    rows_counted = None
    if config.vocab_mode == "hash" or config.vocab_rows:
        for index, path in enumerate(paths):
            line_counts[index] = preprocessing.count_lines(path)
    if config.vocab_mode == "hash":
        ids: preprocessing.HashIds | preprocessing.VocabularyIds = preprocessing.HashIds(config.hash_buckets)
    else:
        # The first ts of each file only matters (and is only known yet) when the vocabulary rows are limited.
        first_ts = [f["first_ts"] for f in preprocessing.file_table(line_counts, paths)] if config.vocab_rows else []
        totals = {name: collections.Counter() for name in criteo.CAT_COLUMNS}
        rows_counted = 0
        for index, path in enumerate(paths):
            max_lines = preprocessing.vocabulary_lines(first_ts[index], config.vocab_rows) if first_ts else None
            counts, lines, rows = preprocessing.count_file_categoricals(path, max_lines)
            for name, counter in counts.items():
                totals[name].update(counter)
            rows_counted += rows
            if max_lines is None:
                line_counts[index] = lines
        vocabularies = {}
        for name in criteo.CAT_COLUMNS:
            entries = preprocessing.select_vocabulary(totals[name], config.min_count, config.max_vocab_size)
            preprocessing.write_bytes(layout.vocab_path(os.path.join(config.output_dir, layout.VOCAB_SUBDIR), name),
                                      preprocessing.format_vocabulary(entries))
            vocabularies[name] = [value for value, _ in entries]
        ids = preprocessing.VocabularyIds(vocabularies)
    files = preprocessing.file_table(line_counts, paths)
    encoder = ExampleEncoder()
    shard_stats, bad_rows = [], []
    for index, path in enumerate(paths):
        for item in preprocessing.write_file_shards(index, path, files[index]["first_ts"], ids, encoder,
                                                    config.output_dir, config.rows_per_shard,
                                                    preprocessing.contract_fingerprint(config, ids)):
            (bad_rows if isinstance(item, str) else shard_stats).append(item)
    bad_rows_file = f"{layout.BAD_ROWS_PREFIX}-00000-of-00001{layout.BAD_ROWS_SUFFIX}"
    with open(os.path.join(config.output_dir, bad_rows_file), "w") as f:
        f.writelines(line + "\n" for line in bad_rows)
    summary = preprocessing.summarise_shards(shard_stats)
    return preprocessing.write_run_metadata(config, summary, files, ids.vocab_sizes(), rows_counted,
                                            ids.vocab_digests())


def _file_digests(directory: str) -> dict[str, str]:
    """sha256 of every output file; bad-row files are compared as sorted lines (Beam writes them unordered)."""
    digests = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, directory)
            with open(path, "rb") as f:
                data = f.read()
            if name.startswith(layout.BAD_ROWS_PREFIX):
                relative, data = layout.BAD_ROWS_PREFIX, b"".join(sorted(data.splitlines(keepends=True)))
            digests[relative] = hashlib.sha256(data).hexdigest()
    return digests


def make_input(path: str, rows: int, seed: int) -> str:
    """Writes `rows` Criteo-format rows to `path`; returns a description of where they came from."""
    if importlib.util.find_spec("pipelines.generate_clicklogs") is not None:
        subprocess.run([sys.executable, "-m", "pipelines.generate_clicklogs", f"--output={path}", f"--rows={rows}",
                        f"--seed={seed}"], check=True)
        return f"synthetic generator (pipelines.generate_clicklogs --rows={rows} --seed={seed})"
    with open(SAMPLE) as f:
        sample = f.readlines()
    with open(path, "w") as f:
        for start in range(0, rows, len(sample)):
            f.writelines(sample[: rows - start])
    return f"bundled 10k-row Criteo sample repeated to {rows} rows (generator not installed)"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab_mode", choices=preprocessing.VOCAB_MODES, default="frequency")
    parser.add_argument("--hash_buckets", type=int, default=1_000_003, help="hash mode only")
    parser.add_argument("--rows_per_shard", type=int, default=100_000)
    parser.add_argument("--input", default=None, help="use this Criteo TSV instead of generating --rows rows")
    parser.add_argument("--pipeline_args", default="", help="extra Beam options, e.g. '--direct_num_workers=2'")
    parser.add_argument("--workdir", default=None, help="keep inputs and outputs here (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error(f"--rows must be >= 1. Received: {args.rows}")

    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_preprocess_")
    os.makedirs(workdir, exist_ok=True)
    try:
        if args.input:
            input_path, source = args.input, f"given file {args.input}"
        else:
            input_path = os.path.join(workdir, "clicklogs.tsv")
            started = time.perf_counter()
            source = make_input(input_path, args.rows, args.seed)
            print(f"input: {source} ({time.perf_counter() - started:.1f} s)", flush=True)
        rows = preprocessing.count_lines(input_path)  # also warms the page cache for both runs

        def config(name: str) -> preprocessing.PreprocessConfig:
            hash_buckets = args.hash_buckets if args.vocab_mode == "hash" else None
            return preprocessing.PreprocessConfig(input_path, os.path.join(workdir, name), vocab_mode=args.vocab_mode,
                                                  hash_buckets=hash_buckets, rows_per_shard=args.rows_per_shard)

        timings = {}
        started = time.perf_counter()
        plain_summary = preprocess_plain(config("plain"))
        timings["plain"] = time.perf_counter() - started
        print(f"plain Python: {timings['plain']:.1f} s", flush=True)
        started = time.perf_counter()
        beam_summary = preprocess.run(config("beam"), shlex.split(args.pipeline_args))
        timings["beam"] = time.perf_counter() - started
        print(f"Beam DirectRunner: {timings['beam']:.1f} s", flush=True)

        plain_files, beam_files = _file_digests(config("plain").output_dir), _file_digests(config("beam").output_dir)
        if plain_files != beam_files or plain_summary != beam_summary:
            differing = sorted(k for k in plain_files.keys() | beam_files.keys()
                               if plain_files.get(k) != beam_files.get(k))
            raise SystemExit(f"outputs differ between plain Python and Beam: {differing[:10]}")
        ratio = timings["beam"] / timings["plain"]
        result = {
            "rows": rows,
            "rows_ok": beam_summary["rows_ok"],
            "input": source,
            "vocab_mode": args.vocab_mode,
            "rows_per_shard": args.rows_per_shard,
            "pipeline_args": args.pipeline_args,
            "plain_s": round(timings["plain"], 2),
            "beam_s": round(timings["beam"], 2),
            "plain_rows_per_s": round(rows / timings["plain"]),
            "beam_rows_per_s": round(rows / timings["beam"]),
            "beam_over_plain": round(ratio, 3),
            "target": TARGET_RATIO,
            "outputs_identical": True,
            "output_files": len(beam_files),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        }
        print(f"\n| rows | plain Python | Beam DirectRunner | Beam / plain | target |\n|---|---|---|---|---|\n"
              f"| {rows:,} | {timings['plain']:.1f} s ({result['plain_rows_per_s']:,} rows/s) | "
              f"{timings['beam']:.1f} s ({result['beam_rows_per_s']:,} rows/s) | {ratio:.2f} x | "
              f"<= {TARGET_RATIO} x: {'met' if ratio <= TARGET_RATIO else 'NOT met'} |")
        print(json.dumps(result))
        return result
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
