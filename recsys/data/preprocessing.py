"""What the preprocessing job does per file and per row: configuration, reading lines, categorical ids,
vocabulary files, writing one input file's shards, and the summary. No Beam transforms here (they are in
`pipelines/preprocess/transforms.py`), so the Beam job and the single-process reference in
`recsys.bench.preprocess` run the same code. File names of the outputs: `recsys.data.layout`.

Files are read and written through Beam's filesystems (local, gs://, s3://, ...); nothing here imports TensorFlow,
which Beam workers do not load.

Every valid row becomes one `tf.train.Example` (see `recsys.data.records.ExampleEncoder`):

    label   int64   0/1
    ts      int64   0-based position of the line in the input log: files in sorted name order, lines in
                    file order, and every line counts (bad and blank ones too), so ts never shifts when a
                    row is rejected and ts increases strictly within and across shards
    I1..I13 float   criteo.transform_int: log(1 + max(x, 0)); missing or negative -> 0
    C1..C26 int64   id in [0, vocab_size); 0 = missing or out of vocabulary
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import gzip
import io
import itertools
import json
import os
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from absl import logging
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from recsys.data import criteo, fingerprint, layout
from recsys.data.features import criteo_feature_set
from recsys.data.records import ExampleEncoder, GzipTFRecordWriter

VOCAB_MODES = ("frequency", "hash")
NUMERIC_TRANSFORM = "log1p(max(x, 0)); missing or negative -> 0 (recsys.data.criteo.transform_int)"
TS_DEFINITION = "0-based position of the line in the input log: files in sorted name order, every line counted"


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """What the job does; validated on construction (the entry point turns errors into a message)."""

    input_pattern: str
    output_dir: str
    vocab_mode: str = "frequency"
    min_count: int = 1
    max_vocab_size: int = 0
    hash_buckets: int | None = None
    vocab_dir: str | None = None
    rows_per_shard: int = 100_000
    # Frequency mode: count the vocabulary over the lines with ts < vocab_rows only (0: every line), so rows
    # held out after them cannot shape the ids; their unseen values get the out-of-vocabulary id 0.
    vocab_rows: int = 0

    def __post_init__(self):
        if not self.input_pattern:
            raise ValueError("`input` must name a file or glob of Criteo TSV files. Received: input=''")
        if not self.output_dir:
            raise ValueError("`output_dir` must be a directory path. Received: output_dir=''")
        if self.vocab_mode not in VOCAB_MODES:
            raise ValueError(f"`vocab_mode` must be one of {VOCAB_MODES}. Received: vocab_mode={self.vocab_mode!r}")
        if self.vocab_mode == "hash":
            if self.hash_buckets is None or self.hash_buckets < 2:
                raise ValueError(
                    "`vocab_mode=hash` needs `hash_buckets` >= 2 (ids 1..N-1, 0 for missing). "
                    f"Received: hash_buckets={self.hash_buckets!r}"
                )
            if self.vocab_dir:
                raise ValueError(
                    "`vocab_dir` reuses a frequency vocabulary and cannot be combined with vocab_mode=hash. "
                    f"Received: vocab_dir={self.vocab_dir!r}"
                )
        elif self.hash_buckets is not None:
            raise ValueError(
                f"`hash_buckets` only applies to vocab_mode=hash. Received: hash_buckets={self.hash_buckets!r} "
                f"with vocab_mode={self.vocab_mode!r}"
            )
        if self.min_count < 1:
            raise ValueError(f"`min_count` must be >= 1. Received: min_count={self.min_count!r}")
        if self.max_vocab_size != 0 and self.max_vocab_size < 2:
            raise ValueError(
                "`max_vocab_size` must be 0 (no cap) or >= 2 (it includes the reserved id 0). "
                f"Received: max_vocab_size={self.max_vocab_size!r}"
            )
        if self.rows_per_shard < 1:
            raise ValueError(f"`rows_per_shard` must be >= 1. Received: rows_per_shard={self.rows_per_shard!r}")
        if isinstance(self.vocab_rows, bool) or not isinstance(self.vocab_rows, int) or self.vocab_rows < 0:
            raise ValueError(
                "`vocab_rows` must be an integer >= 0 (0: count the vocabulary over every row). "
                f"Received: vocab_rows={self.vocab_rows!r}"
            )
        if self.vocab_rows and self.vocab_mode != "frequency":
            raise ValueError(
                "`vocab_rows` > 0 counts a frequency vocabulary over the first rows; it needs vocab_mode=frequency. "
                f"Received: vocab_rows={self.vocab_rows!r} with vocab_mode={self.vocab_mode!r}"
            )
        if self.vocab_rows and self.vocab_dir:
            raise ValueError(
                "`vocab_rows` > 0 counts this run's vocabulary over its first rows and cannot be combined with "
                f"`vocab_dir`, which reuses an earlier run's. Received: vocab_rows={self.vocab_rows!r} with "
                f"vocab_dir={self.vocab_dir!r}"
            )

    @property
    def vocabulary_source(self) -> str:
        if self.vocab_mode == "hash":
            return "hash"
        return "reused" if self.vocab_dir else "counted"

    def metadata(self) -> dict[str, Any]:
        """How ids and values were made: recorded in features.json next to the vocabulary sizes."""
        counted = self.vocabulary_source == "counted"
        return {
            "vocab_mode": self.vocab_mode,
            "vocab_source": self.vocabulary_source,
            "vocab_dir": self.vocab_dir,
            "min_count": self.min_count if counted else None,
            "max_vocab_size": self.max_vocab_size if counted else None,
            "hash_buckets": self.hash_buckets,
            "hash_function": "1 + int(value, 16) mod (hash_buckets - 1)" if self.vocab_mode == "hash" else None,
            "numeric_transform": NUMERIC_TRANSFORM,
            "ts": TS_DEFINITION,
            "rows_per_shard": self.rows_per_shard,
        }

    def vocabulary_rows(self, input_lines: int, rows_counted: int | None) -> dict[str, Any]:
        """Which rows the vocabulary was counted over: recorded in summary.json and features.json.

        `vocab_rows` (N, or None when every row counted), `vocab_source_rows` (readable: "ts < N", "all rows")
        and `vocab_rows_counted` (valid rows whose values were counted). All None when this run counted no
        vocabulary (hash mode, or reused from `vocab_dir`).

        Args:
          input_lines: lines in the whole input log (every ts).
          rows_counted: valid rows the vocabulary pass counted; None when it counted none.
        """
        if self.vocabulary_source != "counted":
            return {"vocab_rows": None, "vocab_source_rows": None, "vocab_rows_counted": None}
        if rows_counted is None:
            raise ValueError("a counted vocabulary needs `rows_counted`, the valid rows its pass counted")
        if not self.vocab_rows:
            source = "all rows"
        elif self.vocab_rows < input_lines:
            source = f"ts < {self.vocab_rows}"
        else:
            source = f"ts < {self.vocab_rows}: all rows (the input has {input_lines} lines)"
        return {"vocab_rows": self.vocab_rows or None, "vocab_source_rows": source, "vocab_rows_counted": rows_counted}


def list_input_files(pattern: str) -> list[str]:
    """Files matching `pattern` (local or any Beam filesystem), in sorted name order = time order."""
    try:
        results = FileSystems.match([pattern])
    except Exception as e:  # Beam raises BeamIOError for e.g. a missing bucket: report it with the pattern.
        raise FileNotFoundError(f"`input` pattern {pattern!r} could not be listed: {e}") from e
    paths = sorted(m.path for result in results for m in result.metadata_list)
    if not paths:
        raise FileNotFoundError(f"`input` pattern {pattern!r} matched no files")
    return paths


# --- Files ---------------------------------------------------------------------------------------


UTF8_BOM = b"\xef\xbb\xbf"


class InputFileError(ValueError):
    """An input file cannot be read or decompressed; the message names it and how far reading got."""


class _Position:
    value = 0


@contextlib.contextmanager
def _named_errors(path: str, unit: str) -> Iterator[_Position]:
    """Re-raises read and decompression errors inside the block as `InputFileError` naming `path` and the
    position (`unit`s read so far, counted by the block in the yielded object's `value`)."""
    position = _Position()
    try:
        yield position
    except (EOFError, OSError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise
        detail = str(e).strip() or type(e).__name__
        raise InputFileError(
            f"cannot read input file {path} after {position.value} {unit}s: {detail} (truncated or corrupt? "
            "replace the file and rerun)") from e


#: Called with the number of bytes of a file read from storage (compressed bytes for .gz), for progress.
OnBytes = Callable[[int], None]


class _CountedReads(io.RawIOBase):
    """A file read through `on_bytes`: every read from storage reports how many bytes it got."""

    def __init__(self, raw: Any, on_bytes: OnBytes):
        super().__init__()
        self._raw = raw
        self._on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        buffer[:len(data)] = data
        if data:
            self._on_bytes(len(data))
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_binary(path: str, on_bytes: OnBytes | None = None) -> io.BufferedIOBase:
    """Opens a local or remote (gs://, s3://, ...) file for reading bytes; `.gz` is decompressed.

    `on_bytes`, when given, is called with the size of every read from storage (in 1 MiB blocks; for `.gz` the
    compressed bytes), so a caller can report progress against the file sizes.
    """
    if "://" in path:
        raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    else:
        raw = open(path, "rb", buffering=0 if on_bytes else -1)  # closed through the returned object
    if on_bytes is not None:
        raw = io.BufferedReader(_CountedReads(raw, on_bytes), buffer_size=1 << 20)
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return raw


def read_lines(path: str, on_bytes: OnBytes | None = None) -> Iterator[str]:
    """Yields every line of `path` in order, without its trailing newline.

    Lines split on '\\n' only, so a '\\r' stays part of the line (verbatim in the dead-letter output).
    Bytes that are not UTF-8 become surrogate escapes: such a line fails validation as a bad row
    instead of crashing the job. A UTF-8 byte order mark at the start of the file is not part of the first line.
    `on_bytes`: see `open_binary`.

    Raises:
      InputFileError: the file cannot be read or decompressed (e.g. a truncated .gz), naming it and the line.
    """
    with _named_errors(path, "line") as position, open_binary(path, on_bytes) as f:
        for raw in f:
            if position.value == 0 and raw.startswith(UTF8_BOM):
                raw = raw[len(UTF8_BOM):]
            position.value += 1
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            yield raw.decode("utf-8", "surrogateescape")


class CountedLines:
    """`read_lines(path)` that counts the lines it yields (`count`), for passes that need both."""

    def __init__(self, path: str, on_bytes: OnBytes | None = None):
        self._path = path
        self._on_bytes = on_bytes
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        for line in read_lines(self._path, self._on_bytes):
            self.count += 1
            yield line


def count_lines(path: str, on_bytes: OnBytes | None = None) -> int:
    """Number of lines `read_lines` yields for `path` (a last line without '\\n' counts); `on_bytes`: see
    `open_binary`.

    Raises:
      InputFileError: the file cannot be read or decompressed, naming it.
    """
    count = 0
    last = b"\n"
    with _named_errors(path, "byte") as position, open_binary(path, on_bytes) as f:
        while block := f.read(1 << 22):
            position.value += len(block)
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)


def read_bytes(path: str) -> bytes:
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"file not found: {path}")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


