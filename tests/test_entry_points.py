"""tests.entry_points.run_main: a job runs in the test process after a benchmark module that defines a flag of the
same name was imported (the order pytest-xdist may give), and the benchmark keeps its flag."""
from absl import flags

from recsys.bench import trainer as bench  # noqa: F401  (defines --batch_size)
from tests.entry_points import run_main


def test_a_job_runs_after_a_benchmark_that_defines_the_same_flag(tmp_path):
    result = run_main("pipelines.compare", "--models=a,b", f"--data={tmp_path}/none-*", f"--output={tmp_path}/o")
    assert result.returncode == 1 and "no files match" in result.stderr, result.stderr
    assert flags.FLAGS.find_module_defining_flag("batch_size") == "recsys.bench.trainer"
    assert "models" not in flags.FLAGS
