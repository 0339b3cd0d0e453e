"""TF Serving's REST API over the same ModelManager as the gRPC server.

Endpoints (https://www.tensorflow.org/tfx/serving/api_rest; `/versions/<v>` is optional everywhere):

- `GET  /v1/models/<name>[/versions/<v>]`           -> `{"model_version_status": [...]}`
- `GET  /v1/models/<name>[/versions/<v>]/metadata`  -> `{"model_spec": ..., "metadata": {"signature_def": ...}}`
- `POST /v1/models/<name>[/versions/<v>]:predict`   with `{"signature_name"?, "instances": [...]}` (row format,
  answered by `{"predictions": [...]}`) or `{"inputs": ...}` (columnar, answered by `{"outputs": ...}`).
  Binary strings such as serialized tf.Examples are written `{"b64": "<base64>"}`.
- `POST /v1/models/<name>[/versions/<v>]:classify` / `:regress` with `{"examples": [{feature: value(s)}],
  "context"?: {...}}`: features as JSON (ints -> int64_list, floats -> float_list, strings or `{"b64"}` ->
  bytes_list); answered by `{"result": [[["0", s0], ["1", s1]], ...]}` / `{"result": [p, ...]}`.

Errors answer `{"error": "<message>"}` with TF Serving's HTTP status for the gRPC code (400 for
INVALID_ARGUMENT, 404 for NOT_FOUND). Responses close the connection (HTTP/1.0), so shutdown never waits
on an idle keep-alive client.
"""
from __future__ import annotations

import base64
import binascii
import http.server
import json
import re
import socket
import threading
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import json_format

from recsys.serving.contract import SIGNATURE
from recsys.serving.server import (
    ModelManager,
    Servable,
    ServingError,
    Signature,
    invalid_argument,
    not_found,
)

_MODEL_PATH = r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
_GET_ROUTE = re.compile(_MODEL_PATH + r"(?P<metadata>/metadata)?")
_POST_ROUTE = re.compile(_MODEL_PATH + r":(?P<verb>predict|classify|regress)")


# --- JSON <-> arrays and Examples ---------------------------------------------------------------------------


def _decode_string(value: Any, name: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError) as e:
            raise invalid_argument(f"Input {name!r}: invalid base64 in {{'b64': ...}}: {e}") from None
    raise invalid_argument(f"Input {name!r} takes strings or {{\"b64\": \"...\"}} objects; received {value!r:.80}")


def json_to_array(values: Any, name: str, spec: tf.TensorSpec) -> list | np.ndarray:
    """Converts one input's JSON value (a batch) to what `Servable.run` takes, checking dtype and shape."""
    if spec.dtype == tf.string:
        def decode(v):
            return [decode(x) for x in v] if isinstance(v, list) else _decode_string(v, name)

        decoded = decode(values)
        if isinstance(decoded, list) and all(isinstance(x, bytes) for x in decoded):
            shape = [len(decoded)]
            array: list | np.ndarray = decoded
        else:
            try:
                array = np.array(decoded, dtype=object)
            except ValueError as e:
                raise invalid_argument(f"Input {name!r} is a ragged nested list: {e}") from None
            shape = list(array.shape)
    else:
        try:
            array = np.asarray(values, dtype=spec.dtype.as_numpy_dtype)
        except (TypeError, ValueError) as e:
            raise invalid_argument(f"Input {name!r} must hold {spec.dtype.name} values: {e}") from None
        shape = list(array.shape)
    if not spec.shape.is_compatible_with(shape):
        raise invalid_argument(f"Input {name!r} must have shape {spec.shape.as_list()}; received {shape}")
    return array


def _to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def array_to_json(array: np.ndarray) -> Any:
    # float32 -> Python float keeps the exact value; json prints it with enough digits to round-trip.
    return _to_json(array.tolist())


