"""Trainer throughput, measured side by side in one process: `python -m recsys.bench.trainer`.

Ratios (targets from the trainer issue):
  1. trainer examples/s on the paper's toy model (5 categorical features → 240 inputs, MLP [1024, 512, 256, 128,
     64, 16], ReLU, batch 512, data from gzipped TFRecords) vs a bare tf-keras MLP of the same shape (Dense + ReLU,
     same optimizer) trained on tensors already in memory: target ≥ 0.8×. Printed twice: with the trainer's model
     built from the same layers as the bare MLP (what the trainer itself costs: input pipeline, embeddings, sparse
     updates, progressive metrics, loop), and with the toy config's default layer norm and clipping (what the
     paper's architecture adds on top);
  2. the trainer with progressive validation vs the same trainer without it: cost ≤ 5%. Printed twice: from the
     best runs of each variant (sensitive to machine noise) and from the time every run itself spent in the
     progressive-metrics code (`progressive_metrics_seconds` / rest of its training time; worst run shown);
  3. a SmeLU step vs a ReLU step in the trainer: ≤ 1.15×;
  4. `--replicas_only`: replica mode (issue 7), R=2 replicas (noise=shuffle: one parsed stream, one order per
     replica, progressive PD) vs a single model on the same windowed-shuffle stream: time per example ≤ 1.9×;
  5. `--settling_only`: the settling options (issue 15) vs plain training, time per example (target ≤ 1.05× for
     EMA and for the jitter metric): weight averaging (EMA of every weight, embedding tables included) updated
     every step and every `--ema_every_steps` steps, EMA with the averaged weights' progressive validation (one
     more forward pass per step), the jitter metric every `--jitter_steps` steps, and all of them; then how far
     the every-k-steps average is from the every-step one (relative PD of their predictions), next to the jitter;
  6. `--id_check_only`: the model's in-graph id range check (`CTRModel.embed` asserts 0 <= id < vocab_size for every
     categorical feature, so data of another feature contract fails naming the feature) vs the same trainer with
     the check removed inside this benchmark only (`_without_id_check`): time per example.

Trainer rates are the trainer's own `steady_examples_per_sec` (between its first and last progress line, every
10 steps, so tracing and start-up are excluded). Every variant runs `--repeats` times, interleaved, and the best
run counts (these machines are shared; the best run is the least disturbed one).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator

from absl import app, flags

import recsys  # noqa: F401  (must precede TensorFlow)
from recsys.data import layout

_EXAMPLES = flags.DEFINE_integer("examples", 512 * 60, "Examples in the generated TFRecord stream.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Runs per variant (best counts).")
_BATCH = flags.DEFINE_integer("batch_size", 512, "Global batch size.")
_VOCAB = flags.DEFINE_integer("vocab_size", 10_000, "Vocabulary size of each categorical feature.")
_BLOCKS_ONLY = flags.DEFINE_bool("blocks_only", False, "Only the block micro-benchmark (layer norm, clipping).")
_REPLICAS_ONLY = flags.DEFINE_bool("replicas_only", False, "Only replica mode: R=2 vs R=1 (time per example).")
_SETTLING_ONLY = flags.DEFINE_bool("settling_only", False, "Only the settling options (EMA, jitter) vs plain.")
_JITTER_STEPS = flags.DEFINE_integer("jitter_steps", 20, "N of the jitter metric (--settling_only).")
_EMA_DECAY = flags.DEFINE_float("ema_decay", 0.999, "EMA decay (--settling_only).")
_EMA_EVERY_STEPS = flags.DEFINE_integer("ema_every_steps", 10, "k of the EMA updated every k steps (--settling_only).")
_ID_CHECK_ONLY = flags.DEFINE_bool("id_check_only", False, "Only the model's in-graph id range check: with vs "
                                   "without (removed in this benchmark's process only).")
_EMBED_ONLY = flags.DEFINE_bool("embed_only", False, "With --id_check_only: only the embedding-part micro-benchmark.")

HIDDEN = (1024, 512, 256, 128, 64, 16)
CATEGORICAL = ("C1", "C2", "C3", "C4", "C5")
EMBEDDING_DIM = 48  # 5 × 48 = 240 inputs
BARE = "bare tf-keras MLP, in memory"
# Share of each trainer run's loop time spent updating progressive metrics (measured inside the run).
_SHARES: list[float] = []


def _write_data(directory: str, examples: int, vocab_size: int) -> str:
    from recsys.data.features import Feature, FeatureSet
    from recsys.testing import write_toy_tfrecords

    features = FeatureSet(
        (Feature("label", "int64", "label"), Feature("ts", "int64", "time"))
        + tuple(Feature(name, "int64", "categorical", vocab_size) for name in CATEGORICAL)
    ).stamped()  # with its feature fingerprint, as the trainer requires of every input
    features.save(os.path.join(directory, layout.FEATURES_FILE))
    shards = 4
    for shard in range(shards):
        write_toy_tfrecords(os.path.join(directory, layout.shard_name(0, shard)), features, examples // shards,
                            seed=shard)
    return os.path.join(directory, layout.SHARD_PATTERN)


def _trainer_rate(data: str, workdir: str, batch_size: int, activation: str = "relu", progressive: bool = True,
                  plain: bool = False, normalization: str = "layer", replicas: int = 1,
                  shuffle: str = "none", overrides: dict | None = None, id_check: bool = True,
                  keep: list | None = None) -> tuple[float, float]:
    """The trainer's steady (examples/s, examples per CPU second) on configs/criteo_toy.py.

    `plain`: no normalisation, no clipping. `overrides`: more config keys (dotted, e.g. "averaging.ema_decay").
    `id_check=False`: the model without its in-graph id range check (`_without_id_check`). `keep`: the finished
    `Trainer` and its metrics are appended to it.
    """
    from configs import criteo_toy
    from recsys.training.loop import Trainer

    config = criteo_toy.get_config()
    config.data.train = data
    config.data.shuffle = shuffle
    config.replicas.count = replicas
    config.replicas.noise = "shuffle"
    config.data.batch_size = batch_size
    config.model.categorical = ",".join(CATEGORICAL)
    config.model.activation = activation
    config.model.normalization = normalization
    if plain:
        config.model.normalization = "none"
        config.model.activation_clip = 0.0
    config.log_every_steps = 10
    config.checkpoint_every_steps = 10**9
    config.export_saved_model = False
    for key, value in (overrides or {}).items():
        section, _, leaf = key.rpartition(".")
        setattr(config.get(section) if section else config, leaf, value)
    with contextlib.nullcontext() if id_check else _without_id_check():
        trainer = Trainer(config, workdir, progressive=progressive)
        metrics = trainer.run().metrics
    if keep is not None:
        keep.append((trainer, metrics))
    if progressive:
        _SHARES.append(metrics["progressive_metrics_seconds"] / metrics["train_seconds"])
    return trainer.steady_examples_per_sec, trainer.steady_examples_per_cpu_sec


# The messages of the id range check in `CTRModel.embed`; only asserts with them are removed.
_ID_CHECK_MESSAGE = "categorical "


@contextlib.contextmanager
def _without_id_check() -> Iterator[None]:
    """Inside the block, the model's id range check traces to nothing: `tf.debugging.assert_non_negative` and
    `assert_less` return a no-op for the check's messages (and do their usual work for any other caller).

    Raises:
      RuntimeError: the block traced no id check, so the variant would not differ from the default.
    """
    import tensorflow as tf

    originals = {name: getattr(tf.debugging, name) for name in ("assert_non_negative", "assert_less")}
    removed = []

    def without(original):
        def assert_fn(*args, message=None, **kwargs):
            if message and message.startswith(_ID_CHECK_MESSAGE):
                removed.append(message)
                return tf.no_op()
            return original(*args, message=message, **kwargs)

        return assert_fn

    for name, original in originals.items():
        setattr(tf.debugging, name, without(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(tf.debugging, name, original)
    if not removed:
        raise RuntimeError("no id range check was traced: CTRModel.embed no longer uses tf.debugging.assert_less/"
                           "assert_non_negative with messages starting 'categorical '; update _without_id_check")


def _bare_mlp_rate(batch_size: int, steps: int) -> tuple[float, float]:
    """A plain tf-keras MLP (Dense + ReLU, Adagrad) on one in-memory batch: the ceiling for the dense work."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [tf.keras.Input([len(CATEGORICAL) * EMBEDDING_DIM])]
        + [tf.keras.layers.Dense(units, activation="relu") for units in HIDDEN]
        + [tf.keras.layers.Dense(1)]
    )
    optimizer = tf.keras.optimizers.Adagrad(0.05, initial_accumulator_value=0.1, jit_compile=False)
    x = tf.random.normal([batch_size, len(CATEGORICAL) * EMBEDDING_DIM])
    y = tf.cast(tf.random.uniform([batch_size, 1]) < 0.3, tf.float32)
    loss_fn = tf.keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    for _ in range(5):
        step().numpy()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        loss = step()
    loss.numpy()
    examples = steps * batch_size
    return examples / (time.perf_counter() - start), examples / (time.process_time() - cpu_start)


