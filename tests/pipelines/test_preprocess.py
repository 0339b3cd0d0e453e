"""Tests of the Beam preprocessing job (`python -m pipelines.preprocess`).

Beam pipelines cost seconds each, so the end-to-end run on the bundled sample is shared by a module
fixture (through the real entry point, in a subprocess), and the malformed-row pipeline covers hash
mode, gzip input and ts across two files at once.
"""
import collections
import gzip
import json
import os
import subprocess
import sys

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

import pipelines.preprocess as preprocess
from pipelines.preprocess import transforms
from recsys.data import criteo, preprocessing
from recsys.data.features import FeatureSet, criteo_feature_set
from tests.conftest import CRITEO_SAMPLE, REPO_ROOT
from tests.entry_points import run_main

SAMPLE_ROWS_PER_SHARD = 3000


def _sample_lines() -> list[str]:
    return CRITEO_SAMPLE.read_text().split("\n")[:-1]


def _read_examples(output_dir: str) -> tuple[list[str], dict[str, np.ndarray]]:
    """Shard names in name order and every feature of every example, concatenated in that order."""
    import tensorflow as tf

    shards = sorted(f for f in os.listdir(output_dir) if f.startswith("part-") and f.endswith(".tfrecord.gz"))
    spec = FeatureSet.load(os.path.join(output_dir, "features.json")).parse_spec()
    columns = collections.defaultdict(list)
    for shard in shards:
        dataset = tf.data.TFRecordDataset(os.path.join(output_dir, shard), compression_type="GZIP").batch(4096)
        for batch in dataset:
            for name, values in tf.io.parse_example(batch, spec).items():
                columns[name].append(values.numpy())
    return shards, {name: np.concatenate(parts) for name, parts in columns.items()}


def _read_vocab(output_dir: str, feature: str) -> list[tuple[str, int]]:
    with open(os.path.join(output_dir, "vocab", f"{feature}.txt")) as f:
        return [(value, int(count)) for value, count in (line.rstrip("\n").split("\t") for line in f)]


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.preprocess", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )


def _run_main(*args: str) -> subprocess.CompletedProcess:
    """The job's main with its own flags parser, in this process (issue 17: a fresh Python costs seconds); the
    entry point itself runs in a subprocess in `sample_run` and in tests/pipelines/test_console.py."""
    from pipelines import parse_known_flags

    return run_main("pipelines.preprocess.__main__", *args, parser=parse_known_flags)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """The bundled 10k-row sample through the real entry point, frequency vocabulary."""
    output_dir = str(tmp_path_factory.mktemp("sample_run"))
    result = _run_cli(f"--input={CRITEO_SAMPLE}", f"--output_dir={output_dir}",
                      f"--rows_per_shard={SAMPLE_ROWS_PER_SHARD}", "--min_count=2")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(output_dir, "summary.json")) as f:
        summary = json.load(f)
    return output_dir, summary


@pytest.fixture(scope="module")
def sample_examples(sample_run):
    return _read_examples(sample_run[0])


# --- End to end on the bundled sample -------------------------------------------------------------


def test_sample_counts_add_up(sample_run, sample_examples):
    _, summary = sample_run
    _, columns = sample_examples
    assert summary["rows_in"] == 10_000
    assert summary["rows_in"] == summary["rows_ok"] + summary["rows_bad"]
    assert sum(summary["bad_reasons"].values()) == summary["rows_bad"]
    assert set(summary["bad_reasons"]) == set(criteo.BAD_REASONS)
    assert len(columns["ts"]) == summary["rows_ok"]
    assert all(isinstance(summary[k], int) for k in ("rows_in", "rows_ok", "rows_bad"))


def test_sample_shards_are_in_time_order(sample_run, sample_examples):
    output_dir, summary = sample_run
    shards, columns = sample_examples
    assert shards == [f"part-00000-{i:06d}.tfrecord.gz" for i in range(4)]
    assert [s["name"] for s in summary["shards"]] == shards
    ts = columns["ts"]
    assert np.all(np.diff(ts) > 0), "ts must increase strictly across shards in name order"
    # Every line of the sample is valid, so ts is exactly the line number.
    np.testing.assert_array_equal(ts, np.arange(10_000))