def json_to_example(features: Any, where: str) -> bytes:
    """A serialized tf.Example from `{"feature": value or [values]}` (TF Serving's JSON Example encoding)."""
    if not isinstance(features, dict):
        raise invalid_argument(f"{where} must be a JSON object of features; received {features!r:.80}")
    example = tf.train.Example()
    for key, value in features.items():
        values = value if isinstance(value, list) else [value]
        feature = example.features.feature[key]
        if all(isinstance(v, (bool, int)) for v in values):
            feature.int64_list.value.extend(int(v) for v in values)
        elif all(isinstance(v, (bool, int, float)) for v in values):
            feature.float_list.value.extend(float(v) for v in values)
        elif all(isinstance(v, (str, dict)) for v in values):
            feature.bytes_list.value.extend(_decode_string(v, f"{where}.{key}") for v in values)
        else:
            raise invalid_argument(f"{where}: feature {key!r} mixes or uses unsupported value types: {value!r:.80}")
    return example.SerializeToString()


# --- request handling (transport-free, tested directly and through HTTP) -------------------------------------


def _require_object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise invalid_argument(f"Request body must be a JSON object; received {type(body).__name__}")
    return body


def _row_inputs(instances: Any, signature: Signature) -> dict:
    if not isinstance(instances, list) or not instances:
        raise invalid_argument("'instances' must be a non-empty JSON list")
    names = sorted(signature.inputs)
    keyed = [isinstance(i, dict) and set(i) != {"b64"} for i in instances]
    if any(keyed) and not all(keyed):
        raise invalid_argument("'instances' mixes objects keyed by input name with bare values")
    if not any(keyed):
        if len(names) != 1:
            raise invalid_argument(f"Signature {signature.name!r} has inputs {names}; each instance must be an "
                                   "object keyed by input name")
        return {names[0]: json_to_array(instances, names[0], signature.inputs[names[0]])}
    columns: dict[str, list] = {}
    for index, instance in enumerate(instances):
        if sorted(instance) != names:
            raise invalid_argument(f"instances[{index}] has keys {sorted(instance)}; signature {signature.name!r} "
                                   f"takes inputs {names}")
        for key in names:
            columns.setdefault(key, []).append(instance[key])
    return {key: json_to_array(values, key, signature.inputs[key]) for key, values in columns.items()}


def _column_inputs(inputs: Any, signature: Signature) -> dict:
    names = sorted(signature.inputs)
    if isinstance(inputs, dict) and set(inputs) != {"b64"}:
        return {key: json_to_array(value, key, signature.inputs[key]) if key in signature.inputs else value
                for key, value in inputs.items()}
    if len(names) != 1:
        raise invalid_argument(f"Signature {signature.name!r} has inputs {names}; 'inputs' must be an object "
                               "keyed by input name")
    return {names[0]: json_to_array(inputs, names[0], signature.inputs[names[0]])}


def predict_json(servable: Servable, body: Any) -> dict:
    """Answers a `:predict` body in TF Serving's row (`instances`) or columnar (`inputs`) format."""
    body = _require_object(body)
    signature = servable.signature(body.get("signature_name", SIGNATURE))
    if ("instances" in body) == ("inputs" in body):
        raise invalid_argument("The request must have exactly one of 'instances' (row format) or 'inputs' "
                               f"(columnar format); received keys {sorted(body)}")
    row_format = "instances" in body
    inputs = _row_inputs(body["instances"], signature) if row_format else _column_inputs(body["inputs"], signature)
    outputs = servable.run(signature, inputs, tuple(body.get("output_filter", ())))
    if row_format:
        if len(outputs) == 1:
            return {"predictions": array_to_json(next(iter(outputs.values())))}
        columns = {key: array_to_json(value) for key, value in outputs.items()}
        rows = len(next(iter(columns.values())))
        return {"predictions": [{key: columns[key][i] for key in columns} for i in range(rows)]}
    if len(outputs) == 1:
        return {"outputs": array_to_json(next(iter(outputs.values())))}
    return {"outputs": {key: array_to_json(value) for key, value in outputs.items()}}


def _examples_json(body: dict) -> list[bytes]:
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise invalid_argument("'examples' must be a non-empty JSON list of feature objects")
    context = json_to_example(body["context"], "context") if "context" in body else b""
    # Serialized protos concatenate to their merge: example features override context features.
    return [context + json_to_example(example, f"examples[{i}]") for i, example in enumerate(examples)]


def classify_json(servable: Servable, body: Any) -> dict:
    body = _require_object(body)
    scores = servable.score(body.get("signature_name", ""), _examples_json(body))
    return {"result": [[["0", 1.0 - p], ["1", p]] for p in scores.tolist()]}


