"""Fixtures of the trainer tests (helpers in tests/training/helpers.py)."""
import pytest
from tensorflow.python.framework import config as tf_config

from tests.training.helpers import write_stream


@pytest.fixture(scope="session")
def stream(tmp_path_factory) -> str:
    """3 shards × 400 examples."""
    return write_stream(tmp_path_factory.mktemp("stream"), shards=3, rows=400)


@pytest.fixture
def restore_determinism():
    """The trainer enables TF op determinism process-wide; put the previous setting back after the test."""
    before = tf_config.is_op_determinism_enabled()
    yield
    if not before:
        tf_config.disable_op_determinism()


@pytest.fixture(scope="session")
def plain_run(stream, tmp_path_factory):
    """One finished run of `small_config(stream, export_saved_model=True)` on `stream`, shared by the tests that
    train exactly that as their reference (issue 17: one training instead of one per test). Deterministic, so the
    same as a run of their own. Read only: (the Trainer, its metrics, its workdir)."""
    from recsys.training.loop import Trainer
    from tests.training.helpers import small_config

    workdir = tmp_path_factory.mktemp("plain_run") / "run"
    trainer = Trainer(small_config(stream, export_saved_model=True), str(workdir))
    return trainer, trainer.run().metrics, workdir
