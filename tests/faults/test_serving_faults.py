"""Serving faults (issue 18): bad tf.Examples are refused by name, and a vanished base path is survived quietly.

A real gRPC server (and the REST API) on 127.0.0.1, started in this process over a `ModelManager`, serves the toy
SavedModel of `recsys.testing` (exported once per module). Every bad request is answered INVALID_ARGUMENT naming the
0-based index of the bad Example in the request, the feature and what was expected, and the server answers a good
request right after it.
"""
import base64
import http.client
import json
import logging
import os
import shutil
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc, regression_pb2

from recsys.bench.serving import predict_request, read_records
from recsys.serving.rest import RestServer
from recsys.serving.server import ModelManager, build_grpc_server
from recsys.testing import export_toy_saved_model, toy_feature_set, write_toy_tfrecords
from tests.serving.conftest import in_process_predictions

BAD_INDEX = 2  # the bad Example's position in each 4-Example request


class InProcessServer:
    """ModelManager + gRPC (+ REST) server on 127.0.0.1 free ports, in this process."""

    def __init__(self, base: str, rest: bool = False, poll_seconds: float | None = None):
        self.manager = ModelManager("ctr", base, max_batch_size=64)
        self.manager.load_initial()
        self.grpc, port = build_grpc_server(self.manager, "127.0.0.1", 0, max_workers=4)
        self.grpc.start()
        self.rest = RestServer(self.manager, "127.0.0.1", 0) if rest else None
        if self.rest is not None:
            self.rest.start()
        if poll_seconds:
            self.manager.start_polling(poll_seconds)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def close(self) -> None:
        self.manager.stop_polling(timeout=5)
        self.channel.close()
        if self.rest is not None:
            self.rest.stop()
        self.grpc.stop(grace=None).wait()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving_faults")
    features = toy_feature_set()
    path = os.path.join(tmp, "export", "1")
    export_toy_saved_model(path, features, seed=0)
    data = os.path.join(tmp, "examples.tfrecord")
    write_toy_tfrecords(data, features, rows=16, seed=3)
    return {"tmp": tmp, "path": path, "records": read_records(data)}


@pytest.fixture(scope="module")
def server(model):
    base = os.path.join(model["tmp"], "served")
    shutil.copytree(model["path"], os.path.join(base, "1"))
    running = InProcessServer(base, rest=True)
    yield running
    running.close()


def _assert_serves_good_request(server, model):
    records = model["records"][:3]
    response = server.stub.Predict(predict_request("ctr", records), timeout=10)
    got = tf.make_ndarray(response.outputs["probabilities"])
    np.testing.assert_allclose(got, in_process_predictions(model["path"], records), rtol=1e-6)


def _edit(change):
    def bad_record(good: bytes) -> bytes:
        example = tf.train.Example.FromString(good)
        change(example.features.feature)
        return example.SerializeToString()
    return bad_record


def _float_list_for_int64(feature):
    del feature["C1"]
    feature["C1"].float_list.value.append(3.0)


# case: (bad record from a good one, feature named, what the message says it expected)
BAD_EXAMPLES = {
    "missing feature": (_edit(lambda f: f.pop("I2")), "'I2' is missing", "a float_list with exactly 1 finite value"),
    "float_list for int64": (_edit(_float_list_for_int64), "'C1' is a float_list",
                             "an int64_list with exactly 1 value in [0, 10)"),
    "two values for a scalar": (_edit(lambda f: f["I1"].float_list.value.append(1.0)), "'I1' has 2 values",
                                "a float_list with exactly 1 finite value"),
    "NaN": (_edit(lambda f: f["I3"].float_list.value.__setitem__(0, float("nan"))), "'I3' is nan",
            "a float_list with exactly 1 finite value"),
    "inf": (_edit(lambda f: f["I1"].float_list.value.__setitem__(0, float("inf"))), "'I1' is inf",
            "a float_list with exactly 1 finite value"),
    "id outside the vocabulary": (_edit(lambda f: f["C2"].int64_list.value.__setitem__(0, 20)),
                                  "'C2' has id 20, outside the vocabulary",
                                  "an int64_list with exactly 1 value in [0, 20)"),
    "garbage bytes": (lambda good: b"\xffnot a tf.Example", "is not a serialized tf.Example",
                      "a tf.Example with the features C1 (int64_list)"),
    "empty Example": (lambda good: b"", "required feature 'C1' is missing", "an int64_list"),
}


