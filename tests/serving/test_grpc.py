"""gRPC PredictionService / ModelService of `pipelines.serve` in a real subprocess against the SavedModel itself."""
import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    regression_pb2,
)

from recsys.bench.serving import predict_request
from tests.serving.conftest import MAX_BATCH


def _probabilities(response) -> np.ndarray:
    return tf.make_ndarray(response.outputs["probabilities"])


def test_predict_equals_saved_model(served, stub):
    records = served.records[:16]
    response = stub.Predict(predict_request("ctr", records), timeout=10)
    got = _probabilities(response)
    np.testing.assert_allclose(got, served.expected(records), rtol=1e-6, atol=0)
    # TF Serving fills the typed field, which many clients read directly.
    np.testing.assert_allclose(np.array(response.outputs["probabilities"].float_val, np.float32), got)
    assert response.model_spec.name == "ctr"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    assert got.shape == (16,) and len(set(got.tolist())) > 8  # real, distinct predictions


def test_predict_one_example_and_explicit_version(served, stub):
    request = predict_request("ctr", served.records[5:6])
    request.model_spec.version.value = 1
    request.model_spec.signature_name = "serving_default"
    request.output_filter.append("probabilities")
    got = _probabilities(stub.Predict(request, timeout=10))
    np.testing.assert_allclose(got, served.expected(served.records[5:6]), rtol=1e-6)


def test_predict_accepts_tf_make_tensor_proto(served, stub):
    records = served.records[:3]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "ctr"
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(records, dtype=tf.string))
    np.testing.assert_allclose(_probabilities(stub.Predict(request, timeout=10)), served.expected(records), rtol=1e-6)


def _example_input(message, records):
    message.model_spec.name = "ctr"
    message.input.example_list.examples.extend(tf.train.Example.FromString(r) for r in records)
    return message


def test_classify_returns_two_classes_with_model_scores(served, stub):
    records = served.records[:8]
    response = stub.Classify(_example_input(classification_pb2.ClassificationRequest(), records), timeout=10)
    expected = served.expected(records)
    assert len(response.result.classifications) == 8
    for item, p in zip(response.result.classifications, expected, strict=True):
        assert [c.label for c in item.classes] == ["0", "1"]
        assert item.classes[1].score == pytest.approx(p, rel=1e-6)
        assert item.classes[0].score == pytest.approx(1.0 - p, rel=1e-6)
    assert response.model_spec.version.value == 1


def test_regress_returns_probability(served, stub):
    records = served.records[8:20]
    response = stub.Regress(_example_input(regression_pb2.RegressionRequest(), records), timeout=10)
    got = np.array([r.value for r in response.result.regressions], np.float32)
    np.testing.assert_allclose(got, served.expected(records), rtol=1e-6)


def test_classify_with_context_merges_features(served, stub):
    full = [tf.train.Example.FromString(r) for r in served.records[:4]]
    context = tf.train.Example()
    context.features.feature["C1"].CopyFrom(full[0].features.feature["C1"])
    context.features.feature["I1"].float_list.value.append(123.0)  # overridden by every example's own I1
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "ctr"
    request.input.example_list_with_context.context.CopyFrom(context)
    merged = []
    for example in full:
        partial = tf.train.Example()
        partial.CopyFrom(example)
        del partial.features.feature["C1"]
        request.input.example_list_with_context.examples.append(partial)
        expected_example = tf.train.Example()
        expected_example.CopyFrom(example)
        expected_example.features.feature["C1"].CopyFrom(context.features.feature["C1"])
        merged.append(expected_example.SerializeToString())
    response = stub.Regress(request, timeout=10)
    got = np.array([r.value for r in response.result.regressions], np.float32)
    np.testing.assert_allclose(got, served.expected(merged), rtol=1e-6)


def test_multi_inference_runs_classify_and_regress(served, stub):
    records = served.records[:5]
    request = inference_pb2.MultiInferenceRequest()
    request.input.example_list.examples.extend(tf.train.Example.FromString(r) for r in records)
    for method in ("tensorflow/serving/classify", "tensorflow/serving/regress"):
        task = request.tasks.add(method_name=method)
        task.model_spec.name = "ctr"
    response = stub.MultiInference(request, timeout=10)
    expected = served.expected(records)
    scores = [c.classes[1].score for c in response.results[0].classification_result.classifications]
    values = [r.value for r in response.results[1].regression_result.regressions]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_metadata_reports_the_models_feature_fingerprint(served, stub):
    from google.protobuf import wrappers_pb2

    from recsys.testing import toy_feature_set

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["feature_fingerprint"])
    request.model_spec.name = "ctr"
    response = stub.GetModelMetadata(request, timeout=10)
    value = wrappers_pb2.StringValue()
    assert response.metadata["feature_fingerprint"].Unpack(value)
    assert value.value == toy_feature_set().fingerprint() and value.value.startswith("fc1-")
    assert "signature_def" not in response.metadata


