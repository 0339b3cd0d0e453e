"""Beam transforms of the preprocessing job: Criteo click-log TSV -> time-ordered TFRecord shards.

Shape of the pipeline (`PreprocessClickLogs`), over the input files in sorted name order:

    files ─┬─ pass 1: CountCategoricalValues (frequency) or CountLines (hash, --vocab_dir) ─► lines per file
           │          ├─► MergeCounts ─► SelectVocabulary ─► WriteVocabularyFiles ─► vocabularies
           │          └─ (or LoadVocabulary from --vocab_dir; nothing in hash mode)
           │          --vocab_rows=N: CountLines ─► FileTable ─► CountCategoricalValues over the lines with ts < N
           └─ pass 2: WriteExampleShards(FileTable, vocabularies) ─┬─► shard stats ─► Summarise ─► WriteRunMetadata
                                                                   └─► bad rows (tagged) ─► WriteBadRows

`ts` is the position of a line in the whole input log, so pass 2 needs every earlier file's line count:
that is why pass 1 always runs (in frequency mode it is also the vocabulary count, unless `vocab_rows`
limits that count to the lines with ts < N: then the line counts come first, from `CountLines`, because
only they give a file's first ts). Pass 2 streams each file once, in order, and cuts it into shards of
`rows_per_shard` lines: rows leave a file already in time order, so no shuffle or sort is needed, memory
stays constant however big a file is, and shard names (`part-<file>-<shard>`) sort in time order.
Parallelism is across input files (a gzip stream cannot be split anyway; `DistributeFiles` spreads them
over workers); split a very large file for more.

Each pass that reads the input reports its progress against the input's size in bytes (compressed bytes for
.gz), through `ReadProgress`: `preprocess pass 2/2 (writing shards): 52.4/104.9 MB (50.0%) ETA 0:00:31 1.7 MB/s`.

The DoFns only orchestrate: the work per file and per row is `recsys.data.preprocessing`, the output file names
are `recsys.data.layout`.
"""
from __future__ import annotations

import collections
import os
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from recsys import console
from recsys.data import criteo, layout, preprocessing
from recsys.data.preprocessing import PreprocessConfig
from recsys.data.records import ExampleEncoder

NAMESPACE = "preprocess"
BAD_ROWS_TAG = "bad_rows"
LINE_COUNTS_TAG = "line_counts"
ROWS_COUNTED_TAG = "rows_counted"


class InputFile(NamedTuple):
    """One input file and its rank in sorted name order."""

    index: int
    path: str


# --- Progress of the passes that read the input ---------------------------------------------------

_meters: dict[str, console.Progress] = {}
_meters_lock = threading.Lock()


class ReadProgress(NamedTuple):
    """One pass over the input, reported as bytes read of `total_bytes` (`console.Progress`).

    The DoFns of a pass share one `console.Progress` per worker process (`meter`), whatever thread runs them:
    with the in-process runner (the default) the lines cover the whole input; in a runner's separate worker
    processes (`--direct_running_mode=multi_processing`, Dataflow) each process reports its own reads.
    """

    key: str  # unique per run and pass
    what: str
    total_bytes: int
    every_seconds: float

    def meter(self) -> console.Progress:
        with _meters_lock:
            if self.key not in _meters:
                _meters[self.key] = console.Progress(self.what, self.total_bytes, "bytes", self.every_seconds)
            return _meters[self.key]


def _on_bytes(progress: ReadProgress | None) -> preprocessing.OnBytes | None:
    return progress.meter().add if progress is not None else None


def input_bytes(paths: Sequence[str]) -> int:
    """The total size of the input files, in bytes."""
    return sum(m.size_in_bytes for result in FileSystems.match(list(paths)) for m in result.metadata_list)


# --- Pass 1: line counts and categorical value counts ---------------------------------------------


