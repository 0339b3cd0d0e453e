"""The entry points' quiet console (`recsys.console`): only the project's lines by default, all with --verbosity=1.

The jobs run in real subprocesses without TF_CPP_MIN_LOG_LEVEL in their environment, as a user starts them.
"""
import gzip
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from recsys import console
from tests.conftest import CRITEO_SAMPLE, REPO_ROOT
from tests.training.helpers import FEATURES, toy_rows, train_command, write_examples

# A log line in absl's format (Python or C++): level letter, date, time, thread, file:line].
_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ (?P<file>[^:\s]+):\d+\] ")
# Files of this project that log at INFO on a default run.
# Log lines name their source file; the project's own are the modules under recsys/ and pipelines/ (not
# `__init__.py`, a name every third-party package has too).
_PROJECT_FILES = {path.name for package in ("recsys", "pipelines") for path in (REPO_ROOT / package).rglob("*.py")
                  if path.name != "__init__.py"}


def _user_env() -> dict:
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.pop("TF_CONFIG", None)
    return env


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=_user_env(), capture_output=True, text=True,
                          timeout=600)


def _third_party_lines(stderr: str) -> list[str]:
    """Lines a default run must not show: TensorFlow's C++ log and any log line from a file not of this project."""
    bad = []
    for line in stderr.splitlines():
        match = _LOG_LINE.match(line)
        if (match and match.group("file") not in _PROJECT_FILES) or "oneDNN" in line or "cuda" in line.lower() \
                or line.startswith(("WARNING: All log messages", "WARNING:root:", "INFO:")):
            bad.append(line)
    return bad


@pytest.mark.parametrize(
    "argv, verbosity",
    [
        (["job"], 0),
        (["job", "--verbosity=1"], 1),
        (["job", "--verbosity", "2"], 2),
        (["job", "-v", "1"], 1),
        (["job", "-v=1"], 1),
        (["job", "--v=1"], 1),
        (["job", "--verbosity=-1"], -1),
        (["job", "--verbosity=x"], 0),
        (["job", "--", "--verbosity=1"], 0),
    ],
)
def test_verbosity_is_read_from_the_command_line_as_absl_reads_it(argv, verbosity):
    assert console.verbosity_from_argv(argv) == verbosity


def test_cpp_log_lines_are_taken_out_and_everything_else_is_kept():
    text = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796015878.704922    3149 port.cc:153] oneDNN custom operations are on.\n"
        "I0000 00:00:1796015878.750324    3149 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.\n"
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.\n"
        "2024-01-01 12:00:00.000000: W tensorflow/core/foo.cc:1] old-style line\n"
        "/x/y.py:3: UserWarning: something the user should see\n"
        "  warnings.warn('something')\n"
        "a line of the program\n"
    )
    assert console.filter_cpp_log(text) == (
        "/x/y.py:3: UserWarning: something the user should see\n  warnings.warn('something')\na line of the program\n"
    )
    # Without the banner in front, and with the time absl writes before it is set up.
    assert console.filter_cpp_log(
        "before\nE0000 00:00:1796015879.617977    3149 cuda_platform.cc:52] failed call to cuInit\nafter\n"
    ) == "before\nafter\n"


def test_no_job_module_imports_tensorflow_when_imported():
    # Each job's main() configures logging before TensorFlow is imported, so no module may import it earlier.
    jobs = ["train", "compare", "study", "preprocess", "generate_clicklogs", "serve", "predict_client", "data_stats",
            "plot_activations", "plot_landscape"]
    # One interpreter for all: each job's flags are removed after its import (train and study both define --config).
    code = (
        "import importlib, sys\nfrom absl import flags\n"
        f"for job in {jobs}:\n"
        "    module = importlib.import_module('pipelines.' + job)\n"
        "    for flag in flags.FLAGS.get_key_flags_for_module(module):\n"
        "        delattr(flags.FLAGS, flag.name)\n"
        "    assert 'tensorflow' not in sys.modules, job\n"
    )
    result = _run("-c", code)
    assert result.returncode == 0, result.stderr


def _compare_args(tmp_path) -> list[str]:
    return ["-m", "pipelines.compare", "--models=a,b", f"--data={tmp_path}/nothing-*", f"--output={tmp_path}/o"]