def _block_costs(repeats: int = 10) -> None:
    """Forward + backward ms of the block's pieces on one [512, 1024] pre-activation, min over `repeats`."""
    import tensorflow as tf

    from recsys.model.layer_norm import LayerNorm
    from recsys.model.mlp import clip_activations

    x = tf.random.normal([512, 1024])
    keras_norm, fused_norm = tf.keras.layers.LayerNormalization(epsilon=1e-3), LayerNorm()
    keras_norm.build(x.shape)
    fused_norm.build(x.shape)
    variants = {
        "relu": lambda v: tf.nn.relu(v),
        "relu + tf.clip_by_value": lambda v: tf.clip_by_value(tf.nn.relu(v), -6.0, 6.0),
        "relu + clip_activations (the model's)": lambda v: clip_activations(tf.nn.relu(v), 6.0, training=True),
        "tf.keras LayerNormalization + relu": lambda v: tf.nn.relu(keras_norm(v, training=True)),
        "LayerNorm (the model's) + relu": lambda v: tf.nn.relu(fused_norm(v, training=True)),
    }
    steps = {}
    for name, fn in variants.items():

        def forward_backward(v, fn=fn):
            with tf.GradientTape() as tape:
                tape.watch(v)
                loss = tf.reduce_sum(fn(v))
            return tape.gradient(loss, v)

        steps[name] = tf.function(forward_backward)
        steps[name](x).numpy()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(10):
                out = step(x)
            out.numpy()
            times[name].append((time.perf_counter() - start) / 10)
    print("\nBlock pieces, forward + backward of one [512, 1024] pre-activation (min of "
          f"{repeats} x 10 calls):")
    for name, values in times.items():
        print(f"  {name:40s} {1e3 * min(values):6.2f} ms")