def test_sample_values_match_the_input(sample_run, sample_examples):
    output_dir, _ = sample_run
    _, columns = sample_examples
    rows = [criteo.parse_line(line) for line in _sample_lines()]
    np.testing.assert_array_equal(columns["label"], [r.label for r in rows])
    for i, name in enumerate(criteo.INT_COLUMNS):
        expected = np.array([criteo.transform_int(r.ints[i]) for r in rows], dtype=np.float32)
        np.testing.assert_array_equal(columns[name], expected)
    features = FeatureSet.load(os.path.join(output_dir, "features.json"))
    for i, feature in enumerate(features.categorical):
        ids = columns[feature.name]
        assert ids.min() >= 0 and ids.max() < feature.vocab_size, feature.name
        # id k >= 1 is line k of the vocabulary file; 0 is missing or seen fewer than min_count=2 times.
        vocab = ["<oov>"] + [value for value, _ in _read_vocab(output_dir, feature.name)]
        counts = collections.Counter(r.cats[i] for r in rows if r.cats[i] is not None)
        for row, cat_id in zip(rows, ids, strict=True):
            value = row.cats[i]
            if value is None or counts[value] < 2:
                assert cat_id == 0
            else:
                assert vocab[cat_id] == value


def test_sample_vocabulary_is_sorted_and_filtered(sample_run):
    output_dir, _ = sample_run
    rows = [criteo.parse_line(line) for line in _sample_lines()]
    for i, feature in enumerate(criteo.CAT_COLUMNS):
        counts = collections.Counter(r.cats[i] for r in rows if r.cats[i] is not None)
        expected = sorted(((v, c) for v, c in counts.items() if c >= 2), key=lambda vc: (-vc[1], vc[0]))
        assert _read_vocab(output_dir, feature) == expected, feature


def test_sample_features_json(sample_run):
    output_dir, _ = sample_run
    features = FeatureSet.load(os.path.join(output_dir, "features.json"))
    sizes = {name: len(_read_vocab(output_dir, name)) + 1 for name in criteo.CAT_COLUMNS}
    assert features == criteo_feature_set(sizes, features.metadata)
    assert features.metadata["vocab_mode"] == "frequency"
    assert features.metadata["min_count"] == 2
    assert features.metadata["hash_buckets"] is None
    assert "log1p" in features.metadata["numeric_transform"]
    assert features.label.name == "label" and features.time.name == "ts"


def test_vocabulary_reuse_keeps_ids(sample_run, tmp_path):
    """Day 2 with day 1's vocabulary: same value -> same id, unseen value -> 0, sizes unchanged."""
    day1_dir, _ = sample_run
    lines = _sample_lines()
    unseen = lines[0].split("\t")
    unseen[14] = "0123abcd"  # a C1 value the sample never has
    day2_lines = lines[7000:] + ["\t".join(unseen)]
    day2_input = tmp_path / "day_2.tsv"
    day2_input.write_text("\n".join(day2_lines) + "\n")
    config = preprocess.PreprocessConfig(str(day2_input), str(tmp_path / "out"), vocab_dir=day1_dir)
    summary = preprocess.run(config)

    assert summary["rows_in"] == summary["rows_ok"] == 3001
    assert summary["oov_values"]["C1"] >= 1
    for name in criteo.CAT_COLUMNS:
        assert _read_vocab(str(tmp_path / "out"), name) == _read_vocab(day1_dir, name)
    day1 = FeatureSet.load(os.path.join(day1_dir, "features.json"))
    day2 = FeatureSet.load(str(tmp_path / "out" / "features.json"))
    assert [f.vocab_size for f in day2.categorical] == [f.vocab_size for f in day1.categorical]
    assert day2.metadata["vocab_source"] == "reused"
    _, day1_columns = _read_examples(day1_dir)
    _, day2_columns = _read_examples(str(tmp_path / "out"))
    np.testing.assert_array_equal(day2_columns["ts"], np.arange(3001))
    for name in criteo.CAT_COLUMNS:
        np.testing.assert_array_equal(day2_columns[name][:3000], day1_columns[name][7000:], err_msg=name)
    assert day2_columns["C1"][3000] == 0


