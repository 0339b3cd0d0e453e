"""A quiet console for the command-line jobs: only the project's own lines unless `--verbosity` asks for more.

    from recsys import console
    console.configure(sys.argv)      # before TensorFlow or Beam is imported (pipelines/__init__.py does this)

A default run of `python -m pipelines.<job>` hides what TensorFlow, tf-keras and Beam log below ERROR:

- TensorFlow's C++ log (`TF_CPP_MIN_LOG_LEVEL=3`, unless the environment already sets it). TensorFlow's shared
  libraries also write their start-up lines ("oneDNN custom operations are on", "Could not find cuda drivers",
  the CPU-instructions notice) while `import tensorflow` runs, before that setting is read; those lines are taken
  out of stderr during the import (`_QuietTensorFlowImport`), and anything else written then is kept.
- Python log records of third-party code (anything installed in site-packages: TensorFlow, tf-keras, Beam and
  its type-hint notes, ...) below ERROR, through a filter on absl's handler; the `tensorflow` and `apache_beam`
  loggers are set to ERROR so their records are not even built.

`--verbosity=1` (absl's flag, also `-v 1`) or higher leaves all of this alone, so everything comes back. The
setting is read from the command line before absl parses it, because the import must be caught before any job
module imports TensorFlow; `configure` can be called again with absl's parsed value (`--flagfile`) and undoes
what no longer applies. Python exceptions are not affected: errors still surface as the jobs' one-line messages.

Long work reports progress through `Progress`, at INFO so the quiet console shows it:

    progress = console.Progress("scoring 2 models", total=80_000, unit="examples")
    for batch in batches:
        ...
        progress.add(len(batch))    # "scoring 2 models: 8192/80000 examples (10.2%) ETA 0:00:41 1650 examples/s"
    progress.finish()               # every `every_seconds` at most, and a last line when any was logged
"""
from __future__ import annotations

import datetime
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

#: Loggers of libraries that log a lot at INFO/WARNING; set to ERROR in a quiet run.
QUIET_LOGGERS = ("tensorflow", "apache_beam")

_TF_CPP_LEVEL = "3"  # 3 hides C++ ERROR lines too, e.g. "failed call to cuInit" on machines without a GPU.

# A C++ log line of absl (`I1130 05:19:06.834266  1234 port.cc:153] ...`; before absl is set up the time reads
# `00:00:1796015878.704922`) or of older TensorFlow
# (`2024-01-01 12:00:00.000000: I tensorflow/...`), and the banner absl prints before its logging is set up.
_CPP_LOG_LINE = re.compile(
    r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] )"
)
# The second line of the one multi-line start-up message (cpu_feature_guard.cc's CPU-instructions notice).
_CPU_NOTICE_CONTINUATION = "To enable the following instructions:"
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"

#: Seconds between two progress lines of `Progress` (tests pass a smaller interval).
PROGRESS_EVERY_SECONDS = 10.0

_state: dict = {"quiet": False, "set_env": False, "finder": None, "filter": None}


def verbosity_from_argv(argv: Sequence[str]) -> int:
    """absl's `--verbosity` (`-v`, `--v`) as given on a command line, before absl parses it; 0 when absent."""
    value = None
    args = list(argv[1:])
    for i, arg in enumerate(args):
        if arg == "--":
            break
        for name in ("--verbosity", "-verbosity", "--v", "-v"):
            if arg == name and i + 1 < len(args):
                value = args[i + 1]
            elif arg.startswith(name + "="):
                value = arg[len(name) + 1:]
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0  # absl reports the bad value when it parses the flags


def configure(argv: Sequence[str] | int | None = None) -> bool:
    """Quiets third-party logging unless the verbosity is 1 or more; returns whether the console is quiet.

    Args:
      argv: the command line (default `sys.argv`), or a verbosity already parsed by absl.
    """
    if argv is None:
        argv = sys.argv
    verbosity = argv if isinstance(argv, int) else verbosity_from_argv(argv)
    if verbosity >= 1:
        _restore()
    else:
        _quiet()
    return _state["quiet"]


