"""Finds the model version to serve in a TF Serving base path, and polls it for new versions.

TF Serving's layout: `<base_path>/<version>/saved_model.pb` with integer version folders; the highest
version is served (TF Serving's default "latest 1" policy). Writers rarely create a version atomically
(a trainer exports in place, `gsutil cp -r` / `cp -r` copy file by file), so a version found while the
server runs is loaded only once its contents stop changing: its fingerprint (every file's path, size and
modification time) must be the same on two consecutive polls. A version that fails to load is skipped
until its fingerprint changes, so a broken export does not take the server down nor get retried in a loop;
the server keeps the version it has.

Paths go through `tf.io.gfile`, so `gs://` and other TensorFlow file systems work like local folders.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple

from absl import logging

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")

Fingerprint = tuple[tuple[str, int, int], ...]


class BasePathMissingError(FileNotFoundError):
    """The model base path does not exist (or is not a folder) right now."""

    def __init__(self, base_path: str):
        super().__init__(f"model_base_path {base_path!r} does not exist or is not a directory")
        self.base_path = base_path


class Candidate(NamedTuple):
    version: int
    path: str


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def _join(*parts: str) -> str:
    return "/".join([parts[0].rstrip("/")] + [p.strip("/") for p in parts[1:]])


def is_saved_model_dir(path: str) -> bool:
    """True if `path` holds a SavedModel (`saved_model.pb` or `saved_model.pbtxt`)."""
    gfile = _gfile()
    return any(gfile.exists(_join(path, name)) for name in SAVED_MODEL_FILES)


def list_versions(base_path: str) -> dict[int, str]:
    """Maps each numeric version folder of `base_path` that holds a SavedModel file to its path.

    Folders with other names (`tmp`, `1.partial`), negative numbers and folders without a SavedModel
    file are ignored, as TF Serving does.

    Raises:
        BasePathMissingError: `base_path` does not exist or is not a directory.
    """
    import tensorflow as tf

    gfile = _gfile()
    if not gfile.isdir(base_path):
        raise BasePathMissingError(base_path)
    try:
        entries = gfile.listdir(base_path)
    except tf.errors.NotFoundError:  # removed between the two calls
        raise BasePathMissingError(base_path) from None
    versions = {}
    for entry in entries:
        name = entry.rstrip("/")
        if not name.isdigit():
            continue
        path = _join(base_path, name)
        if gfile.isdir(path) and is_saved_model_dir(path):
            versions[int(name)] = path
    return versions


def fingerprint(path: str) -> Fingerprint | None:
    """(relative path, size, mtime ns) of every file below `path`, sorted; None if it changed while walking."""
    import tensorflow as tf

    gfile = tf.io.gfile
    entries = []
    try:
        for root, _, files in gfile.walk(path):
            for name in files:
                full = _join(root, name)
                stat = gfile.stat(full)
                entries.append((full[len(path):], int(stat.length), int(stat.mtime_nsec)))
    except tf.errors.NotFoundError:
        # A file vanished between listing and stat: the folder is being rewritten right now.
        return None
    return tuple(sorted(entries))


class VersionScanner:
    """Chooses the next version to load: the highest complete one above the version being served.

    Args:
        base_path: folder with numeric version subfolders.
    """

    def __init__(self, base_path: str):
        self.base_path = base_path
        self._seen: dict[int, Fingerprint | None] = {}
        self._failed: dict[int, Fingerprint | None] = {}

    def next_version(self, current: int | None, require_stable: bool = True) -> Candidate | None:
        """The highest version above `current` that is ready to load, or None.

        Args:
            current: the version being served (None before the first load).
            require_stable: only offer a version whose fingerprint equals the one seen by the previous call.
                The first load at start-up passes False: whatever is there when the server starts is taken
                to be complete, and a load failure there is retried once the folder changes.
        """
        versions = list_versions(self.base_path)
        for version in sorted(versions, reverse=True):
            if current is not None and version <= current:
                break
            path = versions[version]
            fp = fingerprint(path)
            previous = self._seen.get(version)
            self._seen[version] = fp
            if fp is None:
                continue
            if version in self._failed and self._failed[version] == fp:
                continue
            if require_stable and previous != fp:
                logging.info("Version %d at %s is new or still changing; loading it once it is stable.", version, path)
                continue
            return Candidate(version, path)
        return None

    def mark_failed(self, candidate: Candidate) -> None:
        """Skips `candidate` until its folder changes."""
        self._failed[candidate.version] = self._seen.get(candidate.version)

    def highest_version(self) -> int | None:
        """The highest version folder present now (complete or not), for status reports."""
        versions = list_versions(self.base_path)
        return max(versions) if versions else None


class VersionWatcher:
    """Calls `poll()` every `poll_seconds` on a daemon thread until `stop()`.

    Exceptions from `poll` are logged and polling goes on: a transient file-system error must not end
    version updates for the life of the server. A base path that disappears (`BasePathMissingError`) is not an
    error: the loaded version keeps serving, so it is logged in one line when it goes, nothing while it stays
    gone, and one line when it is back.

    Args:
        poll: called every `poll_seconds`.
        poll_seconds: the interval.
        serving: describes what the server keeps serving while the base path is gone (for the log line).
    """

    def __init__(self, poll: Callable[[], None], poll_seconds: float, serving: Callable[[], str] | None = None):
        if poll_seconds <= 0:
            raise ValueError(f"`poll_seconds` must be positive. Received: poll_seconds={poll_seconds}")
        self._poll = poll
        self._poll_seconds = poll_seconds
        self._serving = serving or (lambda: "the version it has loaded")
        self.missing_base_path: str | None = None  # set while the base path is gone
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="version-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stops polling; waits for a poll in progress (e.g. a model load) up to `timeout` seconds."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self._poll()
            except BasePathMissingError as e:
                if self.missing_base_path is None:
                    self.missing_base_path = e.base_path
                    logging.warning("Model base path %s is gone; the server keeps serving %s. Checking for it "
                                    "every %g s; nothing more is logged until it reappears.", e.base_path,
                                    self._serving(), self._poll_seconds)
                continue
            except Exception:  # noqa: BLE001 - keep polling; the error is logged with its traceback
                logging.exception("Polling for new model versions failed; retrying in %.1f s.", self._poll_seconds)
            if self.missing_base_path is not None:
                logging.info("Model base path %s is back; new versions are loaded from it again.",
                             self.missing_base_path)
                self.missing_base_path = None
