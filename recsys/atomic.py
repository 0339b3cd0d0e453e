"""Files that appear whole or not at all: every job's outputs are written under a temporary name and renamed.

A reader (a resuming trainer, the study, a server watching a folder, a user) never sees a half-written
metrics.json, results.json or log, and a run that fails leaves the earlier file in place. Local paths and
TensorFlow filesystems (gs://, ...) both work: remote paths go through `tf.io.gfile`, imported only then.

    with atomic.replacing(path) as temporary:   # any writer that takes a path
        figure.savefig(temporary)
    atomic.write_json(path, data)               # the project's JSON format: indented, no NaN
"""
from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any


def _remote(path: str) -> bool:
    return "://" in path


@contextlib.contextmanager
def replacing(path: str) -> Iterator[str]:
    """Yields a temporary path beside `path`; renames it to `path` when the block ends without an exception,
    removes it otherwise (the previous `path`, if any, is then untouched)."""
    temporary = f"{path.rstrip('/')}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        yield temporary
        if _remote(path):
            import tensorflow as tf

            tf.io.gfile.rename(temporary, path, overwrite=True)
        else:
            os.replace(temporary, path)
    finally:
        if _remote(path):
            import tensorflow as tf

            if tf.io.gfile.exists(temporary):
                tf.io.gfile.remove(temporary)
        elif os.path.exists(temporary):
            os.remove(temporary)


def write_text(path: str, text: str) -> None:
    """`text` into `path`, atomically."""
    with replacing(path) as temporary:
        if _remote(path):
            import tensorflow as tf

            with tf.io.gfile.GFile(temporary, "w") as f:
                f.write(text)
        else:
            with open(temporary, "w", encoding="utf-8") as f:
                f.write(text)


def write_json(path: str, data: Any, sort_keys: bool = False) -> None:
    """`data` as indented JSON (NaN/inf refused: write None for a missing number) into `path`, atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=sort_keys, allow_nan=False) + "\n")
