"""Reproducible CTR models with smooth activations.

Importing `recsys` selects the legacy Keras 2 implementation (`tf-keras`) before TensorFlow is
imported: tensorflow-recommenders needs it, Keras 3's `fit` fails under the multi-worker and
parameter-server strategies, and tf-keras' Adagrad keeps embedding updates sparse.
"""
import os
import sys

__version__ = "0.1.0"

_ALREADY_IMPORTED = "tensorflow" in sys.modules
_PREVIOUS = os.environ.get("TF_USE_LEGACY_KERAS")
os.environ["TF_USE_LEGACY_KERAS"] = "1"


def _check_keras_version() -> None:
    """Fails if TensorFlow was imported earlier with Keras 3 bound to `tf.keras`."""
    import tensorflow as tf

    # tf.keras is a lazy loader that reads TF_USE_LEGACY_KERAS on first use, so an early
    # `import tensorflow` is fine as long as nothing touched tf.keras yet.
    module = tf.keras.__name__
    if not module.startswith("tf_keras"):
        raise ImportError(
            "TensorFlow was imported before `recsys` with Keras 3 active "
            f"(tf.keras is {module!r}; TF_USE_LEGACY_KERAS was {_PREVIOUS!r}). recsys needs the "
            "legacy tf-keras 2 implementation. Import `recsys` before `tensorflow`, or set "
            "TF_USE_LEGACY_KERAS=1 in the environment before starting Python."
        )


if _ALREADY_IMPORTED and _PREVIOUS != "1":
    _check_keras_version()
