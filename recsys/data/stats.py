"""Column statistics of a Criteo-format log, and a Markdown table comparing two logs (docs/data.md).

Rows are validated with `recsys.data.criteo.parse_line`; bad rows are counted, not used. Per column:

  * integers: missing rate, share of zeros and negatives, median and 99th percentile of the present values;
  * categoricals: missing rate, distinct values, share of the present values covered by the most frequent
    value, by the top 10 values and by the top 1% of distinct values, and the share of values seen once.

Cardinality and tail shares depend on the number of rows, so compare logs of equal length.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
from collections.abc import Iterable, Sequence

import numpy as np

from recsys.data import criteo


@dataclasses.dataclass(frozen=True)
class IntStats:
    missing: float
    zero: float
    negative: float
    median: float
    p99: float


@dataclasses.dataclass(frozen=True)
class CatStats:
    missing: float
    distinct: int
    top1: float
    top10: float
    top1pct: float
    singletons: float


@dataclasses.dataclass(frozen=True)
class LogStats:
    rows: int
    bad_rows: int
    ctr: float
    ints: dict[str, IntStats]
    cats: dict[str, CatStats]


def read_lines(path: str, limit: int | None = None) -> list[str]:
    """The first `limit` lines (all when None) of a plain or .gz text file."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="\n") as f:
        lines = []
        for line in f:
            if limit is not None and len(lines) >= limit:
                break
            lines.append(line)
    return lines


def log_stats(lines: Iterable[str]) -> LogStats:
    """Statistics of the valid rows among `lines`."""
    rows: list[criteo.CriteoRow] = []
    bad = 0
    for line in lines:
        try:
            rows.append(criteo.parse_line(line))
        except criteo.BadRowError:
            bad += 1
    if not rows:
        raise ValueError(f"no valid Criteo rows to summarise ({bad} bad rows)")
    n = len(rows)
    ints = {}
    for j, name in enumerate(criteo.INT_COLUMNS):
        present = np.array([r.ints[j] for r in rows if r.ints[j] is not None], dtype=np.float64)
        ints[name] = IntStats(
            missing=1.0 - len(present) / n,
            zero=float(np.mean(present == 0)) if len(present) else 0.0,
            negative=float(np.mean(present < 0)) if len(present) else 0.0,
            median=float(np.median(present)) if len(present) else float("nan"),
            p99=float(np.percentile(present, 99)) if len(present) else float("nan"),
        )
    cats = {}
    for j, name in enumerate(criteo.CAT_COLUMNS):
        counts = collections.Counter(r.cats[j] for r in rows if r.cats[j] is not None)
        frequencies = np.array(sorted(counts.values(), reverse=True), dtype=np.int64)
        present = int(frequencies.sum())
        top1pct = max(1, int(np.ceil(0.01 * len(frequencies))))
        cats[name] = CatStats(
            missing=1.0 - present / n,
            distinct=len(frequencies),
            top1=frequencies[:1].sum() / max(present, 1),
            top10=frequencies[:10].sum() / max(present, 1),
            top1pct=frequencies[:top1pct].sum() / max(present, 1),
            singletons=float(np.sum(frequencies == 1)) / max(present, 1),
        )
    return LogStats(n, bad, float(np.mean([r.label for r in rows])), ints, cats)


def comparison_table(stats: Sequence[LogStats], names: Sequence[str]) -> str:
    """Markdown tables (overview, integer columns, categorical columns) with one sub-column per log."""

    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    def both(values: Sequence[str]) -> str:
        return " / ".join(values)

    legend = both(names)
    out = [
        row(["", *names]),
        row(["---"] * (len(names) + 1)),
        row(["valid rows", *(f"{s.rows:,}" for s in stats)]),
        row(["bad rows", *(f"{s.bad_rows:,}" for s in stats)]),
        row(["CTR", *(f"{s.ctr:.4f}" for s in stats)]),
        "",
        f"Integer columns ({legend}); median and p99 of the present values:",
        "",
        row(["column", "missing", "zero", "negative", "median", "p99"]),
        row(["---"] * 6),
    ]
    for name in criteo.INT_COLUMNS:
        cols = [s.ints[name] for s in stats]
        out.append(
            row(
                [
                    name,
                    both([f"{c.missing:.3f}" for c in cols]),
                    both([f"{c.zero:.3f}" for c in cols]),
                    both([f"{c.negative:.3f}" for c in cols]),
                    both([f"{c.median:g}" for c in cols]),
                    both([f"{c.p99:.0f}" for c in cols]),
                ]
            )
        )
    out += [
        "",
        f"Categorical columns ({legend}); shares are of the present values:",
        "",
        row(["column", "missing", "distinct", "top-1 share", "top-10 share", "top-1% share", "seen once"]),
        row(["---"] * 7),
    ]
    for name in criteo.CAT_COLUMNS:
        cols = [s.cats[name] for s in stats]
        out.append(
            row(
                [
                    name,
                    both([f"{c.missing:.3f}" for c in cols]),
                    both([f"{c.distinct:,}" for c in cols]),
                    both([f"{c.top1:.3f}" for c in cols]),
                    both([f"{c.top10:.3f}" for c in cols]),
                    both([f"{c.top1pct:.3f}" for c in cols]),
                    both([f"{c.singletons:.3f}" for c in cols]),
                ]
            )
        )
    return "\n".join(out) + "\n"
