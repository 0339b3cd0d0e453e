"""A TF-Serving-compatible prediction server for the trainer's SavedModels, in Python.

Speaks `tensorflow.serving.PredictionService` (Predict, Classify, Regress, MultiInference,
GetModelMetadata) and `tensorflow.serving.ModelService.GetModelStatus` over gRPC, so clients written
for TF Serving work unchanged. The REST API lives in `recsys.serving.rest` and shares the request logic
here (`predict`, `classify`, `regress`, ...).

Contract served (issue 8 / ARCHITECTURE.md): `serving_default(examples: string[None]) ->
{"probabilities": float[None]}`; any other signature of the SavedModel is served by Predict as well.
Classify and Regress run a signature with one DT_STRING input on the serialized `tf.Example`s of the
request's `Input` and read its `probabilities` output (or its only output):
Regress returns the probability p as the regression value, Classify returns two classes,
"0" with score 1 - p and "1" with score p.

Versions (TF Serving's "latest 1" policy): the highest version folder under the base path is served.
A new version is loaded completely (and warmed up) while the old one keeps answering, then the
reference to it is swapped in one assignment. Requests in flight hold their own reference to the
version they started on, so the old version is released only after the last of them finishes.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import wrappers_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    input_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from recsys.serving.contract import ASSETS_EXTRA, OUTPUT_KEY, SIGNATURE
from recsys.serving.example_check import ExampleContract
from recsys.serving.versions import Candidate, VersionScanner, VersionWatcher

WARMUP_FILE = f"{ASSETS_EXTRA}/tf_serving_warmup_requests"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

_STATUS_BY_TF_CODE = {code.value[0]: code for code in grpc.StatusCode}
# TF Serving's REST server maps canonical codes to HTTP statuses the same way (util/net_http).
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class ServingError(Exception):
    """A request that cannot be served; carries the gRPC status code the client receives."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def tf_error_summary(error: tf.errors.OpError) -> str:
    """The op's own message without TF's "Graph execution error" frame and node/stack lines."""
    return _summarise_lines(error.message)


def _summarise_lines(message: str) -> str:
    lines = []
    for line in message.splitlines():
        text = line.strip()
        if (
            not text
            or text.startswith(("Graph execution error", "Detected at node", "<stack traces", "[["))
            or text.startswith("File ")
        ):
            continue
        lines.append(text.split(" [Op:")[0])
    return " ".join(lines) or message


# --- tensors <-> TensorProto ------------------------------------------------------------------------------


def tensor_proto_to_array(proto: tensor_pb2.TensorProto, name: str, spec: tf.TensorSpec) -> np.ndarray | list:
    """Decodes a request tensor, checking its dtype against the signature's `spec`.

    DT_STRING tensors come back as a list of bytes when 1-D (the serving contract's only input, kept
    as a list because `tf.constant` takes it directly), other tensors as NumPy arrays.
    """
    expected = spec.dtype.as_datatype_enum
    if proto.dtype != expected:
        raise invalid_argument(
            f"Input {name!r} must have dtype {types_pb2.DataType.Name(expected)}; "
            f"received {types_pb2.DataType.Name(proto.dtype)}"
        )
    if proto.tensor_shape.unknown_rank:
        raise invalid_argument(f"Input {name!r} must have a known shape; received unknown rank")
    shape = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in shape):
        raise invalid_argument(f"Input {name!r} has a negative dimension: {shape}")
    if not spec.shape.is_compatible_with(shape):
        raise invalid_argument(f"Input {name!r} must have shape {spec.shape.as_list()}; received {shape}")
    if proto.dtype == types_pb2.DT_STRING:
        values = list(proto.string_val)
        count = int(np.prod(shape)) if shape else 1
        if len(values) != count:
            raise invalid_argument(
                f"Input {name!r} has shape {shape} ({count} values) but carries {len(values)} string values"
            )
        if len(shape) == 1:
            return values
        return np.array(values, dtype=object).reshape(shape)
    try:
        return tf.make_ndarray(proto)
    except (ValueError, TypeError) as e:
        raise invalid_argument(f"Input {name!r} could not be decoded: {e}") from e