@pytest.fixture(scope="module")
def quiet_compare(tmp_path_factory):
    """One default (quiet) run of compare with a --data glob that matches nothing: shared by the two tests below."""
    tmp_path = tmp_path_factory.mktemp("quiet_compare")
    return tmp_path, _run(*_compare_args(tmp_path))


def test_compare_error_is_the_only_stderr_line(quiet_compare):
    # --data is checked first, which imports TensorFlow: its start-up lines must not come before the error.
    tmp_path, result = quiet_compare
    assert result.returncode == 1
    assert result.stderr == f"compare: error: --data: no files match {tmp_path}/nothing-*\n"


def test_verbosity_brings_tensorflow_s_lines_back(quiet_compare):
    # What TensorFlow itself prints when imported on this machine; the quiet default hides it, --verbosity=1 not.
    raw = _run("-c", "import recsys, tensorflow")
    tensorflow_lines = [line for line in raw.stderr.splitlines() if _LOG_LINE.match(line)]
    if not tensorflow_lines:
        pytest.skip("TensorFlow prints nothing when imported here")
    tmp_path, quiet = quiet_compare
    verbose = _run(*_compare_args(tmp_path), "--verbosity=1")
    assert quiet.stderr.splitlines() == [f"compare: error: --data: no files match {tmp_path}/nothing-*"]
    verbose_lines = verbose.stderr.splitlines()
    assert verbose_lines[-1] == quiet.stderr.splitlines()[0]
    assert len([line for line in verbose_lines if _LOG_LINE.match(line)]) >= len(tensorflow_lines)


def test_default_training_run_shows_only_the_project_s_lines(tmp_path):
    FEATURES.save(str(tmp_path / "features.json"))
    write_examples(tmp_path / "part-0.tfrecord.gz", toy_rows(200))
    command = train_command(tmp_path / "run", str(tmp_path / "part-*"))
    result = _run(*command[1:])
    assert result.returncode == 0, result.stderr[-3000:]
    assert _third_party_lines(result.stderr) == []
    assert any("Done: 200 examples" in line for line in result.stderr.splitlines()), result.stderr


def test_training_error_is_the_only_stderr_line(tmp_path):
    command = train_command(tmp_path / "run", str(tmp_path / "nowhere" / "part-*.tfrecord.gz"))
    result = _run(*command[1:])
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("pipelines.train: error: `config.data.train` matches no files")
    assert "Traceback" not in result.stderr  # (tests/pipelines/test_train.py's missing-data test, slow since #17)
    assert not (tmp_path / "run").exists()


