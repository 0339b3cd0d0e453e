"""The fault suite, input cases (issue 18): garbage, empty, CRLF, very long and non-UTF-8 inputs to preprocess; empty,
zero-byte and garbage shards in the trainer's pattern; a deleted model folder and empty data in compare; the study's
raw-TSV copy; SIGTERM then resume.

Each job's cases run through the job's own `main` and flags parser in this process (`_run_mains`: a fresh Python with
TensorFlow costs seconds to start, issue 17); the process boundary (app.run's exit status, the quiet console) is
tested in tests/pipelines/test_console.py, SIGTERM below. Each test asserts the exit status, the last stderr line
(or the summary line), and that what was there before is still there.
"""
import collections
import hashlib
import json
import os
import pathlib
import random
import signal
import subprocess
import sys

import numpy as np
import pytest

from recsys.data import fingerprint, preprocessing
from recsys.testing import export_toy_saved_model, write_toy_tfrecords
from tests.conftest import CRITEO_SAMPLE
from tests.entry_points import run_command
from tests.training.conftest import restore_determinism  # noqa: F401  (a fixture of the SIGTERM test)
from tests.training.helpers import FEATURES, REPO_ROOT, cli_flags, subprocess_env, write_stream

Run = collections.namedtuple("Run", "returncode stdout stderr before after")


def _digests(directory) -> dict[str, str]:
    if not directory or not pathlib.Path(directory).exists():
        return {}
    root = pathlib.Path(directory)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _run_mains(module: str, cases: dict[str, dict]) -> dict[str, Run]:
    """Each case's command line (`{"args": [...], "watch": dir or None}`) through `<module>`'s own `main` and flags
    parser, in this process (`tests.entry_points.run_command`); the digests of every file under `watch` are taken
    before and after the run."""
    runs = {}
    for name, case in cases.items():
        before = _digests(case["watch"])
        result = run_command([sys.executable, "-m", module, *case["args"]])
        runs[name] = Run(result.returncode, result.stdout, result.stderr, before, _digests(case["watch"]))
    return runs


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def _case(*args, watch=None) -> dict:
    return {"args": [str(a) for a in args], "watch": str(watch) if watch else None}


# --- Preprocessing ------------------------------------------------------------------------------------------------

LINES = CRITEO_SAMPLE.read_bytes().split(b"\n")[:200]
LONG_LINE = 5  # 0-based: the line replaced by one of 10 MB
NON_UTF8_LINE = 7  # 0-based: the line whose C7 value holds bytes that are not UTF-8
HASH = ("--vocab_mode=hash", "--hash_buckets=1000", "--rows_per_shard=100")  # ids independent of the other rows


def _long_line() -> bytes:
    fields = LINES[LONG_LINE].split(b"\t")
    fields[14] = b"x" * (10 << 20)  # C1: 10 MB that is not hex
    return b"\t".join(fields)


def _non_utf8_line() -> bytes:
    fields = LINES[NON_UTF8_LINE].split(b"\t")
    fields[20] = b"\xff\xfe\x80"
    return b"\t".join(fields)


@pytest.fixture(scope="module")
def preprocess_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("preprocess_faults")
    inputs = {
        "lf": b"\n".join(LINES) + b"\n",
        "crlf": b"\r\n".join(LINES) + b"\r\n",
        "long_and_non_utf8": b"\n".join(_long_line() if i == LONG_LINE else _non_utf8_line() if i == NON_UTF8_LINE
                                        else line for i, line in enumerate(LINES)) + b"\n",
        "garbage": random.Random(18).randbytes(64 << 10),
        "empty": b"",
    }
    for name, data in inputs.items():
        (root / f"{name}.tsv").write_bytes(data)
    out = root / "out"
    cases = {
        "lf": _case(f"--input={root / 'lf.tsv'}", f"--output_dir={out / 'lf'}", *HASH),
        "crlf": _case(f"--input={root / 'crlf.tsv'}", f"--output_dir={out / 'crlf'}", *HASH),
        "long_and_non_utf8": _case(f"--input={root / 'long_and_non_utf8.tsv'}", f"--output_dir={out / 'mixed'}",
                                   *HASH),
        # The failing runs replace good outputs (--overwrite): those must survive.
        "garbage": _case(f"--input={root / 'garbage.tsv'}", f"--output_dir={out / 'crlf'}", "--overwrite", *HASH,
                         watch=out / "crlf"),
        "empty": _case(f"--input={root / 'empty.tsv'}", f"--output_dir={out / 'lf'}", "--overwrite", *HASH,
                       watch=out / "lf"),
    }
    runs = _run_mains("pipelines.preprocess", cases)
    return {"root": root, "out": out, "runs": runs}


