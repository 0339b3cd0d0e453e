"""Input-pipeline throughput vs the toy MLP's training throughput, measured side by side in one run.

    python -m recsys.bench.input_pipeline            # 200k generated rows, batch 512 (a few minutes on 2 cores)
    python -m recsys.bench.input_pipeline --quick    # smoke run

0. The generator's speed: `synthetic.write_clicklogs` of the same number of rows to a TSV file, rows/s by wall
   clock and per CPU-second of this process (the second is what "on one core" means on a shared machine).

1. Generates click-log rows with `recsys.data.synthetic` and writes them as GZIP TFRecord shards with the
   Criteo schema of `pipelines.preprocess` (label, ts, I1..I13 = log1p counts, C1..C26 = ids with id 0 for
   missing / out of vocabulary; the vocabulary keeps the `--vocab` most popular values of each feature) and
   features.json.
2. Input: `recsys.data.input.make_dataset` over the shards, batch 512, all 41 features parsed, in each shuffle
   mode; examples/s of iterating the whole stream.
3. Trainer: one training step of the paper's toy model (Shamir & Lin 2022, Sec. 6): C1..C5 embedded in 48
   dimensions each (240 inputs), MLP [1024, 512, 256, 128, 64, 16] with ReLU, logistic output, Adagrad, on
   the same batches held in memory (so input costs nothing); examples/s.
4. Both together: the training loop fed by the pipeline (input and training share the CPU cores).

Steps 2 and 3 are interleaved in `--rounds` rounds; absolute rates are the best round, the ratio input / trainer is
the median of the per-round ratios (robust to load changes on a shared machine). The issue's target is input >= 5x
the trainer's examples/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from recsys.data import criteo, input, layout, synthetic
from recsys.data.features import FeatureSet, criteo_feature_set
from recsys.data.records import ExampleEncoder

MLP_UNITS = (1024, 512, 256, 128, 64, 16)
TOY_FEATURES = ("C1", "C2", "C3", "C4", "C5")
EMBEDDING_DIM = 48  # 5 x 48 = 240 inputs, as in the paper's toy model


def write_shards(directory: str, rows: int, seed: int, rows_per_shard: int, vocab: int) -> FeatureSet:
    """Generated rows as `part-00000-NNNNNN.tfrecord.gz` shards in time order plus features.json; returns the schema.

    Records are encoded by the Beam job's own `ExampleEncoder`, so they are byte-for-byte what
    `pipelines.preprocess` writes for such rows.
    """
    encoder = ExampleEncoder()
    generator = synthetic.ClickLogGenerator(synthetic.GeneratorConfig(rows=rows, seed=seed))
    vocab_sizes = {name: min(vocab, synthetic.CAT_SPECS[name].cardinality + 1) for name in criteo.CAT_COLUMNS}
    caps = np.array([vocab_sizes[name] for name in criteo.CAT_COLUMNS])
    writer, shard = None, 0
    for chunk in generator.chunks():
        numeric = np.where(chunk.int_present, np.log1p(np.maximum(chunk.ints, 0)), 0.0).astype(np.float32)
        ids = np.where(chunk.cat_ids < caps[None, :], chunk.cat_ids, 0)  # ids are popularity ranks
        labels, numeric, ids = chunk.labels.tolist(), numeric.tolist(), ids.tolist()
        for i in range(len(chunk)):
            ts = chunk.start + i
            if ts % rows_per_shard == 0:
                if writer is not None:
                    writer.close()
                writer = tf.io.TFRecordWriter(os.path.join(directory, layout.shard_name(0, shard)), "GZIP")
                shard += 1
            writer.write(encoder.encode(labels[i], ts, numeric[i], ids[i]))
    writer.close()
    features = criteo_feature_set(vocab_sizes, {"vocab_mode": "frequency", "source": "recsys.bench.input_pipeline"})
    features.save(os.path.join(directory, layout.FEATURES_FILE))
    return features


def generator_speed(path: str, rows: int) -> tuple[int, float, float]:
    """(rows, wall seconds, process CPU seconds) of writing `rows` generated TSV rows to `path`."""
    wall, cpu = time.perf_counter(), time.process_time()
    synthetic.write_clicklogs(path, synthetic.GeneratorConfig(rows=rows, seed=0))
    return rows, time.perf_counter() - wall, time.process_time() - cpu


def input_examples_per_second(pattern: str, features: FeatureSet, batch: int, shuffle: str) -> float:
    """examples/s of one full pass of make_dataset (a fresh dataset, so a shuffle fills its first window)."""
    dataset = input.make_dataset(pattern, features, batch, shuffle=shuffle, seed=1)
    start, count = time.perf_counter(), 0
    for parsed in dataset:
        count += int(parsed[criteo.LABEL].shape[0])
    return count / (time.perf_counter() - start)


class ToyModel(tf.keras.Model):
    """The paper's toy model: 5 embedded categoricals (240 inputs) -> ReLU MLP -> logit."""

    def __init__(self, features: FeatureSet):
        super().__init__()
        self.embeddings = [
            tf.keras.layers.Embedding(features[name].vocab_size, EMBEDDING_DIM, name=f"embed_{name}")
            for name in TOY_FEATURES
        ]
        self.hidden = [tf.keras.layers.Dense(units, activation="relu") for units in MLP_UNITS]
        self.logit = tf.keras.layers.Dense(1)

    def call(self, batch):
        x = tf.concat([table(batch[name]) for table, name in zip(self.embeddings, TOY_FEATURES, strict=True)], axis=1)
        for layer in self.hidden:
            x = layer(x)
        return tf.squeeze(self.logit(x), axis=1)


