"""The CTR training task: models, optimizers and the distributed train step.

The loop (`recsys.training.loop`) knows nothing about the model's internals: a training mode
(`recsys.training.modes`) holds the `ModelState`s (one per trained model; a single one for an ordinary run,
several when replicas share one parsed stream), runs its replica-context step (`replica_train_step`,
`replica_train_step_per_model`, distillation's `replica_distill_step`) through `make_synchronous_step` (or the
parameter-server coordinator) and hands the loop one `StepResult` per global batch.

Score-before-train at no extra cost: the train step's forward pass uses the weights from before the update, so
the probabilities it returns are exactly what scoring the batch and then training on it would give (the model
has no dropout or batch norm, so training and inference forward passes are the same function — `training=True`
only selects fused kernels equal up to float rounding; tests/training/test_loop.py checks the equality against a
separate score-then-train loop).

Padding (`config.data.pad_final_batch`, `recsys.data.input.PADDING_LABEL`): a padding example carries the label
-1; every step weights each example's loss by `example_weights` (1 for a real example, 0 for padding), divides by
the number of real examples, and the mode drops padding from the gathered outputs (`drop_padding`) before they
become a `StepResult`. A zero-weight example has a zero gradient everywhere, so its embedding rows and Adagrad
accumulators get `scatter_add`s of exact zeros: padding changes no weight.

The step is strategy-agnostic: the same replica-context function runs under the default strategy, (multi-worker)
mirrored, the parameter-server workers and `TPUStrategy`; `jit_compile_step` XLA-compiles it as one function.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from recsys.model.ctr import CTRModel, ModelSpec, build_model
from recsys.training.averaging import WeightAverage, assign_variables
from recsys.training.schedules import ScheduleSpec
from recsys.training.settling import SettlingSpec

DENSE_OPTIMIZERS = ("adagrad", "adam", "sgd")
_TPU_STRATEGIES = (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy)
# Strategies whose replica step `jit_compile_step` compiles: one replica per process, so the optimizers'
# cross-replica `merge_call`s run inside the compiled function (MirroredStrategy cannot merge from inside a nested
# tf.function); TPUStrategy compiles its steps itself. The weight average and the jitter snapshot are updated
# outside the step (`settling.SettlingSteps`).
JIT_STEP_STRATEGIES = ("default", "tpu")


@dataclasses.dataclass(frozen=True)
class StepResult:
    """One global step's outcome, one entry per trained model (in the mode's state order).

    Attributes:
      labels: the labels of the examples the model trained on [N] (the same array for models sharing one order).
      probabilities: the model's predictions on them with its pre-update weights [N] (score-before-train).
      losses: the model's mean loss over the global batch.
      positions: the examples' positions in the time-ordered stream [N] (progressive PD aligns replicas by them).
      averaged_probabilities: with `config.averaging.progressive_averaged`, the averaged weights' predictions on
        the same examples before this step [N]; else None.
      snapshot_probabilities: on a jitter step (`recsys.training.settling.SettlingSteps`), the predictions of the
        weights of `jitter_steps` steps earlier on the same examples [N]; else None.
    """

    labels: list[np.ndarray]
    probabilities: list[np.ndarray]
    losses: list[float]
    positions: list[np.ndarray]
    averaged_probabilities: list[np.ndarray] | None = None
    snapshot_probabilities: list[np.ndarray] | None = None

    @property
    def size(self) -> int:
        """Examples in the global batch (every model trains on as many)."""
        return int(self.labels[0].size)


@dataclasses.dataclass
class ModelState:
    """One trained model with its two optimizers and its progressive metrics.

    With settling options (`recsys.training.settling`): `average` holds the EMA of its weights (scored into
    `averaged_metrics` when `progressive_averaged`), `snapshot` its weights of `jitter_steps` steps ago; both are
    updated outside the train step (`settling.SettlingSteps`).
    """

    model: CTRModel
    embedding_optimizer: tf.keras.optimizers.Optimizer
    dense_optimizer: tf.keras.optimizers.Optimizer
    metrics: Any  # recsys.metrics.streaming.ProgressiveMetrics
    average: WeightAverage | None = None
    averaged_metrics: Any = None  # ProgressiveMetrics of the averaged weights (progressive_averaged)
    snapshot: CTRModel | None = None

    def build_optimizers(self) -> None:
        """Creates the optimizer slots now, so a checkpoint restores into existing variables."""
        self.embedding_optimizer.build(self.model.embedding_variables)
        self.dense_optimizer.build(self.model.dense_variables)

    def apply_gradients(self, gradients: Sequence[Any], batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Applies the gradients of `embedding_variables + dense_variables` (after the forward pass that scored
        `batch`); returns the extra predictions on `batch`: "averaged" (the averaged weights, as the previous
        steps left them; `averaged_metrics` set).

        Reads of a variable are ordered before its later writes in the traced step (program order), so every
        prediction here is of the weights before this step's update.
        """
        extras = {}
        if self.averaged_metrics is not None:
            extras["averaged"] = tf.sigmoid(self.average.model(batch, training=True))
        split = len(self.model.embedding_variables)
        self.embedding_optimizer.apply_gradients(
            zip(gradients[:split], self.model.embedding_variables, strict=True))
        self.dense_optimizer.apply_gradients(zip(gradients[split:], self.model.dense_variables, strict=True))
        return extras