class CountLines(beam.DoFn):
    """InputFile -> (file index, number of lines)."""

    def __init__(self, progress: ReadProgress | None = None):
        self._progress = progress
        self._lines = Metrics.counter(NAMESPACE, "pass1_lines")

    def process(self, file: InputFile) -> Iterator[tuple[int, int]]:
        count = preprocessing.count_lines(file.path, _on_bytes(self._progress))
        self._lines.inc(count)
        yield file.index, count


class CountCategoricalValues(beam.DoFn):
    """InputFile -> (feature, Counter of its values over the file's valid rows), one per feature.

    Also emits the number of valid rows counted on the `rows_counted` output. Bad rows are skipped here
    and reported by pass 2, which reads the same lines.

    With `vocab_rows` = 0 every line counts, and the file's number of lines goes to the `line_counts` output
    (the FileTable is built from it). With `vocab_rows` = N > 0 only the lines with ts < N count: the side
    input `files` (the FileTable, from `CountLines`) gives the file's first ts, reading stops at ts N, and a
    file that starts at or after N is not opened.
    """

    def __init__(self, vocab_rows: int = 0, progress: ReadProgress | None = None):
        self._vocab_rows = vocab_rows
        self._progress = progress
        self._lines = Metrics.counter(NAMESPACE, "pass1_lines")
        self._rows_counted = Metrics.counter(NAMESPACE, "vocab_rows_counted")

    def process(self, file: InputFile, files: Sequence[Mapping[str, Any]] | None = None) -> Iterator[Any]:
        max_lines = None
        if self._vocab_rows:
            max_lines = preprocessing.vocabulary_lines(files[file.index]["first_ts"], self._vocab_rows)
        counts, lines, rows = preprocessing.count_file_categoricals(file.path, max_lines, _on_bytes(self._progress))
        self._rows_counted.inc(rows)
        if max_lines is None:
            self._lines.inc(lines)
            yield beam.pvalue.TaggedOutput(LINE_COUNTS_TAG, (file.index, lines))
        yield beam.pvalue.TaggedOutput(ROWS_COUNTED_TAG, rows)
        yield from counts.items()


class MergeCounts(beam.CombineFn):
    """Sums Counters."""

    def create_accumulator(self) -> collections.Counter:
        return collections.Counter()

    def add_input(self, accumulator: collections.Counter, counts: Mapping[str, int]) -> collections.Counter:
        accumulator.update(counts)
        return accumulator

    def merge_accumulators(self, accumulators) -> collections.Counter:
        merged = collections.Counter()
        for accumulator in accumulators:
            merged.update(accumulator)
        return merged

    def extract_output(self, accumulator: collections.Counter) -> collections.Counter:
        return accumulator


class WriteVocabularyFiles(beam.DoFn):
    """(feature, [(value, count)]) -> writes `<vocab_dir>/<feature>.txt`; emits (feature, [values])."""

    def __init__(self, vocab_dir: str):
        self._vocab_dir = vocab_dir
        self._sizes = Metrics.distribution(NAMESPACE, "vocab_size")

    def process(self, feature_entries: tuple[str, list[tuple[str, int]]]) -> Iterator[tuple[str, list[str]]]:
        feature, entries = feature_entries
        preprocessing.write_bytes(layout.vocab_path(self._vocab_dir, feature),
                                  preprocessing.format_vocabulary(entries))
        self._sizes.update(len(entries) + 1)
        yield feature, [value for value, _ in entries]


class LoadVocabulary(beam.DoFn):
    """An earlier run's vocabulary directory -> (feature, [values]); copies the files into this run's vocab/
    so that the next day can reuse this run in turn."""

    def __init__(self, output_vocab_dir: str):
        self._output_vocab_dir = output_vocab_dir

    def process(self, vocab_dir: str) -> Iterator[tuple[str, list[str]]]:
        for feature in criteo.CAT_COLUMNS:
            path = layout.vocab_path(vocab_dir, feature)
            data = preprocessing.read_bytes(path)
            values = preprocessing.parse_vocabulary(data.decode("ascii"), path)
            preprocessing.write_bytes(layout.vocab_path(self._output_vocab_dir, feature), data)
            yield feature, values


