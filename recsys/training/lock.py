"""One writer per workdir: a lock file that names its holder, so a second trainer or study fails fast.

    with workdir_lock(workdir, job="trainer"):
        ...   # train, checkpoint, export

`<workdir>/LOCK` is created with O_EXCL and holds one JSON line: host, pid, job, start time. A second process on
the same workdir raises `WorkdirLockedError` naming the holder. A lock whose holder is a dead process on this host
(killed with SIGKILL, or its machine's power went) is stale: it is taken over with a log line. A lock held from
another host cannot be checked from here; the error says to delete the file once that process is known to be gone.

Local paths only: object stores (gs://...) have no exclusive create, so a remote workdir is not locked (logged).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

from absl import logging

LOCK_FILE = "LOCK"


class WorkdirLockedError(FileExistsError):
    """Another live process holds the workdir's lock; the message names it and the lock file."""


def _holder(job: str) -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "job": job,
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            return json.loads(f.read() or "null")
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written, or garbage: treated as held by an unknown process


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    return (f"{holder.get('job', 'a job')} pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
            f"since {holder.get('since', '?')}")


def _acquire(path: str, job: str) -> dict[str, Any]:
    me = _holder(job)
    for _ in range(3):  # a stale lock removed, then created again: a competing process may win in between
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            if holder is None:
                continue  # released between the two calls
            stale = (holder.get("host") == me["host"] and isinstance(holder.get("pid"), int)
                     and holder["pid"] != me["pid"] and not _alive(holder["pid"]))
            if not stale:
                raise WorkdirLockedError(
                    f"workdir {os.path.dirname(path)} is in use by {_describe(holder)} (lock {path}); wait for it "
                    f"to finish or stop it, or delete {path} if that process is gone") from None
            logging.warning("Taking over the stale lock %s of %s (no such process on this host).", path,
                            _describe(holder))
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(me) + "\n")
        return me
    raise WorkdirLockedError(f"could not take the lock {path}: other processes keep taking it")


@contextlib.contextmanager
def workdir_lock(workdir: str, job: str = "trainer") -> Iterator[None]:
    """Holds `<workdir>/LOCK` for the block (see the module docstring); creates `workdir` if needed, and removes it
    again if the block left it empty.

    Raises:
      WorkdirLockedError: a live process holds the lock (one line naming it, the file and what to do).
    """
    if "://" in workdir:
        logging.info("Workdir %s is remote: not locked (one writer per workdir is up to the launcher).", workdir)
        yield
        return
    created = not os.path.isdir(workdir)
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, LOCK_FILE)
    me = _acquire(path, job)
    try:
        yield
    finally:
        if _read(path) == me:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        if created:  # a job that failed before writing anything leaves no empty workdir behind
            with contextlib.suppress(OSError):
                os.rmdir(workdir)
