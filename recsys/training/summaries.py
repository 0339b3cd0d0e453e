"""Reading back the trainer's TensorBoard scalars (for tests and tools).

The trainer writes them with `tf.summary.scalar` (the pinned `tensorboard` package) into `<workdir>/tb`;
`tensorboard --logdir <workdir>/tb` shows them. This reads the event files with TensorBoard's own reader.
"""
from __future__ import annotations

import os

from tensorboard.backend.event_processing import event_file_loader
from tensorboard.util import tensor_util

#: The TensorBoard plugin that `tf.summary.scalar` tags its values with.
SCALARS_PLUGIN = "scalars"


def read_scalars(directory: str) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of every scalar in the event files directly under `directory`, in file order."""
    import tensorflow as tf

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(tf.io.gfile.glob(os.path.join(directory, "events.out.tfevents.*"))):
        for event in event_file_loader.EventFileLoader(path).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != SCALARS_PLUGIN:
                    continue
                out.setdefault(value.tag, []).append((event.step, float(tensor_util.make_ndarray(value.tensor))))
    return out