# --- Categorical ids -----------------------------------------------------------------------------


class HashIds:
    """Categorical ids by `criteo.hash_id`: every feature gets `buckets` ids, 0 only for missing values."""

    def __init__(self, buckets: int):
        if not isinstance(buckets, int) or buckets < 2:
            raise ValueError(f"`hash_buckets` must be an integer >= 2. Received: hash_buckets={buckets!r}")
        self.buckets = buckets

    def vocab_sizes(self) -> dict[str, int]:
        return {name: self.buckets for name in criteo.CAT_COLUMNS}

    def vocab_digests(self) -> None:
        return None

    def ids(self, cats: Sequence[str | None]) -> list[int]:
        modulus = self.buckets - 1  # criteo.hash_id, inlined: this runs 26 times per row
        return [0 if v is None else 1 + int(v, 16) % modulus for v in cats]


class VocabularyIds:
    """Categorical ids from per-feature vocabularies: id = position in the vocabulary + 1, unknown -> 0."""

    def __init__(self, vocabularies: Mapping[str, Sequence[str]]):
        missing = [name for name in criteo.CAT_COLUMNS if name not in vocabularies]
        if missing:
            raise ValueError(f"vocabularies are missing features {missing}; need all of {list(criteo.CAT_COLUMNS)}")
        self._tables = [{value: i + 1 for i, value in enumerate(vocabularies[name])} for name in criteo.CAT_COLUMNS]
        self._digests = {name: fingerprint.vocabulary_digest(vocabularies[name]) for name in criteo.CAT_COLUMNS}

    def vocab_digests(self) -> dict[str, str]:
        """sha256 of each feature's values in id order (`recsys.data.fingerprint.vocabulary_digest`)."""
        return dict(self._digests)

    def vocab_sizes(self) -> dict[str, int]:
        return {name: len(table) + 1 for name, table in zip(criteo.CAT_COLUMNS, self._tables, strict=True)}

    def ids(self, cats: Sequence[str | None]) -> list[int]:
        return [0 if v is None else table.get(v, 0) for table, v in zip(self._tables, cats, strict=True)]