def test_existing_output_is_not_overwritten(sample_run):
    output_dir, _ = sample_run
    before = sorted(os.listdir(output_dir))
    with pytest.raises(FileExistsError, match="--overwrite"):
        preprocess.run(preprocess.PreprocessConfig(str(CRITEO_SAMPLE), output_dir))
    assert sorted(os.listdir(output_dir)) == before


# --- Malformed rows, hash mode, gzip, two files ---------------------------------------------------

GOOD = _sample_lines()[:3]
MALFORMED = [
    ("\t".join(GOOD[0].split("\t")[:39]), criteo.WRONG_COLUMN_COUNT),  # too few columns
    (GOOD[0] + "\textra", criteo.WRONG_COLUMN_COUNT),  # too many columns
    ("\t".join(["0", "12x"] + GOOD[0].split("\t")[2:]), criteo.BAD_INTEGER),
    ("\t".join(["2"] + GOOD[0].split("\t")[1:]), criteo.BAD_LABEL),
    ("\t".join(GOOD[0].split("\t")[:20] + ["not-hex"] + GOOD[0].split("\t")[21:]), criteo.BAD_CATEGORICAL),
    ("", criteo.BLANK_LINE),
    ("   ", criteo.BLANK_LINE),
]


@pytest.fixture(scope="module")
def malformed_inputs(tmp_path_factory):
    """Two files in name order: a.tsv (good, bad, good, bad...) and b.tsv.gz (more of both + invalid UTF-8)."""
    root = tmp_path_factory.mktemp("malformed")
    file_a = [GOOD[0], *[line for line, _ in MALFORMED[:4]], GOOD[1]]
    file_b = [line for line, _ in MALFORMED[4:]] + [GOOD[2]]
    (root / "a.tsv").write_text("\n".join(file_a) + "\n")
    non_utf8 = ("\t".join(["1"] + GOOD[0].split("\t")[1:14])).encode() + b"\t\xff\xfe" + b"\tabc" * 25
    with gzip.open(root / "b.tsv.gz", "wb") as f:
        f.write(("\n".join(file_b) + "\n").encode() + non_utf8)  # last line has no trailing newline
    reasons_a = [None, *[r for _, r in MALFORMED[:4]], None]
    reasons_b = [r for _, r in MALFORMED[4:]] + [None, criteo.BAD_CATEGORICAL]
    return root, reasons_a + reasons_b, file_a + file_b


def _ts_and_reason(bad_row_json: str) -> tuple[int, str]:
    bad_row = json.loads(bad_row_json)
    return bad_row["ts"], bad_row["reason"]


