r"""Sends tf.Examples from TFRecord files to a TF Serving-compatible server and prints the predictions.

    python -m pipelines.predict_client --server=localhost:8500 --model_name=ctr \
        --data=<tfrecord file or glob> [--batch_size=N] [--max_examples=N]

Works against `pipelines.serve` and against TF Serving itself. Prints one line per example,
`<index>\t<probability>[\t<label>]` (the label when the Example carries a --label_key feature), then a
summary line on stderr. Files ending in `.gz` are read as GZIP TFRecords.
"""
import sys
import time

from absl import app, flags, logging

import recsys  # noqa: F401  (must precede TensorFlow)
from recsys import console
from recsys.serving import contract

FLAGS = flags.FLAGS
flags.DEFINE_string("server", "localhost:8500", "host:port of the gRPC server.")
flags.DEFINE_string("model_name", "default", "Model name (ModelSpec.name).")
flags.DEFINE_string("data", None, "TFRecord file or glob of serialized tf.Examples.")
flags.DEFINE_integer("batch_size", 16, "Examples per request.")
flags.DEFINE_integer("max_examples", 20, "Stop after this many examples (0: all).")
flags.DEFINE_integer("model_version", 0, "Ask for this version (0: the served one).")
flags.DEFINE_string("signature_name", contract.SIGNATURE, "Signature to call.")
flags.DEFINE_enum("method", "predict", ["predict", "classify", "regress"], "Which PredictionService RPC to use.")
flags.DEFINE_string("label_key", "label", "int64 feature printed next to the prediction, if present.")
flags.DEFINE_float("timeout_seconds", 10.0, "Deadline of each request.")
flags.mark_flag_as_required("data")


def read_examples(pattern: str, max_examples: int) -> list[bytes]:
    """Serialized Examples from the files matching `pattern`, in sorted file order."""
    import tensorflow as tf

    from recsys.serving.scorer import serialized_batches

    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"--data={pattern!r} matches no file")
    records = [record for batch in serialized_batches(files, 4096, max_examples) for record in batch.numpy()]
    if not records:
        raise ValueError(f"--data={pattern!r} holds no records")
    return records


def _label(serialized: bytes, key: str) -> str:
    import tensorflow as tf

    try:
        values = tf.train.Example.FromString(serialized).features.feature[key].int64_list.value
    except Exception:  # noqa: BLE001 - the label column is informational only
        return ""
    return str(values[0]) if len(values) == 1 else ""


def request_scores(stub, records: list[bytes]) -> list[float]:
    """One RPC for `records`; the probability per example."""
    import tensorflow as tf
    from tensorflow_serving.apis import classification_pb2, predict_pb2, regression_pb2

    def spec(message):
        message.model_spec.name = FLAGS.model_name
        message.model_spec.signature_name = FLAGS.signature_name
        if FLAGS.model_version:
            message.model_spec.version.value = FLAGS.model_version
        return message

    if FLAGS.method == "predict":
        request = spec(predict_pb2.PredictRequest())
        tensor = tf.make_tensor_proto(records, dtype=tf.string, shape=[len(records)])
        request.inputs[contract.INPUT_KEY].CopyFrom(tensor)
        response = stub.Predict(request, timeout=FLAGS.timeout_seconds)
        return tf.make_ndarray(response.outputs[contract.OUTPUT_KEY]).reshape(-1).tolist()
    examples = [tf.train.Example.FromString(r) for r in records]
    if FLAGS.method == "classify":
        request = spec(classification_pb2.ClassificationRequest())
        request.input.example_list.examples.extend(examples)
        response = stub.Classify(request, timeout=FLAGS.timeout_seconds)
        return [next(c.score for c in item.classes if c.label == "1") for item in response.result.classifications]
    request = spec(regression_pb2.RegressionRequest())
    request.input.example_list.examples.extend(examples)
    response = stub.Regress(request, timeout=FLAGS.timeout_seconds)
    return [r.value for r in response.result.regressions]


def run() -> None:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    if FLAGS.batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1. Received: {FLAGS.batch_size}")
    records = read_examples(FLAGS.data, FLAGS.max_examples)
    with grpc.insecure_channel(FLAGS.server) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        start = time.perf_counter()
        requests = 0
        for offset in range(0, len(records), FLAGS.batch_size):
            batch = records[offset:offset + FLAGS.batch_size]
            scores = request_scores(stub, batch)
            requests += 1
            for index, (record, score) in enumerate(zip(batch, scores, strict=True)):
                label = _label(record, FLAGS.label_key)
                print(f"{offset + index}\t{score:.6f}" + (f"\t{label}" if label else ""))
        elapsed = time.perf_counter() - start
    print(f"{len(records)} examples in {requests} requests, {1e3 * elapsed / requests:.2f} ms per request",
          file=sys.stderr)


def main(argv):
    console.configure(logging.get_verbosity())  # before TensorFlow/Beam are imported; --verbosity=1: all logs
    del argv
    import grpc

    try:
        run()
    except grpc.RpcError as e:
        print(f"pipelines.predict_client: error: {e.code().name}: {e.details()}", file=sys.stderr)
        sys.exit(1)
    except (OSError, ValueError) as e:
        print(f"pipelines.predict_client: error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    from pipelines import parse_flags

    app.run(main, flags_parser=parse_flags)
