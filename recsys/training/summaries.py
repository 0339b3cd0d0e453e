"""TensorBoard scalars without the `tensorboard` package.

`tf.summary.scalar` lives in the tensorboard package, which the pinned requirements do not install. The event
files TensorBoard reads only need `tf.summary.write` (TensorFlow core) with the scalars plugin's metadata, so
that is what this writes; `tensorboard --logdir <workdir>/tb` shows them as ordinary scalars.
"""
from __future__ import annotations

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
).SerializeToString()


def scalar(tag: str, value: float, step: int) -> None:
    """Writes one scalar to the default summary writer (a no-op without one)."""
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=_SCALAR_METADATA)


def read_scalars(directory: str) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of every scalar in the event files under `directory` (for tests and tools)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(tf.io.gfile.glob(f"{directory}/events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return out
