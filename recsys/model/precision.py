"""Mixed precision of the CTR model: the tf-keras policy its layers are built under (`config.model.mixed_precision`).

| value            | compute  | variables | logits, probabilities, losses | loss scaling |
|------------------|----------|-----------|-------------------------------|--------------|
| `""`             | float32  | float32   | float32                       | —            |
| `mixed_bfloat16` | bfloat16 | float32   | float32 (logit layer float32) | not needed   |
| `mixed_float16`  | refused  |           |                               | needed       |

bfloat16 has float32's exponent range, so gradients do not underflow and no loss scaling is needed; it is the
TPU's native matmul type and runs on recent GPUs (and, slowly, on CPU). float16 would need dynamic loss scaling:
this trainer updates two optimizers (sparse Adagrad for the tables, the dense optimizer) and the settling state
from one loss, so one scale would have to be shared by both and a skipped (overflowing) step would have to skip
both updates, the weight average and the jitter snapshot together; tf-keras' `LossScaleOptimizer` wraps one
optimizer only. Rather than a half-right version, `mixed_float16` is refused with that reason.

The policy is set only while a model's layers are constructed (`precision_policy`): each layer keeps the policy it
was built with, and the process-wide global policy is restored afterwards, so nothing else (other models, tests)
sees it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import tensorflow as tf

MIXED_PRECISION = ("", "mixed_bfloat16")


def check_mixed_precision(value: str) -> None:
    """Raises ValueError for anything but `MIXED_PRECISION`, with the reason for `mixed_float16`."""
    if value == "mixed_float16":
        raise ValueError(
            "`config.model.mixed_precision='mixed_float16'` is not supported: float16 needs loss scaling, and this "
            "trainer's step updates two optimizers (sparse embedding Adagrad and the dense optimizer) from one "
            "loss, which tf-keras' LossScaleOptimizer (one optimizer) cannot scale and skip together. Use "
            "'mixed_bfloat16' (float32's exponent range, no loss scaling) or '' (float32)."
        )
    if value not in MIXED_PRECISION:
        raise ValueError(f"`config.model.mixed_precision` must be one of {MIXED_PRECISION}. Received: {value!r}")


@contextlib.contextmanager
def precision_policy(value: str) -> Iterator[tf.keras.mixed_precision.Policy]:
    """Layers constructed inside use the policy `value` ("" = float32); the previous global policy is restored
    on exit, also on error."""
    check_mixed_precision(value)
    if not value:
        # float32: the global policy is left alone. Setting one, even "float32", pins it: layers then stop taking
        # their dtype from `floatx` (recsys.plots.landscape builds float64 layers that way).
        yield tf.keras.mixed_precision.global_policy()
        return
    previous = tf.keras.mixed_precision.global_policy()
    policy = tf.keras.mixed_precision.Policy(value)
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        yield policy
    finally:
        # Back to the default policy (which follows floatx) rather than pinning it, unless another was set.
        tf.keras.mixed_precision.set_global_policy(None if previous.name == tf.keras.backend.floatx() else previous)