def make_embedding_optimizer(optimizer_config: Any, schedule: ScheduleSpec | None = None
                             ) -> tf.keras.optimizers.Optimizer:
    """Adagrad for the embedding tables: applied to `tf.IndexedSlices`, it updates only the rows looked up.
    `schedule` (default constant) scales `embedding_learning_rate` over the stream."""
    _check_positive("config.optimizer.embedding_learning_rate", optimizer_config.embedding_learning_rate)
    return tf.keras.optimizers.Adagrad(
        learning_rate=(schedule or ScheduleSpec()).learning_rate(float(optimizer_config.embedding_learning_rate)),
        initial_accumulator_value=float(optimizer_config.embedding_initial_accumulator),
        jit_compile=False,
    )


def make_dense_optimizer(optimizer_config: Any, schedule: ScheduleSpec | None = None
                         ) -> tf.keras.optimizers.Optimizer:
    """The optimizer of every non-embedding variable: adagrad | adam | sgd; `schedule` scales its rate."""
    name = optimizer_config.dense
    _check_positive("config.optimizer.dense_learning_rate", float(optimizer_config.dense_learning_rate))
    learning_rate = (schedule or ScheduleSpec()).learning_rate(float(optimizer_config.dense_learning_rate))
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


def check_jit_compile_step(strategy_name: str) -> None:
    """Raises ValueError when `config.jit_compile_step` cannot compile the step under `strategy_name`."""
    if strategy_name not in JIT_STEP_STRATEGIES:
        raise ValueError(
            f"`config.jit_compile_step=True` compiles the train step under strategy {JIT_STEP_STRATEGIES} (mirrored "
            "strategies merge the optimizer updates across replicas with `merge_call`, which XLA-compiled "
            f"functions cannot hold). Received: strategy={strategy_name!r}; use config.model.jit_compile for the "
            "dense part instead")


def _check_positive(key: str, value: float) -> None:
    if not float(value) > 0:
        raise ValueError(f"`{key}` must be positive. Received: {value!r}")