def make_train_step(features: FeatureSet) -> Callable[[dict], tf.Tensor]:
    """A traced train step of a fresh ToyModel with Adagrad (learning rate 0.05) on logistic loss."""
    model = ToyModel(features)
    optimizer = tf.keras.optimizers.Adagrad(0.05)

    @tf.function
    def train_step(batch):
        labels = tf.cast(batch[criteo.LABEL], tf.float32)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, model(batch)))
        optimizer.apply_gradients(
            zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=True)
        )
        return loss

    return train_step


def train_examples_per_second(train_step, batches: list) -> float:
    """examples/s of one pass of train_step over in-memory batches (traced beforehand)."""
    start, count = time.perf_counter(), 0
    for batch in batches:
        loss = train_step(batch)
        count += int(batch[criteo.LABEL].shape[0])
    float(loss)  # wait for the last step
    return count / (time.perf_counter() - start)


def fed_examples_per_second(train_step, pattern: str, features: FeatureSet, batch: int, limit: int) -> float:
    """examples/s of the training loop fed by the pipeline (time order), first `limit` batches."""
    dataset = input.make_dataset(pattern, features, batch).take(limit)
    start, count = time.perf_counter(), 0
    for parsed in dataset:
        loss = train_step(parsed)
        count += int(parsed[criteo.LABEL].shape[0])
    float(loss)
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="generated examples")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of interleaved measurements")
    parser.add_argument("--train_batches", type=int, default=60, help="batches per training pass")
    parser.add_argument("--vocab", type=int, default=100_000, help="vocabulary cap per categorical feature")
    parser.add_argument("--data_dir", default=None, help="reuse or keep the shards here (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20k rows, 1 round")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.rounds, args.train_batches = 20_000, 1, 10
    for name in ("rows", "batch", "rounds", "train_batches", "vocab"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1. Received: {getattr(args, name)}")

    with tempfile.TemporaryDirectory() as tmp:
        directory = args.data_dir or tmp
        os.makedirs(directory, exist_ok=True)
        pattern = os.path.join(directory, layout.SHARD_PATTERN)
        started = time.perf_counter()
        if args.data_dir and tf.io.gfile.glob(pattern):
            features = FeatureSet.load(os.path.join(directory, layout.FEATURES_FILE))
        else:
            features = write_shards(directory, args.rows, seed=0, rows_per_shard=50_000, vocab=args.vocab)
        rows = input.count_examples(pattern)
        shards = len(tf.io.gfile.glob(pattern))
        print(f"data: {rows:,} examples in {shards} shards ({time.perf_counter() - started:.1f} s)")

        results = {"rows": rows, "batch": args.batch, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
        gen_rows, gen_wall, gen_cpu = generator_speed(os.path.join(tmp, "generated.tsv"), args.rows)
        results.update(generator_rows_per_s_wall=gen_rows / gen_wall, generator_rows_per_s_cpu=gen_rows / gen_cpu)
        print(
            f"generator (TSV, {gen_rows:,} rows):       {gen_rows / gen_wall:12,.0f} rows/s wall, "
            f"{gen_rows / gen_cpu:,.0f} rows/s per CPU-second"
        )
        batches = list(input.make_dataset(pattern, features, args.batch, drop_remainder=True).take(args.train_batches))
        train_step = make_train_step(features)
        train_step(batches[0])  # trace
        # Rounds interleave every measurement, so a change of load on a shared machine hits all of them; each
        # round's ratio compares passes measured seconds apart.
        rates: dict[str, list[float]] = {mode: [] for mode in (*input.SHUFFLE_MODES, "train")}
        for _ in range(args.rounds):
            for mode in input.SHUFFLE_MODES:
                rates[mode].append(input_examples_per_second(pattern, features, args.batch, mode))
            rates["train"].append(train_examples_per_second(train_step, batches))
        for mode in input.SHUFFLE_MODES:
            results[f"input_{mode}"] = max(rates[mode])
            print(f"input pipeline, shuffle={mode:<6}:      {max(rates[mode]):12,.0f} examples/s (best round)")
        results["train"] = max(rates["train"])
        print(f"toy MLP train step (in-memory batches): {results['train']:12,.0f} examples/s (best round)")
        fed = fed_examples_per_second(train_step, pattern, features, args.batch, args.train_batches)
        results["train_fed_by_pipeline"] = fed
        print(f"train step fed by the pipeline (none):  {fed:12,.0f} examples/s")
        for mode in input.SHUFFLE_MODES:
            ratios = [r / t for r, t in zip(rates[mode], rates["train"], strict=True)]
            results[f"ratio_{mode}"] = statistics.median(ratios)
            print(
                f"ratio input/train, shuffle={mode:<6}: median {statistics.median(ratios):6.2f}x, "
                f"range {min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} rounds (target >= 5x)"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main(sys.argv[1:])
