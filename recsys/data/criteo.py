"""The one definition of the Criteo click-log row and of validating and parsing one line.

Format (Criteo 1TB / Kaggle display-advertising logs), one example per line, 40 tab-separated fields:

    label <TAB> I1 .. I13 <TAB> C1 .. C26

`label` is 0 or 1; `I*` are integer counts (may be empty = missing, may be negative); `C*` are hashed
categorical values written as hex strings (may be empty = missing). Used by the Beam job, the TFDS
builder and the tests, so every path agrees on what a bad row is.
"""
from __future__ import annotations

import dataclasses
import math
import re

LABEL = "label"
TIME = "ts"
INT_COLUMNS: tuple[str, ...] = tuple(f"I{i}" for i in range(1, 14))
CAT_COLUMNS: tuple[str, ...] = tuple(f"C{i}" for i in range(1, 27))
COLUMNS: tuple[str, ...] = (LABEL, *INT_COLUMNS, *CAT_COLUMNS)
NUM_COLUMNS = len(COLUMNS)  # 40

_HEX = re.compile(r"^[0-9a-fA-F]{1,16}$")
_INT = re.compile(r"^[+-]?[0-9]+$")

# Reasons a row is rejected; the keys of summary.json's `bad_reasons`.
BLANK_LINE = "blank_line"
WRONG_COLUMN_COUNT = "wrong_column_count"
BAD_LABEL = "bad_label"
BAD_INTEGER = "bad_integer"
BAD_CATEGORICAL = "bad_categorical"
BAD_REASONS: tuple[str, ...] = (BLANK_LINE, WRONG_COLUMN_COUNT, BAD_LABEL, BAD_INTEGER, BAD_CATEGORICAL)


class BadRowError(ValueError):
    """A line that is not a valid Criteo row; `reason` is one of BAD_REASONS."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class CriteoRow:
    """One parsed row: missing values are None, categoricals lower-case hex strings."""

    label: int
    ints: tuple[int | None, ...]
    cats: tuple[str | None, ...]


def parse_line(line: str) -> CriteoRow:
    """Validates and parses one log line (a trailing newline is allowed).

    Raises:
      BadRowError: naming the reason and the offending column and value.
    """
    text = line.rstrip("\r\n")
    if not text.strip():
        return _raise(BLANK_LINE, "empty line")
    fields = text.split("\t")
    if len(fields) != NUM_COLUMNS:
        return _raise(WRONG_COLUMN_COUNT, f"expected {NUM_COLUMNS} tab-separated fields, got {len(fields)}")
    label_text = fields[0].strip()
    if label_text not in ("0", "1"):
        return _raise(BAD_LABEL, f"label must be 0 or 1, got {label_text!r}")
    ints: list[int | None] = []
    for name, value in zip(INT_COLUMNS, fields[1:14], strict=True):
        value = value.strip()
        if not value:
            ints.append(None)
        elif _INT.match(value):
            ints.append(int(value))
        else:
            return _raise(BAD_INTEGER, f"{name} must be an integer or empty, got {value!r}")
    cats: list[str | None] = []
    for name, value in zip(CAT_COLUMNS, fields[14:], strict=True):
        value = value.strip()
        if not value:
            cats.append(None)
        elif _HEX.match(value):
            cats.append(value.lower())
        else:
            return _raise(BAD_CATEGORICAL, f"{name} must be a hex string or empty, got {value!r}")
    return CriteoRow(label=int(label_text), ints=tuple(ints), cats=tuple(cats))


def transform_int(value: int | None) -> float:
    """Numeric feature transform: log(1 + max(x, 0)); missing and negative values map to 0.

    Counts are heavy-tailed (up to ~10^6); the log keeps pre-activations in a range where an
    activation's width parameter beta means something (see docs/data.md).
    """
    if value is None or value <= 0:
        return 0.0
    return math.log1p(value)


def _raise(reason: str, detail: str):
    raise BadRowError(reason, detail)


def hash_id(value: str, buckets: int) -> int:
    """Stable id of a hex categorical value in [1, buckets): `1 + int(value, 16) mod (buckets - 1)`.

    Criteo's categorical values are already 32-bit hashes, so their integer value modulo the bucket
    count spreads evenly; unlike Python's `hash()` (salted per process) the id never changes between
    runs, machines or days.
    """
    return 1 + int(value, 16) % (buckets - 1)
