"""Activation cost benchmark: ratios to ReLU measured side by side in one process.

    python -m recsys.bench.activations            # full run (a few minutes on 2 cores)
    python -m recsys.bench.activations --quick    # smoke run (well under a minute)

Two measurements per activation (as shipped in `recsys.layers.activations`, called with ``training=True``):

1. forward + backward of the activation alone on 1M float32 elements (a [1000, 1000] tensor);
2. one training step of the paper's toy MLP [1024, 512, 256, 128, 64, 16] (+ logistic output) on 240 dense
   inputs at batch 512 with Adagrad (the toy model of Shamir & Lin 2022,
   arXiv:2202.06499).

Variants are interleaved round by round, each round times `steps` calls, in wall time and in process CPU time (all
TensorFlow threads). The table reports the best round of each variant divided by ReLU's best round (wall and CPU),
and the median over rounds of the per-round CPU-time ratio, which stays stable when other jobs share the machine
(wall time then mostly measures waiting); the target verdict uses that median. Rows `...|clip=6` are the clipped
units the CTR model uses (ReLU and fixed SmeLU-family units fuse the clip into their training kernels, the others
clip with separate ops). Two diagnostic rows show SmeLU without XLA fusion, to explain the design.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import tensorflow as tf

from recsys.layers import activations

MLP_UNITS = (1024, 512, 256, 128, 64, 16)
MLP_INPUTS = 240
BATCH = 512


class _Unfused(tf.keras.layers.Layer):
    """Runs the wrapped activation on its plain-TensorFlow path (no XLA), for the diagnostic rows."""

    def __init__(self, inner: tf.keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, inputs, training=None):
        return self.inner(inputs, training=False)


class _NestedWhereSmeLU(tf.keras.layers.Layer):
    """The textbook eq. 7 with nested `tf.where` and autodiff gradient (perf-notes' starting point)."""

    def call(self, inputs):
        beta = 1.0
        quadratic = tf.square(inputs + beta) / (4.0 * beta)
        return tf.where(inputs >= beta, inputs, tf.where(inputs <= -beta, tf.zeros_like(inputs), quadratic))


VERDICT_ROWS = {"SmeLU": "smelu (beta=1)", "GELU": "gelu (exact)", "Swish": "swish"}


def variants() -> dict[str, Callable[[], tf.keras.layers.Layer]]:
    """Label -> factory of a fresh layer. ReLU first: everything is a ratio to it."""
    return {
        "relu": lambda: activations.get("relu"),
        "smelu (beta=1)": lambda: activations.get("smelu:beta=1"),
        "gsmelu fixed": lambda: activations.get("gsmelu:alpha=1,beta=1,g_minus=0.05,g_plus=1,t=-0.05"),
        "gsmelu learned/layer": lambda: activations.get("gsmelu:trainable=true"),
        "rescu (3 knots)": lambda: activations.get(
            "rescu:knots=[-1.5,0,1.5],slopes=[0,0.3,0.8,1],half_widths=[0.5,0.5,0.5]"
        ),
        "softplus": lambda: activations.get("softplus"),
        "swish": lambda: activations.get("swish"),
        "gelu (exact)": lambda: activations.get("gelu"),
        "gelu (sigmoid approx.)": lambda: activations.get("gelu:approximate=true"),
        "relu|clip=6": lambda: activations.get("relu|clip=6"),
        "smelu|clip=6": lambda: activations.get("smelu:beta=1|clip=6"),
        "swish|clip=6": lambda: activations.get("swish|clip=6"),
        "diag: smelu unfused": lambda: _Unfused(activations.get("smelu:beta=1")),
        "diag: smelu nested where": lambda: _NestedWhereSmeLU(),
    }


def _elementwise_fn(layer: tf.keras.layers.Layer, x: tf.Tensor, upstream: tf.Tensor):
    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        # Returning y too keeps the forward pass alive (a custom gradient would otherwise let it be pruned).
        return y, tape.gradient(y, x, output_gradients=upstream)

    return forward_backward


def _train_step_fn(make_layer: Callable[[], tf.keras.layers.Layer], features: tf.Tensor, labels: tf.Tensor):
    tf.keras.utils.set_random_seed(0)  # identical initial weights for every variant
    inputs = tf.keras.Input((MLP_INPUTS,))
    hidden = inputs
    for units in MLP_UNITS:
        hidden = make_layer()(tf.keras.layers.Dense(units)(hidden))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1)(hidden))
    optimizer = tf.keras.optimizers.Adagrad(0.05)
    loss_fn = tf.keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(features, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return train_step


def _time_interleaved(
    fns: dict[str, Callable], rounds: int, steps: int, warmup: int
) -> dict[str, dict[str, list[float]]]:
    """Wall and process-CPU seconds per call, per round of each function, rounds interleaved across functions.

    CPU time (all of TensorFlow's threads) is the robust measure on a shared machine: time spent descheduled
    while other jobs run inflates wall time but not CPU time. On an idle machine the two agree.
    """
    for fn in fns.values():
        for _ in range(warmup):
            _block(fn())
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                result = fn()
            _block(result)
            times[name]["wall"].append((time.perf_counter() - wall) / steps)
            times[name]["cpu"].append((time.process_time() - cpu) / steps)
    return times


def _block(result) -> None:
    for tensor in tf.nest.flatten(result):
        tensor.numpy()


def _summarise(times: dict[str, dict[str, list[float]]], baseline: str = "relu") -> dict[str, dict[str, float]]:
    """Per variant: best wall ms and its ratio to the baseline's best, and the same for CPU time plus the
    median over rounds of the per-round CPU ratio."""
    base = times[baseline]
    return {
        name: {
            "wall_ms": 1e3 * min(t["wall"]),
            "wall_ratio_best": min(t["wall"]) / min(base["wall"]),
            "cpu_ms": 1e3 * min(t["cpu"]),
            "cpu_ratio_best": min(t["cpu"]) / min(base["cpu"]),
            "cpu_ratio_median": statistics.median(
                c / b for c, b in zip(t["cpu"], base["cpu"], strict=True)
            ),
        }
        for name, t in times.items()
    }


def run(
    rounds: int, steps: int, elements: int, only_elementwise: bool = False, names: list[str] | None = None
) -> dict[str, dict]:
    """Runs both benchmarks (for the variants `names`, default all) and returns their summaries.

    Returns {"elementwise": {variant: stats}, "train_step": {variant: stats}}; stats are wall_ms,
    wall_ratio_best, cpu_ms, cpu_ratio_best, cpu_ratio_median (ratios to ReLU, which is always measured).
    """
    factories = variants()
    if names is not None:
        unknown = sorted(set(names) - set(factories))
        if unknown:
            raise ValueError(f"Unknown benchmark variant(s) {unknown}; known: {list(factories)}")
        factories = {name: make for name, make in factories.items() if name in names or name == "relu"}
    rng = tf.random.Generator.from_seed(1)
    # N(0, 1.5²) puts about half of the elements inside SmeLU's quadratic region [-1, 1].
    x = rng.normal([elements // 1000, 1000]) * 1.5
    upstream = rng.normal(x.shape)
    elementwise = {name: _elementwise_fn(make(), x, upstream) for name, make in factories.items()}
    results = {"elementwise": _summarise(_time_interleaved(elementwise, rounds, steps, warmup=2))}
    if not only_elementwise:
        features = rng.normal([BATCH, MLP_INPUTS])
        labels = tf.cast(rng.uniform([BATCH, 1]) < 0.2, tf.float32)
        steps_fns = {name: _train_step_fn(make, features, labels) for name, make in factories.items()}
        results["train_step"] = _summarise(_time_interleaved(steps_fns, rounds, steps, warmup=3))
    return results


def format_table(results: dict[str, dict]) -> str:
    """Columns per benchmark: best wall ms, wall ratio (best/best), CPU ratio (best/best), CPU ratio (median)."""
    sections = [key for key in ("elementwise", "train_step") if key in results]
    titles = {"elementwise": "fwd+bwd on 1M elements", "train_step": "toy-MLP train step"}
    top = f"{'':<26}" + "".join(f" | {titles[key]:^38}" for key in sections)
    header = f"{'activation':<26}" + " | {:>8} {:>9} {:>8} {:>9}".format("wall ms", "wall x", "CPU x", "CPU x") * len(
        sections
    )
    sub = f"{'':<26}" + " | {:>8} {:>9} {:>8} {:>9}".format("(best)", "(best)", "(best)", "(median)") * len(sections)
    lines = [top, header, sub, "-" * len(header)]
    for name in results[sections[0]]:
        line = f"{name:<26}"
        for key in sections:
            r = results[key][name]
            line += (
                f" | {r['wall_ms']:>8.2f} {r['wall_ratio_best']:>9.3f} {r['cpu_ratio_best']:>8.3f}"
                f" {r['cpu_ratio_median']:>9.3f}"
            )
        lines.append(line)
    return "\n".join(lines)


def verdict(results: dict[str, dict]) -> str:
    """The issue's target: SmeLU step <= 1.15x ReLU and cheaper than GELU and Swish.

    Judged on the median per-round CPU-time ratio (stable on a shared machine); the best-round wall ratios are
    printed alongside.
    """
    if "train_step" not in results:
        return "target not evaluated (train step skipped)"
    steps = results["train_step"]
    ratio = {name: steps[key]["cpu_ratio_median"] for name, key in VERDICT_ROWS.items()}
    wall = {name: steps[key]["wall_ratio_best"] for name, key in VERDICT_ROWS.items()}
    smelu = ratio["SmeLU"]
    met = smelu <= 1.15 and smelu < ratio["GELU"] and smelu < ratio["Swish"]
    close = [name for name in ("GELU", "Swish") if abs(ratio[name] - smelu) < 0.02]
    note = f"; SmeLU vs {' and '.join(close)} differ by < 0.02, within run-to-run noise" if close else ""
    return (
        f"target {'MET' if met else 'NOT MET'} (train-step CPU time, median ratio to ReLU): SmeLU {smelu:.3f}x "
        f"(<= 1.15), GELU {ratio['GELU']:.3f}x, Swish {ratio['Swish']:.3f}x{note}. Best-round wall ratios: "
        + ", ".join(f"{name} {value:.3f}x" for name, value in wall.items())
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recsys.bench.activations", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds x 4 steps, for a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 25, quick 3)")
    parser.add_argument("--steps", type=int, default=None, help="calls timed per round (default 8, quick 4)")
    parser.add_argument("--elements", type=int, default=1_000_000, help="elements for the elementwise benchmark")
    parser.add_argument("--json", default=None, help="also write the results as JSON to this path")
    args = parser.parse_args(argv)
    # Many short rounds: on a shared machine the best round of each variant is the one least disturbed by others.
    rounds = args.rounds if args.rounds is not None else (3 if args.quick else 25)
    steps = args.steps if args.steps is not None else (4 if args.quick else 8)
    if rounds < 1 or steps < 1 or args.elements < 1000 or args.elements % 1000:
        print(
            "error: --rounds and --steps must be >= 1 and --elements a positive multiple of 1000; received "
            f"rounds={rounds}, steps={steps}, elements={args.elements}",
            file=sys.stderr,
        )
        return 2
    tf.get_logger().setLevel("ERROR")  # each variant traces its own tf.function: retracing warnings are expected
    try:
        results = run(rounds, steps, args.elements)
    except Exception as error:  # an entry point: one line, non-zero exit
        print(f"error: benchmark failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(
        f"# recsys.bench.activations: TF {tf.__version__}, {os.cpu_count()} CPUs ({platform.machine()}), "
        f"rounds={rounds}, steps={steps}, elements={args.elements}, MLP {list(MLP_UNITS)} batch {BATCH}"
    )
    print(format_table(results))
    print(verdict(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": rounds, "steps": steps, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