def main(argv: list[str]) -> None:
    del argv
    import tensorflow as tf

    if _BLOCKS_ONLY.value:
        _block_costs()
        return
    if _REPLICAS_ONLY.value:
        _replica_costs()
        return
    if _SETTLING_ONLY.value:
        _settling_costs()
        return
    if _ID_CHECK_ONLY.value:
        _embed_costs() if _EMBED_ONLY.value else _id_check_costs()
        return
    batch, examples = _BATCH.value, _EXAMPLES.value
    steps = examples // batch
    variants = {
        "trainer relu (layer norm, clip 6)": {},
        "trainer relu, no progressive validation": {"progressive": False},
        "trainer smelu:beta=1 (layer norm, clip 6)": {"activation": "smelu:beta=1"},
        "trainer relu, no norm/clip (= bare layers)": {"plain": True},
        "trainer relu (weight norm, clip 6)": {"normalization": "weight"},
    }
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in [*variants, BARE]}
    with tempfile.TemporaryDirectory() as tmp:
        data = _write_data(tmp, examples, _VOCAB.value)
        for repeat in range(_REPEATS.value):
            for index, (name, options) in enumerate(variants.items()):
                workdir = os.path.join(tmp, f"run_{repeat}_{index}")
                rates[name].append(_trainer_rate(data, workdir, batch, **options))
            rates[BARE].append(_bare_mlp_rate(batch, steps))
    wall = {name: max(r[0] for r in values) for name, values in rates.items()}
    cpu = {name: max(r[1] for r in values) for name, values in rates.items()}
    print(f"\nTrainer benchmark: toy model {len(CATEGORICAL)}x{EMBEDDING_DIM}=240 inputs, MLP {list(HIDDEN)}, "
          f"batch {batch}, {examples} examples from gzipped TFRecords, best of {_REPEATS.value}, TF {tf.__version__}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'variant':46s} {'examples/s':>11s} {'ex/CPU-s':>9s}   all runs (examples/s)")
    for name, values in rates.items():
        print(f"{name:46s} {wall[name]:11.0f} {cpu[name]:9.0f}   {', '.join(f'{v[0]:.0f}' for v in values)}")
    print("\n(ratios: wall-clock examples/s | examples per CPU second of the process)")

    def ratio(label: str, a: str, b: str, target: str = "") -> None:
        print(f"{label:58s} {wall[a] / wall[b]:6.3f} | {cpu[a] / cpu[b]:6.3f}  {target}")

    relu = "trainer relu (layer norm, clip 6)"
    ratio("trainer / bare MLP, same layers", "trainer relu, no norm/clip (= bare layers)", BARE, "(target >= 0.80)")
    ratio("trainer / bare MLP, toy default with layer norm + clip", relu, BARE)
    ratio("trainer / bare MLP, toy with weight norm + clip", "trainer relu (weight norm, clip 6)", BARE)
    ratio("SmeLU step time / ReLU step time", relu, "trainer smelu:beta=1 (layer norm, clip 6)", "(target <= 1.15)")
    no_pv = "trainer relu, no progressive validation"
    print(f"{'progressive validation overhead, best runs compared':58s} {100 * (wall[no_pv] / wall[relu] - 1):5.1f}% | "
          f"{100 * (cpu[no_pv] / cpu[relu] - 1):5.1f}%  (target <= 5%)")
    share = max(_SHARES)
    print(f"{'progressive validation overhead, timed inside each run':58s} {100 * share / (1 - share):5.1f}%  "
          "(worst run)")
    _block_costs()


