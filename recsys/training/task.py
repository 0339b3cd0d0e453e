"""The CTR training task: models, optimizers and the distributed train step.

The loop (`recsys.training.loop`) knows nothing about the model's internals: it gets a list of `ModelState`s
(one per trained model; a single one for an ordinary run, several when replicas share one parsed stream) and
a step function from here.

Score-before-train at no extra cost: the train step's forward pass uses the weights from before the update, so
the probabilities it returns are exactly what scoring the batch and then training on it would give (the model
has no dropout or batch norm, so training and inference forward passes are the same function — `training=True`
only selects fused kernels equal up to float rounding; tests/training/test_loop.py checks the equality against a
separate score-then-train loop).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from recsys.model.ctr import CTRModel, ModelSpec, build_model

DENSE_OPTIMIZERS = ("adagrad", "adam", "sgd")


@dataclasses.dataclass
class ModelState:
    """One trained model with its two optimizers and its progressive metrics."""

    model: CTRModel
    embedding_optimizer: tf.keras.optimizers.Optimizer
    dense_optimizer: tf.keras.optimizers.Optimizer
    metrics: Any  # recsys.metrics.streaming.ProgressiveMetrics

    def build_optimizers(self) -> None:
        """Creates the optimizer slots now, so a checkpoint restores into existing variables."""
        self.embedding_optimizer.build(self.model.embedding_variables)
        self.dense_optimizer.build(self.model.dense_variables)


def make_embedding_optimizer(optimizer_config: Any) -> tf.keras.optimizers.Optimizer:
    """Adagrad for the embedding tables: applied to `tf.IndexedSlices`, it updates only the rows looked up."""
    _check_positive("config.optimizer.embedding_learning_rate", optimizer_config.embedding_learning_rate)
    return tf.keras.optimizers.Adagrad(
        learning_rate=float(optimizer_config.embedding_learning_rate),
        initial_accumulator_value=float(optimizer_config.embedding_initial_accumulator),
        jit_compile=False,
    )


def make_dense_optimizer(optimizer_config: Any) -> tf.keras.optimizers.Optimizer:
    """The optimizer of every non-embedding variable: adagrad | adam | sgd."""
    name = optimizer_config.dense
    learning_rate = float(optimizer_config.dense_learning_rate)
    _check_positive("config.optimizer.dense_learning_rate", learning_rate)
    if name == "adagrad":
        return tf.keras.optimizers.Adagrad(
            learning_rate=learning_rate,
            initial_accumulator_value=float(optimizer_config.dense_initial_accumulator),
            jit_compile=False,
        )
    if name == "adam":
        return tf.keras.optimizers.Adam(learning_rate=learning_rate, jit_compile=False)
    if name == "sgd":
        return tf.keras.optimizers.SGD(learning_rate=learning_rate, jit_compile=False)
    raise ValueError(f"`config.optimizer.dense` must be one of {DENSE_OPTIMIZERS}. Received: dense={name!r}")


def _check_positive(key: str, value: float) -> None:
    if not float(value) > 0:
        raise ValueError(f"`{key}` must be positive. Received: {value!r}")


def build_model_state(
    spec: ModelSpec, label: str, optimizer_config: Any, init_seed: int, metrics_factory: Callable[[], Any]
) -> ModelState:
    """A freshly initialised model (seeded by `init_seed`), its optimizers (slots built) and metrics.

    Call inside `strategy.scope()` to distribute the variables. Models built with the same seed start with
    identical weights.
    """
    tf.keras.utils.set_random_seed(int(init_seed))
    state = ModelState(
        model=build_model(spec, label=label),
        embedding_optimizer=make_embedding_optimizer(optimizer_config),
        dense_optimizer=make_dense_optimizer(optimizer_config),
        metrics=metrics_factory(),
    )
    state.build_optimizers()
    return state


def replica_train_step(
    states: Sequence[ModelState], batch: dict[str, tf.Tensor], label: str
) -> tuple[tf.Tensor, list[tf.Tensor], list[tf.Tensor]]:
    """Trains every model on this replica's share of one global batch (replica context).

    The loss is the sum of per-example cross-entropies divided by the number of examples in the global batch
    (summed over replicas, so uneven final batches are weighted right); gradients are summed across replicas by
    the optimizers. Embedding gradients are `tf.IndexedSlices` and stay so through the sparse Adagrad update.

    Returns:
      (labels [n], per model: probabilities [n] computed with the pre-update weights, per model: summed loss).
    """
    labels = batch[label]
    global_count = _global_count(labels)
    probabilities, loss_sums = [], []
    for state in states:
        probability, loss_sum = _train_model(state, batch, global_count)
        probabilities.append(probability)
        loss_sums.append(loss_sum)
    return labels, probabilities, loss_sums


def _global_count(labels: tf.Tensor) -> tf.Tensor:
    local = tf.cast(tf.shape(labels)[0], tf.float32)
    replica_context = tf.distribute.get_replica_context()
    if replica_context is not None and replica_context.num_replicas_in_sync > 1:
        return replica_context.all_reduce(tf.distribute.ReduceOp.SUM, local)
    return local


def _train_model(state: ModelState, batch: dict[str, tf.Tensor], global_count: tf.Tensor):
    """One model's update on `batch`: (probabilities with the pre-update weights, summed loss)."""
    model = state.model
    embedding_variables, dense_variables = model.embedding_variables, model.dense_variables
    with tf.GradientTape() as tape:
        logits = model(batch, training=True)
        loss_sum = tf.reduce_sum(model.per_example_loss(batch, logits))
        loss = loss_sum / tf.maximum(global_count, 1.0)
    gradients = tape.gradient(loss, embedding_variables + dense_variables)
    split = len(embedding_variables)
    state.embedding_optimizer.apply_gradients(zip(gradients[:split], embedding_variables, strict=True))
    state.dense_optimizer.apply_gradients(zip(gradients[split:], dense_variables, strict=True))
    return tf.sigmoid(logits), loss_sum


