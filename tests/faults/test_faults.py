"""The fault suite (issue 18): ordinary mistakes end with a non-zero status and one line that names the file, and
lose no earlier output. Jobs run on their real command lines through their own `main` and flags parser in this
process (`tests.entry_points.run_command`: a fresh Python with TensorFlow costs seconds, issue 17); what only the
process shows (app.run's exit status, the quiet console) is tested in tests/pipelines/test_console.py.

Each test asserts the exit status, the last stderr line, and that what was there before is still there.
"""
import hashlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

from recsys.data import fingerprint, preprocessing
from recsys.data.features import FeatureSet
from recsys.testing import export_toy_saved_model, write_toy_tfrecords
from tests.conftest import CRITEO_SAMPLE
from tests.entry_points import run_command
from tests.training.helpers import FEATURES, train_command, write_stream

# Same schema and vocabulary sizes as FEATURES, another vocabulary: its ids stay in range, so only the
# fingerprint can tell the two apart.
OTHER = FeatureSet.from_json(fingerprint.stamp({**FEATURES.to_json(), "vocab_digests": {"C1": "0" * 64}}))


def _run(command):
    return run_command([str(part) for part in command])


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def _digests(directory: pathlib.Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


# --- Feature contract -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("position", [0, 1, 2], ids=["first", "middle", "last"])
def test_train_refuses_a_foreign_shard_anywhere_in_the_pattern(tmp_path, position):
    pattern = write_stream(tmp_path / "data", shards=3, rows=50)
    foreign = tmp_path / "data" / f"part-{position:05d}.tfrecord.gz"
    write_toy_tfrecords(str(foreign), OTHER, 50, seed=9)
    result = _run(train_command(tmp_path / "run", pattern))
    assert result.returncode == 1, result.stderr[-2000:]
    line = _last_line(result.stderr)
    assert line.startswith(f"pipelines.train: error: {foreign} was encoded with feature contract "
                           f"{OTHER.fingerprint()}, but {tmp_path / 'data' / 'features.json'} has "
                           f"{FEATURES.fingerprint()}: rerun pipelines.preprocess"), line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_train_refuses_data_written_before_fingerprints(tmp_path):
    pattern = write_stream(tmp_path / "data", shards=1, rows=50)
    old = {k: v for k, v in FEATURES.to_json().items() if k != fingerprint.KEY}
    (tmp_path / "data" / "features.json").write_text(json.dumps(old))
    result = _run(train_command(tmp_path / "run", pattern))
    assert result.returncode == 1
    assert _last_line(result.stderr) == (
        f"pipelines.train: error: {tmp_path / 'data' / 'features.json'} has no feature_fingerprint (written before "
        f"feature fingerprints existed): {fingerprint.RERUN_PREPROCESS}")
    assert not (tmp_path / "run").exists()


def test_compare_refuses_a_model_of_another_contract(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    FEATURES.save(str(data / "features.json"))
    write_toy_tfrecords(str(data / "part-0.tfrecord.gz"), FEATURES, 100)
    export_toy_saved_model(str(tmp_path / "ours"), FEATURES, seed=0)
    export_toy_saved_model(str(tmp_path / "theirs"), OTHER, seed=1)
    result = _run([sys.executable, "-m", "pipelines.compare", f"--models={tmp_path / 'ours'},{tmp_path / 'theirs'}",
                   f"--data={data / 'part-*'}", f"--output={tmp_path / 'out'}"])
    assert result.returncode == 1
    assert _last_line(result.stderr).startswith(
        f"compare: error: --models: SavedModel {tmp_path / 'theirs'} was encoded with feature contract "
        f"{OTHER.fingerprint()}, but --data's {data / 'features.json'} has {FEATURES.fingerprint()}: score it on")
    assert not (tmp_path / "out").exists()


def test_compare_refuses_a_plain_tfrecord_without_fingerprint(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    FEATURES.save(str(data / "features.json"))
    write_toy_tfrecords(str(data / "part-0.tfrecord"), FEATURES, 20)
    export_toy_saved_model(str(tmp_path / "ours"), FEATURES)
    result = _run([sys.executable, "-m", "pipelines.compare", f"--models={tmp_path / 'ours'},{tmp_path / 'ours'}",
                   f"--data={data / 'part-*'}", f"--output={tmp_path / 'out'}"])
    assert result.returncode == 1
    assert _last_line(result.stderr).startswith(
        f"compare: error: --data: {data / 'part-0.tfrecord'} carries no feature_fingerprint")


def test_a_shard_carries_its_fingerprint_in_its_gzip_header(tmp_path):
    from recsys.data.input import file_fingerprint

    write_toy_tfrecords(str(tmp_path / "a.tfrecord.gz"), FEATURES, 5)
    assert file_fingerprint(str(tmp_path / "a.tfrecord.gz")) == FEATURES.fingerprint()
    edited = {**FEATURES.to_json(), "features": [dict(f, vocab_size=f.get("vocab_size", 0) + 1)
                                                  if f["role"] == "categorical" else f
                                                  for f in FEATURES.to_json()["features"]]}
    with pytest.raises(fingerprint.FingerprintError, match="edited after preprocessing"):
        FeatureSet.from_json(edited).fingerprint("features.json")


# --- Preprocessing ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_overwrite_with_a_failing_input_keeps_the_earlier_outputs(tmp_path):
    import pipelines.preprocess as preprocess

    out = tmp_path / "out"
    summary = preprocess.run(preprocess.PreprocessConfig(str(CRITEO_SAMPLE), str(out)))
    assert summary[fingerprint.KEY] == json.loads((out / "features.json").read_text())[fingerprint.KEY]
    before = _digests(out)
    truncated = tmp_path / "in" / "day.tsv.gz"
    truncated.parent.mkdir()
    import gzip

    full = gzip.compress(CRITEO_SAMPLE.read_bytes())
    truncated.write_bytes(full[: len(full) // 2])
    result = _run([sys.executable, "-m", "pipelines.preprocess", f"--input={truncated}", f"--output_dir={out}",
                   "--overwrite"])
    assert result.returncode == 1
    line = _last_line(result.stderr)
    assert line.startswith(f"preprocess: error: cannot read input file {truncated} after "), line
    assert _digests(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], "the staging folder was left behind"


def test_truncated_gzip_input_names_the_file(tmp_path):
    import gzip

    path = tmp_path / "day.tsv.gz"
    full = gzip.compress(CRITEO_SAMPLE.read_bytes())
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(preprocessing.InputFileError, match=rf"cannot read input file {path} after \d+ lines: "):
        list(preprocessing.read_lines(str(path)))
    with pytest.raises(preprocessing.InputFileError, match=rf"cannot read input file {path} after \d+ bytes"):
        preprocessing.count_lines(str(path))


def test_a_utf8_bom_does_not_cost_the_first_row(tmp_path):
    from recsys.data import criteo

    lines = CRITEO_SAMPLE.read_text().split("\n")[:3]
    path = tmp_path / "bom.tsv"
    path.write_bytes(preprocessing.UTF8_BOM + "\n".join(lines).encode() + b"\n")
    read = list(preprocessing.read_lines(str(path)))
    assert read == lines
    assert criteo.parse_line(read[0]) == criteo.parse_line(lines[0])
    assert preprocessing.count_lines(str(path)) == 3


# --- One writer per workdir ---------------------------------------------------------------------------------------


def test_a_second_trainer_on_a_workdir_fails_fast_naming_the_holder(tmp_path):
    import socket

    pattern = write_stream(tmp_path / "data", shards=1, rows=50)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        workdir = tmp_path / "run"
        workdir.mkdir()
        (workdir / "keep.txt").write_text("earlier output")
        lock = {"host": socket.gethostname(), "pid": holder.pid, "job": "trainer", "since": "2026-01-01T00:00:00"}
        (workdir / "LOCK").write_text(json.dumps(lock))
        result = _run(train_command(workdir, pattern))
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    assert _last_line(result.stderr) == (
        f"pipelines.train: error: workdir {workdir} is in use by trainer pid {holder.pid} on host "
        f"{socket.gethostname()} since 2026-01-01T00:00:00 (lock {workdir / 'LOCK'}); wait for it to finish or "
        f"stop it, or delete {workdir / 'LOCK'} if that process is gone")
    assert sorted(p.name for p in workdir.iterdir()) == ["LOCK", "keep.txt"]
    assert json.loads((workdir / "LOCK").read_text()) == lock


def test_a_stale_lock_is_taken_over_and_released(tmp_path):
    import socket

    from recsys.training.lock import WorkdirLockedError, workdir_lock

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "LOCK").write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    with workdir_lock(str(tmp_path)):
        assert json.loads((tmp_path / "LOCK").read_text())["pid"] == os.getpid()
        with pytest.raises(WorkdirLockedError, match=f"in use by trainer pid {os.getpid()}"):
            with workdir_lock(str(tmp_path)):
                pass
    assert not (tmp_path / "LOCK").exists()


# --- Training input -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_truncated_tfrecord_in_training_names_the_file(tmp_path):
    pattern = write_stream(tmp_path / "data", shards=3, rows=600)
    last = tmp_path / "data" / "part-00002.tfrecord.gz"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) - 300])
    result = _run(train_command(tmp_path / "run", pattern))
    assert result.returncode == 1
    line = _last_line(result.stderr)
    assert line.startswith(f"pipelines.train: error: cannot read input file {last}: truncated record at "), line
    assert "Traceback" not in result.stderr