def test_default_preprocessing_run_shows_no_beam_lines_and_its_progress(tmp_path):
    lines = CRITEO_SAMPLE.read_text().splitlines(keepends=True)
    (tmp_path / "day_0.tsv").write_text("".join(lines[:200]))
    (tmp_path / "day_1.tsv.gz").write_bytes(gzip.compress("".join(lines[200:300]).encode()))
    kb = sum(os.path.getsize(tmp_path / name) for name in ("day_0.tsv", "day_1.tsv.gz")) / 1e3
    result = _run("-m", "pipelines.preprocess", f"--input={tmp_path}/day_*", f"--output_dir={tmp_path / 'out'}",
                  "--progress_every_seconds=0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _third_party_lines(result.stderr) == []
    assert result.stdout.startswith("preprocess: 300 rows in, 300 written")
    # Each pass over the input reports the bytes read (compressed for .gz) of the input's size.
    progress = [console.progress_message(line) for line in result.stderr.splitlines()]
    for name in ("preprocess pass 1/2 (counting lines and values)", "preprocess pass 2/2 (writing shards)"):
        reported = [m for m in progress if m and m.startswith(name + ": ")]
        assert any(f"/{kb:.1f} kB (" in m and " ETA " in m for m in reported), (name, result.stderr)
        assert reported[-1].startswith(f"{name}: done, {kb:.1f} kB in "), reported


def test_compare_bad_prediction_is_named_by_model_and_example(tmp_path):
    labels = np.arange(2000) % 2
    np.savetxt(tmp_path / "labels.txt", labels, fmt="%d")
    np.save(tmp_path / "first.npy", np.full(2000, 0.25))
    second = np.full(2000, 0.25)
    second[0] = 1.5
    np.save(tmp_path / "second.npy", second)
    result = _run("-m", "pipelines.compare", f"--predictions={tmp_path}/first.npy,{tmp_path}/second.npy",
                  f"--labels={tmp_path}/labels.txt", f"--output={tmp_path / 'out'}")
    assert result.returncode == 1
    assert result.stderr == (
        "compare: error: `predictions` must be probabilities in [0, 1]. Received 1.5 for model second, example 0\n"
    )


# --- One-line flag errors (pipelines.parse_flags) ----------------------------------------------------------------


def _job_flags():
    from absl import flags

    flag_values = flags.FlagValues()
    flags.DEFINE_integer("replicas", 2, "", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("seed", 0, "", flag_values=flag_values)
    flags.DEFINE_float("confidence", 0.95, "", lower_bound=0.0, upper_bound=1.0, flag_values=flag_values)
    flags.DEFINE_enum("vocab_mode", "frequency", ["frequency", "hash"], "", flag_values=flag_values)
    flags.DEFINE_bool("overwrite", False, "", flag_values=flag_values)
    flags.DEFINE_string("output", None, "", flag_values=flag_values)
    flags.mark_flag_as_required("output", flag_values=flag_values)
    return flag_values


@pytest.mark.parametrize(
    "args, message",
    [
        (["--replicas=x"], "--replicas=x: expected a positive integer"),
        (["--replicas=0"], "--replicas=0: expected a positive integer"),
        (["--seed=1.5"], "--seed=1.5: expected an integer"),
        (["--confidence=2"], "--confidence=2: expected a number in the range [0.0, 1.0]"),
        (["--vocab_mode=sorted"], "--vocab_mode=sorted: expected one of frequency|hash"),
        (["--overwrite=maybe"], "--overwrite=maybe: expected true or false"),
        ([], "--output is required"),
        (["--replica=3"], "Unknown command line flag 'replica'. Did you mean: replicas ?"),
    ],
)
def test_a_bad_flag_is_one_line_naming_the_flag_the_value_and_what_is_allowed(args, message, capsys):
    import pipelines

    argv = ["job", *(args if not args or args[0].startswith("--output") else [*args, "--output=o"])]
    with pytest.raises(SystemExit) as exit_info:
        pipelines.parse_flags(argv, flag_values=_job_flags())
    assert exit_info.value.code == pipelines.EXIT_BAD_FLAGS == 1
    assert capsys.readouterr().err == f"job: error: {message} (see --helpfull)\n"


def test_known_only_leaves_unknown_flags_for_beam():
    import pipelines

    assert pipelines.parse_flags(["job", "--output=o", "--runner=x", "a"], known_only=True,
                                 flag_values=_job_flags()) == ["job", "--runner=x", "a"]


def test_every_entry_point_parses_its_flags_with_parse_flags():
    jobs = [path for path in sorted((REPO_ROOT / "pipelines").glob("*.py")) if path.name != "__init__.py"]
    jobs.append(REPO_ROOT / "pipelines" / "preprocess" / "__main__.py")
    runs = {path.relative_to(REPO_ROOT).as_posix(): re.findall(r"app\.run\((.*)\)", path.read_text()) for path in jobs}
    runs = {job: calls for job, calls in runs.items() if calls}
    assert len(runs) == 11, sorted(runs)
    assert {job: calls for job, calls in runs.items()
            if calls not in (["main, flags_parser=parse_flags"], ["main, flags_parser=parse_known_flags"])} == {}


@pytest.mark.parametrize(
    "args, line",
    [
        (["-m", "pipelines.train", "--config=configs/base.py", "--config.data.batch_size=abc", "--workdir=w"],
         "train: error: --config.data.batch_size=abc: expected an integer (see --helpfull)"),
        (["-m", "pipelines.compare", "--bootstrap=x"],
         "compare: error: --bootstrap=x: expected an integer (see --helpfull)"),
    ],
)
def test_a_bad_flag_value_is_the_only_stderr_line_of_the_job(args, line, tmp_path):
    result = _run(*args)
    assert (result.returncode, result.stderr) == (1, line + "\n")