# --- Vocabularies --------------------------------------------------------------------------------


def vocabulary_lines(first_ts: int, vocab_rows: int) -> int | None:
    """How many leading lines of a file whose first line has `first_ts` are vocabulary rows (ts < vocab_rows);
    None for every line (vocab_rows = 0). May exceed the file's length."""
    if not vocab_rows:
        return None
    return max(0, vocab_rows - first_ts)


def count_file_categoricals(path: str, max_lines: int | None = None,
                            on_bytes: OnBytes | None = None) -> tuple[dict[str, collections.Counter], int, int]:
    """`count_categoricals` over the valid rows among the first `max_lines` lines of `path` (None: all);
    `on_bytes`: see `open_binary`.

    Returns (counts per feature, lines read, valid rows counted). Stops reading after `max_lines` lines, and
    does not open the file when `max_lines` is 0.
    """
    lines = CountedLines(path, on_bytes)
    rows = CountedItems(valid_rows(lines if max_lines is None else itertools.islice(lines, max_lines)))
    counts = count_categoricals(rows)
    return counts, lines.count, rows.count


class CountedItems:
    """Iterates over `items`, counting them (`count`)."""

    def __init__(self, items: Iterable[Any]):
        self._items = items
        self.count = 0

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            self.count += 1
            yield item


