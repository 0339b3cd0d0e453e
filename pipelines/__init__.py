"""absl entry points, one per job: `python -m pipelines.<job>`.

Python imports this package before the job's module, so this is where a job run from the command line quiets
TensorFlow's and Beam's logging (`recsys.console`, `--verbosity=1` brings it back): before anything imports them.

Every job parses its flags with `parse_flags` (`app.run(main, flags_parser=parse_flags)`): a flag value absl
cannot parse ends the job with one stderr line that names the flag, the value and what is allowed, and exit
status 1, e.g. `train: error: --config.data.batch_size=abc: expected an integer (see --helpfull)`.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence

# While `python -m pipelines.<job>` imports the parent package, sys.argv[0] is "-m" (Python's documented
# behaviour); a program or test that merely imports a job module keeps its own logging.
if sys.argv[:1] == ["-m"]:
    from recsys import console

    console.configure(sys.argv)

EXIT_BAD_FLAGS = 1

# absl's message for a value it rejected: "flag --name=value: reason".
_ILLEGAL_VALUE = re.compile(r"flag --(?P<name>[^=\s]+)=(?P<value>.*?): (?P<reason>.*)", re.DOTALL)
_REQUIRED = "must have a value other than None"


def job_name(argv0: str = "") -> str:
    """The job's name for its messages: `train` for `python -m pipelines.train` (else `argv0`'s file name)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name.startswith("pipelines."):
        return spec.name.removesuffix(".__main__").removeprefix("pipelines.")
    return os.path.splitext(os.path.basename(argv0 or sys.argv[0]))[0]


def allowed_values(flag) -> str | None:
    """What a flag accepts, in words ("an integer", "one of frequency|hash", ...); None for free text."""
    from absl.flags import _argument_parser as parsers

    parser = flag.parser
    if isinstance(parser, parsers.EnumParser):
        return f"one of {'|'.join(parser.enum_values)}"
    if isinstance(parser, parsers.EnumClassParser):
        return f"one of {'|'.join(parser.member_names)}"
    if isinstance(parser, parsers.BooleanParser):
        return "true or false"
    if isinstance(parser, parsers.NumericParser):
        return parser.syntactic_help  # "an integer", "a non-negative integer", "a number in the range [0, 1]"
    return None


def _one_line(text: str) -> str:
    return " | ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())


def flag_error_message(error: Exception, flag_values, argv: Sequence[str]) -> str:
    """One line for an error raised while parsing `argv`: the flag, the bad value and what is allowed."""
    from absl import flags

    message = str(error).strip()
    if isinstance(error, flags.Error):
        match = _ILLEGAL_VALUE.fullmatch(message)
        if match is None:
            return _one_line(message)  # e.g. "Unknown command line flag 'x'. Did you mean: y ?"
        name, value, reason = match.group("name", "value", "reason")
        if _REQUIRED in reason:
            return f"--{name} is required"
        allowed = allowed_values(flag_values[name]) if name in flag_values else None
        return f"--{name}={value}: {f'expected {allowed}' if allowed else _one_line(reason)}"
    if isinstance(error, (AttributeError, KeyError)):
        # ml_collections: an override of a key the config does not have, "'key'\nDid you mean ...".
        key = re.search(r"'([^'\\]+)", message)
        key = key.group(1) if key else ""
        given = next((arg for arg in argv if re.search(rf"\.{re.escape(key)}(=|\.|$)", arg.split("=")[0] + "=")),
                     None) if key else None
        hint = re.search(r"Did you mean [^?]*\?", message.replace("\\n", "\n").replace('\\"', '"'))
        return (f"{given or 'a --config override'}: the config has no key {key!r}"
                f"{'; ' + hint.group(0) if hint else ''}")
    return _one_line(message)


# The flag type of ml_collections' `DEFINE_config_file` flags.
_CONFIG_FILE_FLAG_TYPE = "config object"


def config_file_error(flag_values) -> str | None:
    """The error of a config file that could not be loaded, in one line; None when every config loaded.

    ml_collections defers a config file's load error to the first use of the config; this makes it a flag error.
    """
    for name in list(flag_values):
        flag = flag_values[name]
        if flag.parser.flag_type() != _CONFIG_FILE_FLAG_TYPE or flag.value is None:
            continue
        try:
            flag.value.keys  # noqa: B018  (a config that failed to load raises its error on any attribute)
        except OSError as e:
            detail = _one_line(e.__cause__ or e).split(" | ")[-1]
            return f"--{name}: cannot load the config file: {detail}"
    return None


def parse_flags(argv: Sequence[str], known_only: bool = False, flag_values=None) -> list[str]:
    """absl's flag parsing for `app.run(main, flags_parser=parse_flags)`; a bad flag exits with one stderr line.

    Returns the arguments that are not flags (with `known_only`, also the unknown flags: the preprocessing job
    hands them to Beam). On a value absl cannot parse, an unknown or missing required flag, an override of a
    config key that does not exist or a config file that cannot be loaded, writes
    `<job>: error: <flag>=<value>: expected <what is allowed> (see --helpfull)` to stderr and exits with
    `EXIT_BAD_FLAGS`, without absl's second line or a traceback.
    """
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    try:
        arguments = flag_values(list(argv), known_only=known_only)
    except (flags.Error, AttributeError, KeyError) as e:
        message = flag_error_message(e, flag_values, argv)
    else:
        message = config_file_error(flag_values)
        if message is None:
            return arguments
    sys.stderr.write(f"{job_name(argv[0] if argv else '')}: error: {message} (see --helpfull)\n")
    sys.stderr.flush()
    sys.exit(EXIT_BAD_FLAGS)


def parse_known_flags(argv: Sequence[str]) -> list[str]:
    """`parse_flags` that leaves unknown flags in the returned arguments (for the preprocessing job's Beam options)."""
    return parse_flags(argv, known_only=True)
