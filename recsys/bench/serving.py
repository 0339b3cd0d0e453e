r"""Load benchmark of `pipelines.serve` on loopback: latency and throughput, and a version swap under load.

    python -m recsys.bench.serving [--model_base_path=<dir> --data=<tfrecord glob>] [--requests=2000]

Starts the server as a subprocess on a free 127.0.0.1 port, serving a copy of the highest version of
--model_base_path (default: a toy SavedModel with the trainer's serving contract from
`recsys.testing`), and measures the cost of the server's tf.Example check (`Servable.run` with it on and off,
in this process, interleaved), gRPC Predict latency (p50/p99, ms, measured at the client) and QPS at
concurrency 1 and 8 with 1 and 64 examples per request, plus REST `:predict` with one example at
concurrency 1. Then it copies a new version folder into the base path while 8 clients keep sending
requests, and counts errors and the versions that answered. Finally it sends SIGTERM and checks the exit
code. The load is bounded: --requests per cell and --max_seconds per cell, loopback only.

The clients are threads of this process on the same machine, so on a small machine they compete with
the server for cores: the numbers are an upper bound on the server's own latency.
"""
from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import dataclasses
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

import recsys  # noqa: F401  (must precede TensorFlow)
from recsys.serving import contract

LOOPBACK = "127.0.0.1"
P50_TARGET_MS = 2.0


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free right now on `host` (for the REST port; gRPC uses --port=0 and --ready_file)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m pipelines.serve` as a subprocess on loopback, ready once a version is AVAILABLE.

    Args:
        base_path: model base path (numeric version folders).
        model_name: --model_name.
        rest: also start the REST API (on a free port).
        flags: extra flags, e.g. ("--max_batch_size=100", "--poll_seconds=0.2").
        log_path: where the server's stdout/stderr go (default: beside the ready file in a temp dir).
    """

    def __init__(self, base_path: str, model_name: str = "ctr", rest: bool = False,
                 flags: Sequence[str] = (), log_path: str | None = None):
        self.base_path = base_path
        self.model_name = model_name
        self._workdir = tempfile.mkdtemp(prefix="serve_")
        self.log_path = log_path or os.path.join(self._workdir, "server.log")
        self._ready_file = os.path.join(self._workdir, "ready.json")
        self.rest_port = free_port() if rest else None
        self._flags = list(flags)
        self.process: subprocess.Popen | None = None
        self.grpc_port: int | None = None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    def start(self, timeout: float = 120.0, wait_for_model: bool = True) -> ServerProcess:
        """Starts the server; waits until it listens and (with `wait_for_model`) has a version AVAILABLE."""
        command = [sys.executable, "-m", "pipelines.serve", f"--model_base_path={self.base_path}",
                   f"--model_name={self.model_name}", "--port=0", f"--host={LOOPBACK}",
                   f"--ready_file={self._ready_file}", *self._flags]
        if self.rest_port:
            command.append(f"--rest_api_port={self.rest_port}")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while not os.path.exists(self._ready_file):
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"server did not start within {timeout} s; log: {self.log_path}\n{self.log_tail()}")
            time.sleep(0.1)
        with open(self._ready_file) as f:
            self.grpc_port = json.load(f)["grpc_port"]
        if wait_for_model:
            self.wait_for_version(None, deadline - time.monotonic())
        return self

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"server exited with code {self.process.returncode}; log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def available_version(self) -> int | None:
        """The AVAILABLE version according to GetModelStatus, or None."""
        import grpc
        from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        with grpc.insecure_channel(self.address) as channel:
            try:
                response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=5)
            except grpc.RpcError:
                return None
        available = [s.version for s in response.model_version_status
                     if s.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE]
        return max(available) if available else None

    def wait_for_version(self, version: int | None, timeout: float) -> int:
        """Waits until `version` (or any version, if None) is AVAILABLE; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            available = self.available_version()
            if available is not None and (version is None or available == version):
                return available
            if time.monotonic() > deadline:
                raise TimeoutError(f"version {version} not AVAILABLE within {timeout:.0f} s (have {available}); "
                                   f"log:\n{self.log_tail()}")
            time.sleep(0.1)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM; returns the exit code (raises TimeoutError if it does not exit in time)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"server did not exit within {timeout} s of SIGTERM; log:\n{self.log_tail()}") from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def close(self) -> None:
        """Kills the server if it still runs and removes its temporary folder."""
        self.kill()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        self.close()


def read_records(pattern: str, limit: int = 4096) -> list[bytes]:
    """The first `limit` serialized records of the files matching `pattern`, in sorted file order."""
    import tensorflow as tf

    from recsys.serving.scorer import serialized_batches

    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"--data={pattern!r} matches no file")
    return [record for batch in serialized_batches(files, limit, limit) for record in batch.numpy()]


def predict_request(model_name: str, records: Sequence[bytes]):
    """A PredictRequest for the serving contract (`examples`: DT_STRING [n], default signature)."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.inputs[contract.INPUT_KEY].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, string_val=list(records),
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(records))]),
    ))
    return request


@dataclasses.dataclass
class LoadResult:
    latencies_ms: list[float]
    errors: int
    elapsed_s: float
    error_messages: list[str]
    versions: collections.Counter

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + self.errors

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    @property
    def qps(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else float("nan")


def run_load(send: Callable[[int], int | None], concurrency: int, requests: int, max_seconds: float,
             stop: threading.Event | None = None) -> LoadResult:
    """Calls `send(i)` `requests` times from `concurrency` threads (or until `max_seconds` / `stop`).

    `send` returns the version that answered (or None) and raises on error; errors are counted.
    """
    import grpc

    lock = threading.Lock()
    counter = iter(range(requests))
    latencies: list[float] = []
    errors: list[str] = []
    versions: collections.Counter = collections.Counter()
    deadline = time.monotonic() + max_seconds

    def worker():
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            with lock:
                i = next(counter, None)
            if i is None:
                return
            start = time.perf_counter()
            try:
                version = send(i)
            except (grpc.RpcError, OSError, ValueError) as e:
                with lock:
                    errors.append(f"{type(e).__name__}: {e}"[:300])
                continue
            elapsed = (time.perf_counter() - start) * 1e3
            with lock:
                latencies.append(elapsed)
                versions[version] += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return LoadResult(latencies, len(errors), time.perf_counter() - start, errors[:5], versions)


def grpc_sender(address: str, requests: Sequence, concurrency: int) -> tuple[Callable[[int], int], Callable]:
    """A `send` over one channel per client thread, and a function closing the channels."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    local = threading.local()
    channels = []
    lock = threading.Lock()

    def send(i: int) -> int:
        stub = getattr(local, "stub", None)
        if stub is None:
            channel = grpc.insecure_channel(address)
            with lock:
                channels.append(channel)
            stub = local.stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(requests[i % len(requests)], timeout=30)
        return response.model_spec.version.value

    def close():
        for channel in channels:
            channel.close()

    return send, close


def rest_sender(port: int, model_name: str, bodies: Sequence[bytes]) -> Callable[[int], None]:
    def send(i: int) -> None:
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
        try:
            connection.request("POST", f"/v1/models/{model_name}:predict", bodies[i % len(bodies)],
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}: {payload[:200]!r}")
        finally:
            connection.close()

    return send


def _prepare_models(args, tmp: str) -> tuple[str, str, list[bytes]]:
    """(base path holding version 1, staged next version folder, example records)."""
    from recsys.serving.versions import list_versions
    from recsys.testing import export_toy_saved_model, toy_feature_set, write_toy_tfrecords

    base = os.path.join(tmp, "models")
    stage = os.path.join(tmp, "stage", "2")
    if args.model_base_path:
        if not args.data:
            raise ValueError("--data is required with --model_base_path (examples the model can parse)")
        versions = list_versions(args.model_base_path)
        if not versions:
            raise FileNotFoundError(f"--model_base_path={args.model_base_path!r} has no version folder")
        source = versions[max(versions)]
        shutil.copytree(source, os.path.join(base, "1"))
        shutil.copytree(source, stage)
        records = read_records(args.data)
    else:
        features = toy_feature_set()
        export_toy_saved_model(os.path.join(base, "1"), features, seed=0)
        export_toy_saved_model(stage, features, seed=1)
        data = os.path.join(tmp, "examples.tfrecord")
        write_toy_tfrecords(data, features, rows=1024, seed=0)
        records = read_records(data)
    if len(records) < 64:
        raise ValueError(f"need at least 64 example records for batch-64 requests; got {len(records)}")
    return base, stage, records


def _in_process_rows(model_path: str, records: Sequence[bytes], requests: int) -> list[dict]:
    """The signature called directly in this process: the floor under the server's latency."""
    import tensorflow as tf

    from recsys.serving.scorer import load_serving_signature

    loaded, signature = load_serving_signature(model_path)  # `loaded` owns the variables while we call it
    rows = []
    for batch in (1, 64):
        inputs = [[records[(i * batch + j) % len(records)] for j in range(batch)] for i in range(32)]

        def send(i: int, inputs=inputs) -> None:
            signature(**{contract.INPUT_KEY: tf.constant(inputs[i % len(inputs)])})

        run_load(send, 1, min(200, requests), 60)
        rows.append(_row("in-process signature call", 1, batch, run_load(send, 1, requests, 60)))
        print(_format_row(rows[-1]), flush=True)
    return rows


def example_check_rows(model_path: str, records: Sequence[bytes], requests: int) -> list[dict]:
    """The server's request path (`Servable.run`) with and without the Example check, in this process.

    Both servables load `model_path`; calls alternate between them in blocks of 50 so load from other processes
    hits both alike. Per batch size (1, 64): a latency row for each, then a `check_ratio` row with the p50 and mean
    ratios (on / off) and the p50 difference in ms.
    """
    import tensorflow as tf

    from recsys.serving.server import Servable

    servables = {checked: Servable(f"check {'on' if checked else 'off'}", 1, model_path,
                                   tf.saved_model.load(model_path), 8192, check_examples=checked)
                 for checked in (True, False)}
    if servables[True].signature("").contract is None:
        raise ValueError(f"SavedModel {model_path} parses no dense features: no Example check to measure")
    rows = []
    for batch in (1, 64):
        inputs = [[records[(i * batch + j) % len(records)] for j in range(batch)] for i in range(32)]
        latencies: dict[bool, list[float]] = {True: [], False: []}
        for block in range(-4, max(requests // 50, 1)):  # 4 warm-up blocks per side, not recorded
            for checked in ((True, False) if block % 2 else (False, True)):
                servable = servables[checked]
                signature = servable.signature("")
                for i in range(50):
                    start = time.perf_counter()
                    servable.run(signature, {contract.INPUT_KEY: inputs[i % len(inputs)]})
                    if block >= 0:
                        latencies[checked].append((time.perf_counter() - start) * 1e3)
        for checked in (True, False):
            result = LoadResult(latencies[checked], 0, sum(latencies[checked]) / 1e3, [], collections.Counter())
            rows.append(_row(f"Servable.run, Example check {'on' if checked else 'off'}", 1, batch, result))
            print(_format_row(rows[-1]), flush=True)
        on, off = np.array(latencies[True]), np.array(latencies[False])
        rows.append({"api": "check_ratio", "batch": batch, "p50_ratio": round(float(np.median(on) / np.median(off)), 3),
                     "mean_ratio": round(float(on.mean() / off.mean()), 3),
                     "p50_added_ms": round(float(np.median(on) - np.median(off)), 3)})
        print(f"Example check, batch {batch}: p50 ratio on/off {rows[-1]['p50_ratio']}, mean ratio "
              f"{rows[-1]['mean_ratio']}, p50 added {rows[-1]['p50_added_ms']} ms", flush=True)
    return rows


def _row(name: str, concurrency: int, batch: int, result: LoadResult) -> dict:
    return {"api": name, "concurrency": concurrency, "batch": batch, "requests": result.requests,
            "errors": result.errors, "p50_ms": round(result.percentile(50), 3),
            "p99_ms": round(result.percentile(99), 3), "qps": round(result.qps, 1),
            "examples_per_s": round(result.qps * batch, 1)}


def run_benchmark(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_serving_") as tmp:
        base, stage, records = _prepare_models(args, tmp)
        check = example_check_rows(os.path.join(base, "1"), records, args.requests)
        if args.example_check_only:
            return {"example_check": check, "cpus": os.cpu_count()}
        baseline = _in_process_rows(os.path.join(base, "1"), records, args.requests)
        flags = [f"--poll_seconds={args.poll_seconds}", f"--grpc_max_workers={args.grpc_max_workers}"]
        with ServerProcess(base, "ctr", rest=True, flags=flags) as server:
            requests_by_batch = {b: [predict_request("ctr", [records[(i * b + j) % len(records)] for j in range(b)])
                                     for i in range(32)] for b in (1, 64)}
            rows = []
            for batch in (1, 64):
                for concurrency in (1, 8):
                    send, close = grpc_sender(server.address, requests_by_batch[batch], concurrency)
                    run_load(send, concurrency, min(200, args.requests), args.max_seconds)  # warm-up
                    result = run_load(send, concurrency, args.requests, args.max_seconds)
                    close()
                    rows.append(_row("gRPC Predict", concurrency, batch, result))
                    print(_format_row(rows[-1]), flush=True)
            bodies = [json.dumps({"instances": [{"b64": base64.b64encode(r).decode()}]}).encode()
                      for r in records[:32]]
            send = rest_sender(server.rest_port, "ctr", bodies)
            run_load(send, 1, min(100, args.requests), args.max_seconds)
            rows.append(_row("REST :predict", 1, 1, run_load(send, 1, args.requests, args.max_seconds)))
            print(_format_row(rows[-1]), flush=True)
            swap = _swap_under_load(server, base, stage, requests_by_batch[1], args)
            exit_code = server.terminate()
            swap["exit_code_after_sigterm"] = exit_code
    c1b1 = next(r for r in rows if r["concurrency"] == 1 and r["batch"] == 1 and r["api"] == "gRPC Predict")
    return {"rows": baseline + rows, "example_check": check, "swap": swap, "p50_target_ms": P50_TARGET_MS,
            "p50_target_met": c1b1["p50_ms"] <= P50_TARGET_MS, "cpus": os.cpu_count()}


def _swap_under_load(server: ServerProcess, base: str, stage: str, requests: Sequence, args) -> dict:
    """8 clients send batch-1 requests while version 2 is copied (non-atomically) into the base path."""
    stop = threading.Event()
    send, close = grpc_sender(server.address, requests, 8)
    box: dict = {}
    loader = threading.Thread(target=lambda: box.setdefault(
        "result", run_load(send, 8, 10**9, args.swap_max_seconds, stop)))
    loader.start()
    time.sleep(1.0)
    copy_start = time.monotonic()
    shutil.copytree(stage, os.path.join(base, "2"))  # file by file, like `cp -r` / `gsutil cp -r`
    copied = time.monotonic()
    try:
        server.wait_for_version(2, args.swap_max_seconds)
        swapped = time.monotonic()
        time.sleep(1.0)  # keep the load on after the swap
    finally:
        stop.set()
        loader.join()
        close()
    result: LoadResult = box["result"]
    return {"requests": result.requests, "errors": result.errors, "error_messages": result.error_messages,
            "answers_by_version": {str(k): v for k, v in sorted(result.versions.items())},
            "copy_s": round(copied - copy_start, 3), "swap_after_copy_s": round(swapped - copied, 3),
            "p50_ms": round(result.percentile(50), 3), "p99_ms": round(result.percentile(99), 3)}


def _format_row(row: dict) -> str:
    return (f"| {row['api']} | {row['concurrency']} | {row['batch']} | {row['requests']} | {row['errors']} | "
            f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['qps']:.0f} | {row['examples_per_s']:.0f} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_base_path", help="serve a copy of this base path's highest version (default: toy)")
    parser.add_argument("--data", help="TFRecord glob of examples for --model_base_path")
    parser.add_argument("--requests", type=int, default=2000, help="requests per cell (after 200 warm-up)")
    parser.add_argument("--max_seconds", type=float, default=20.0, help="time limit per cell")
    parser.add_argument("--swap_max_seconds", type=float, default=60.0, help="time limit of the swap phase")
    parser.add_argument("--poll_seconds", type=float, default=0.5, help="server's --poll_seconds")
    parser.add_argument("--grpc_max_workers", type=int, default=16, help="server's --grpc_max_workers")
    parser.add_argument("--example_check_only", action="store_true",
                        help="measure only the Example check's cost (Servable.run with it on and off), no server")
    parser.add_argument("--json", help="also write the results here as JSON")
    args = parser.parse_args(argv)
    print("| API | concurrency | batch | requests | errors | p50 ms | p99 ms | QPS | examples/s |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    results = run_benchmark(args)
    if args.example_check_only:
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
        return 0
    swap = results["swap"]
    print(f"\nversion swap under load (8 clients, batch 1): {swap['requests']} requests, {swap['errors']} errors, "
          f"answers by version {swap['answers_by_version']}, copy {swap['copy_s']} s, new version serving "
          f"{swap['swap_after_copy_s']} s after the copy, p99 {swap['p99_ms']} ms; exit code after SIGTERM "
          f"{swap['exit_code_after_sigterm']}")
    print(f"target p50 <= {P50_TARGET_MS} ms at concurrency 1, batch 1: "
          f"{'met' if results['p50_target_met'] else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    ok = swap["errors"] == 0 and all(r["errors"] == 0 for r in results["rows"]) and swap[
        "exit_code_after_sigterm"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