def _examples(output_dir: pathlib.Path) -> dict[str, np.ndarray]:
    import tensorflow as tf

    from recsys.data.features import FeatureSet

    spec = FeatureSet.load(str(output_dir / "features.json")).parse_spec()
    shards = sorted(str(p) for p in output_dir.glob("part-*.tfrecord.gz"))
    batch = next(iter(tf.data.TFRecordDataset(shards, compression_type="GZIP").batch(10_000)))
    return {name: values.numpy() for name, values in tf.io.parse_example(batch, spec).items()}


def _dead_letters(output_dir: pathlib.Path) -> list[dict]:
    return [json.loads(line) for path in sorted(output_dir.glob("bad_rows-*")) for line in path.open()]


def test_preprocess_crlf_rows_parse_as_lf_rows(preprocess_runs):
    out, runs = preprocess_runs["out"], preprocess_runs["runs"]
    for name in ("lf", "crlf"):
        assert runs[name].returncode == 0, runs[name].stderr
        assert _last_line(runs[name].stdout).startswith("preprocess: 200 rows in, 200 written, 0 bad {}"), runs[name]
    lf, crlf = _examples(out / "lf"), _examples(out / "crlf")
    assert sorted(lf) == sorted(crlf) and len(lf["ts"]) == 200
    for name in lf:
        np.testing.assert_array_equal(lf[name], crlf[name], err_msg=name)
    assert _dead_letters(out / "crlf") == []


def test_preprocess_a_10mb_line_is_one_bad_row(preprocess_runs):
    out, run = preprocess_runs["out"], preprocess_runs["runs"]["long_and_non_utf8"]
    assert run.returncode == 0, run.stderr
    assert _last_line(run.stdout) == f"preprocess: 200 rows in, 198 written, 2 bad {{'bad_categorical': 2}} -> " \
                                     f"{out / 'mixed'}"
    letter = next(d for d in _dead_letters(out / "mixed") if d["line_number"] == LONG_LINE + 1)
    assert letter["reason"] == "bad_categorical"
    prefix = "C1 must be a hex string or empty, got '"
    full = len(prefix) + (10 << 20) + 1  # what criteo.parse_line says, closing quote included
    assert letter["detail"] == f"{prefix}{'x' * (preprocessing.MAX_DETAIL_CHARS - len(prefix))}... ({full} characters)"
    assert letter["line"].encode() == _long_line()  # verbatim
    # Every other row is the LF run's row with the same ts.
    lf, mixed = _examples(out / "lf"), _examples(out / "mixed")
    keep = ~np.isin(lf["ts"], [LONG_LINE, NON_UTF8_LINE])
    for name in lf:
        np.testing.assert_array_equal(lf[name][keep], mixed[name], err_msg=name)


def test_preprocess_a_non_utf8_line_is_a_bad_row_keeping_its_bytes(preprocess_runs):
    out = preprocess_runs["out"]
    letter = next(d for d in _dead_letters(out / "mixed") if d["line_number"] == NON_UTF8_LINE + 1)
    assert letter["reason"] == "bad_categorical" and letter["file"].endswith("long_and_non_utf8.tsv")
    assert letter["detail"] == "C7 must be a hex string or empty, got '\\udcff\\udcfe\\udc80'"
    assert letter["line"].encode("utf-8", "surrogateescape") == _non_utf8_line()


def test_preprocess_garbage_bytes_fail_naming_the_file_and_keep_the_earlier_outputs(preprocess_runs):
    root, run = preprocess_runs["root"], preprocess_runs["runs"]["garbage"]
    assert run.returncode == 1
    line = _last_line(run.stderr)
    assert line.startswith("preprocess: error: none of the ") and \
        f" lines of {root / 'garbage.tsv'} is a valid Criteo-format row (" in line, line
    assert f"e.g. line 1 of {root / 'garbage.tsv'}: " in line
    assert line.endswith("(is it a TSV click log? nothing written)")
    assert "Traceback" not in run.stderr
    assert run.before and run.after == run.before
    assert not [p for p in (root / "out").iterdir() if p.name.startswith(".")], "a staging folder was left behind"


