r"""Serves the trainer's SavedModels with TF Serving's gRPC and REST APIs.

    python -m pipelines.serve --model_base_path=<dir> --model_name=ctr --port=8500 [--rest_api_port=8501]

`<dir>` holds numeric version folders (`<dir>/1/saved_model.pb`, ...). The highest version is served; the
folder is polled every --poll_seconds and a newer complete version is loaded and swapped in without
failing requests in flight. SIGTERM or SIGINT: stop accepting, finish the requests in flight (up to
--grace_seconds), exit 0. See docs/serving.md.
"""
import os
import signal
import sys
import threading

from absl import app, flags, logging

import recsys  # noqa: F401  (must precede TensorFlow)
from recsys import atomic, console

FLAGS = flags.FLAGS
flags.DEFINE_string("model_base_path", None, "Folder with numeric version subfolders of SavedModels.")
flags.DEFINE_string("model_name", "default", "Name clients address the model by (ModelSpec.name, /v1/models/<name>).")
flags.DEFINE_integer("port", 8500, "gRPC port (0: pick a free one; see --ready_file).")
flags.DEFINE_integer("rest_api_port", 0, "REST port; 0 disables the REST API (as in TF Serving).")
flags.DEFINE_string("host", "0.0.0.0", "Address to listen on (127.0.0.1 for loopback only).")
flags.DEFINE_float("poll_seconds", 1.0, "How often to look for new versions.")
flags.DEFINE_integer("max_batch_size", 8192, "Largest batch one request may carry; larger -> INVALID_ARGUMENT.")
flags.DEFINE_integer("grpc_max_workers", 16, "gRPC thread pool size (concurrent requests being executed).")
flags.DEFINE_integer("max_message_mb", 64, "Largest gRPC message, in MiB.")
flags.DEFINE_float("grace_seconds", 30.0, "On SIGTERM, how long requests in flight may take to finish.")
flags.DEFINE_integer("tf_intra_op_threads", 0, "TensorFlow intra-op threads (0: TensorFlow's default).")
flags.DEFINE_integer("tf_inter_op_threads", 0, "TensorFlow inter-op threads (0: TensorFlow's default).")
flags.DEFINE_string("ready_file", None, "Once listening, write {\"grpc_port\", \"rest_port\"} JSON here "
                    "(for tests and benchmarks that use --port=0).")
flags.mark_flag_as_required("model_base_path")


def _write_ready_file(path: str, grpc_port: int, rest_port: int | None) -> None:
    # Atomic: readers never see a half-written file.
    atomic.write_json(path, {"grpc_port": grpc_port, "rest_port": rest_port, "pid": os.getpid()})


def serve() -> None:
    base = FLAGS.model_base_path
    if "://" not in base and not os.path.isdir(base):
        # Checked before importing TensorFlow (seconds) so a typo fails at once; remote paths are checked later.
        raise FileNotFoundError(f"--model_base_path={base!r} does not exist or is not a directory")
    import tensorflow as tf

    from recsys.serving.rest import RestServer
    from recsys.serving.server import ModelManager, build_grpc_server

    if FLAGS.tf_intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.tf_intra_op_threads)
    if FLAGS.tf_inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.tf_inter_op_threads)

    stop = threading.Event()
    # Installed before the (possibly long) first load so a SIGTERM during it still exits cleanly.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, _: (logging.info("Received %s.", signal.Signals(s).name), stop.set()))

    manager = ModelManager(FLAGS.model_name, FLAGS.model_base_path, max_batch_size=FLAGS.max_batch_size)
    manager.load_initial()
    grpc_server, grpc_port = build_grpc_server(
        manager, FLAGS.host, FLAGS.port, FLAGS.grpc_max_workers, FLAGS.max_message_mb << 20
    )
    rest = RestServer(manager, FLAGS.host, FLAGS.rest_api_port) if FLAGS.rest_api_port else None
    grpc_server.start()
    if rest is not None:
        rest.start()
    manager.start_polling(FLAGS.poll_seconds)
    current = manager.current
    logging.info("Serving model %r (%s) with gRPC on %s:%d%s.", FLAGS.model_name,
                 f"version {current.version}" if current else "no version loaded yet", FLAGS.host, grpc_port,
                 f" and REST on {FLAGS.host}:{rest.port}" if rest else "")
    if FLAGS.ready_file:
        _write_ready_file(FLAGS.ready_file, grpc_port, rest.port if rest else None)

    stop.wait()
    logging.info("Shutting down: no new requests; waiting up to %.0f s for requests in flight.", FLAGS.grace_seconds)
    manager.stop_polling(timeout=1.0)
    done = grpc_server.stop(grace=FLAGS.grace_seconds)
    if rest is not None:
        rest.stop()
    done.wait()
    # grpc's stop() returns once the RPCs it accepted have finished (or the grace period ran out).
    unfinished = manager.requests.active
    log = logging.warning if unfinished else logging.info
    log("Server stopped: %d requests handled, %d still running at exit.", manager.requests.total, unfinished)


def main(argv):
    console.configure(logging.get_verbosity())  # before TensorFlow/Beam are imported; --verbosity=1: all logs
    del argv
    try:
        serve()
    except (OSError, ValueError) as e:
        print(f"pipelines.serve: error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    from pipelines import parse_flags

    app.run(main, flags_parser=parse_flags)