def array_to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Encodes an output the way TF Serving does: values in the typed repeated field (`float_val`, ...).

    Clients often read `response.outputs["probabilities"].float_val` directly, so the typed fields are
    used rather than `tensor_content`; `tf.make_ndarray` reads either.
    """
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape])
    flat = array.reshape(-1)
    if array.dtype == np.float32:
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, float_val=flat.tolist())
    if array.dtype == np.float64:
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE, tensor_shape=shape, double_val=flat.tolist())
    if array.dtype == np.int64:
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64, tensor_shape=shape, int64_val=flat.tolist())
    if array.dtype == np.int32:
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, tensor_shape=shape, int_val=flat.tolist())
    if array.dtype == object:
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape, string_val=flat.tolist())
    return tf.make_tensor_proto(array)


# --- one loaded version -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Signature:
    """A serving signature: its concrete function and input/output specs.

    A signature with one DT_STRING [None] input that parses tf.Examples also has the `contract` its Examples must
    meet (`recsys.serving.example_check`) and `checked`, the function guarded by it.
    """

    name: str
    function: Any
    inputs: Mapping[str, tf.TensorSpec]
    outputs: Mapping[str, tf.TensorSpec]
    contract: ExampleContract | None = None
    checked: Any = None

    @classmethod
    def from_function(cls, name: str, function: Any, saved_model_path: str | None = None) -> Signature:
        """`saved_model_path` given: the Example contract is read from the function and the model's features.json."""
        _, kwargs = function.structured_input_signature
        inputs, outputs = dict(kwargs), dict(function.structured_outputs)
        if saved_model_path is not None and len(inputs) == 1:
            (input_name, spec), = inputs.items()
            if spec.dtype == tf.string and spec.shape.rank == 1:
                contract = ExampleContract.of_signature(function, saved_model_path)
                if contract is not None:
                    return cls(name, function, inputs, outputs, contract, contract.wrap(function, input_name))
        return cls(name, function, inputs, outputs)

    def example_input(self) -> str:
        """The name of the signature's one DT_STRING input (Classify/Regress feed serialized Examples to it)."""
        if len(self.inputs) != 1:
            raise invalid_argument(
                f"Signature {self.name!r} has inputs {sorted(self.inputs)}; Classify/Regress need exactly one "
                "DT_STRING input of serialized tf.Examples"
            )
        (name, spec), = self.inputs.items()
        if spec.dtype != tf.string:
            raise invalid_argument(
                f"Signature {self.name!r} input {name!r} has dtype {spec.dtype.name}; Classify/Regress need DT_STRING"
            )
        return name

    def score_output(self) -> str:
        """`probabilities`, or the only output: the per-example score used by Classify/Regress."""
        if OUTPUT_KEY in self.outputs:
            return OUTPUT_KEY
        if len(self.outputs) == 1:
            return next(iter(self.outputs))
        raise invalid_argument(
            f"Signature {self.name!r} has outputs {sorted(self.outputs)}; Classify/Regress need an output "
            f"named {OUTPUT_KEY!r} or a single output"
        )