def valid_rows(lines: Iterable[str]) -> Iterator[criteo.CriteoRow]:
    """The parsed valid rows among `lines`; bad rows are skipped (pass 2 reports them)."""
    for line in lines:
        try:
            yield criteo.parse_line(line)
        except criteo.BadRowError:
            continue


def count_categoricals(rows: Iterable[criteo.CriteoRow]) -> dict[str, collections.Counter]:
    """Per categorical feature, how often each (non-missing) value occurs in `rows`."""
    counters = [collections.Counter() for _ in criteo.CAT_COLUMNS]
    for row in rows:
        for counter, value in zip(counters, row.cats, strict=True):
            if value is not None:
                counter[value] += 1
    return dict(zip(criteo.CAT_COLUMNS, counters, strict=True))


def select_vocabulary(counts: Mapping[str, int], min_count: int, max_vocab_size: int) -> list[tuple[str, int]]:
    """Values seen at least `min_count` times, most frequent first (ties by value, so runs agree).

    `max_vocab_size` > 0 caps the vocabulary size *including* the reserved id 0, i.e. keeps at most
    `max_vocab_size - 1` values, so it bounds the embedding table exactly as `hash_buckets` does.
    """
    kept = sorted(((v, c) for v, c in counts.items() if c >= min_count), key=lambda vc: (-vc[1], vc[0]))
    if max_vocab_size > 0:
        kept = kept[: max_vocab_size - 1]
    return kept


def format_vocabulary(entries: Sequence[tuple[str, int]]) -> bytes:
    """The vocabulary file: one `value<TAB>count` line per value; the id of line k (from 0) is k + 1."""
    return "".join(f"{value}\t{count}\n" for value, count in entries).encode("ascii")


def parse_vocabulary(text: str, path: str) -> list[str]:
    """Values of a vocabulary file, in id order; raises ValueError on an empty or repeated value."""
    values = [line.split("\t", 1)[0].strip() for line in text.splitlines()]
    for number, value in enumerate(values, start=1):
        if not value:
            raise ValueError(f"{path}:{number}: empty vocabulary value")
    if len(set(values)) != len(values):
        repeated = sorted(v for v, n in collections.Counter(values).items() if n > 1)[:5]
        raise ValueError(f"{path}: repeated vocabulary values, e.g. {repeated}")
    return values


def resolve_vocab_dir(path: str) -> str:
    """`--vocab_dir` may name an earlier run's output_dir or its `vocab/` subdirectory."""
    nested = os.path.join(path, layout.VOCAB_SUBDIR)
    if FileSystems.exists(layout.vocab_path(nested, criteo.CAT_COLUMNS[0])):
        return nested
    return path


# --- The feature contract ------------------------------------------------------------------------