def test_metadata_is_the_saved_models_signature_def(served, stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "ctr"
    response = stub.GetModelMetadata(request, timeout=10)
    assert response.model_spec.version.value == 1
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(sig_map)
    assert list(sig_map.signature_def) == ["serving_default"]
    signature = sig_map.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert signature.inputs["examples"].dtype == types_pb2.DT_STRING
    assert [d.size for d in signature.inputs["examples"].tensor_shape.dim] == [-1]
    assert signature.outputs["probabilities"].dtype == types_pb2.DT_FLOAT


def test_model_status_available(served):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "ctr"
    with grpc.insecure_channel(served.server.address) as channel:
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
    (status,) = response.model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0


# --- bad requests: the right status code, a message, and the server keeps serving --------------------------


def _predict(records, **changes):
    def build(served):
        request = predict_request(changes.get("name", "ctr"), records(served))
        if "version" in changes:
            request.model_spec.version.value = changes["version"]
        if "signature" in changes:
            request.model_spec.signature_name = changes["signature"]
        if "key" in changes:
            request.inputs[changes["key"]].CopyFrom(request.inputs.pop("examples"))
        if "dtype" in changes:
            request.inputs["examples"].CopyFrom(tf.make_tensor_proto([1.0, 2.0], dtype=tf.float32))
        if "matrix" in changes:
            request.inputs["examples"].CopyFrom(tf.make_tensor_proto([records(served)[:2]] * 2, dtype=tf.string))
        if "output_filter" in changes:
            request.output_filter.append(changes["output_filter"])
        return "Predict", request
    return build


def _missing_feature(served):
    example = tf.train.Example.FromString(served.records[0])
    del example.features.feature["I2"]
    return [example.SerializeToString()]


def _classify_empty(served):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "ctr"
    return "Classify", request


def _metadata_without_field(served):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "ctr"
    return "GetModelMetadata", request


BAD_REQUESTS = {
    "unknown model": (_predict(lambda s: s.records[:1], name="nope"), grpc.StatusCode.NOT_FOUND, "nope"),
    "unknown version": (_predict(lambda s: s.records[:1], version=7), grpc.StatusCode.NOT_FOUND, "version 7"),
    "wrong input key": (_predict(lambda s: s.records[:1], key="inputs"), grpc.StatusCode.INVALID_ARGUMENT,
                        "'inputs'"),
    "wrong dtype": (_predict(lambda s: s.records[:1], dtype=True), grpc.StatusCode.INVALID_ARGUMENT, "DT_STRING"),
    "wrong rank": (_predict(lambda s: s.records[:1], matrix=True), grpc.StatusCode.INVALID_ARGUMENT, "shape"),
    "unparseable example": (_predict(lambda s: [s.records[0], b"\xffnot a tf.Example"]),
                            grpc.StatusCode.INVALID_ARGUMENT, "index 1 of the request is not a serialized tf.Example"),
    "example missing a feature": (_predict(_missing_feature), grpc.StatusCode.INVALID_ARGUMENT, "I2"),
    "batch over the maximum": (_predict(lambda s: s.records[:MAX_BATCH + 1]), grpc.StatusCode.INVALID_ARGUMENT,
                               f"max_batch_size={MAX_BATCH}"),
    "unknown signature": (_predict(lambda s: s.records[:1], signature="nope"), grpc.StatusCode.INVALID_ARGUMENT,
                          "'nope' not found"),
    "unknown output_filter": (_predict(lambda s: s.records[:1], output_filter="logits"),
                              grpc.StatusCode.INVALID_ARGUMENT, "logits"),
    "classify without examples": (_classify_empty, grpc.StatusCode.INVALID_ARGUMENT, "Input is empty"),
    "metadata without field": (_metadata_without_field, grpc.StatusCode.INVALID_ARGUMENT, "metadata_field"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_gets_status_and_server_keeps_serving(served, stub, case):
    build, code, fragment = BAD_REQUESTS[case]
    method, request = build(served)
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, method)(request, timeout=10)
    assert info.value.code() == code, info.value.details()
    assert fragment in info.value.details()
    got = _probabilities(stub.Predict(predict_request("ctr", served.records[:2]), timeout=10))
    np.testing.assert_allclose(got, served.expected(served.records[:2]), rtol=1e-6)
