"""The shared Criteo row parser: what is a good row, what is a bad one and why."""
import math

import pytest

from recsys.data import criteo
from tests.conftest import CRITEO_SAMPLE


def _row(label="0", ints=None, cats=None):
    ints = ints if ints is not None else ["1"] * 13
    cats = cats if cats is not None else ["68fd1e64"] * 26
    return "\t".join([label, *ints, *cats]) + "\n"


def test_parses_good_row_with_missing_values():
    ints = ["5", "", "-2"] + ["0"] * 10
    cats = ["", "A0aaFFa6"] + ["68fd1e64"] * 24
    row = criteo.parse_line(_row("1", ints, cats))
    assert row.label == 1
    assert row.ints[:3] == (5, None, -2)
    assert row.cats[:2] == (None, "a0aaffa6")
    assert len(row.ints) == 13 and len(row.cats) == 26


@pytest.mark.parametrize(
    "line,reason",
    [
        ("\n", criteo.BLANK_LINE),
        ("   \t  \n", criteo.BLANK_LINE),
        ("\t".join(["0"] * 39), criteo.WRONG_COLUMN_COUNT),
        ("\t".join(["0"] * 41), criteo.WRONG_COLUMN_COUNT),
        (_row(label="2"), criteo.BAD_LABEL),
        (_row(label=""), criteo.BAD_LABEL),
        (_row(ints=["x1"] + ["1"] * 12), criteo.BAD_INTEGER),
        (_row(ints=["1.5"] + ["1"] * 12), criteo.BAD_INTEGER),
        (_row(cats=["zzzz"] + ["ab"] * 25), criteo.BAD_CATEGORICAL),
    ],
)
def test_bad_rows_raise_with_reason(line, reason):
    with pytest.raises(criteo.BadRowError) as err:
        criteo.parse_line(line)
    assert err.value.reason == reason
    assert reason in str(err.value)


def test_bad_integer_message_names_column_and_value():
    with pytest.raises(criteo.BadRowError, match=r"I1 must be an integer or empty, got 'x1'"):
        criteo.parse_line(_row(ints=["x1"] + ["1"] * 12))


def test_transform_int():
    assert criteo.transform_int(None) == 0.0
    assert criteo.transform_int(-3) == 0.0
    assert criteo.transform_int(0) == 0.0
    assert criteo.transform_int(9) == pytest.approx(math.log(10.0))


def test_bundled_sample_parses_completely():
    with open(CRITEO_SAMPLE) as f:
        rows = [criteo.parse_line(line) for line in f]
    assert len(rows) == 10_000
    ctr = sum(r.label for r in rows) / len(rows)
    assert 0.02 < ctr < 0.035  # SOURCE.md: CTR 2.65%