def contract_json(config: PreprocessConfig, vocab_sizes: Mapping[str, int],
                  vocab_digests: Mapping[str, str] | None) -> dict[str, Any]:
    """features.json of this run without the vocabulary-rows fields, with `vocab_digests` and the
    `feature_fingerprint` (`recsys.data.fingerprint`): what every shard and both metadata files carry."""
    feature_set = criteo_feature_set(dict(vocab_sizes), config.metadata())
    return fingerprint.stamp(feature_set.to_json(), vocab_digests)


def contract_fingerprint(config: PreprocessConfig, ids: HashIds | VocabularyIds) -> str:
    """The feature fingerprint of rows encoded by `ids` under `config`."""
    return contract_json(config, ids.vocab_sizes(), ids.vocab_digests())[fingerprint.KEY]


# --- Shards --------------------------------------------------------------------------------------


class ShardWriter:
    """Writes one shard under a temporary name and renames it when complete, so a `part-*` file is
    never half-written (a retried Beam bundle rewrites the same name). Collects the shard's stats."""

    def __init__(self, output_dir: str, name: str, first_ts: int, feature_fingerprint: str | None = None):
        self._path = os.path.join(output_dir, name)
        self._tmp_path = os.path.join(output_dir, layout.TEMPORARY_PREFIX + name)
        self._writer = GzipTFRecordWriter(self._tmp_path, feature_fingerprint=feature_fingerprint)
        self.write = self._writer.write
        self.stats: dict[str, Any] = {
            "name": name,
            "first_ts": first_ts,
            "last_ts": first_ts,
            "lines": 0,
            "rows": 0,
            "bad_reasons": collections.Counter(),
            "oov_values": [0] * len(criteo.CAT_COLUMNS),
            fingerprint.KEY: feature_fingerprint,
        }

    def close(self) -> dict[str, Any]:
        self._writer.close()
        if FileSystems.exists(self._path):
            FileSystems.delete([self._path])
        FileSystems.rename([self._tmp_path], [self._path])
        self.stats["bad_reasons"] = dict(self.stats["bad_reasons"])
        return self.stats


def bad_row_json(ts: int, path: str, line_number: int, error: criteo.BadRowError, line: str) -> str:
    """One dead-letter line: a JSON object with ts, file, line_number (1-based), reason, detail, line.

    `line` is verbatim without its newline. Bytes that were not UTF-8 are surrogate escapes in `line`;
    JSON writes them as `\\udcXX`, so `json.loads(...)["line"].encode("utf-8", "surrogateescape")` gives
    back the original bytes. (Formatted as text right away: Beam's coders cannot carry such strings.)
    """
    record = {"ts": ts, "file": path, "line_number": line_number, "reason": error.reason, "detail": error.detail,
              "line": line}
    return json.dumps(record, ensure_ascii=True)