class Servable:
    """One loaded model version.

    Args:
        name: the model name clients address.
        version: the version number.
        path: the SavedModel folder.
        loaded: the object returned by `tf.saved_model.load` (kept: the signatures use its variables).
        max_batch_size: largest batch (first dimension) a request may carry.
        check_examples: check each request's tf.Examples against the signature's Example contract
            (`recsys.serving.example_check`; off only to measure what the check costs).
    """

    def __init__(self, name: str, version: int, path: str, loaded: Any, max_batch_size: int,
                 check_examples: bool = True):
        self.name = name
        self.version = version
        self.path = path
        self.max_batch_size = max_batch_size
        self._loaded = loaded
        self.signatures = {key: Signature.from_function(key, fn, path if check_examples else None)
                           for key, fn in loaded.signatures.items()}
        if not self.signatures:
            raise ValueError(f"SavedModel at {path!r} has no serving signatures")
        self._signature_def_map: get_model_metadata_pb2.SignatureDefMap | None = None
        from recsys.serving.scorer import model_fingerprint

        # The feature contract of the data the model was trained on (GetModelMetadata "feature_fingerprint").
        self.feature_fingerprint = model_fingerprint(path)

    @classmethod
    def load(cls, name: str, version: int, path: str, max_batch_size: int) -> Servable:
        """Loads the SavedModel at `path` and runs its warm-up, so the first request is not slow."""
        start = time.monotonic()
        servable = cls(name, version, path, tf.saved_model.load(path), max_batch_size)
        servable.warm_up()
        logging.info("Loaded model %r version %d from %s in %.2f s (feature fingerprint %s).", name, version, path,
                     time.monotonic() - start, servable.feature_fingerprint or "none: exported before fingerprints")
        for signature in servable.signatures.values():
            if signature.contract is not None:
                logging.info("Signature %r requires in every tf.Example: %s.", signature.name,
                             signature.contract.describe())
        return servable

    def signature(self, signature_name: str) -> Signature:
        key = signature_name or SIGNATURE
        try:
            return self.signatures[key]
        except KeyError:
            raise invalid_argument(
                f"Serving signature {key!r} not found in model {self.name!r} version {self.version}; "
                f"available: {sorted(self.signatures)}"
            ) from None

    def run(self, signature: Signature, inputs: Mapping[str, Any], output_filter: Sequence[str] = ()) -> dict:
        """Validates `inputs` against `signature`, runs it and returns the (filtered) outputs as arrays."""
        missing = sorted(set(signature.inputs) - set(inputs))
        unknown = sorted(set(inputs) - set(signature.inputs))
        if missing or unknown:
            problems = [f"lacks {missing}"] if missing else []
            problems += [f"has unknown inputs {unknown}"] if unknown else []
            raise invalid_argument(
                f"Signature {signature.name!r} takes inputs {sorted(signature.inputs)}; the request "
                + " and ".join(problems)
            )
        bad_filter = sorted(set(output_filter) - set(signature.outputs))
        if bad_filter:
            raise invalid_argument(
                f"output_filter names {bad_filter}, which signature {signature.name!r} does not output; "
                f"outputs: {sorted(signature.outputs)}"
            )
        tensors = {}
        for key, value in inputs.items():
            batch = len(value) if isinstance(value, list) else (value.shape[0] if np.ndim(value) else 1)
            if batch > self.max_batch_size:
                raise invalid_argument(
                    f"Input {key!r} has batch size {batch}, over the server's --max_batch_size={self.max_batch_size}"
                )
            try:
                tensors[key] = tf.constant(value, dtype=signature.inputs[key].dtype)
            except (TypeError, ValueError) as e:
                dtype = signature.inputs[key].dtype.name
                raise invalid_argument(f"Input {key!r} cannot be a {dtype} tensor: {e}") from None
        try:
            if signature.checked is not None:
                outputs = signature.checked(*tensors.values())
            else:
                outputs = signature.function(**tensors)
        except (tf.errors.OpError, UnicodeDecodeError) as e:
            # The contract's guard (or the model) refused the batch: name the first bad Example if there is one.
            problem = signature.contract.diagnose(next(iter(inputs.values()))) if signature.contract else None
            if problem is not None:
                raise invalid_argument(problem) from None
            self._raise_run_error(e)
        except (TypeError, ValueError) as e:
            # Raised while binding the inputs to the signature (e.g. a shape it does not accept), before any op ran.
            raise invalid_argument(f"Signature {signature.name!r} rejected the inputs: {e}") from None
        keys = output_filter or outputs.keys()
        return {key: outputs[key].numpy() for key in keys}

    @staticmethod
    def _raise_run_error(e: Exception) -> None:
        if isinstance(e, tf.errors.OpError):
            code = _STATUS_BY_TF_CODE.get(e.error_code, grpc.StatusCode.INTERNAL)
            raise ServingError(code, tf_error_summary(e)) from None
        # A UnicodeDecodeError: TensorFlow failed to decode its own error message, which quotes an input value
        # (e.g. a malformed serialized Example) that is not UTF-8. The op error itself is lost; report its text.
        text = e.object.decode("utf-8", "replace") if isinstance(e.object, bytes) else str(e)
        raise invalid_argument(_summarise_lines(text)) from None

    def score(self, signature_name: str, serialized_examples: list[bytes]) -> np.ndarray:
        """Per-example scores of the Classify/Regress signature on serialized tf.Examples, shape [n]."""
        if not serialized_examples:
            raise invalid_argument("Input is empty: the request carries no tf.Example")
        signature = self.signature(signature_name)
        output = signature.score_output()
        scores = self.run(signature, {signature.example_input(): serialized_examples}, (output,))[output]
        if scores.size != len(serialized_examples):
            raise invalid_argument(
                f"Output {output!r} of signature {signature.name!r} has shape {list(scores.shape)}; "
                f"Classify/Regress need one score per example ({len(serialized_examples)})"
            )
        return scores.reshape(-1)

    @property
    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
        """The SignatureDefs as stored in saved_model.pb (what TF Serving's GetModelMetadata returns)."""
        if self._signature_def_map is None:
            proto = saved_model_pb2.SavedModel()
            pb_path = f"{self.path}/saved_model.pb"
            if tf.io.gfile.exists(pb_path):
                with tf.io.gfile.GFile(pb_path, "rb") as f:
                    proto.ParseFromString(f.read())
            else:
                from google.protobuf import text_format

                with tf.io.gfile.GFile(f"{self.path}/saved_model.pbtxt") as f:
                    text_format.Parse(f.read(), proto)
            sig_map = get_model_metadata_pb2.SignatureDefMap()
            for key, sig_def in proto.meta_graphs[0].signature_def.items():
                # Internal entries such as `__saved_model_init_op` are not callable signatures.
                if key in self.signatures:
                    sig_map.signature_def[key].CopyFrom(sig_def)
            self._signature_def_map = sig_map
        return self._signature_def_map

    def warm_up(self) -> None:
        """Replays TF Serving warm-up requests if the SavedModel ships them, else runs an empty batch.

        `assets.extra/tf_serving_warmup_requests` (TFRecord of PredictionLog) is TF Serving's format; a
        failing warm-up request fails the load, as in TF Serving. The empty-batch probe only traces and
        initialises the default signature's first call; its failure is logged, not fatal.
        """
        warmup_path = f"{self.path}/{WARMUP_FILE}"
        if tf.io.gfile.exists(warmup_path):
            replayed = 0
            for record in tf.data.TFRecordDataset(warmup_path).as_numpy_iterator():
                log = prediction_log_pb2.PredictionLog.FromString(record)
                kind = log.WhichOneof("log_type")
                if kind == "predict_log":
                    predict_response(self, log.predict_log.request)
                elif kind == "classify_log":
                    classify_response(self, log.classify_log.request)
                elif kind == "regress_log":
                    regress_response(self, log.regress_log.request)
                else:
                    logging.warning("Skipping warm-up record of unsupported type %r.", kind)
                    continue
                replayed += 1
            logging.info("Replayed %d warm-up requests for version %d.", replayed, self.version)
            return
        signature = self.signatures.get(SIGNATURE)
        if signature is None or not all(s.dtype == tf.string and s.shape.rank == 1 for s in signature.inputs.values()):
            return
        try:
            self.run(signature, {key: [] for key in signature.inputs})
        except ServingError as e:
            logging.warning("Empty-batch warm-up of version %d failed (serving anyway): %s", self.version, e.message)


