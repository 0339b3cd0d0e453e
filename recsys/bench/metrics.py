"""Benchmark of the metric library: PD family and AUC at scale, side by side with scikit-learn.

    python -m recsys.bench.metrics [--examples=10000000] [--repeats=3] [--stream_examples=10000000]

Targets (docs/performance.md): every pointwise PD metric on 10M predictions ≤ 1 s; `auc` equal to
scikit-learn's `roc_auc_score` to 1e-9 and no slower (the ratio is measured in the same run on the same data).
Times are the best of `--repeats` runs after one warm-up (the first touch of fresh memory costs page faults
that say nothing about the code). Also reports the per-query metrics, the bootstrap, and the streaming
accumulators' throughput and peak memory over a long stream.
"""
from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable

import numpy as np
from absl import app, flags

from recsys import metrics

FLAGS = flags.FLAGS
flags.DEFINE_integer("examples", 10_000_000, "Predictions per model for the batch metrics.")
flags.DEFINE_integer("repeats", 3, "Timed repeats per measurement (best is reported).")
flags.DEFINE_integer("query_size", 20, "Items per query for PQAUC, swap rate and top-k overlap.")
flags.DEFINE_integer("stream_examples", 10_000_000, "Examples streamed through the progressive accumulators.")
flags.DEFINE_integer("stream_batch", 512, "Batch size of the streamed updates (the trainer's batch).")
flags.DEFINE_integer("bootstrap_examples", 1_000_000, "Examples in the bootstrap benchmark.")


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Best wall-clock seconds of `repeats` calls after a warm-up call, and the last value."""
    value = fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def best_cpu_time(fn: Callable[[], object], repeats: int) -> float:
    """Best CPU seconds of this process over `repeats` calls: less sensitive to other jobs on a shared machine."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def _rss_mib() -> float:
    """Current resident memory of this process (Linux /proc), to show the accumulators do not grow."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def bench_pd_family(p: list[np.ndarray], repeats: int) -> None:
    n = p[0].size
    stacked = np.stack(p)
    print("\n## PD family (target: each <= 1 s on 10M)")
    pointwise = {
        "relative_pd": lambda: metrics.relative_pd(p[0], p[1]),
        "absolute_pd": lambda: metrics.absolute_pd(p[0], p[1]),
        "symmetric_kl": lambda: metrics.symmetric_kl(p[0], p[1]),
        "flip_rate": lambda: metrics.flip_rate(p[0], p[1]),
        "mean_std (3 models)": lambda: metrics.mean_std(stacked),
        "mean_std relative (3 models)": lambda: metrics.mean_std(stacked, relative=True),
    }
    total = total_cpu = 0.0
    for name, fn in pointwise.items():
        seconds, value = best_time(fn, repeats)
        cpu = best_cpu_time(fn, repeats)
        total, total_cpu = total + seconds, total_cpu + cpu
        print(f"{name:30s} {seconds:7.3f} s wall  {cpu:7.3f} s CPU  {n / seconds / 1e6:7.1f} M/s  value={value:.6g}  "
              f"{'OK' if seconds <= 1.0 else 'OVER 1 s'}")
    print(f"{'all six together':30s} {total:7.3f} s wall  {total_cpu:7.3f} s CPU")


def bench_auc(labels: np.ndarray, scores: dict[str, np.ndarray], repeats: int) -> None:
    from sklearn.metrics import roc_auc_score

    print("\n## AUC vs scikit-learn roc_auc_score (same data, same process; target: |diff| <= 1e-9, ratio >= 1)")
    for label, p in scores.items():
        ours_s, ours = best_time(lambda p=p: metrics.auc(labels, p), repeats)
        sk_s, sk = best_time(lambda p=p: roc_auc_score(labels, p), max(1, repeats - 1))
        ours_cpu = best_cpu_time(lambda p=p: metrics.auc(labels, p), repeats)
        sk_cpu = best_cpu_time(lambda p=p: roc_auc_score(labels, p), 1)
        ok = abs(ours - sk) <= 1e-9 and ours_s <= sk_s
        print(f"{label:15s} recsys.auc {ours_s:6.3f} s wall {ours_cpu:6.3f} s CPU | sklearn {sk_s:6.3f} s wall "
              f"{sk_cpu:6.3f} s CPU | sklearn/recsys ratio wall {sk_s / ours_s:5.1f} CPU {sk_cpu / ours_cpu:5.1f} | "
              f"|diff|={abs(ours - sk):.2e}  {'OK' if ok else 'FAIL'}")


def bench_queries(labels: np.ndarray, p: list[np.ndarray], query_size: int, repeats: int, seed: int) -> None:
    n = labels.size
    print(f"\n## Per-query metrics ({query_size} items per query, queries in random order)")
    queries = np.random.default_rng(seed).permutation(n) // query_size
    for name, fn in {
        "pqauc": lambda: metrics.pqauc(labels, p[0], queries).value,
        "swap_rate": lambda: metrics.swap_rate(p[0], p[1], queries),
        "topk_overlap (k=5)": lambda: metrics.topk_overlap(p[0], p[1], queries, 5),
    }.items():
        seconds, value = best_time(fn, max(1, repeats - 2))
        print(f"{name:30s} {seconds:7.3f} s  {n / seconds / 1e6:7.1f} M/s  value={value:.6g}")


def bench_bootstrap(p: list[np.ndarray], examples: int) -> None:
    print(f"\n## Bootstrap on {examples:,} examples, 200 resamples")
    terms = metrics.relative_pd_terms(p[0][:examples], p[1][:examples])
    seconds, ci = best_time(lambda: metrics.bootstrap_mean_ci(np.stack([terms, terms]), 200), 1)
    print(f"{'bootstrap_mean_ci (2 rows)':30s} {seconds:7.3f} s  interval=[{ci[0].low:.6f}, {ci[0].high:.6f}]")


def bench_streaming(examples: int, batch: int, repeats: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(f"\n## Streaming: {examples:,} examples in batches of {batch}")
    progressive = metrics.ProgressiveMetrics()
    progressive_pd = metrics.ProgressivePD(num_replicas=2)
    state_mib = sum(v.nbytes for v in progressive.get_state().values()) / 2**20
    rss_by_chunk = []
    chunk = 1 << 20  # data is generated a chunk at a time, so only the accumulators could grow (they must not)
    update_s = pd_s = 0.0
    for start in range(0, examples, chunk):
        size = min(chunk, examples - start)
        q = rng.beta(1.0, 6.0, size).astype(np.float32)
        y = (rng.random(size) < q).astype(np.int8)
        pair = np.stack([q, np.clip(q + rng.normal(0, 0.01, size), 0, 1).astype(np.float32)])
        for b in range(0, size, batch):
            t0 = time.perf_counter()
            progressive.update(y[b:b + batch], q[b:b + batch])
            t1 = time.perf_counter()
            progressive_pd.update(pair[:, b:b + batch])
            t2 = time.perf_counter()
            update_s += t1 - t0
            pd_s += t2 - t1
        rss_by_chunk.append(_rss_mib())
    batches = examples / batch
    result_s, result = best_time(progressive.result, repeats)
    print(f"ProgressiveMetrics.update  {examples / update_s / 1e6:6.2f} M examples/s "
          f"({1e6 * update_s / batches:.0f} µs per batch); result() {1e3 * result_s:.1f} ms; "
          f"state {state_mib:.1f} MiB; auc={result['auc']:.6f}")
    relative = progressive_pd.result()["relative_pd"]
    print(f"ProgressivePD.update (R=2) {examples / pd_s / 1e6:6.2f} M examples/s "
          f"({1e6 * pd_s / batches:.0f} µs per batch); relative_pd={relative:.6f}")
    print(f"resident memory after the first / last chunk of {chunk:,} examples: "
          f"{rss_by_chunk[0]:.0f} / {rss_by_chunk[-1]:.0f} MiB")


def main(argv: list[str]) -> None:
    del argv
    n, repeats = FLAGS.examples, FLAGS.repeats
    rng = np.random.default_rng(0)
    # Replica-like predictions: a CTR-shaped base plus small per-model noise, float32 as models export them.
    base = rng.beta(1.0, 6.0, n)
    p = [np.clip(base + rng.normal(0, 0.01, n), 0, 1).astype(np.float32) for _ in range(3)]
    labels = (rng.random(n) < base).astype(np.int8)
    print(f"# recsys.bench.metrics: {n:,} float32 predictions per model, best of {repeats} after a warm-up; "
          f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    bench_pd_family(p, repeats)
    bench_auc(labels, {"float32 (ties)": p[0], "float64": np.clip(base + rng.normal(0, 0.01, n), 0, 1)}, repeats)
    bench_queries(labels, p, FLAGS.query_size, repeats, seed=1)
    bench_bootstrap(p, FLAGS.bootstrap_examples)
    del base, p, labels
    bench_streaming(FLAGS.stream_examples, FLAGS.stream_batch, repeats, seed=2)


if __name__ == "__main__":
    app.run(main)
