"""TF Serving's REST API of `pipelines.serve` (real subprocess) against the SavedModel's own predictions."""
import base64
import http.client
import json

import numpy as np
import pytest
import tensorflow as tf

from recsys.serving.rest import json_to_example
from tests.serving.conftest import MAX_BATCH


def _call(served, method: str, path: str, body=None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", served.server.rest_port, timeout=10)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        connection.request(method, path, data, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _b64(record: bytes) -> dict:
    return {"b64": base64.b64encode(record).decode("ascii")}


def _json_features(record: bytes) -> dict:
    """The Example's features as TF Serving JSON (floats keep a fractional part so they stay float_list)."""
    out = {}
    for key, feature in tf.train.Example.FromString(record).features.feature.items():
        kind = feature.WhichOneof("kind")
        out[key] = list(getattr(feature, kind).value)
    return out


def test_status(served):
    status, body = _call(served, "GET", "/v1/models/ctr")
    assert status == 200
    assert body == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert _call(served, "GET", "/v1/models/ctr/versions/1")[0] == 200


def test_predict_row_format_equals_saved_model(served):
    records = served.records[:10]
    status, body = _call(served, "POST", "/v1/models/ctr:predict", {"instances": [_b64(r) for r in records]})
    assert status == 200, body
    # Full float32 precision survives JSON: the values are the model's to the last bit (up to rtol).
    np.testing.assert_allclose(np.array(body["predictions"], np.float32), served.expected(records), rtol=1e-6)


def test_predict_keyed_instances_and_versioned_path(served):
    records = served.records[10:13]
    body = {"signature_name": "serving_default", "instances": [{"examples": _b64(r)} for r in records]}
    status, answer = _call(served, "POST", "/v1/models/ctr/versions/1:predict", body)
    assert status == 200, answer
    np.testing.assert_allclose(answer["predictions"], served.expected(records), rtol=1e-6)


def test_predict_columnar_format(served):
    records = served.records[13:17]
    status, body = _call(served, "POST", "/v1/models/ctr:predict", {"inputs": {"examples": [_b64(r) for r in records]}})
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"], served.expected(records), rtol=1e-6)


def test_classify_and_regress_json_examples(served):
    records = served.records[20:24]
    examples = [_json_features(r) for r in records]
    expected = served.expected(records)
    status, body = _call(served, "POST", "/v1/models/ctr:regress", {"examples": examples})
    assert status == 200, body
    np.testing.assert_allclose(body["result"], expected, rtol=1e-6)
    status, body = _call(served, "POST", "/v1/models/ctr:classify", {"examples": examples})
    assert status == 200, body
    assert [[label for label, _ in item] for item in body["result"]] == [["0", "1"]] * 4
    np.testing.assert_allclose([item[1][1] for item in body["result"]], expected, rtol=1e-6)
    np.testing.assert_allclose([item[0][1] for item in body["result"]], 1 - expected, rtol=1e-5)


def test_metadata(served):
    status, body = _call(served, "GET", "/v1/models/ctr/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "ctr", "signature_name": "", "version": "1"}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["examples"]["dtype"] == "DT_STRING"
    assert signature["outputs"]["probabilities"]["dtype"] == "DT_FLOAT"


BAD = {
    "unknown model": ("POST", "/v1/models/nope:predict", {"instances": ["x"]}, 404, "nope"),
    "unknown version": ("POST", "/v1/models/ctr/versions/9:predict", {"instances": ["x"]}, 404, "version 9"),
    "status of unknown version": ("GET", "/v1/models/ctr/versions/9", None, 404, "no version 9"),
    "malformed path": ("POST", "/v1/models/ctr:explode", {}, 404, "Malformed request"),
    "wrong input key": ("POST", "/v1/models/ctr:predict", {"instances": [{"inputs": "x"}]}, 400, "'inputs'"),
    "wrong dtype": ("POST", "/v1/models/ctr:predict", {"instances": [1.5]}, 400, "strings"),
    "invalid base64": ("POST", "/v1/models/ctr:predict", {"instances": [{"b64": "***"}]}, 400, "base64"),
    "unparseable example": ("POST", "/v1/models/ctr:predict", {"instances": ["not an example"]}, 400,
                            "index 0 of the request is not a serialized tf.Example"),
    "batch over the maximum": ("POST", "/v1/models/ctr:predict", {"instances": ["x"] * (MAX_BATCH + 1)}, 400,
                               f"max_batch_size={MAX_BATCH}"),
    "both instances and inputs": ("POST", "/v1/models/ctr:predict", {"instances": ["x"], "inputs": ["x"]}, 400,
                                  "exactly one"),
    "invalid JSON": ("POST", "/v1/models/ctr:predict", b"{not json", 400, "JSON Parse error"),
    "regress without examples": ("POST", "/v1/models/ctr:regress", {"examples": []}, 400, "examples"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_request_gets_status_and_server_keeps_serving(served, case):
    method, path, body, expected_status, fragment = BAD[case]
    status, answer = _call(served, method, path, body)
    assert status == expected_status, answer
    assert fragment in answer["error"]
    records = served.records[:2]
    status, answer = _call(served, "POST", "/v1/models/ctr:predict", {"instances": [_b64(r) for r in records]})
    assert status == 200
    np.testing.assert_allclose(answer["predictions"], served.expected(records), rtol=1e-6)


def test_json_to_example_types():
    example = tf.train.Example.FromString(json_to_example(
        {"i": 3, "f": [1.5, 2], "s": "abc", "b": {"b64": base64.b64encode(b"\x00\x01").decode()}}, "x"))
    feature = example.features.feature
    assert list(feature["i"].int64_list.value) == [3]
    assert list(feature["f"].float_list.value) == [1.5, 2.0]
    assert list(feature["s"].bytes_list.value) == [b"abc"]
    assert list(feature["b"].bytes_list.value) == [b"\x00\x01"]
