"""Version life cycle of a real `pipelines.serve` process: first version, broken version, swap under load, SIGTERM.

The tests share one server and run in file order: it starts on an empty base path, gets version 1, ignores a
broken version 2, swaps to version 3 under a stream of requests, then is stopped with SIGTERM.
"""
import os
import shutil
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

from recsys.bench.serving import ServerProcess, predict_request, read_records
from recsys.testing import export_toy_saved_model, toy_feature_set, write_toy_tfrecords
from tests.serving.conftest import in_process_predictions


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lifecycle")
    features = toy_feature_set()
    base = os.path.join(tmp, "models")
    os.makedirs(base)
    staged = {}
    for version, seed in ((1, 0), (3, 1)):
        staged[version] = os.path.join(tmp, "stage", str(version))
        export_toy_saved_model(staged[version], features, seed=seed)
    data = os.path.join(tmp, "examples.tfrecord")
    write_toy_tfrecords(data, features, rows=32, seed=5)
    server = ServerProcess(base, "ctr", flags=["--poll_seconds=0.2", "--grace_seconds=20"])
    # The base path is empty: "started" means listening, not a version AVAILABLE.
    server.start(wait_for_model=False)
    try:
        with grpc.insecure_channel(server.address) as channel:
            yield {"server": server, "base": base, "staged": staged, "records": read_records(data),
                   "stub": prediction_service_pb2_grpc.PredictionServiceStub(channel),
                   "status": model_service_pb2_grpc.ModelServiceStub(channel)}
    finally:
        server.close()


def _statuses(env) -> dict[int, tuple[str, str]]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "ctr"
    response = env["status"].GetModelStatus(request, timeout=10)
    return {s.version: (get_model_status_pb2.ModelVersionStatus.State.Name(s.state), s.status.error_message)
            for s in response.model_version_status}


def _predict(env, records):
    response = env["stub"].Predict(predict_request("ctr", records), timeout=10)
    return response.model_spec.version.value, tf.make_ndarray(response.outputs["probabilities"])


def test_no_version_yet_is_not_found_then_first_version_is_served(lifecycle):
    with pytest.raises(grpc.RpcError) as info:
        _predict(lifecycle, lifecycle["records"][:1])
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no version" in info.value.details()
    shutil.copytree(lifecycle["staged"][1], os.path.join(lifecycle["base"], "1"))
    assert lifecycle["server"].wait_for_version(1, 60) == 1
    version, got = _predict(lifecycle, lifecycle["records"][:8])
    assert version == 1
    np.testing.assert_allclose(got, in_process_predictions(lifecycle["staged"][1], lifecycle["records"][:8]),
                               rtol=1e-6)


def test_broken_version_is_reported_and_old_version_keeps_serving(lifecycle):
    broken = os.path.join(lifecycle["base"], "2")
    os.makedirs(broken)
    with open(os.path.join(broken, "saved_model.pb"), "wb") as f:
        f.write(b"this is not a SavedModel")
    deadline = time.monotonic() + 30
    while _statuses(lifecycle).get(2, ("", ""))[0] != "END":
        assert time.monotonic() < deadline, lifecycle["server"].log_tail()
        time.sleep(0.2)
    state, message = _statuses(lifecycle)[2]
    assert message  # the load error, e.g. a protobuf decode error
    assert _statuses(lifecycle)[1][0] == "AVAILABLE"
    assert _predict(lifecycle, lifecycle["records"][:1])[0] == 1


def test_version_swap_under_load_has_no_errors(lifecycle):
    """8 clients send requests while version 3 is copied in file by file; none may fail."""
    records = lifecycle["records"]
    stop = threading.Event()
    errors, versions, lock = [], [], threading.Lock()

    def client():
        with grpc.insecure_channel(lifecycle["server"].address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            i = 0
            while not stop.is_set():
                try:
                    response = stub.Predict(predict_request("ctr", records[i % 16:i % 16 + 4]), timeout=10)
                except grpc.RpcError as e:
                    with lock:
                        errors.append(f"{e.code()}: {e.details()}")
                    continue
                with lock:
                    versions.append(response.model_spec.version.value)
                i += 1

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        shutil.copytree(lifecycle["staged"][3], os.path.join(lifecycle["base"], "3"))
        lifecycle["server"].wait_for_version(3, 60)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert versions.count(1) > 0 and versions.count(3) > 0
    first_new = versions.index(3)
    assert 1 not in versions[first_new + 50:]  # after the swap (and the requests then in flight), only v3
    version, got = _predict(lifecycle, records[:8])
    assert version == 3
    expected_new = in_process_predictions(lifecycle["staged"][3], records[:8])
    np.testing.assert_allclose(got, expected_new, rtol=1e-6)
    assert np.abs(expected_new - in_process_predictions(lifecycle["staged"][1], records[:8])).max() > 1e-3
    statuses = _statuses(lifecycle)
    assert statuses[3][0] == "AVAILABLE"
    assert statuses[1][0] in ("UNLOADING", "END")


def test_sigterm_exits_cleanly_and_promptly(lifecycle):
    """SIGTERM under load: exit 0; requests either complete or are refused as UNAVAILABLE, never cut off."""
    server = lifecycle["server"]
    stop = threading.Event()
    codes, lock = [], threading.Lock()

    def client():
        with grpc.insecure_channel(server.address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not stop.is_set():
                try:
                    stub.Predict(predict_request("ctr", lifecycle["records"][:32]), timeout=10)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as e:
                    code = e.code()
                with lock:
                    codes.append(code)
                if code != grpc.StatusCode.OK:
                    return

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    start = time.monotonic()
    try:
        assert server.terminate(timeout=30) == 0, server.log_tail()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert time.monotonic() - start < 30
    assert codes.count(grpc.StatusCode.OK) > 0
    # Requests refused at shutdown: UNAVAILABLE, or CANCELLED for calls gRPC core had received but not yet
    # handed to a handler (grpc/grpc#41785). A request whose handler started is never cut off:
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}, set(codes)
    assert " still running at exit" in server.log_tail()
    assert ", 0 still running at exit." in server.log_tail(), server.log_tail()
    with pytest.raises(grpc.RpcError) as info:
        _predict(lifecycle, lifecycle["records"][:1])
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_serve_with_missing_base_path_exits_1_with_message(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.serve", f"--model_base_path={tmp_path / 'missing'}", "--port=0"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pipelines.serve: error:") and "does not exist" in last