def regress_json(servable: Servable, body: Any) -> dict:
    body = _require_object(body)
    scores = servable.score(body.get("signature_name", ""), _examples_json(body))
    return {"result": scores.tolist()}


def status_json(manager: ModelManager, name: str, version: int | None) -> dict:
    return {"model_version_status": [
        {"version": str(s.version), "state": s.state,
         "status": {"error_code": s.error_code, "error_message": s.error_message}}
        for s in manager.statuses(name, version)
    ]}


def metadata_json(servable: Servable) -> dict:
    return {
        "model_spec": {"name": servable.name, "signature_name": "", "version": str(servable.version)},
        "metadata": {"signature_def": json_format.MessageToDict(
            servable.signature_def_map, preserving_proto_field_name=True)},
    }


_POST_HANDLERS = {"predict": predict_json, "classify": classify_json, "regress": regress_json}


def handle(manager: ModelManager, method: str, path: str, body: bytes) -> tuple[int, dict]:
    """Routes one REST request; returns (HTTP status, JSON body). Never raises for a bad request."""
    with manager.requests:
        return _handle(manager, method, path, body)


def _handle(manager: ModelManager, method: str, path: str, body: bytes) -> tuple[int, dict]:
    try:
        if method == "GET":
            match = _GET_ROUTE.fullmatch(path)
            if match is None:
                raise not_found(f"Malformed request: GET {path}")
            version = int(match["version"]) if match["version"] else None
            if match["metadata"]:
                return 200, metadata_json(manager.get(match["name"], version, match["label"] or ""))
            if match["label"]:
                raise invalid_argument("Version labels are not configured on this server")
            return 200, status_json(manager, match["name"], version)
        match = _POST_ROUTE.fullmatch(path)
        if match is None:
            raise not_found(f"Malformed request: POST {path}")
        version = int(match["version"]) if match["version"] else None
        servable = manager.get(match["name"], version, match["label"] or "")
        try:
            parsed = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise invalid_argument(f"JSON Parse error: {e}") from None
        return 200, _POST_HANDLERS[match["verb"]](servable, parsed)
    except ServingError as e:
        logging.log_every_n_seconds(logging.INFO, "REST %s %s rejected (%s): %s", 10, method, path, e.code.name,
                                    e.message)
        return e.http_status, {"error": e.message}
    except Exception as e:  # noqa: BLE001 - a server bug fails the one request, not the server
        logging.exception("REST %s %s failed", method, path)
        return 500, {"error": f"{type(e).__name__}: {e}"}


# --- HTTP server --------------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    manager: ModelManager  # set on the subclass made by RestServer
    server_version = "recsys-serving"
    # Headers and body leave in one segment (buffered, flushed at the end of the request) with Nagle off:
    # two small writes would otherwise wait on the client's delayed ACK.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def _respond(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            status, payload = 400, {"error": f"Invalid Content-Length: {self.headers.get('Content-Length')!r}"}
        else:
            body = self.rfile.read(length) if length else b""
            status, payload = handle(self.manager, method, self.path.split("?")[0], body)
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's method names
        self._respond("GET")

    def do_POST(self):  # noqa: N802
        self._respond("POST")

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        logging.vlog(1, "REST " + format, *args)


class _HTTPServer(http.server.ThreadingHTTPServer):
    # Non-daemon handler threads that server_close() joins: shutdown finishes the requests in flight.
    daemon_threads = False
    block_on_close = True


class RestServer:
    """TF Serving's REST API on `host:port` (port 0 picks a free one; see `port`)."""

    def __init__(self, manager: ModelManager, host: str, port: int):
        handler = type("RestHandler", (_Handler,), {"manager": manager})
        server_class = _HTTPServer
        if ":" in host:
            server_class = type("_HTTPServer6", (_HTTPServer,), {"address_family": socket.AF_INET6})
        try:
            self._httpd = server_class((host, port), handler)
        except OSError as e:
            raise OSError(f"cannot listen for REST on {host}:{port}: {e}") from e
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="rest", daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stops accepting, then waits for the requests in flight to finish."""
        self._httpd.shutdown()
        self._httpd.server_close()