def test_preprocess_an_empty_input_fails_and_keeps_the_earlier_outputs(preprocess_runs):
    root, run = preprocess_runs["root"], preprocess_runs["runs"]["empty"]
    assert run.returncode == 1
    assert _last_line(run.stderr) == (f"preprocess: error: {root / 'empty.tsv'} holds no lines: nothing to "
                                      "preprocess (nothing written)")
    assert run.before and run.after == run.before


def test_no_valid_rows_message_names_the_files_and_reasons():
    summary = {"rows_in": 3, "rows_ok": 0, "bad_reasons": {"blank_line": 1, "bad_label": 2, "bad_integer": 0}}
    from recsys.data import criteo

    bad = preprocessing.bad_row_json(0, "b.tsv", 1, criteo.BadRowError("bad_label", "label must be 0 or 1, got 'x'"),
                                     "x")
    with pytest.raises(preprocessing.NoValidRowsError, match=(
            r"^none of the 3 lines of the 2 input files \(a.tsv ... b.tsv\) is a valid Criteo-format row "
            r"\(1 blank_line, 2 bad_label\); e.g. line 1 of b.tsv: bad_label: label must be 0 or 1, got 'x' ")):
        preprocessing.check_rows_written(summary, ["a.tsv", "b.tsv"], bad)
    preprocessing.check_rows_written({**summary, "rows_ok": 1}, ["a.tsv"])


# --- Training input -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_faults")
    rng = random.Random(18)
    contents = {
        "zero_bytes": b"",
        "garbage": rng.randbytes(5000),  # not gzip, so no fingerprint
        # What a shard corrupted after its header looks like: the right fingerprint, then no deflate stream.
        "garbage_after_header": fingerprint.gzip_header(FEATURES.fingerprint()) + rng.randbytes(5000),
    }
    cases = {}
    for name, data in contents.items():
        pattern = write_stream(root / name / "data", shards=3, rows=50)
        (root / name / "data" / "part-00001.tfrecord.gz").write_bytes(data)
        workdir = root / name / "run"
        workdir.mkdir(parents=True)
        (workdir / "notes.txt").write_text("earlier output")
        cases[name] = _case(f"--workdir={workdir}", *cli_flags(pattern), watch=workdir)
    return {"root": root, "runs": _run_mains("pipelines.train", cases)}


def _assert_train_refused(train_runs, name: str, message: str) -> None:
    run = train_runs["runs"][name]
    assert run.returncode == 1, run.stderr[-2000:]
    line = _last_line(run.stderr)
    assert line.startswith(f"pipelines.train: error: {message}"), line
    assert "Traceback" not in run.stderr
    assert run.after == run.before == {"notes.txt": hashlib.sha256(b"earlier output").hexdigest()}  # no LOCK left


def test_train_refuses_a_zero_byte_shard_naming_it(train_runs):
    shard = train_runs["root"] / "zero_bytes" / "data" / "part-00001.tfrecord.gz"
    _assert_train_refused(train_runs, "zero_bytes", f"{shard} is empty (0 bytes), so not a shard written by "
                                                    "pipelines.preprocess: delete it, or rerun pipelines.preprocess")


def test_train_refuses_a_garbage_file_in_the_pattern_naming_it(train_runs):
    data = train_runs["root"] / "garbage" / "data"
    _assert_train_refused(train_runs, "garbage", f"{data / 'part-00001.tfrecord.gz'} carries no feature_fingerprint "
                                                 f"(written before feature fingerprints existed, or not by "
                                                 f"pipelines.preprocess); expected {FEATURES.fingerprint()} from "
                                                 f"{data / 'features.json'}")


def test_train_refuses_a_shard_that_is_garbage_after_its_header_naming_it_and_the_record(train_runs):
    data = train_runs["root"] / "garbage_after_header" / "data"
    _assert_train_refused(
        train_runs, "garbage_after_header",
        f"Cannot read TFRecords from {data / 'part-00001.tfrecord.gz'} (matched by file_pattern="
        f"'{data / 'part-*.tfrecord.gz'}', compression='GZIP') after 0 record(s): inflate() failed")
    assert "function_node" not in _last_line(train_runs["runs"]["garbage_after_header"].stderr)