class FileTable(beam.PTransform):
    """(file index, lines) -> one FileTable: per input file its path, lines and first ts (`file_table`)."""

    def __init__(self, paths: Sequence[str]):
        super().__init__()
        self._paths = list(paths)

    def expand(self, line_counts):
        return (
            line_counts
            | "CollectLineCounts" >> beam.combiners.ToDict()
            | "FileTable" >> beam.Map(preprocessing.file_table, self._paths)
        )


class ComputeVocabulary(beam.PTransform):
    """InputFiles -> {"vocabularies": one {feature: [values]} dict, "line_counts": (file index, lines),
    "rows_counted": the valid rows counted (one int; None when the vocabulary is reused)}.

    With `vocab_rows` > 0 the vocabulary rows are given by their global ts, so the line counts come first
    (`CountLines`, an extra newline-counting read of every file) and the counting reads only lines with ts < N.
    """

    def __init__(self, config: PreprocessConfig, paths: Sequence[str], count_lines: ReadProgress | None = None,
                 count_values: ReadProgress | None = None):
        super().__init__()
        self._config = config
        self._paths = list(paths)
        self._count_lines = count_lines
        self._count_values = count_values

    def expand(self, files):
        config = self._config
        output_vocab_dir = os.path.join(config.output_dir, layout.VOCAB_SUBDIR)
        if config.vocab_dir:
            entries = (
                files.pipeline
                | "VocabDir" >> beam.Create([preprocessing.resolve_vocab_dir(config.vocab_dir)])
                | "LoadVocabulary" >> beam.ParDo(LoadVocabulary(output_vocab_dir))
            )
            line_counts = files | "CountLines" >> beam.ParDo(CountLines(self._count_lines))
            rows_counted = None
        else:
            if config.vocab_rows:
                line_counts = files | "CountLines" >> beam.ParDo(CountLines(self._count_lines))
                side_inputs = {"files": beam.pvalue.AsSingleton(line_counts | "FileTable" >> FileTable(self._paths))}
            else:
                side_inputs = {}
            counted = files | "CountValues" >> beam.ParDo(
                CountCategoricalValues(config.vocab_rows, self._count_values), **side_inputs
            ).with_outputs(LINE_COUNTS_TAG, ROWS_COUNTED_TAG, main="values")
            if not config.vocab_rows:
                line_counts = counted[LINE_COUNTS_TAG]
            rows_counted = counted[ROWS_COUNTED_TAG] | "SumRowsCounted" >> beam.CombineGlobally(sum)
            min_count, max_vocab_size = config.min_count, config.max_vocab_size
            entries = (
                counted.values
                | "MergeCounts" >> beam.CombinePerKey(MergeCounts())
                | "SelectVocabulary"
                >> beam.MapTuple(
                    lambda f, counts: (f, preprocessing.select_vocabulary(counts, min_count, max_vocab_size))
                )
                | "WriteVocabularyFiles" >> beam.ParDo(WriteVocabularyFiles(output_vocab_dir))
            )
        vocabularies = entries | "CollectVocabularies" >> beam.combiners.ToDict()
        return {"vocabularies": vocabularies, "line_counts": line_counts, "rows_counted": rows_counted}


# --- Pass 2: examples, shards, dead letters -------------------------------------------------------