def test_malformed_rows_go_to_the_dead_letter_output(malformed_inputs, tmp_path):
    root, reasons, lines = malformed_inputs
    buckets = 1000
    config = preprocess.PreprocessConfig(str(root / "*"), str(tmp_path), vocab_mode="hash", hash_buckets=buckets,
                                         rows_per_shard=4)
    paths = preprocessing.list_input_files(config.input_pattern)
    assert [os.path.basename(p) for p in paths] == ["a.tsv", "b.tsv.gz"]
    expected_bad = [(ts, reason) for ts, reason in enumerate(reasons) if reason]
    good_ts = [ts for ts, reason in enumerate(reasons) if reason is None]

    # The in-process runner: DirectRunner would first try Prism, which downloads a binary.
    with test_pipeline.TestPipeline(runner=FnApiRunner()) as pipeline:
        outputs = pipeline | transforms.PreprocessClickLogs(config, paths)
        assert_that(outputs["bad_rows"] | beam.Map(_ts_and_reason), equal_to(expected_bad), label="BadRowReasons")
        assert_that(outputs["shards"] | beam.Map(lambda s: (s["name"], s["lines"], s["rows"])),
                    equal_to([("part-00000-000000.tfrecord.gz", 4, 1), ("part-00000-000001.tfrecord.gz", 2, 1),
                              ("part-00001-000000.tfrecord.gz", 4, 1), ("part-00001-000001.tfrecord.gz", 1, 0)]),
                    label="ShardStats")
        assert_that(outputs["summary"] | beam.Map(lambda s: (s["rows_in"], s["rows_ok"], s["rows_bad"],
                                                              s["bad_reasons"])),
                    equal_to([(11, 3, 8, {criteo.BLANK_LINE: 2, criteo.WRONG_COLUMN_COUNT: 2, criteo.BAD_LABEL: 1,
                                          criteo.BAD_INTEGER: 1, criteo.BAD_CATEGORICAL: 2})]), label="Summary")

    # Dead letters: every malformed line verbatim with its reason.
    dead = []
    for name in sorted(os.listdir(tmp_path)):
        if name.startswith("bad_rows-"):
            with open(tmp_path / name) as f:
                dead += [json.loads(line) for line in f]
    dead.sort(key=lambda d: d["ts"])
    assert [(d["ts"], d["reason"]) for d in dead] == expected_bad
    for d in dead[:-1]:
        assert d["line"] == lines[d["ts"]]
    assert dead[-1]["line"].encode("utf-8", "surrogateescape").endswith(b"\t\xff\xfe" + b"\tabc" * 25)
    assert dead[-1]["file"].endswith("b.tsv.gz") and dead[-1]["line_number"] == 5

    # Good rows: in ts order across files, hashed ids.
    shards, columns = _read_examples(str(tmp_path))
    assert shards == sorted(shards) and len(shards) == 4
    np.testing.assert_array_equal(columns["ts"], good_ts)
    for k, line in enumerate(GOOD):
        row = criteo.parse_line(line)
        assert columns["label"][k] == row.label
        expected_ids = [0 if v is None else 1 + int(v, 16) % (buckets - 1) for v in row.cats]
        assert [int(columns[name][k]) for name in criteo.CAT_COLUMNS] == expected_ids
    features = FeatureSet.load(str(tmp_path / "features.json"))
    assert [f.vocab_size for f in features.categorical] == [buckets] * 26
    assert features.metadata["vocab_mode"] == "hash" and features.metadata["hash_buckets"] == buckets
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [f["first_ts"] for f in summary["files"]] == [0, 6]
    assert not (tmp_path / "vocab").exists()


# --- Vocabulary from the first N rows (--vocab_rows) ----------------------------------------------

VOCAB_ROWS = 7
# C1 of each line, in ts order over two files (a.tsv: ts 0-4, b.tsv: ts 5-9); None is a blank (bad) line,
# which still takes a ts. N = 7 falls in the second file, so only its global ts can place the cut.
TRAINED, TRAINED_ONCE, LATE, EDGE, HELD_OUT = "aaaa0001", "aaaa0002", "bbbb0001", "bbbb0002", "cccc0001"
VOCAB_ROWS_C1 = [[TRAINED, None, TRAINED, TRAINED_ONCE, TRAINED], [LATE, EDGE, HELD_OUT, LATE, HELD_OUT]]


def _with_c1(value: str) -> str:
    fields = GOOD[0].split("\t")
    fields[1 + len(criteo.INT_COLUMNS)] = value
    return "\t".join(fields)


@pytest.fixture(scope="module")
def vocab_rows_runs(tmp_path_factory):
    """The two-file log through `run` with --vocab_rows=7, without it, and with N beyond the log's 10 lines."""
    root = tmp_path_factory.mktemp("vocab_rows")
    for name, values in zip(["a.tsv", "b.tsv"], VOCAB_ROWS_C1, strict=True):
        (root / name).write_text("".join(("" if v is None else _with_c1(v)) + "\n" for v in values))
    runs = {}
    for vocab_rows in (VOCAB_ROWS, 0, 1000):
        output_dir = str(root / f"out_{vocab_rows}")
        summary = preprocess.run(preprocess.PreprocessConfig(str(root / "*.tsv"), output_dir, rows_per_shard=4,
                                                             vocab_rows=vocab_rows))
        runs[vocab_rows] = output_dir, summary, FeatureSet.load(os.path.join(output_dir, "features.json"))
    return runs