def build_model_state(
    spec: ModelSpec, label: str, optimizer_config: Any, init_seed: int, metrics_factory: Callable[[], Any],
    settling: SettlingSpec | None = None,
) -> ModelState:
    """A freshly initialised model (seeded by `init_seed`), its optimizers (slots built) and metrics, with the
    learning-rate schedule, weight average and jitter snapshot of `settling` (default: none).

    Call inside `strategy.scope()` to distribute the variables. Models built with the same seed start with
    identical weights.
    """
    settling = settling or SettlingSpec()
    tf.keras.utils.set_random_seed(int(init_seed))
    state = ModelState(
        model=build_model(spec, label=label),
        embedding_optimizer=make_embedding_optimizer(optimizer_config, settling.schedule),
        dense_optimizer=make_dense_optimizer(optimizer_config, settling.schedule),
        metrics=metrics_factory(),
    )
    state.build_optimizers()
    averaging = settling.averaging
    if averaging.enabled:
        state.average = WeightAverage(build_model(spec, label=label), state.model, averaging,
                                      settling.schedule.batch_size)
        state.averaged_metrics = metrics_factory() if averaging.progressive_averaged else None
    if settling.jitter_steps:
        state.snapshot = build_model(spec, label=label)
        assign_variables(state.snapshot.variables, state.model.variables)
    return state


# What a replica-context step returns (`make_synchronous_step`): ([labels [n]], [probabilities [n] per model],
# [summed loss per model], [positions [n]]), with one labels entry when every model trains on the same batch, and
# positions only when the batch carries them (per-replica orders); a fifth entry, [extras per model]
# (`ModelState.apply_gradients`), only when a model averages with progressive scoring.
ReplicaOutputs = tuple


def replica_train_step(
    states: Sequence[ModelState], batch: dict[str, tf.Tensor], label: str, codistill_weight: float = 0.0,
) -> ReplicaOutputs:
    """Trains every model on this replica's share of one global batch (replica context).

    The loss is the sum of per-example cross-entropies divided by the number of examples in the global batch
    (summed over replicas, so uneven final batches are weighted right); gradients are summed across replicas by
    the optimizers. Embedding gradients are `tf.IndexedSlices` and stay so through the sparse Adagrad update.
    `codistill_weight` > 0: the models are co-distilled (`replica_codistill_step`).

    Returns:
      ([labels [n]], per model: probabilities [n] computed with the pre-update weights, per model: summed loss, [])
      and the models' extras when there are any (`ReplicaOutputs`).
    """
    labels = batch[label]
    if codistill_weight > 0:
        probabilities, loss_sums, extras = replica_codistill_step(states, [batch] * len(states), label,
                                                                  codistill_weight)
        return with_extras(([labels], probabilities, loss_sums, []), extras)
    global_count = _global_count(labels)
    probabilities, loss_sums, extras = [], [], []
    for state in states:
        probability, loss_sum, extra = _train_model(state, batch, global_count)
        probabilities.append(probability)
        loss_sums.append(loss_sum)
        extras.append(extra)
    return with_extras(([labels], probabilities, loss_sums, []), extras)


def with_extras(outputs: tuple, extras: list[dict[str, tf.Tensor]]) -> ReplicaOutputs:
    """`outputs` (four lists) with the models' extras appended when any model has some."""
    return (*outputs, extras) if any(extras) else outputs


def example_weights(labels: tf.Tensor) -> tf.Tensor:
    """1.0 for a real example, 0.0 for padding (label `PADDING_LABEL` < 0) [n]."""
    return tf.cast(labels >= 0, tf.float32)


def real_rows(labels: Sequence[np.ndarray]) -> list[np.ndarray] | None:
    """Per model, the mask of its real (not padding) examples; None when a step has no padding."""
    masks = [y >= 0 for y in labels]
    return None if all(mask.all() for mask in masks) else masks


def drop_padding(outputs: list[np.ndarray] | None, real: list[np.ndarray] | None) -> list[np.ndarray] | None:
    """Per model, the real rows (`real_rows`) of its output [N]."""
    if outputs is None or real is None:
        return outputs
    return [output[mask] for output, mask in zip(outputs, real, strict=True)]


