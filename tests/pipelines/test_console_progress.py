"""Progress lines with a total and an ETA (`recsys.console.Progress`) where long work happens: the Beam job, the
study's data step and held-out scoring, the comparator's scoring. Every run passes a report interval of 0, so each
step logs a line; the totals are computed here from the inputs. The Beam job's lines: tests/pipelines/test_console.py
(`test_default_preprocessing_run_shows_no_beam_lines_and_its_progress`)."""
import logging
import os

import pytest
from absl import logging as absl_logging

from recsys import console


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def messages(caplog):
    """The messages logged at INFO or above from now on (absl's records too; the Beam job's worker threads too)."""
    # absl logs INFO in a job (app.run); outside one its first record would set its logger to WARNING.
    previous = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    caplog.set_level(logging.INFO)
    yield lambda: [record.getMessage() for record in caplog.records]
    absl_logging.set_verbosity(previous)


# --- console.Progress -----------------------------------------------------------------------------------------------


def test_progress_logs_at_most_every_interval_with_total_rate_and_eta(messages):
    clock = _Clock()
    progress = console.Progress("scoring", 1000, "examples", every_seconds=10, clock=clock)
    clock.now += 4
    progress.add(100)  # 4 s after the start: too early for a line
    clock.now += 6
    progress.add(100)  # 200 done in 10 s: 20/s, 800 left = 40 s
    clock.now += 5
    progress.add(300)  # 5 s after the last line: none
    clock.now += 5
    progress.add(500)  # done: the last line comes at once
    progress.add(10)   # after the end: nothing
    progress.finish()
    assert messages() == [
        "scoring: 200/1000 examples (20.0%) ETA 0:00:40 20 examples/s",
        "scoring: 1000/1000 examples (100.0%) ETA 0:00:00 50 examples/s",
        "scoring: done, 1000 examples in 0:00:20 (50 examples/s)",
    ]


def test_progress_without_a_total_in_bytes_and_short_work_stays_silent(messages):
    clock = _Clock()
    unknown = console.Progress("reading", None, "bytes", every_seconds=1, clock=clock)
    clock.now += 2
    unknown.add(3_500_000)
    unknown.finish()
    quick = console.Progress("quick", 10, every_seconds=1, clock=clock)
    quick.add(10)
    assert messages() == [
        "reading: 3500.0 kB (total unknown) 1750.0 kB/s",  # no total: kB, and no ETA
        "reading: done, 3500.0 kB in 0:00:02 (1750.0 kB/s)",
    ]
    in_megabytes = console.Progress("reading", 250_000_000, "bytes", every_seconds=0, clock=clock)
    clock.now += 1
    in_megabytes.add(50_000_000)
    assert messages()[-1] == "reading: 50.0/250.0 MB (20.0%) ETA 0:00:04 50.0 MB/s"
    with pytest.raises(ValueError, match="every_seconds=-1"):
        console.Progress("x", 1, every_seconds=-1)


def test_trainer_position_keeps_its_format():
    assert console.format_position(1000, 5000, 100.0) == "1000/5000 (20.0%) ETA 0:00:40"
    assert console.format_position(1000, None, 100.0) == "1000 (total unknown)"


def test_progress_lines_of_a_child_job_are_recognised():
    line = "I1130 07:47:43.563322 139743965350784 console.py:298] preprocess pass 1/2 (x): 1.0/2.0 kB (50.0%) ETA"
    assert console.progress_message(line + "\n") == "preprocess pass 1/2 (x): 1.0/2.0 kB (50.0%) ETA"
    assert console.progress_message("I1130 07:47:43.563322 1 transforms.py:3] wrote part-0") is None


# --- The study ---------------------------------------------------------------------------------------------------