def _replica_costs() -> None:
    """Replica mode's cost: examples/s of one model vs R=2 replicas (each replica trains on every example)."""
    import tensorflow as tf

    batch, examples = _BATCH.value, _EXAMPLES.value
    variants = {"R=1 (shuffle=window)": 1, "R=2 (noise=shuffle, shuffle=window)": 2}
    rates = _interleaved_rates({name: {"replicas": count, "shuffle": "window"} for name, count in variants.items()})
    print(f"\nReplica-mode benchmark: toy model, MLP {list(HIDDEN)}, batch {batch}, {examples} examples, "
          f"shuffle window 10000, best of {_REPEATS.value}, TF {tf.__version__}, {os.cpu_count()} CPUs")
    print(f"{'variant':46s} {'examples/s':>11s} {'ex/CPU-s':>9s}   all runs (examples/s)")
    for name, values in rates.items():
        best = max(v[0] for v in values), max(v[1] for v in values)
        print(f"{name:46s} {best[0]:11.0f} {best[1]:9.0f}   {', '.join(f'{v[0]:.0f}' for v in values)}")
    one, two = (max(v[0] for v in rates[n]) for n in variants)
    one_cpu, two_cpu = (max(v[1] for v in rates[n]) for n in variants)
    print(f"{'cost of R=2 / R=1 (time per example)':58s} {one / two:6.3f} | {one_cpu / two_cpu:6.3f}  "
          "(target <= 1.9; wall | CPU)")