class WriteExampleShards(beam.DoFn):
    """InputFile -> `part-<file>-<shard>.tfrecord.gz` files of tf.train.Examples in line order.

    Main output: one stats dict per shard (lines, rows written, ts range, bad reasons, out-of-vocabulary
    counts). Tagged output `bad_rows`: one JSON line per malformed line (`preprocessing.bad_row_json`).
    Side inputs: `files` (the FileTable) and, unless hashing, `vocabularies` ({feature: [values]}).
    """

    def __init__(self, config: PreprocessConfig, progress: ReadProgress | None = None):
        self._config = config
        self._progress = progress
        self._output_dir = config.output_dir
        self._rows_per_shard = config.rows_per_shard
        self._hash_buckets = config.hash_buckets
        self._rows_in = Metrics.counter(NAMESPACE, "rows_in")
        self._rows_ok = Metrics.counter(NAMESPACE, "rows_ok")
        self._rows_bad = Metrics.counter(NAMESPACE, "rows_bad")
        self._bad = {reason: Metrics.counter(NAMESPACE, f"bad_{reason}") for reason in criteo.BAD_REASONS}
        self._shards = Metrics.counter(NAMESPACE, "shards_written")

    def setup(self):
        self._encoder = ExampleEncoder()

    def process(self, file: InputFile, files: Sequence[Mapping[str, Any]], vocabularies=None) -> Iterator[Any]:
        if vocabularies is None:
            ids = preprocessing.HashIds(self._hash_buckets)
        else:
            ids = preprocessing.VocabularyIds(vocabularies)
        expected_lines = files[file.index]["lines"]
        lines = 0
        feature_fingerprint = preprocessing.contract_fingerprint(self._config, ids)
        for item in preprocessing.write_file_shards(file.index, file.path, files[file.index]["first_ts"], ids,
                                                    self._encoder, self._output_dir, self._rows_per_shard,
                                                    feature_fingerprint, _on_bytes(self._progress)):
            if isinstance(item, str):
                yield beam.pvalue.TaggedOutput(BAD_ROWS_TAG, item)
                continue
            lines += item["lines"]
            self._count(item)
            yield item
        if lines != expected_lines:
            raise RuntimeError(
                f"{file.path} has {lines} lines now but had {expected_lines} when pass 1 counted them; "
                "input files must not change while the job runs"
            )

    def _count(self, stats: Mapping[str, Any]) -> None:
        self._rows_in.inc(stats["lines"])
        self._rows_ok.inc(stats["rows"])
        self._rows_bad.inc(stats["lines"] - stats["rows"])
        for reason, count in stats["bad_reasons"].items():
            self._bad[reason].inc(count)
        self._shards.inc()


class Summarise(beam.CombineFn):
    """Shard stats -> the summary (`preprocessing.summarise_shards`)."""

    def create_accumulator(self) -> list[dict[str, Any]]:
        return []

    def add_input(self, accumulator: list, stats: dict[str, Any]) -> list:
        accumulator.append(stats)
        return accumulator

    def merge_accumulators(self, accumulators) -> list:
        return [stats for accumulator in accumulators for stats in accumulator]

    def extract_output(self, accumulator: list) -> dict[str, Any]:
        return preprocessing.summarise_shards(accumulator)


class WriteRunMetadata(beam.DoFn):
    """Summary -> writes features.json, then summary.json (`preprocessing.write_run_metadata`)."""

    def __init__(self, config: PreprocessConfig):
        self._config = config

    def process(self, summary: dict[str, Any], files: Sequence[Mapping[str, Any]], vocab_sizes: Mapping[str, int],
                vocab_rows_counted: int | None = None, vocab_digests: Mapping[str, str] | None = None):
        yield preprocessing.write_run_metadata(self._config, summary, files, vocab_sizes, vocab_rows_counted,
                                               vocab_digests)


