"""Examples grouped by query, for per-query metrics (PQAUC, swap rate, top-k overlap).

Examples are grouped stably (input order kept inside a query) and processed in blocks of queries of similar
size, each block padded to a [queries, L] matrix so one vectorised NumPy step covers many queries. Block size
is bounded, so memory stays bounded whatever the query-size distribution.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from recsys.metrics import validation


class QueryLayout:
    """The examples of each query, contiguous and in input order.

    Attributes: `codes` (dense query code 0..Q−1 per input example), `order` (input indices grouped by query),
    `sizes` and `starts` (per query, into `order`).
    """

    def __init__(self, query_ids):
        self.codes = validation.check_query_ids(query_ids)
        n = self.codes.size
        self.sizes = np.bincount(self.codes)
        self.starts = np.concatenate(([0], np.cumsum(self.sizes)[:-1]))
        # A stable grouping via one fast unstable sort of code·n + index (exact in uint64 while Q·n < 2**64).
        if self.sizes.size * n < 2**63:
            keys = self.codes.astype(np.uint64) * np.uint64(n) + np.arange(n, dtype=np.uint64)
            keys.sort()
            self.order = (keys % np.uint64(n)).astype(np.int64)
        else:
            self.order = np.argsort(self.codes, kind="stable")

    @property
    def num_queries(self) -> int:
        return int(self.sizes.size)

    def blocks(self, max_elements: int, quadratic: bool = False) -> Iterator[tuple[np.ndarray, int]]:
        """Yields (query codes, padded length L) with len(codes)·L (or ·L² if `quadratic`) ≤ max_elements.

        A single query larger than the budget is yielded alone (callers split it further if they must).
        """
        by_size = np.argsort(self.sizes, kind="stable")
        sorted_sizes = self.sizes[by_size]
        cost = (lambda length: length * length) if quadratic else (lambda length: length)
        i = 0
        while i < by_size.size:
            count = max(1, max_elements // cost(int(sorted_sizes[i])))
            while True:  # shrink until the block, padded to its longest query, fits the budget
                end = min(i + count, by_size.size)
                length = int(sorted_sizes[end - 1])
                if end - i == 1 or (end - i) * cost(length) <= max_elements:
                    break
                count = max(1, max_elements // cost(length))
            yield by_size[i:end], length
            i = end

    def padded(self, values: np.ndarray, queries: np.ndarray, length: int, fill) -> tuple[np.ndarray, np.ndarray]:
        """Returns ([len(queries), length] matrix of `values` by query, padded with `fill`; validity mask)."""
        offsets = np.arange(length)
        valid = offsets[None, :] < self.sizes[queries][:, None]
        index = self.order[np.where(valid, self.starts[queries][:, None] + offsets[None, :], 0)]
        matrix = values[index]
        matrix[~valid] = fill
        return matrix, valid