def _global_count(labels: tf.Tensor) -> tf.Tensor:
    """The number of real examples in the global batch (summed over replicas)."""
    local = tf.reduce_sum(example_weights(labels))
    replica_context = tf.distribute.get_replica_context()
    if replica_context is not None and replica_context.num_replicas_in_sync > 1:
        return replica_context.all_reduce(tf.distribute.ReduceOp.SUM, local)
    return local


def _train_model(state: ModelState, batch: dict[str, tf.Tensor], global_count: tf.Tensor):
    """One model's update on `batch`: (probabilities with the pre-update weights, summed loss, extras)."""
    model = state.model
    embedding_variables, dense_variables = model.embedding_variables, model.dense_variables
    with tf.GradientTape() as tape:
        logits = model(batch, training=True)
        loss_sum = tf.reduce_sum(model.per_example_loss(batch, logits) * example_weights(batch[model.label]))
        loss = loss_sum / tf.maximum(global_count, 1.0)
    gradients = tape.gradient(loss, embedding_variables + dense_variables)
    extras = state.apply_gradients(gradients, batch)
    return tf.sigmoid(logits), loss_sum, extras


def codistill_losses(states: Sequence[ModelState], batches: Sequence[dict[str, tf.Tensor]],
                     weight: float) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
    """Co-distillation (Anil et al. 2018, arXiv:1804.03235): every model also learns from the others' predictions.

    Model r's per-example loss on its batch x_r is

        (1 − w) · BCE(y, σ(z_r(x_r))) + w · BCE(mean_{s≠r} σ(z_s(x_r)), σ(z_r(x_r)))

    with the peers' probabilities under `tf.stop_gradient`. Every forward pass here runs before any update of
    the step (the callers apply gradients afterwards; TensorFlow orders a variable's reads before its later
    writes in program order), so the peers' predictions on the current batch come from their pre-update
    weights, exactly as their own progressive predictions do. When models share one batch object their own
    forward passes are reused; with per-model orders each peer scores x_r once more (R·(R − 1) extra forward
    passes per step).

    Must run inside a `tf.GradientTape` that watches every model's variables.

    Returns:
      (per model: logits of its own batch [n], per model: per-example loss [n], 0 for padding).
    """
    logits = [state.model(batch, training=True) for state, batch in zip(states, batches, strict=True)]
    losses = []
    for r, (state, batch) in enumerate(zip(states, batches, strict=True)):
        peers = []
        for s, other in enumerate(states):
            if s == r:
                continue
            peer_logits = logits[s] if batches[s] is batch else other.model(batch, training=False)
            peers.append(tf.sigmoid(tf.stop_gradient(peer_logits)))
        target = tf.add_n(peers) / float(len(peers))
        soft = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits[r])
        mixed = (1.0 - weight) * state.model.per_example_loss(batch, logits[r]) + weight * soft
        losses.append(mixed * example_weights(batch[state.model.label]))
    return logits, losses


def replica_codistill_step(states: Sequence[ModelState], batches: Sequence[dict[str, tf.Tensor]], label: str,
                           weight: float) -> tuple[list[tf.Tensor], list[tf.Tensor], list[dict[str, tf.Tensor]]]:
    """One co-distilled update of every model (replica context): ([probabilities [n]], [summed loss], [extras]).

    `batches[r]` is model r's batch (the same object for every model when they share one order). The summed
    loss reported is the mixed loss of `codistill_losses`.
    """
    variables = [state.model.embedding_variables + state.model.dense_variables for state in states]
    counts = [_global_count(batch[label]) for batch in batches]
    with tf.GradientTape() as tape:
        logits, per_example = codistill_losses(states, batches, weight)
        loss_sums = [tf.reduce_sum(loss) for loss in per_example]
        # Peers enter each other's losses only as constants, so the gradient of the sum with respect to model
        # r's variables is the gradient of model r's own loss.
        total = tf.add_n([s / tf.maximum(c, 1.0) for s, c in zip(loss_sums, counts, strict=True)])
    flat = [v for model_variables in variables for v in model_variables]
    gradients = tape.gradient(total, flat)
    start, extras = 0, []
    for state, model_variables, batch in zip(states, variables, batches, strict=True):
        grads = gradients[start:start + len(model_variables)]
        start += len(model_variables)
        extras.append(state.apply_gradients(grads, batch))
    return [tf.sigmoid(z) for z in logits], loss_sums, extras