@pytest.mark.parametrize("case", list(BAD_EXAMPLES))
def test_bad_example_is_refused_by_index_and_feature(server, model, case):
    make_bad, problem, expected = BAD_EXAMPLES[case]
    records = list(model["records"][:4])
    records[BAD_INDEX] = make_bad(records[BAD_INDEX])
    with pytest.raises(grpc.RpcError) as info:
        server.stub.Predict(predict_request("ctr", records), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    message = info.value.details()
    assert f"Example at index {BAD_INDEX} of the request" in message
    assert problem in message and f"expected {expected}" in message, message
    _assert_serves_good_request(server, model)


def test_regress_refuses_nan_by_index_and_feature(server, model):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "ctr"
    examples = [tf.train.Example.FromString(r) for r in model["records"][:3]]
    examples[1].features.feature["I2"].float_list.value[0] = float("nan")
    request.input.example_list.examples.extend(examples)
    with pytest.raises(grpc.RpcError) as info:
        server.stub.Regress(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Example at index 1 of the request: feature 'I2' is nan" in info.value.details()
    _assert_serves_good_request(server, model)


def _rest(server, path: str, body: dict) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.rest.port, timeout=10)
    try:
        connection.request("POST", path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_rest_predict_and_regress_refuse_bad_examples(server, model):
    records = list(model["records"][:2])
    missing = tf.train.Example.FromString(records[1])
    del missing.features.feature["C2"]
    records[1] = missing.SerializeToString()
    status, answer = _rest(server, "/v1/models/ctr:predict",
                           {"instances": [{"b64": base64.b64encode(r).decode()} for r in records]})
    assert status == 400
    assert "Example at index 1 of the request: required feature 'C2' is missing" in answer["error"]
    # JSON's integer 1 becomes an int64_list: the wrong type for the float feature I1.
    example = {"label": 0, "ts": 0, "I1": 1, "I2": 0.5, "I3": 0.5, "C1": 1, "C2": 1}
    status, answer = _rest(server, "/v1/models/ctr:regress", {"examples": [dict(example, I1=0.5), example]})
    assert status == 400
    assert "Example at index 1 of the request: feature 'I1' is an int64_list; expected a float_list" in answer["error"]
    status, answer = _rest(server, "/v1/models/ctr:regress", {"examples": [dict(example, I1=0.5)]})
    assert status == 200 and len(answer["result"]) == 1


def _messages(caplog, fragment: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if fragment in r.getMessage()]


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_deleted_base_path_keeps_serving_and_logs_once(model, tmp_path, caplog):
    base = str(tmp_path / "models")
    shutil.copytree(model["path"], os.path.join(base, "1"))
    running = InProcessServer(base, poll_seconds=0.05)
    try:
        with caplog.at_level(logging.INFO, logger="absl"):
            shutil.rmtree(base)
            _wait_for(lambda: _messages(caplog, "is gone"))
            time.sleep(0.5)  # ~10 more polls while it stays gone
            _assert_serves_good_request(running, model)
            (gone,) = _messages(caplog, "is gone")  # once, not once per poll
            assert base in gone and "keeps serving model 'ctr' version 1" in gone
            assert not [r for r in caplog.records if r.exc_info], "no traceback"
            shutil.copytree(model["path"], os.path.join(base, "1"))
            _wait_for(lambda: _messages(caplog, "is back"))
            time.sleep(0.3)
            assert len(_messages(caplog, "is back")) == 1 and len(_messages(caplog, "is gone")) == 1
            _assert_serves_good_request(running, model)
    finally:
        running.close()


@pytest.mark.slow  # builds and exports a real CTRModel (~10 s)
def test_trainer_export_with_parse_defaults_is_checked_too(tmp_path):
    """The trainer's SavedModel scores a missing feature as 0 on its own; served, the Example is refused."""
    from recsys.serving.server import Servable, ServingError
    from recsys.training import export
    from tests.training.test_export import FEATURES, _examples, _trained_model

    path = str(tmp_path / "sm")
    export.export_saved_model(_trained_model("relu", "none"), FEATURES, path)
    records = _examples(3, seed=1, drop=())
    records[1] = _examples(1, seed=2, drop=("I2",))[0]
    loaded = tf.saved_model.load(path)
    assert loaded.signatures["serving_default"](examples=tf.constant(records))["probabilities"].shape == (3,)
    servable = Servable("ctr", 1, path, loaded, max_batch_size=8)
    with pytest.raises(ServingError) as info:
        servable.run(servable.signature(""), {"examples": records})
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "Example at index 1 of the request: required feature 'I2' is missing" in info.value.message