def _interleaved_rates(runs: dict[str, dict], finish: Callable[[dict[str, tuple]], None] | None = None
                       ) -> dict[str, list[tuple[float, float]]]:
    """(examples/s, examples per CPU second) of every run of `_trainer_rate(**kwargs)`, `--repeats` times, the
    variants interleaved so that load on the machine hits them alike; one data set for all. `finish`: called, while
    the data still exists, with each variant's last (finished `Trainer`, metrics) (the runs are deterministic, so
    every repeat ends the same)."""
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    last: dict[str, tuple] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = _write_data(tmp, _EXAMPLES.value, _VOCAB.value)
        for repeat in range(_REPEATS.value):
            for index, (name, kwargs) in enumerate(runs.items()):
                workdir = os.path.join(tmp, f"run_{repeat}_{index}")
                keep: list = []
                rates[name].append(_trainer_rate(data, workdir, _BATCH.value, keep=keep, **kwargs))
                last[name] = keep[0]
        if finish is not None:
            finish(last)
    return rates


def _settling_costs() -> None:
    """EMA and jitter vs plain training: time per example, side by side (interleaved runs, best of each); then the
    relative PD between the every-k-steps and the every-step average, next to the jitter PD."""
    import tensorflow as tf

    from recsys.metrics.pd import relative_pd

    batch, examples, every = _BATCH.value, _EXAMPLES.value, _EMA_EVERY_STEPS.value
    ema = {"averaging.ema_decay": _EMA_DECAY.value}
    ema_every = {**ema, "averaging.every_steps": every}
    progressive = {"averaging.progressive_averaged": True}
    jitter = {"jitter_steps": _JITTER_STEPS.value}
    ema_name, ema_every_name = f"EMA (decay {_EMA_DECAY.value}), every step", f"EMA every {every} steps"
    jitter_name = f"jitter every {_JITTER_STEPS.value} steps"
    variants = {
        "plain": {},
        ema_name: ema,
        ema_every_name: ema_every,
        "EMA every step + progressive_averaged": {**ema, **progressive},
        jitter_name: jitter,
        f"EMA every {every} + progressive_avg. + jitter": {**ema_every, **progressive, **jitter},
    }
    load = os.getloadavg()[0]
    closeness: list[str] = []

    def compare_averages(runs: dict[str, tuple]) -> None:
        # The live weights of both EMA runs are identical (averaging does not feed back into training): the PD is
        # the averages' difference alone.
        rows = next(iter(runs[ema_name][0].source.dataset(8192)))
        every_step, every_k = (tf.sigmoid(runs[name][0].states[0].average.model(rows)).numpy()
                               for name in (ema_name, ema_every_name))
        jitter_metrics = runs[jitter_name][1]
        closeness.append(
            f"relative PD, average every {every} steps vs every step, on {len(every_k)} rows of the stream: "
            f"{100 * relative_pd(every_k, every_step):.4f}%\n(jitter, live weights vs {_JITTER_STEPS.value} steps "
            f"earlier: {100 * jitter_metrics['jitter_relative_pd']:.4f}% at the last jitter step, "
            f"{100 * jitter_metrics['jitter_window_relative_pd']:.4f}% over the window)")

    rates = _interleaved_rates({name: {"overrides": overrides} for name, overrides in variants.items()},
                               compare_averages)
    print(f"\nSettling benchmark: toy model, MLP {list(HIDDEN)}, {len(CATEGORICAL)} tables x {_VOCAB.value} ids x "
          f"{EMBEDDING_DIM}, batch {batch}, {examples} examples, best of {_REPEATS.value}, TF {tf.__version__}, "
          f"{os.cpu_count()} CPUs, load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"{'variant':44s} {'examples/s':>11s} {'ex/CPU-s':>9s} {'time/plain':>11s}   all runs (examples/s)")
    plain = max(v[0] for v in rates["plain"]), max(v[1] for v in rates["plain"])
    for name, values in rates.items():
        best = max(v[0] for v in values), max(v[1] for v in values)
        print(f"{name:44s} {best[0]:11.0f} {best[1]:9.0f} {plain[0] / best[0]:6.3f} | {plain[1] / best[1]:5.3f}   "
              f"{', '.join(f'{v[0]:.0f}' for v in values)}")
    print("(time/plain: wall | CPU; target <= 1.05 for EMA and for jitter)")
    print(*closeness, sep="\n")


def _id_check_costs() -> None:
    """The in-graph id range check vs none: time per example, side by side (interleaved runs, best of each)."""
    import tensorflow as tf

    variants = {"with the id range check (default)": {}, "without it (this benchmark only)": {"id_check": False}}
    rates = _interleaved_rates(variants)
    print(f"\nId range check benchmark: toy model, {len(CATEGORICAL)} categorical features x {_VOCAB.value} ids, MLP "
          f"{list(HIDDEN)}, batch {_BATCH.value}, {_EXAMPLES.value} examples, best of {_REPEATS.value}, "
          f"TF {tf.__version__}, {os.cpu_count()} CPUs")
    print(f"{'variant':40s} {'examples/s':>11s} {'ex/CPU-s':>9s}   all runs (examples/s)")
    best = {name: (max(v[0] for v in values), max(v[1] for v in values)) for name, values in rates.items()}
    for name, values in rates.items():
        print(f"{name:40s} {best[name][0]:11.0f} {best[name][1]:9.0f}   {', '.join(f'{v[0]:.0f}' for v in values)}")
    checked, unchecked = (best[name] for name in variants)
    print(f"{'time per example, with / without the check':58s} {unchecked[0] / checked[0]:6.3f} | "
          f"{unchecked[1] / checked[1]:6.3f}  (wall | CPU)")
    _embed_costs()


def _embed_costs(repeats: int = 50) -> None:
    """Forward + backward ms of the model's embedding part (`CTRModel.embed`, lookups and their sparse gradients) on
    one batch, with and without the id range check, for the toy model's 5 features and for all 26 of Criteo: the
    check's own cost per step, without the trainer runs' noise. Min of `repeats` x 10 calls, interleaved, in wall
    time and in CPU time of the process (the steadier one on a loaded machine)."""
    import tensorflow as tf

    from configs import criteo_toy
    from recsys.data.features import Feature, FeatureSet
    from recsys.model.ctr import ModelSpec, build_model

    batch, vocab = _BATCH.value, _VOCAB.value
    print(f"\nEmbedding part, forward + backward of one batch of {batch} (min of {repeats} x 10 calls, {vocab} ids "
          f"per table, {EMBEDDING_DIM} wide), ms per call, wall | CPU:")
    print(f"  {'features':10s} {'with check':>15s} {'without':>15s} {'check costs':>15s}")
    for count in (len(CATEGORICAL), 26):
        names = tuple(f"C{i}" for i in range(1, count + 1))
        features = FeatureSet((Feature("label", "int64", "label"),)
                              + tuple(Feature(name, "int64", "categorical", vocab) for name in names))
        model_config = criteo_toy.get_config().model
        model_config.categorical = ",".join(names)
        spec = ModelSpec.from_config(model_config, features)
        ids = {name: tf.random.uniform([batch], 0, vocab, tf.int64, seed=i) for i, name in enumerate(names)}
        steps = {}
        for checked in (True, False):
            model = build_model(spec)

            def forward_backward(model=model, ids=ids):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum(model.embed(ids, training=True))
                return tape.gradient(loss, [layer.embeddings for layer in model.embedding_layers])

            steps[checked] = tf.function(forward_backward)
            with contextlib.nullcontext() if checked else _without_id_check():
                steps[checked]()  # traced here
        times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for _ in range(repeats):
            for checked, step in steps.items():
                start, cpu_start = time.perf_counter(), time.process_time()
                for _ in range(10):
                    out = step()
                tf.nest.map_structure(lambda t: t.values.numpy() if hasattr(t, "values") else t.numpy(), out)
                times[checked].append(((time.perf_counter() - start) / 10, (time.process_time() - cpu_start) / 10))
        (with_wall, with_cpu), (without_wall, without_cpu) = (
            (1e3 * min(t[0] for t in times[c]), 1e3 * min(t[1] for t in times[c])) for c in (True, False))
        print(f"  {count:<10d} {with_wall:6.3f} | {with_cpu:6.3f} {without_wall:6.3f} | {without_cpu:6.3f} "
              f"{with_wall - without_wall:6.3f} | {with_cpu - without_cpu:6.3f}")


if __name__ == "__main__":
    app.run(main)
