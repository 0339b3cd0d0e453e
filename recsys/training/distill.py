"""Knowledge distillation in the online trainer (`config.distill`, docs/training.md, "Distillation").

The student's per-example loss mixes the label loss with a loss towards the teacher's predictions:

    loss = (1 − w) · BCE(y, σ(z_s)) + w · T² · BCE(σ(z_t / T), σ(z_s / T))

with z_s, z_t the student's and teacher's logits, w = `config.distill.weight` and T = `config.distill.temperature`
(applied to logits only). The T² factor (Hinton et al., 2015, "Distilling the Knowledge in a Neural Network")
keeps the soft term's gradient scale independent of T; with T = 1 it is 1. BCE with a soft target differs from
KL(σ(z_t/T) ‖ σ(z_s/T)) by the target's entropy, a constant, so both have the same gradients. With w = 0 the loss is
the plain label loss exactly (tests/training/test_distill.py checks bit-identical weights).

Teachers (`config.distill.teacher`):
  * a SavedModel folder with the trainer's serving contract (`serving_default(examples: string[None]) →
    {"probabilities": float32[None]}`): frozen; it scores the serialized records of each batch, and its
    probabilities become logits log(p / (1 − p)) with p clipped to [1e-7, 1 − 1e-7].
  * "online": a second model (`config.model` with `config.distill.teacher_activation` if set, initialised with
    the largest student init seed + 1) trained on the labels in the same traced step. The student uses the logits
    of the teacher's forward pass that scores the batch for the teacher's progressive metrics — the pre-update
    weights — under `tf.stop_gradient`, so the student never sees predictions from a teacher that has trained on
    that batch.

Replica mode (`config.replicas.count = R`, noise `init`): R students, one teacher, all on one order. Every student
learns from the same teacher predictions, as R retrains of a student from one teacher would; per-replica orders
are refused, because a teacher trained in its own order would already have trained on examples a student sees
later in the same window.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from recsys.data import fingerprint
from recsys.data.features import FeatureSet
from recsys.data.input import SERIALIZED_KEY
from recsys.serving import contract, scorer
from recsys.training.task import ModelState, ReplicaOutputs, _global_count, example_weights, with_extras

ONLINE = "online"
# Teacher probabilities are clipped to [EPSILON, 1 − EPSILON] before turning them into logits.
EPSILON = 1e-7


@dataclasses.dataclass(frozen=True)
class DistillSpec:
    """A validated `config.distill`; `teacher == ""` means no distillation."""

    teacher: str = ""
    weight: float = 0.0
    temperature: float = 1.0
    teacher_activation: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.teacher)

    @property
    def online(self) -> bool:
        return self.teacher == ONLINE

    @classmethod
    def from_config(cls, distill_config: Any) -> DistillSpec:
        """Checks `config.distill`.

        Raises:
          ValueError: weight outside [0, 1], temperature not positive, or a teacher that is neither "", "online"
            nor an existing folder.
        """
        teacher = str(distill_config.teacher)
        weight = float(distill_config.weight)
        temperature = float(distill_config.temperature)
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"`config.distill.weight` must be in [0, 1]. Received: weight={distill_config.weight!r}")
        if not temperature > 0.0:
            raise ValueError(
                f"`config.distill.temperature` must be positive. Received: temperature={distill_config.temperature!r}")
        if teacher not in ("", ONLINE) and not tf.io.gfile.isdir(teacher):
            raise ValueError(
                f"`config.distill.teacher` must be '' (off), 'online' or an existing SavedModel folder. "
                f"Received: teacher={teacher!r} (no such folder)")
        return cls(teacher, weight, temperature, str(distill_config.teacher_activation))


def distillation_loss(
    label_loss: tf.Tensor, student_logits: tf.Tensor, teacher_logits: tf.Tensor, weight: float, temperature: float
) -> tf.Tensor:
    """Per-example (1 − w)·`label_loss` + w·T²·BCE(σ(z_t/T), σ(z_s/T)) (module docstring); [batch]."""
    scale = tf.constant(temperature, tf.float32)
    soft = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.sigmoid(teacher_logits / scale), logits=student_logits / scale)
    return (1.0 - weight) * label_loss + (weight * temperature**2) * soft


class SavedModelTeacher:
    """A frozen teacher loaded from a SavedModel folder; `logits(serialized)` scores a batch of records.

    Loading and the contract checks are `recsys.serving.scorer`'s; the signature itself is called inside the
    traced train step, on the batch's serialized records.

    Raises (constructor):
      ValueError: the folder is not a SavedModel, has no `serving_default` taking `examples` (string) and
        returning `probabilities`, or its features.json (assets.extra/) does not match the training data's.
    """

    def __init__(self, path: str, features: FeatureSet):
        self.path = path
        try:
            loaded, function = scorer.load_serving_signature(path)
            scorer.check_features(path, features)
            scorer.check_fingerprint(path, features.fingerprint(), "the training data's features.json")
        except (scorer.SavedModelError, fingerprint.FingerprintError) as e:
            raise ValueError(f"`config.distill.teacher`: {e}") from None
        self._loaded = loaded  # keeps the function's variables alive
        self._function = function

    def logits(self, serialized: tf.Tensor) -> tf.Tensor:
        """log(p / (1 − p)) of the teacher's clipped probabilities p for serialized examples [n]."""
        p = tf.cast(self._function(**{contract.INPUT_KEY: serialized})[contract.OUTPUT_KEY], tf.float32)
        p = tf.clip_by_value(tf.reshape(p, [-1]), EPSILON, 1.0 - EPSILON)
        return tf.math.log(p) - tf.math.log1p(-p)

    def check_batch(self, serialized: tf.Tensor) -> None:
        """Scores one batch eagerly; a teacher that cannot score the data fails here, before training."""
        try:
            logits = self.logits(serialized)
        except (tf.errors.OpError, ValueError, TypeError) as e:
            message = e.message if isinstance(e, tf.errors.OpError) else str(e)
            raise ValueError(f"Teacher SavedModel {self.path!r} cannot score the training records: "
                             f"{message.splitlines()[0] if message else type(e).__name__}") from None
        if logits.shape[0] != serialized.shape[0]:
            raise ValueError(f"Teacher SavedModel {self.path!r} returned {logits.shape[0]} probabilities for "
                             f"{serialized.shape[0]} examples")