def write_file_shards(
    file_index: int,
    path: str,
    first_ts: int,
    ids: HashIds | VocabularyIds,
    encoder: ExampleEncoder,
    output_dir: str,
    rows_per_shard: int,
    feature_fingerprint: str | None = None,
    on_bytes: OnBytes | None = None,
) -> Iterator[dict[str, Any] | str]:
    """Streams one input file into shards of `rows_per_shard` lines, in line order.

    Every shard's gzip header carries `feature_fingerprint` (`recsys.data.fingerprint`). Yields each shard's stats
    dict when the shard is complete, and a dead-letter JSON line (str, `bad_row_json`) for every malformed line.
    Memory stays constant however long the file is. `on_bytes`: see `open_binary`.
    """
    transform_int = criteo.transform_int
    shard, line_number, started = None, -1, time.monotonic()
    for line_number, line in enumerate(read_lines(path, on_bytes)):
        ts = first_ts + line_number
        if line_number % rows_per_shard == 0:
            if shard is not None:
                yield _close_shard(shard, path, line_number, started)
            shard = ShardWriter(output_dir, layout.shard_name(file_index, line_number // rows_per_shard), ts,
                                feature_fingerprint)
        stats = shard.stats
        stats["lines"] += 1
        stats["last_ts"] = ts
        try:
            row = criteo.parse_line(line)
        except criteo.BadRowError as e:
            stats["bad_reasons"][e.reason] += 1
            yield bad_row_json(ts, path, line_number + 1, e, line)
            continue
        cat_ids = ids.ids(row.cats)
        if cat_ids.count(0) != row.cats.count(None):  # a present value got id 0: out of vocabulary
            for position, (value, cat_id) in enumerate(zip(row.cats, cat_ids, strict=True)):
                if value is not None and cat_id == 0:
                    stats["oov_values"][position] += 1
        shard.write(encoder.encode(row.label, ts, [transform_int(v) for v in row.ints], cat_ids))
        stats["rows"] += 1
    if shard is not None:
        yield _close_shard(shard, path, line_number + 1, started)


def _close_shard(shard: ShardWriter, path: str, lines_read: int, started: float) -> dict[str, Any]:
    stats = shard.close()
    rate = lines_read / max(time.monotonic() - started, 1e-9)
    logging.info("wrote %s: %d rows, %d bad (%s: %d lines so far, %.0f lines/s)", stats["name"], stats["rows"],
                 stats["lines"] - stats["rows"], path, lines_read, rate)
    return stats


# --- Summary and metadata ------------------------------------------------------------------------


def file_table(line_counts: Mapping[int, int], paths: Sequence[str]) -> list[dict[str, Any]]:
    """Per input file (sorted order): path, number of lines and `first_ts`, the ts of its first line."""
    table, first_ts = [], 0
    for index, path in enumerate(paths):
        lines = line_counts[index]
        table.append({"path": path, "lines": lines, "first_ts": first_ts})
        first_ts += lines
    return table


def summarise_shards(shard_stats: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Adds up per-shard stats: rows_in, rows_ok, rows_bad, bad_reasons, oov_values, shards (in name order)."""
    bad_reasons = {reason: 0 for reason in criteo.BAD_REASONS}
    oov = [0] * len(criteo.CAT_COLUMNS)
    shards = []
    for stats in sorted(shard_stats, key=lambda s: s["name"]):
        for reason, count in stats["bad_reasons"].items():
            bad_reasons[reason] += count
        oov = [a + b for a, b in zip(oov, stats["oov_values"], strict=True)]
        shards.append({k: stats.get(k) for k in ("name", "first_ts", "last_ts", "lines", "rows", fingerprint.KEY)})
    rows_in = sum(s["lines"] for s in shards)
    rows_ok = sum(s["rows"] for s in shards)
    return {
        "rows_in": rows_in,
        "rows_ok": rows_ok,
        "rows_bad": rows_in - rows_ok,
        "bad_reasons": bad_reasons,
        "oov_values": dict(zip(criteo.CAT_COLUMNS, oov, strict=True)),
        "shards": shards,
    }


def write_run_metadata(
    config: PreprocessConfig, summary: Mapping[str, Any], files: Sequence[Mapping[str, Any]],
    vocab_sizes: Mapping[str, int], vocab_rows_counted: int | None = None,
    vocab_digests: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Writes features.json, then summary.json (last: its presence marks a finished run); returns the summary.

    `vocab_rows_counted`: the valid rows the vocabulary pass counted (None when this run counted no vocabulary).
    Both files record which rows the vocabulary came from (`PreprocessConfig.vocabulary_rows`) and the feature
    fingerprint (`contract_json`); summary.json lists every shard with the fingerprint it was written with.

    Raises:
      RuntimeError: the input changed while the job ran, or a shard carries another fingerprint than the contract.
    """
    counted = sum(f["lines"] for f in files)
    if summary["rows_in"] != counted:
        raise RuntimeError(
            f"pass 2 read {summary['rows_in']} lines but pass 1 counted {counted}: input files must not change "
            "while the job runs"
        )
    vocabulary_rows = config.vocabulary_rows(counted, vocab_rows_counted)
    contract = contract_json(config, vocab_sizes, vocab_digests)
    expected = contract[fingerprint.KEY]
    foreign = [s["name"] for s in summary["shards"] if s.get(fingerprint.KEY) != expected]
    if foreign:
        raise RuntimeError(f"shards {foreign[:3]} were not written with this run's {fingerprint.KEY} {expected}")
    summary = {**summary, "files": list(files), "input": config.input_pattern, **vocabulary_rows,
               fingerprint.KEY: expected}
    features_json = {**contract, **vocabulary_rows}
    features_json[fingerprint.KEY] = features_json.pop(fingerprint.KEY)  # last, where a reader looks for it
    # The bytes FeatureSet.save writes, through Beam's filesystems so that workers need no TensorFlow.
    write_bytes(os.path.join(config.output_dir, layout.FEATURES_FILE),
                (json.dumps(features_json, indent=2, sort_keys=False) + "\n").encode("utf-8"))
    write_bytes(os.path.join(config.output_dir, layout.SUMMARY_FILE),
                (json.dumps(summary, indent=2) + "\n").encode("utf-8"))
    return summary