def _quiet() -> None:
    if _state["quiet"]:
        return
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = _TF_CPP_LEVEL
        _state["set_env"] = True
    if "tensorflow" not in sys.modules:
        _state["finder"] = _QuietTensorFlowImport()
        sys.meta_path.insert(0, _state["finder"])
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    from absl import logging as absl_logging

    # absl's handler on the root logger now rather than at app.run, so that a third-party record logged while
    # a job module is imported (Beam warns on the root logger) meets the filter instead of a default handler.
    absl_logging.use_absl_handler()
    _state["filter"] = _ThirdPartyFilter()
    absl_logging.get_absl_handler().addFilter(_state["filter"])
    _state["quiet"] = True


def _restore() -> None:
    if not _state["quiet"]:
        return
    if _state["set_env"] and "tensorflow" not in sys.modules:
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        _state["set_env"] = False
    if _state["finder"] in sys.meta_path:
        sys.meta_path.remove(_state["finder"])
    _state["finder"] = None
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    from absl import logging as absl_logging

    absl_logging.get_absl_handler().removeFilter(_state["filter"])
    _state["filter"] = None
    _state["quiet"] = False


def _third_party_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {os.path.realpath(paths[key]) for key in ("purelib", "platlib") if key in paths}
    return tuple(root + os.sep for root in sorted(roots))


class _ThirdPartyFilter(logging.Filter):
    """Drops records below ERROR logged from code installed in site-packages (the project's own code is not)."""

    def __init__(self) -> None:
        super().__init__()
        self._roots = _third_party_roots()
        self._third_party: dict[str, bool] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        path = record.pathname or ""
        if path not in self._third_party:
            self._third_party[path] = os.path.realpath(path).startswith(self._roots)
        return not self._third_party[path]


def filter_cpp_log(text: str) -> str:
    """`text` without TensorFlow's C++ log lines and absl's start-up banner; every other line is kept."""
    return "".join(
        line for line in text.splitlines(keepends=True)
        if not (_CPP_LOG_LINE.match(line) or line.startswith((_ABSL_BANNER, _CPU_NOTICE_CONTINUATION)))
    )


class _SilencedStderr:
    """Sends file descriptor 2 to a temporary file; on exit writes back what `filter_cpp_log` keeps."""

    def __enter__(self):
        sys.stderr.flush()
        self._capture = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._capture.fileno(), 2)
        return self

    def __exit__(self, *exc_info) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._capture.seek(0)
        text = self._capture.read().decode("utf-8", errors="replace")
        self._capture.close()
        kept = filter_cpp_log(text)
        if kept:
            sys.stderr.write(kept)
            sys.stderr.flush()


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs the first `import tensorflow` with its C++ start-up lines taken out of stderr (then steps aside)."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _SilencedLoader(spec.loader)
        return spec


class _SilencedLoader(importlib.abc.Loader):
    def __init__(self, loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        # The module keeps TensorFlow's own loader, so nothing else sees this wrapper.
        module.__loader__ = module.__spec__.loader = self._loader
        with _SilencedStderr():
            self._loader.exec_module(module)


# --- Progress of long work ----------------------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """`h:mm:ss` (rounded to the second)."""
    return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))


def format_position(done: float, total: float | None, rate: float, unit: str = "",
                    quantity: Callable[[float], str] = lambda n: str(int(n))) -> str:
    """`done/total[ unit] (pct%) ETA h:mm:ss` at `rate` per second, or `done[ unit] (total unknown)` without a total.

    The position part of every progress line (the trainer's and `Progress`'s); `quantity` formats a count.
    """
    unit = f" {unit}" if unit else ""
    if not total:
        return f"{quantity(done)}{unit} (total unknown)"
    eta = format_duration(max(total - done, 0) / max(rate, 1e-9))
    return f"{quantity(done)}/{quantity(total)}{unit} ({100.0 * done / total:.1f}%) ETA {eta}"