def _c1_ids_by_value(output_dir: str) -> dict[int, tuple[str, int]]:
    """ts -> (C1 value in the input, C1 id in the written TFRecords), for every valid row."""
    _, columns = _read_examples(output_dir)
    values = [v for file_values in VOCAB_ROWS_C1 for v in file_values]
    return {int(ts): (values[ts], int(c1)) for ts, c1 in zip(columns["ts"], columns["C1"], strict=True)}


def test_vocab_rows_maps_values_only_in_held_out_rows_to_oov(vocab_rows_runs):
    output_dir, summary, _ = vocab_rows_runs[VOCAB_ROWS]
    vocab = [value for value, _ in _read_vocab(output_dir, "C1")]
    # Counted over ts 0..6 only: bbbb0002 at ts 6 is in, cccc0001 (ts 7 and 9) is not.
    assert vocab == [TRAINED, TRAINED_ONCE, LATE, EDGE]
    ids = _c1_ids_by_value(output_dir)
    assert sorted(ids) == [0, 2, 3, 4, 5, 6, 7, 8, 9]
    for ts, (value, c1) in ids.items():
        expected = 0 if value == HELD_OUT else vocab.index(value) + 1
        assert c1 == expected, (ts, value)
    assert ids[8] == (LATE, vocab.index(LATE) + 1)  # a held-out row whose value the first rows had: its id
    assert summary["oov_values"]["C1"] == 2
    assert summary["rows_in"] == 10 and summary["rows_ok"] == 9
    assert os.path.basename(summary["files"][1]["path"]) == "b.tsv" and summary["files"][1]["first_ts"] == 5


def test_without_vocab_rows_held_out_values_get_their_own_id(vocab_rows_runs):
    output_dir, summary, _ = vocab_rows_runs[0]
    vocab = [value for value, _ in _read_vocab(output_dir, "C1")]
    assert HELD_OUT in vocab
    ids = _c1_ids_by_value(output_dir)
    assert ids[7] == ids[9] == (HELD_OUT, vocab.index(HELD_OUT) + 1)
    assert summary["oov_values"]["C1"] == 0
    assert all(c1 == vocab.index(value) + 1 for value, c1 in ids.values())


@pytest.mark.parametrize(
    "vocab_rows, recorded",
    [
        (VOCAB_ROWS, {"vocab_rows": 7, "vocab_source_rows": "ts < 7", "vocab_rows_counted": 6}),
        (0, {"vocab_rows": None, "vocab_source_rows": "all rows", "vocab_rows_counted": 9}),
        (1000, {"vocab_rows": 1000, "vocab_rows_counted": 9,
                "vocab_source_rows": "ts < 1000: all rows (the input has 10 lines)"}),
    ],
)
def test_summary_and_features_say_which_rows_the_vocabulary_came_from(vocab_rows_runs, vocab_rows, recorded):
    output_dir, summary, features = vocab_rows_runs[vocab_rows]
    assert {k: summary[k] for k in recorded} == recorded
    assert {k: features.metadata[k] for k in recorded} == recorded
    assert features.metadata["vocab_source"] == "counted"
    with open(os.path.join(output_dir, "summary.json")) as f:
        assert json.load(f) == summary


def test_vocab_rows_beyond_the_log_counts_every_row(vocab_rows_runs):
    every_row_dir = vocab_rows_runs[0][0]
    beyond_dir = vocab_rows_runs[1000][0]
    for name in criteo.CAT_COLUMNS:
        assert _read_vocab(beyond_dir, name) == _read_vocab(every_row_dir, name), name
    assert _c1_ids_by_value(beyond_dir) == _c1_ids_by_value(every_row_dir)