def test_study_generation_and_split_report_rows_and_bytes(tmp_path, messages):
    from recsys.data.synthetic import GeneratorConfig, write_clicklogs
    from recsys.study.data import _count_lines

    raw, rows = str(tmp_path / "clicks.tsv.gz"), 2000
    write_clicklogs(raw, GeneratorConfig(rows=rows, seed=0), progress=console.Progress("generating", rows, "rows", 0))
    assert messages()[0].startswith(f"generating: {rows}/{rows} rows (100.0%) ETA 0:00:00 ")
    assert messages()[1].startswith(f"generating: done, {rows} rows in ")
    assert _count_lines([raw], progress_every_seconds=0) == [rows]
    kb = os.path.getsize(raw) / 1e3
    lines = [m for m in messages() if m.startswith("study data: counting the log's lines for the held-out split: ")]
    assert f"/{kb:.1f} kB (100.0%) ETA 0:00:00" in lines[-2] and f"done, {kb:.1f} kB in" in lines[-1], lines


@pytest.mark.slow
def test_study_data_step_shows_generation_split_and_the_beam_job_s_progress(tmp_path, messages):
    from configs import base
    from recsys.study.config import base_config
    from recsys.study.data import prepare_data

    data = base_config(base.get_config()).data
    data.generate_rows, data.rows_per_shard = 1200, 400
    prepare_data(data, str(tmp_path), progress_every_seconds=0)
    logged = messages()
    raw_kb = os.path.getsize(tmp_path / "raw" / "clicks.tsv.gz") / 1e3
    assert "study data: generating the click log: done, 1200 rows in" in " ".join(logged), logged
    assert any(m.startswith("study data: counting the log's lines for the held-out split: ") and
               f"/{raw_kb:.1f} kB (100.0%)" in m for m in logged), logged
    # The Beam job ran in a child process: its lines are logged here, with the input's size as their total.
    for name in ("preprocess pass 1/3 (counting lines)", "preprocess pass 3/3 (writing shards)"):
        assert f"{name}: done, {raw_kb:.1f} kB in" in " ".join(logged), (name, logged)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A toy SavedModel and 50 held-out examples in two files (GZIP, plain), shared by the scoring tests."""
    from recsys.testing import export_toy_saved_model, toy_feature_set, write_toy_tfrecords

    root = tmp_path_factory.mktemp("toy")
    features = toy_feature_set()
    features.save(str(root / "features.json"))
    write_toy_tfrecords(str(root / "eval-0.tfrecord.gz"), features, 30, seed=1)
    write_toy_tfrecords(str(root / "eval-1.tfrecord"), features, 20, seed=2)
    export_toy_saved_model(str(root / "model"), features, seed=0)
    return root, features


def test_held_out_scoring_reports_each_model_against_the_held_out_size(toy, messages):
    from recsys.study.data import EvalSet

    root, _ = toy
    eval_set = EvalSet((str(root / "eval-0.tfrecord.gz"),), str(root / "features.json"), batch_size=8,
                       progress_every_seconds=0)
    assert eval_set.score(str(root / "model")).shape == (30,)
    what = f"scoring {root / 'model'} on the held-out data"
    lines = [m for m in messages() if m.startswith(what)]
    assert [m.split(" ETA ")[0] for m in lines[:-1]] == [
        f"{what}: {done}/30 examples ({100 * done / 30:.1f}%)" for done in (8, 16, 24, 30)]
    assert lines[-1].startswith(f"{what}: done, 30 examples in ")


# --- The comparator ------------------------------------------------------------------------------------------------


def test_comparator_reports_predictions_of_examples_times_models(toy, messages):
    from recsys.metrics import comparison
    from recsys.serving.scorer import SavedModelScorer

    root, features = toy
    scorers = [SavedModelScorer(str(root / "model")), SavedModelScorer(str(root / "model"))]
    comparison.score_records(str(root / "eval-*"), features, scorers, None, batch_size=20, progress_every_seconds=0)
    what = f"scoring 2 model(s) on 50 examples of {root / 'eval-*'}"
    lines = [m for m in messages() if m.startswith(what)]
    assert [m.split(" ETA ")[0] for m in lines[:-1]] == [
        f"{what}: {done}/100 predictions ({done:.1f}%)" for done in (20, 40, 60, 80, 90, 100)]
    assert lines[-1].startswith(f"{what}: done, 100 predictions in ")