def test_empty_shards_anywhere_in_the_pattern_are_read_as_no_records(tmp_path):
    """A shard with a header and no records (an input file of only bad rows) is legitimate: first and last here."""
    from configs import smoke
    from recsys.data.input import DataSource

    pattern = write_stream(tmp_path, shards=3, rows=50)
    write_toy_tfrecords(str(tmp_path / "part-00000.tfrecord.gz"), FEATURES, 0)
    write_toy_tfrecords(str(tmp_path / "part-00002.tfrecord.gz"), FEATURES, 0)
    config = smoke.get_config()
    config.data.train, config.data.shuffle = pattern, "none"
    source = DataSource.from_config(config.data, seed=0)
    ts = np.concatenate([batch["ts"].numpy() for batch in source.dataset(batch_size=32)])
    assert len(source.files) == 3 and len(ts) == 50


@pytest.mark.slow
@pytest.mark.usefixtures("restore_determinism")
def test_sigterm_then_resume_ends_bit_identical_to_an_uninterrupted_run(tmp_path):
    """SIGTERM (what Kubernetes and `kill` send) ends the trainer at once, as SIGKILL does
    (tests/training/test_resume.py); the rerun takes over the stale lock, resumes and ends identical."""
    from recsys.training.loop import train
    from tests.training.helpers import (
        assert_same_outcome,
        latest_checkpoint_step,
        small_config,
        stop_after_first_checkpoint,
        train_command,
    )
    from tests.training.test_resume import OVERRIDES

    data = write_stream(tmp_path / "data", shards=3, rows=2000)
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    command = train_command(stopped, data, **OVERRIDES)
    returncode, stderr = stop_after_first_checkpoint(command, stopped, signal.SIGTERM)
    assert returncode == -signal.SIGTERM, stderr[-3000:]
    step = latest_checkpoint_step(stopped)
    assert step is not None and step < 188
    assert (stopped / "LOCK").exists() and not (stopped / "metrics.json").exists()

    resumed = subprocess.run(command, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming from {stopped}/checkpoints/ckpt-{step}" in resumed.stderr
    assert not (stopped / "LOCK").exists()
    reference = train(small_config(data, **OVERRIDES), str(straight)).metrics
    assert_same_outcome(straight, stopped, reference, json.loads((stopped / "metrics.json").read_text()))


# --- Compare ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compare_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare_faults")
    data = root / "data"
    data.mkdir()
    FEATURES.save(str(data / "features.json"))
    write_toy_tfrecords(str(data / "part-0.tfrecord.gz"), FEATURES, 100)
    for seed in range(2):
        export_toy_saved_model(str(root / f"run{seed}" / "saved_model"), FEATURES, seed=seed)
    (root / "deleted").mkdir()  # a trainer workdir whose saved_model/ was deleted
    (root / "deleted" / "metrics.json").write_text("{}")
    for name, write in {"zero_bytes": lambda p: p.write_bytes(b""),
                        "no_records": lambda p: write_toy_tfrecords(str(p), FEATURES, 0)}.items():
        (root / name).mkdir()
        FEATURES.save(str(root / name / "features.json"))
        write(root / name / "part-0.tfrecord.gz")
    earlier = root / "report"  # an earlier report in --output: a failed run must leave it
    earlier.mkdir()
    (earlier / "report.json").write_text('{"earlier": true}\n')
    models = f"--models={root / 'run0'},{root / 'run1'}"
    cases = {
        "deleted_model": _case(f"--models={root / 'run0'},{root / 'deleted'}", f"--data={data / 'part-*'}",
                               f"--output={earlier}", watch=earlier),
        "zero_bytes": _case(models, f"--data={root / 'zero_bytes' / 'part-*'}", f"--output={earlier}", watch=earlier),
        "no_records": _case(models, f"--data={root / 'no_records' / 'part-*'}", f"--output={earlier}", watch=earlier),
    }
    return {"root": root, "runs": _run_mains("pipelines.compare", cases)}


def _assert_compare_refused(compare_runs, name: str, message: str) -> None:
    run = compare_runs["runs"][name]
    assert run.returncode == 1, run.stderr[-2000:]
    assert _last_line(run.stderr).startswith(f"compare: error: {message}"), run.stderr
    assert "Traceback" not in run.stderr
    assert run.after == run.before == {"report.json": hashlib.sha256(b'{"earlier": true}\n').hexdigest()}


def test_compare_refuses_a_workdir_whose_model_folder_was_deleted(compare_runs):
    # A --models path that does not exist at all: tests/pipelines/test_compare.py::test_bad_inputs_fail_with_one_line.
    deleted = compare_runs["root"] / "deleted"
    _assert_compare_refused(compare_runs, "deleted_model", f"--models: no SavedModel in {deleted} (expected "
                                                           f"{deleted / 'saved_model' / 'saved_model.pb'} or ")


def test_compare_refuses_a_zero_byte_data_file(compare_runs):
    path = compare_runs["root"] / "zero_bytes" / "part-0.tfrecord.gz"
    _assert_compare_refused(compare_runs, "zero_bytes", f"--data: {path} is empty (0 bytes), so not a shard written "
                                                        "by pipelines.preprocess: delete it, or rerun")


def test_compare_refuses_data_without_records(compare_runs):
    pattern = compare_runs["root"] / "no_records" / "part-*"
    _assert_compare_refused(compare_runs, "no_records", f"--data: {pattern} holds no examples")


# --- Study: the raw-TSV copy --------------------------------------------------------------------------------------


def test_study_raw_tsv_head_copies_bytes_as_the_beam_job_reads_them(tmp_path):
    """Non-UTF-8 bytes and CRLF pass through verbatim (the Beam job then counts a bad line in bad_rows-*); a BOM at
    the start of a later file and a last line without newline do not merge into rows; no temporary file is left."""
    from recsys.study.data import _head

    (tmp_path / "a.tsv").write_bytes(preprocessing.UTF8_BOM + b"a1\r\nbad \xff\xfe\x80 bytes\na3")
    (tmp_path / "b.tsv").write_bytes(preprocessing.UTF8_BOM + b"b1\nb2\nb3\n")
    head = tmp_path / "raw" / "head.tsv"
    _head(str(tmp_path / "*.tsv"), 5, str(head))
    assert head.read_bytes() == b"a1\r\nbad \xff\xfe\x80 bytes\na3\nb1\nb2\n"
    assert list(preprocessing.read_lines(str(head)))[:2] == ["a1\r", "bad \udcff\udcfe\udc80 bytes"]
    assert os.listdir(tmp_path / "raw") == ["head.tsv"]


def test_study_raw_tsv_head_failure_leaves_no_temporary_file(tmp_path):
    from recsys.study.data import _head

    (tmp_path / "a.tsv").write_bytes(b"a1\n")
    (tmp_path / "b.tsv").mkdir()  # matched by the glob, cannot be read as a file
    with pytest.raises(IsADirectoryError, match="b.tsv"):
        _head(str(tmp_path / "*.tsv"), 5, str(tmp_path / "raw" / "head.tsv"))
    assert os.listdir(tmp_path / "raw") == []


def test_study_refuses_held_out_data_of_another_contract(tmp_path):
    from recsys.data.input import InputDataError
    from recsys.study.data import EvalSet
    from tests.faults.test_faults import OTHER

    FEATURES.save(str(tmp_path / "features.json"))
    write_toy_tfrecords(str(tmp_path / "held_out-0.tfrecord.gz"), FEATURES, 20)
    write_toy_tfrecords(str(tmp_path / "held_out-1.tfrecord.gz"), OTHER, 20, seed=1)
    files = tuple(str(tmp_path / f"held_out-{i}.tfrecord.gz") for i in range(2))
    with pytest.raises(InputDataError, match=(
            rf"^{files[1]} was encoded with feature contract {OTHER.fingerprint()}, but {tmp_path / 'features.json'} "
            rf"has {FEATURES.fingerprint()}: rerun pipelines.preprocess")):
        EvalSet(files, str(tmp_path / "features.json"))


def test_a_second_study_on_a_workdir_fails_fast_naming_the_holder(tmp_path):
    from recsys.study.runner import run_study
    from recsys.training.lock import WorkdirLockedError, workdir_lock

    (tmp_path / "results.json").write_text("{}")
    with workdir_lock(str(tmp_path), job="study"):
        lock = (tmp_path / "LOCK").read_text()
        with pytest.raises(WorkdirLockedError, match=rf"^workdir {tmp_path} is in use by study pid {os.getpid()} "):
            run_study(None, str(tmp_path))  # fails on the lock, before the config is read
        assert (tmp_path / "LOCK").read_text() == lock
    assert os.listdir(tmp_path) == ["results.json"]