def replica_train_step_per_model(states: Sequence[ModelState], batches: Sequence[Any], label: str):
    """Like `replica_train_step`, but model r trains on its own batch `batches[r] = (features, positions)`.

    Returns:
      ([labels [n] per model], [probabilities [n] per model, pre-update weights], [summed loss per model],
      [positions [n] per model]).
    """
    labels, probabilities, loss_sums, positions = [], [], [], []
    for state, (batch, position) in zip(states, batches, strict=True):
        probability, loss_sum = _train_model(state, batch, _global_count(batch[label]))
        labels.append(batch[label])
        probabilities.append(probability)
        loss_sums.append(loss_sum)
        positions.append(position)
    return labels, probabilities, loss_sums, positions


def make_per_model_train_step(
    strategy: tf.distribute.Strategy, states: Sequence[ModelState], label: str, element_spec: Any = None
) -> Callable:
    """A `tf.function` for replica mode with per-replica orders (`DataSource.replica_dataset` batches).

    Returns a function `batch → ([labels [N]], [probabilities [N]], [mean loss], [positions [N]])`, one entry per
    model, all gathered to the global batch. One traced step trains every model, so the per-step overhead
    (dispatch, input) is paid once.
    """

    @tf.function(input_signature=[element_spec] if element_spec is not None else None)
    def train_step(batch):
        labels, probabilities, loss_sums, positions = strategy.run(
            replica_train_step_per_model, args=(states, batch, label))
        labels = [strategy.gather(t, axis=0) for t in labels]
        probabilities = [strategy.gather(p, axis=0) for p in probabilities]
        positions = [strategy.gather(p, axis=0) for p in positions]
        losses = []
        for model_labels, loss_sum in zip(labels, loss_sums, strict=True):
            count = tf.maximum(tf.cast(tf.shape(model_labels)[0], tf.float32), 1.0)
            losses.append(strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sum, axis=None) / count)
        return labels, probabilities, losses, positions

    return train_step


def replica_score_step(states: Sequence[ModelState], batch: dict[str, tf.Tensor], label: str):
    """Scores one batch with every model without training (replica context): (labels, [probabilities])."""
    return batch[label], [tf.sigmoid(state.model(batch, training=False)) for state in states]


def make_train_step(
    strategy: tf.distribute.Strategy, states: Sequence[ModelState], label: str, element_spec: Any = None
) -> Callable:
    """A `tf.function` taking one distributed batch and returning global NumPy-ready tensors.

    Returns a function `batch → (labels [N], [probabilities [N] per model], [mean loss per model])` where N is the
    global batch size; predictions come from the pre-update weights (score-before-train). `element_spec` (the
    distributed dataset's) fixes the signature, so the final partial batch does not trigger a second trace.
    """

    @tf.function(input_signature=[element_spec] if element_spec is not None else None)
    def train_step(batch):
        labels, probabilities, loss_sums = strategy.run(replica_train_step, args=(states, batch, label))
        labels = strategy.gather(labels, axis=0)
        probabilities = [strategy.gather(p, axis=0) for p in probabilities]
        count = tf.maximum(tf.cast(tf.shape(labels)[0], tf.float32), 1.0)
        losses = [strategy.reduce(tf.distribute.ReduceOp.SUM, s, axis=None) / count for s in loss_sums]
        return labels, probabilities, losses

    return train_step


def make_score_step(
    strategy: tf.distribute.Strategy, states: Sequence[ModelState], label: str, element_spec: Any = None
) -> Callable:
    """A `tf.function` scoring one distributed batch: (labels [N], [probabilities [N] per model])."""

    @tf.function(input_signature=[element_spec] if element_spec is not None else None)
    def score_step(batch):
        labels, probabilities = strategy.run(replica_score_step, args=(states, batch, label))
        return strategy.gather(labels, axis=0), [strategy.gather(p, axis=0) for p in probabilities]

    return score_step