# --- the version manager ----------------------------------------------------------------------------------


@dataclasses.dataclass
class VersionStatus:
    """A version's state as GetModelStatus reports it (`state` is a ModelVersionStatus.State name)."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


class RequestTracker:
    """Counts requests being handled (gRPC and REST), so shutdown can report any it did not wait for."""

    def __init__(self):
        self._lock = threading.Lock()
        self.active = 0
        self.total = 0

    def __enter__(self) -> RequestTracker:
        with self._lock:
            self.active += 1
            self.total += 1
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self.active -= 1


class ModelManager:
    """Owns the served version of one model: initial load, polling, atomic swap, status.

    Args:
        model_name: the name clients use (`ModelSpec.name`, `/v1/models/<name>`).
        base_path: folder with numeric version subfolders (TF Serving layout).
        max_batch_size: largest batch a request may carry (larger -> INVALID_ARGUMENT).
    """

    def __init__(self, model_name: str, base_path: str, max_batch_size: int = 8192):
        if not model_name:
            raise ValueError("`model_name` must be non-empty. Received: model_name=''")
        if max_batch_size < 1:
            raise ValueError(f"`max_batch_size` must be >= 1. Received: max_batch_size={max_batch_size}")
        if not tf.io.gfile.isdir(base_path):
            raise FileNotFoundError(f"model_base_path {base_path!r} does not exist or is not a directory")
        if tf.io.gfile.exists(f"{base_path}/saved_model.pb"):
            raise ValueError(
                f"model_base_path {base_path!r} is itself a SavedModel; the server expects numeric version "
                f"folders (TF Serving layout): move it to {base_path.rstrip('/')}/1"
            )
        self.model_name = model_name
        self.base_path = base_path
        self.max_batch_size = max_batch_size
        self._scanner = VersionScanner(base_path)
        self._current: Servable | None = None
        self._load_lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._statuses: dict[int, VersionStatus] = {}
        self._watcher: VersionWatcher | None = None
        self.requests = RequestTracker()

    @property
    def current(self) -> Servable | None:
        return self._current

    def load_initial(self) -> Servable | None:
        """Loads the highest loadable version present now; None if there is none yet (polling will find one)."""
        while True:
            candidate = self._scanner.next_version(None, require_stable=False)
            if candidate is None:
                logging.warning("No loadable version of model %r under %s yet; waiting.",
                                self.model_name, self.base_path)
                return None
            if self._load(candidate):
                return self._current

    def poll(self) -> None:
        """Loads and swaps in a version higher than the served one, if a complete one appeared."""
        current = self._current
        candidate = self._scanner.next_version(current.version if current else None, require_stable=True)
        if candidate is not None:
            self._load(candidate)

    def start_polling(self, poll_seconds: float) -> None:
        self._watcher = VersionWatcher(self.poll, poll_seconds, self._serving_description)
        self._watcher.start()

    def _serving_description(self) -> str:
        current = self._current
        if current is None:
            return f"nothing (no version of model {self.model_name!r} is loaded)"
        return f"model {self.model_name!r} version {current.version} (loaded in memory)"

    def stop_polling(self, timeout: float | None = None) -> None:
        if self._watcher is not None:
            self._watcher.stop(timeout)

    def _set_status(self, status: VersionStatus) -> None:
        with self._status_lock:
            self._statuses[status.version] = status

    def _load(self, candidate: Candidate) -> bool:
        with self._load_lock:
            current = self._current
            if current is not None and candidate.version <= current.version:
                return False
            self._set_status(VersionStatus(candidate.version, "LOADING"))
            try:
                servable = Servable.load(self.model_name, candidate.version, candidate.path, self.max_batch_size)
            except Exception as e:  # noqa: BLE001 - any load failure keeps the old version serving
                message = tf_error_summary(e) if isinstance(e, tf.errors.OpError) else f"{type(e).__name__}: {e}"
                logging.error("Failed to load model %r version %d from %s: %s", self.model_name,
                              candidate.version, candidate.path, message)
                self._scanner.mark_failed(candidate)
                self._set_status(VersionStatus(candidate.version, "END", "UNKNOWN", message))
                return False
            # The swap: one reference assignment. Requests already running keep the old servable alive.
            self._current = servable
            self._set_status(VersionStatus(candidate.version, "AVAILABLE"))
            if current is not None:
                self._set_status(VersionStatus(current.version, "UNLOADING"))
                weakref.finalize(current, self._set_status, VersionStatus(current.version, "END"))
                logging.info("Model %r: version %d replaced version %d; the old one is released when its last "
                             "in-flight request finishes.", self.model_name, servable.version, current.version)
            return True

    def get(self, name: str, version: int | None = None, version_label: str = "") -> Servable:
        """The servable a request addresses; NOT_FOUND for an unknown model or version.

        Args:
            name: model name; must equal `model_name`.
            version: a specific version, or None for the served (latest) one.
            version_label: TF Serving version labels are not configured here; any label -> INVALID_ARGUMENT.
        """
        if name != self.model_name:
            raise not_found(f"Servable not found for request: model {name!r} is not served (served: "
                            f"{self.model_name!r})")
        if version_label:
            raise invalid_argument(f"Version labels are not configured on this server; received {version_label!r}")
        servable = self._current
        if servable is None:
            raise not_found(f"Servable not found for request: no version of model {name!r} is loaded yet")
        if version is not None and version != servable.version:
            raise not_found(f"Servable not found for request: model {name!r} version {version} is not loaded "
                            f"(serving version {servable.version})")
        return servable

    def get_for_spec(self, spec: model_pb2.ModelSpec) -> Servable:
        version = spec.version.value if spec.HasField("version") else None
        return self.get(spec.name, version, spec.version_label)

    def statuses(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """Version states for GetModelStatus / GET /v1/models/<name>[/versions/<v>], newest first."""
        if name != self.model_name:
            raise not_found(f"Servable not found: model {name!r} is not served (served: {self.model_name!r})")
        with self._status_lock:
            statuses = sorted(self._statuses.values(), key=lambda s: -s.version)
        if version is not None:
            statuses = [s for s in statuses if s.version == version]
            if not statuses:
                raise not_found(f"Servable not found: model {name!r} has no version {version}")
        elif not statuses:
            raise not_found(f"Servable not found: no version of model {name!r} has been seen yet")
        return statuses


# --- requests (shared by gRPC and REST) ---------------------------------------------------------------------


def _spec_proto(servable: Servable, signature_name: str) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=servable.name, signature_name=signature_name or SIGNATURE)
    spec.version.value = servable.version
    return spec


def predict_response(servable: Servable, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
    signature = servable.signature(request.model_spec.signature_name)
    inputs = {}
    for key, proto in request.inputs.items():
        spec = signature.inputs.get(key)
        if spec is None:
            raise invalid_argument(
                f"Input {key!r} is not an input of signature {signature.name!r}; expected {sorted(signature.inputs)}"
            )
        inputs[key] = tensor_proto_to_array(proto, key, spec)
    outputs = servable.run(signature, inputs, tuple(request.output_filter))
    response = predict_pb2.PredictResponse(model_spec=_spec_proto(servable, signature.name))
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(array_to_tensor_proto(value))
    return response


def serialized_examples(model_input: input_pb2.Input) -> list[bytes]:
    """Serialized tf.Examples of a Classify/Regress `Input`.

    For `example_list_with_context` each example is merged with the context: serialized protobufs
    concatenate to their merge, and a later map entry wins, so features of the example override
    context features of the same name, as in TF Serving.
    """
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        return [example.SerializeToString() for example in model_input.example_list.examples]
    if kind == "example_list_with_context":
        both = model_input.example_list_with_context
        context = both.context.SerializeToString()
        return [context + example.SerializeToString() for example in both.examples]
    raise invalid_argument("Input is empty: set example_list or example_list_with_context")


def classification_result(scores: np.ndarray) -> classification_pb2.ClassificationResult:
    result = classification_pb2.ClassificationResult()
    for p in scores.tolist():
        classes = result.classifications.add().classes
        classes.add(label="0", score=1.0 - p)
        classes.add(label="1", score=p)
    return result


def regression_result(scores: np.ndarray) -> regression_pb2.RegressionResult:
    result = regression_pb2.RegressionResult()
    for p in scores.tolist():
        result.regressions.add(value=p)
    return result


def classify_response(
    servable: Servable, request: classification_pb2.ClassificationRequest
) -> classification_pb2.ClassificationResponse:
    scores = servable.score(request.model_spec.signature_name, serialized_examples(request.input))
    return classification_pb2.ClassificationResponse(
        model_spec=_spec_proto(servable, request.model_spec.signature_name), result=classification_result(scores)
    )


def regress_response(
    servable: Servable, request: regression_pb2.RegressionRequest
) -> regression_pb2.RegressionResponse:
    scores = servable.score(request.model_spec.signature_name, serialized_examples(request.input))
    return regression_pb2.RegressionResponse(
        model_spec=_spec_proto(servable, request.model_spec.signature_name), result=regression_result(scores)
    )


FINGERPRINT_FIELD = "feature_fingerprint"
METADATA_FIELDS = ("signature_def", FINGERPRINT_FIELD)


def metadata_response(
    servable: Servable, request: get_model_metadata_pb2.GetModelMetadataRequest
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    fields = list(request.metadata_field)
    if not fields:
        raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field ('signature_def')")
    unsupported = [f for f in fields if f not in METADATA_FIELDS]
    if unsupported:
        raise invalid_argument(f"Metadata field(s) {unsupported} not supported; supported: {list(METADATA_FIELDS)}")
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    if "signature_def" in fields:
        response.metadata["signature_def"].Pack(servable.signature_def_map)
    if FINGERPRINT_FIELD in fields:
        # A StringValue: the model's feature contract (`recsys.data.fingerprint`), "" when it has none.
        response.metadata[FINGERPRINT_FIELD].Pack(wrappers_pb2.StringValue(value=servable.feature_fingerprint or ""))
    return response


def status_response(statuses: Iterable[VersionStatus]) -> get_model_status_pb2.GetModelStatusResponse:
    from tensorflow.core.protobuf import error_codes_pb2

    response = get_model_status_pb2.GetModelStatusResponse()
    for s in statuses:
        entry = response.model_version_status.add(
            version=s.version, state=get_model_status_pb2.ModelVersionStatus.State.Value(s.state)
        )
        entry.status.error_code = error_codes_pb2.Code.Value(s.error_code)
        entry.status.error_message = s.error_message
    return response


# --- gRPC -------------------------------------------------------------------------------------------------


def _serve_rpc(manager: ModelManager, context: grpc.ServicerContext, method: str, handler, *args):
    try:
        with manager.requests:
            return handler(*args)
    except ServingError as e:
        logging.log_every_n_seconds(logging.INFO, "%s rejected (%s): %s", 10, method, e.code.name, e.message)
        context.abort(e.code, e.message)
    except Exception as e:  # noqa: BLE001 - a server bug must fail the one request, not the server
        logging.exception("%s failed", method)
        context.abort(grpc.StatusCode.INTERNAL, f"{method} failed: {type(e).__name__}: {e}")


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """`tensorflow.serving.PredictionService` over a ModelManager."""

    def __init__(self, manager: ModelManager):
        self._manager = manager

    def Predict(self, request, context):  # noqa: N802 - gRPC method names
        return _serve_rpc(self._manager, context, "Predict", lambda: predict_response(
            self._manager.get_for_spec(request.model_spec), request))

    def Classify(self, request, context):  # noqa: N802
        return _serve_rpc(self._manager, context, "Classify", lambda: classify_response(
            self._manager.get_for_spec(request.model_spec), request))

    def Regress(self, request, context):  # noqa: N802
        return _serve_rpc(self._manager, context, "Regress", lambda: regress_response(
            self._manager.get_for_spec(request.model_spec), request))

    def GetModelMetadata(self, request, context):  # noqa: N802
        return _serve_rpc(self._manager, context, "GetModelMetadata", lambda: metadata_response(
            self._manager.get_for_spec(request.model_spec), request))

    def MultiInference(self, request, context):  # noqa: N802
        return _serve_rpc(self._manager, context, "MultiInference", self._multi_inference, request)

    def _multi_inference(self, request: inference_pb2.MultiInferenceRequest) -> inference_pb2.MultiInferenceResponse:
        if not request.tasks:
            raise invalid_argument("MultiInferenceRequest has no tasks")
        examples = serialized_examples(request.input)
        response = inference_pb2.MultiInferenceResponse()
        for task in request.tasks:
            servable = self._manager.get_for_spec(task.model_spec)
            if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
                raise invalid_argument(
                    f"Unsupported method_name {task.method_name!r}; supported: {[CLASSIFY_METHOD, REGRESS_METHOD]}"
                )
            scores = servable.score(task.model_spec.signature_name, examples)
            result = response.results.add(model_spec=_spec_proto(servable, task.model_spec.signature_name))
            if task.method_name == CLASSIFY_METHOD:
                result.classification_result.CopyFrom(classification_result(scores))
            else:
                result.regression_result.CopyFrom(regression_result(scores))
        return response


class ModelStatusServicer(model_service_pb2_grpc.ModelServiceServicer):
    """`tensorflow.serving.ModelService.GetModelStatus` (HandleReloadConfigRequest stays UNIMPLEMENTED)."""

    def __init__(self, manager: ModelManager):
        self._manager = manager

    def GetModelStatus(self, request, context):  # noqa: N802
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        return _serve_rpc(self._manager, context, "GetModelStatus", lambda: status_response(
            self._manager.statuses(spec.name, version)))


def build_grpc_server(
    manager: ModelManager, host: str, port: int, max_workers: int = 16, max_message_bytes: int = 64 << 20
) -> tuple[grpc.Server, int]:
    """A started-to-be gRPC server with both services bound to `host:port`; returns it and the bound port.

    SO_REUSEPORT is off so a second server on a port already taken fails instead of silently sharing it.
    """
    if max_workers < 1:
        raise ValueError(f"`max_workers` must be >= 1. Received: max_workers={max_workers}")
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(manager), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelStatusServicer(manager), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as e:
        raise OSError(f"cannot listen for gRPC on {address}: {e}") from e
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {address} (port in use or not permitted)")
    return server, bound
