"""A job's `main` run in the test process, as `app.run` would run it, for tests that check what a job does with its
flags rather than the process boundary (issue 17: a fresh Python with TensorFlow costs seconds of CPU per test).

    result = run_main("pipelines.plot_landscape", "--output_dir=/tmp/x", "--grid=1")
    assert result.returncode == 2 and "grid=1" in result.stderr

Each entry point keeps at least one test in a real `python -m pipelines.<job>` subprocess for what only a process
shows: the exit status through app.run, the quiet console (tests/pipelines/test_console.py).
"""
import contextlib
import importlib
import io
import os
import subprocess
import sys
from collections.abc import Callable

from absl import flags

from recsys import console
from tests.conftest import REPO_ROOT


def run_main(module_name: str, *args: str, parser: Callable | None = None) -> subprocess.CompletedProcess:
    """Imports `module_name`, parses `args` as its command line and calls its `main`; returns the exit status and
    what the job printed. As app.run does: a flag error exits 1 with "FATAL Flags parsing error: ...",
    `sys.exit("text")` prints the text and exits 1, a returned int is the status.

    Args:
      parser: the job's flags parser (app.run's `flags_parser`), e.g. `pipelines.parse_known_flags`; it gets argv
        and returns the argv handed to `main`, and prints its own one-line error and exits on a bad flag. Default:
        absl's FLAGS(argv).

    The flags the module defines are removed afterwards and the module forgotten, so jobs that define flags of the
    same name (train and study: --config, --workdir) can each be run; the console's quiet settings are undone.
    """
    parked = _park_other_jobs_flags(module_name)
    before = set(flags.FLAGS)
    was_imported = module_name in sys.modules
    was_parsed = flags.FLAGS.is_parsed()
    cwd, saved_argv = os.getcwd(), sys.argv
    stdout, stderr = io.StringIO(), io.StringIO()
    argv = [module_name.rsplit(".", 1)[-1], *args]
    status = 0
    try:
        os.chdir(REPO_ROOT)  # config files are given relative to the repository, as the docs run the jobs
        sys.argv = argv  # what app.run parses; ml_collections reads --config.<key> overrides from it
        module = importlib.import_module(module_name)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                try:
                    remaining = parser(argv) if parser else flags.FLAGS(argv)
                except flags.Error as e:
                    print(f"FATAL Flags parsing error: {e}", file=sys.stderr)
                    sys.exit(1)
                returned = module.main(remaining)
                status = returned if isinstance(returned, int) else 0
            except SystemExit as e:
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
                    status = 1
                else:
                    status = e.code or 0
    finally:
        os.chdir(cwd)
        sys.argv = saved_argv
        console.configure(1)  # undoes what a quiet main set up in this process
        # The job's own flags and its config's `--config.<key>` overrides; flags that a library imported on the way
        # defined (absl.logging's --verbosity, ...) stay, as the library stays imported.
        for name in set(flags.FLAGS) - before:
            if name in flags.FLAGS and ("." in name or flags.FLAGS.find_module_defining_flag(name) == module_name):
                delattr(flags.FLAGS, name)
        if not was_parsed:
            flags.FLAGS.unparse_flags()
        if not was_imported:
            sys.modules.pop(module_name, None)
        for owner, flag in parked:
            if flag.name not in flags.FLAGS:  # once, however many modules registered it
                flags.FLAGS[flag.name] = flag
            flags.FLAGS.register_flag_by_module(owner, flag)
    return subprocess.CompletedProcess(argv, status, stdout.getvalue(), stderr.getvalue())


def _park_other_jobs_flags(module_name: str) -> list[tuple[str, flags.Flag]]:
    """Removes the flags of other entry points a test imported (a benchmark's module, e.g. `recsys.bench.trainer`
    for its data writer) for the duration of one `run_main`, so the job can define flags of the same name (both
    define --batch_size); returns them (with their module) to put back."""
    parked = []
    for owner, owned in flags.FLAGS.flags_by_module_dict().items():
        if owner != module_name and owner.startswith(("recsys.bench.", "pipelines.")):
            parked.extend((owner, flag) for flag in owned)
    for _, flag in parked:
        if flag.name in flags.FLAGS:
            delattr(flags.FLAGS, flag.name)
    return parked


def run_command(command: list[str]) -> subprocess.CompletedProcess:
    """`[sys.executable, "-m", "pipelines.<job>", *args]` (e.g. `tests.training.helpers.train_command`) run in this
    process by `run_main`, with the job's own flags parser (`pipelines.parse_flags`; the preprocessing job's
    `parse_known_flags`). For tests of what a job does with its input; the process boundary has its own tests."""
    from pipelines import parse_flags, parse_known_flags

    if command[:2] != [sys.executable, "-m"] or not command[2].startswith("pipelines."):
        raise ValueError(f"not a `python -m pipelines.<job>` command: {command[:3]}")
    module = command[2]
    if module == "pipelines.preprocess":
        return run_main("pipelines.preprocess.__main__", *command[3:], parser=parse_known_flags)
    return run_main(module, *command[3:], parser=parse_flags)
