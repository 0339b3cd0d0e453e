"""One real server subprocess for the serving tests of a session, and the SavedModel's own predictions."""
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from recsys.bench.serving import ServerProcess, read_records
from recsys.testing import export_toy_saved_model, toy_feature_set, write_toy_tfrecords

MAX_BATCH = 32


@dataclasses.dataclass
class Served:
    server: ServerProcess
    records: list  # serialized tf.Examples
    model_path: str

    def expected(self, records) -> np.ndarray:
        """The SavedModel's own predictions, computed in this process."""
        return in_process_predictions(self.model_path, records)


_LOADED = {}


def in_process_predictions(model_path: str, records) -> np.ndarray:
    if model_path not in _LOADED:
        _LOADED[model_path] = tf.saved_model.load(model_path)
    signature = _LOADED[model_path].signatures["serving_default"]
    return signature(examples=tf.constant(list(records)))["probabilities"].numpy()


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("served")
    features = toy_feature_set()
    model_path = os.path.join(tmp, "models", "1")
    export_toy_saved_model(model_path, features, seed=0)
    data = os.path.join(tmp, "examples.tfrecord")
    write_toy_tfrecords(data, features, rows=64, seed=3)
    server = ServerProcess(os.path.join(tmp, "models"), "ctr", rest=True,
                           flags=[f"--max_batch_size={MAX_BATCH}", "--poll_seconds=0.5"])
    with server:
        yield Served(server, read_records(data), model_path)


@pytest.fixture
def stub(served):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(served.server.address) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