def replica_train_step_per_model(states: Sequence[ModelState], batches: Sequence[Any], label: str,
                                 codistill_weight: float = 0.0) -> ReplicaOutputs:
    """Like `replica_train_step`, but model r trains on its own batch `batches[r] = (features, positions)`.

    Returns:
      ([labels [n] per model], [probabilities [n] per model, pre-update weights], [summed loss per model],
      [positions [n] per model]).
    """
    if codistill_weight > 0:
        features = [batch for batch, _ in batches]
        probabilities, loss_sums, extras = replica_codistill_step(states, features, label, codistill_weight)
        return with_extras(([batch[label] for batch in features], probabilities, loss_sums,
                            [position for _, position in batches]), extras)
    labels, probabilities, loss_sums, positions, extras = [], [], [], [], []
    for state, (batch, position) in zip(states, batches, strict=True):
        probability, loss_sum, extra = _train_model(state, batch, _global_count(batch[label]))
        labels.append(batch[label])
        probabilities.append(probability)
        loss_sums.append(loss_sum)
        positions.append(position)
        extras.append(extra)
    return with_extras((labels, probabilities, loss_sums, positions), extras)


def make_synchronous_step(strategy: tf.distribute.Strategy, replica_fn: Callable, element_spec: Any = None,
                          jit_compile: bool = False) -> Callable:
    """The one step builder of the synchronous strategies: a `tf.function` running `replica_fn(batch)` on every
    replica and gathering its outputs to the global batch.

    `replica_fn` (replica context) returns `([labels [n]], [probabilities [n] per model], [summed loss per model],
    [positions [n]])`: one labels entry for all models when they share one order or one per model, and positions
    only when the batch carries them (per-replica orders), else `[]`. The step returns the same four lists gathered
    (global batch N), with each summed loss turned into the global mean over its model's labels. `element_spec`
    (the distributed dataset's) fixes the signature, so the final partial batch does not trigger a second trace.
    A fifth entry of per-model extras (`ReplicaOutputs`) is gathered likewise and returned as a fifth list.
    Padding rows (label < 0) stay in the gathered outputs (`drop_padding` removes them) and count in no loss.

    `jit_compile`: `replica_fn` (forward, gradients, both optimizers' updates) runs as one XLA
    function (`check_jit_compile_step` says under which strategies); the gathers stay outside it. A `TPUStrategy`
    compiles `replica_fn` with XLA in any case.
    """
    if jit_compile and not isinstance(strategy, _TPU_STRATEGIES):
        replica_fn = tf.function(replica_fn, jit_compile=True)

    @tf.function(input_signature=[element_spec] if element_spec is not None else None)
    def train_step(batch):
        outputs = strategy.run(replica_fn, args=(batch,))
        labels, probabilities, loss_sums, positions = outputs[:4]
        extras = ([{key: strategy.gather(value, axis=0) for key, value in extra.items()} for extra in outputs[4]]
                  if len(outputs) > 4 else None)
        labels = [strategy.gather(t, axis=0) for t in labels]
        probabilities = [strategy.gather(p, axis=0) for p in probabilities]
        positions = [strategy.gather(p, axis=0) for p in positions]
        counts = [tf.maximum(tf.reduce_sum(example_weights(t)), 1.0) for t in labels]
        losses = [strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sum, axis=None) / counts[min(i, len(counts) - 1)]
                  for i, loss_sum in enumerate(loss_sums)]
        return (labels, probabilities, losses, positions) + ((extras,) if extras is not None else ())

    return train_step
