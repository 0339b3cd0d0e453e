"""The package-level contract: importing recsys selects tf-keras before TensorFlow builds tf.keras."""
import os
import subprocess
import sys

import pytest


def _run(code: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update(env_extra or {})
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_import_sets_legacy_keras_before_tensorflow():
    out = _run("import recsys, os, tensorflow as tf; print(os.environ['TF_USE_LEGACY_KERAS'], tf.keras.__name__)")
    assert out.returncode == 0, out.stderr
    flag, module = out.stdout.split()
    assert flag == "1"
    assert module.startswith("tf_keras")


def test_tensorflow_imported_first_but_keras_untouched_is_fine():
    out = _run("import tensorflow as tf\nimport recsys\nprint(tf.keras.__name__)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("tf_keras")


def test_keras3_already_active_fails_with_instructions():
    out = _run("import tensorflow as tf\ntf.keras.layers\nimport recsys")
    assert out.returncode != 0
    assert "TF_USE_LEGACY_KERAS=1" in out.stderr
    assert "Import `recsys` before `tensorflow`" in out.stderr


@pytest.mark.parametrize("path", ["data/criteo_sample/day_0_head10k.tsv", "data/criteo_sample/SOURCE.md", "LICENSE"])
def test_bundled_files_present(path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert os.path.getsize(os.path.join(root, path)) > 0