# --- The entry point's flag errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--vocab_mode=sorted"], "vocab_mode"),
        (["--vocab_mode=hash"], "hash_buckets"),
        (["--min_cout=3"], "--min_cout"),
        (["--vocab_rows=-1"], "vocab_rows=-1"),
        (["--vocab_rows=5", "--vocab_mode=hash", "--hash_buckets=10"], "vocab_mode=frequency"),
    ],
)
def test_bad_flags_exit_with_a_message(flags, message, tmp_path):
    result = _run_main(f"--input={CRITEO_SAMPLE}", f"--output_dir={tmp_path / 'out'}", *flags)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_no_input_files_exit_with_a_message(tmp_path):
    result = _run_main(f"--input={tmp_path}/nothing-*.tsv", f"--output_dir={tmp_path / 'out'}")
    assert result.returncode != 0
    assert "matched no files" in result.stderr


# --- Job configuration and the output directory -----------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocab_mode": "sorted"}, "vocab_mode"),
        ({"vocab_mode": "hash"}, "hash_buckets"),
        ({"vocab_mode": "hash", "hash_buckets": 10, "vocab_dir": "x"}, "vocab_dir"),
        ({"hash_buckets": 10}, "hash_buckets"),
        ({"min_count": 0}, "min_count"),
        ({"max_vocab_size": 1}, "max_vocab_size"),
        ({"rows_per_shard": 0}, "rows_per_shard"),
        ({"vocab_rows": -1}, "vocab_rows=-1"),
        ({"vocab_rows": 2.5}, "vocab_rows=2.5"),
        ({"vocab_rows": True}, "vocab_rows=True"),
        ({"vocab_rows": 5, "vocab_mode": "hash", "hash_buckets": 10}, "vocab_rows=5 with vocab_mode='hash'"),
        ({"vocab_rows": 5, "vocab_dir": "day_0"}, "vocab_rows=5 with vocab_dir='day_0'"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        preprocess.PreprocessConfig("in.tsv", "out", **kwargs)


def test_unknown_pipeline_arguments_are_errors():
    with pytest.raises(ValueError, match="--min_cout"):
        preprocess.make_pipeline_options(["--min_cout=3"])
    options = preprocess.make_pipeline_options(["--direct_num_workers=2"]).get_all_options()
    assert options["runner"] == "DirectRunner"
    assert options["direct_num_workers"] == 2


def test_overwrite_deletes_only_an_earlier_runs_outputs(tmp_path):
    earlier = ["part-00000-000000.tfrecord.gz", "summary.json", "features.json", "bad_rows-00000-of-00001.jsonl",
               "vocab/C1.txt"]
    for name in earlier + ["notes.txt"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    config = preprocess.PreprocessConfig("in.tsv", str(tmp_path))
    with pytest.raises(FileExistsError, match="5 files"):
        preprocess.prepare_output_dir(config, overwrite=False)
    preprocess.prepare_output_dir(config, overwrite=True)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["notes.txt"]


@pytest.mark.slow
def test_generated_malformed_rows_are_all_accounted_for(tmp_path):
    """The synthetic generator's malformed lines of every kind land in the dead letters with its reasons."""
    from recsys.data.synthetic import GeneratorConfig, write_clicklogs

    path = str(tmp_path / "clicks.tsv.gz")
    generated = write_clicklogs(path, GeneratorConfig(rows=20_000, seed=3, malformed_fraction=0.02))
    summary = preprocess.run(preprocess.PreprocessConfig(path, str(tmp_path / "out"), vocab_mode="hash",
                                                         hash_buckets=1000))
    assert summary["rows_in"] == generated.rows
    assert summary["rows_ok"] == generated.valid_rows
    assert summary["bad_reasons"] == generated.malformed
    _, columns = _read_examples(str(tmp_path / "out"))
    assert int(columns["label"].sum()) == generated.clicks