# A line `Progress` logged, in absl's log format (the record's file is this module): the message after "] ".
_PROGRESS_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ console\.py:\d+\] (?P<message>.*)$")


def progress_message(line: str) -> str | None:
    """The message of a progress line (`Progress`) in a child job's absl log output, else None; a job that runs
    another in a child process logs these again, so that its console shows the child's progress."""
    match = _PROGRESS_LOG_LINE.match(line.rstrip("\n"))
    return match.group("message") if match else None


def _byte_scale(total: int | None) -> tuple[float, str]:
    """The unit that shows `total` bytes with a few digits: kB, MB or GB (decimal)."""
    for scale, unit in ((1e9, "GB"), (1e6, "MB")):
        if total and total >= scale:
            return scale, unit
    return 1e3, "kB"


class Progress:
    """Logs `<what>: done/total <unit> (pct%) ETA h:mm:ss <rate> <unit>/s` at INFO, at most every `every_seconds`.

    The rate is the average since the start, so the ETA is steady. When `done` reaches `total`, or at `finish()`,
    a last line `<what>: done, <done> <unit> in h:mm:ss (<rate> <unit>/s)` follows if any progress line was logged,
    so work shorter than `every_seconds` stays silent. `unit="bytes"` shows kB, MB or GB (by the size of `total`),
    with one decimal. `add` may be called from several threads (the Beam job's workers).

    Args:
      what: what is being done, the start of every line (e.g. "scoring 2 models on 40000 examples").
      total: the count `done` reaches at the end; None when unknown ("(total unknown)", no ETA).
      unit: what is counted, for the rate ("examples", "rows", "bytes").
      every_seconds: the least time between two lines; 0 logs on every `add`.
      clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, what: str, total: int | None, unit: str = "examples",
                 every_seconds: float = PROGRESS_EVERY_SECONDS, clock: Callable[[], float] = time.monotonic):
        if total is not None and total < 0:
            raise ValueError(f"`total` must be >= 0 or None. Received: total={total}")
        if every_seconds < 0:
            raise ValueError(f"`every_seconds` must be >= 0. Received: every_seconds={every_seconds}")
        self.what = what
        self.total = total
        if unit == "bytes":
            scale, self.unit = _byte_scale(total)
            self._quantity = lambda n: f"{n / scale:.1f}"
        else:
            self.unit, self._quantity = unit, lambda n: str(int(n))
        self.every_seconds = every_seconds
        self.done = 0
        self.lines = 0
        self._clock = clock
        self._started = self._last = clock()
        self._finished = False
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        """Counts `count` more units done; logs a line when `every_seconds` have passed since the last one."""
        with self._lock:
            self.done += count
            now = self._clock()
            if not self._finished and now - self._last >= self.every_seconds:
                self._last = now
                self.lines += 1
                from absl import logging as absl_logging

                rate = self.done / max(now - self._started, 1e-9)
                absl_logging.info("%s: %s %s %s/s", self.what,
                                  format_position(self.done, self.total, rate, self.unit, self._quantity),
                                  self._quantity(rate), self.unit)
            if self.total is not None and self.done >= self.total:
                self._finish(now)

    def finish(self) -> None:
        """The last line (if any progress line was logged); later calls and `add`s log nothing."""
        with self._lock:
            self._finish(self._clock())

    def _finish(self, now: float) -> None:
        if self._finished:
            return
        self._finished = True
        if not self.lines:
            return
        from absl import logging as absl_logging

        seconds = now - self._started
        absl_logging.info("%s: done, %s %s in %s (%s %s/s)", self.what, self._quantity(self.done), self.unit,
                          format_duration(seconds), self._quantity(self.done / max(seconds, 1e-9)), self.unit)