def _update(state: ModelState, batch: dict[str, tf.Tensor], global_count: tf.Tensor,
            target: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None
            ) -> tuple[tf.Tensor, tf.Tensor, dict[str, tf.Tensor]]:
    """One model's update: (logits of the pre-update weights, summed loss, extras); `target` rewrites the label
    loss."""
    model = state.model
    embedding_variables, dense_variables = model.embedding_variables, model.dense_variables
    with tf.GradientTape() as tape:
        logits = model(batch, training=True)
        per_example = model.per_example_loss(batch, logits)
        if target is not None:
            per_example = target(per_example, logits)
        loss_sum = tf.reduce_sum(per_example * example_weights(batch[model.label]))
        loss = loss_sum / tf.maximum(global_count, 1.0)
    gradients = tape.gradient(loss, embedding_variables + dense_variables)
    return logits, loss_sum, state.apply_gradients(gradients, batch)


def model_features(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """The batch without the serialized records the SavedModel teacher scores (what the models take)."""
    return {name: value for name, value in batch.items() if name != SERIALIZED_KEY}


def replica_distill_step(states: Sequence[ModelState], batch: dict[str, tf.Tensor], teacher: SavedModelTeacher | None,
                         label: str, spec: DistillSpec) -> ReplicaOutputs:
    """Replica context (`task.make_synchronous_step`). `states` = the students (one, or R in replica mode with one
    order), then the online teacher when `teacher` is None.

    Returns ([labels], [probabilities per state, pre-update weights], [summed loss per state], []) and the
    states' extras when there are any (`task.ReplicaOutputs`); for the online teacher its probabilities are σ of
    exactly the logits the students' losses used.
    """
    global_count = _global_count(batch[label])
    features = model_features(batch)
    students = states[:-1] if teacher is None else states
    probabilities, loss_sums, extras = [], [], []
    if teacher is None:
        # The teacher's forward pass reads its variables before its own update (program order in the traced
        # step), and the students get those logits with the gradient stopped.
        teacher_logits, teacher_loss, teacher_extras = _update(states[-1], features, global_count)
        teacher_logits = tf.stop_gradient(teacher_logits)
    else:
        teacher_logits = tf.stop_gradient(teacher.logits(batch[SERIALIZED_KEY]))

    def target(label_loss, student_logits):
        return distillation_loss(label_loss, student_logits, teacher_logits, spec.weight, spec.temperature)

    for student in students:
        student_logits, student_loss, student_extras = _update(student, features, global_count, target)
        probabilities.append(tf.sigmoid(student_logits))
        loss_sums.append(student_loss)
        extras.append(student_extras)
    if teacher is None:
        probabilities.append(tf.sigmoid(teacher_logits))
        loss_sums.append(teacher_loss)
        extras.append(teacher_extras)
    return with_extras(([batch[label]], probabilities, loss_sums, []), extras)