class PreprocessClickLogs(beam.PTransform):
    """The whole job, applied to the pipeline root (see the module docstring).

    Returns {"shards": per-shard stats, "bad_rows": dead-letter JSON lines, "summary": the summary dict}.
    Every pass that reads the input logs its progress at most every `progress_every_seconds` (`ReadProgress`).
    """

    def __init__(self, config: PreprocessConfig, input_paths: Sequence[str],
                 progress_every_seconds: float = console.PROGRESS_EVERY_SECONDS):
        super().__init__()
        self._config = config
        self._paths = list(input_paths)
        self._progress_every_seconds = progress_every_seconds

    def _read_passes(self) -> dict[str, ReadProgress]:
        """The passes over the input this run makes, in order: `count_lines`, `count_values`, `write_shards`."""
        config = self._config
        actions = {}
        if config.vocab_mode == "hash" or config.vocab_dir or config.vocab_rows:
            actions["count_lines"] = "counting lines"
        if config.vocab_mode != "hash" and not config.vocab_dir:
            actions["count_values"] = (f"counting the values of the rows with ts < {config.vocab_rows}"
                                       if config.vocab_rows else "counting lines and values")
        actions["write_shards"] = "writing shards"
        run, total = uuid.uuid4().hex, input_bytes(self._paths)
        return {name: ReadProgress(f"{run}/{name}", f"preprocess pass {i}/{len(actions)} ({action})", total,
                                   self._progress_every_seconds)
                for i, (name, action) in enumerate(actions.items(), start=1)}

    def expand(self, pbegin):
        config, paths = self._config, self._paths
        passes = self._read_passes()
        files = (
            pbegin
            | "ListFiles" >> beam.Create([InputFile(i, p) for i, p in enumerate(paths)])
            # Breaks fusion with Create so that a distributed runner spreads the files over its workers.
            | "DistributeFiles" >> beam.Reshuffle()
        )
        vocabulary_side_inputs, metadata_side_inputs = {}, {}
        if config.vocab_mode == "hash":
            line_counts = files | "CountLines" >> beam.ParDo(CountLines(passes["count_lines"]))
            hash_vocab_sizes = preprocessing.HashIds(config.hash_buckets).vocab_sizes()
            vocab_sizes = pbegin | "HashVocabSizes" >> beam.Create([hash_vocab_sizes])
        else:
            vocabulary = files | "ComputeVocabulary" >> ComputeVocabulary(
                config, paths, passes.get("count_lines"), passes.get("count_values"))
            line_counts = vocabulary["line_counts"]
            if vocabulary["rows_counted"] is not None:
                metadata_side_inputs["vocab_rows_counted"] = beam.pvalue.AsSingleton(vocabulary["rows_counted"])
            vocabulary_side_inputs["vocabularies"] = beam.pvalue.AsSingleton(vocabulary["vocabularies"])
            vocab_sizes = vocabulary["vocabularies"] | "VocabSizes" >> beam.Map(
                lambda vocabularies: {feature: len(values) + 1 for feature, values in vocabularies.items()}
            )
            metadata_side_inputs["vocab_digests"] = beam.pvalue.AsSingleton(
                vocabulary["vocabularies"] | "VocabDigests" >> beam.Map(
                    lambda vocabularies: preprocessing.VocabularyIds(vocabularies).vocab_digests()))
        file_table = beam.pvalue.AsSingleton(line_counts | "FileTable" >> FileTable(paths))
        written = files | "WriteExampleShards" >> beam.ParDo(
            WriteExampleShards(config, passes["write_shards"]),
            files=file_table,
            **vocabulary_side_inputs,
        ).with_outputs(BAD_ROWS_TAG, main="shards")
        _ = written[BAD_ROWS_TAG] | "WriteBadRows" >> beam.io.WriteToText(
            os.path.join(config.output_dir, layout.BAD_ROWS_PREFIX), file_name_suffix=layout.BAD_ROWS_SUFFIX
        )
        summary = (
            written.shards
            | "Summarise" >> beam.CombineGlobally(Summarise())
            | "WriteRunMetadata"
            >> beam.ParDo(WriteRunMetadata(config), files=file_table, vocab_sizes=beam.pvalue.AsSingleton(vocab_sizes),
                          **metadata_side_inputs)
        )
        return {"shards": written.shards, "bad_rows": written[BAD_ROWS_TAG], "summary": summary}
