"""Derives `TF_CONFIG` for a replica from its cluster environment (Kubernetes indexed Jobs, plain env lists).

TensorFlow's multi-worker strategies read the cluster and the replica's own role from the `TF_CONFIG`
environment variable (https://www.tensorflow.org/guide/distributed_training#setting_up_the_tf_config_environment_variable):

    {"cluster": {"chief": ["h0:2222"], "worker": ["h1:2222", "h2:2222"], "ps": ["h3:2222"]},
     "task": {"type": "worker", "index": 0}}

Kubeflow's TFJob operator writes it for each replica. A plain Kubernetes indexed Job
(`completionMode: Indexed`) only gives each pod `JOB_COMPLETION_INDEX` and a stable DNS name
`<job-name>-<index>.<headless-service>`, so `ensure_tf_config()` (called by the trainer at start) builds
TF_CONFIG from these variables:

Cluster, either listed explicitly ...
    RECSYS_WORKER_HOSTS   comma-separated host:port of the workers
    RECSYS_CHIEF_HOSTS    optional, host:port of the chief (at most one)
    RECSYS_PS_HOSTS       optional, comma-separated host:port of the parameter servers
... or from the indexed-Job naming pattern:
    RECSYS_SERVICE        the headless Service that is the pods' `subdomain`
    RECSYS_JOB_NAME       the Job's name (e.g. from the label `batch.kubernetes.io/job-name`)
    RECSYS_NUM_WORKERS    number of workers (>= 1)
    RECSYS_NUM_CHIEFS     0 or 1 (default 0)
    RECSYS_NUM_PS         number of parameter servers (default 0)
    RECSYS_PORT           port every task listens on (default 2222)
  Pod i is `<job>-<i>.<service>:<port>`; indices are laid out chief first, then workers, then ps:
  with 1 chief, 2 workers and 1 ps, index 0 is the chief, 1-2 are workers 0-1 and 3 is ps 0.

This replica:
    RECSYS_TASK_TYPE      optional: chief, worker or ps. When set, the index counts within that type
                          (one Job per role); when unset, the index is the global position above.
    RECSYS_TASK_INDEX     the index; defaults to JOB_COMPLETION_INDEX (set by Kubernetes on indexed Jobs).

With none of RECSYS_WORKER_HOSTS / RECSYS_SERVICE set there is no cluster: `derive_tf_config` returns
None and training runs on one machine. Anything inconsistent (an index out of range, a host without a
port, half of the pattern variables) raises ValueError naming the variable and its value.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from typing import Any

TASK_TYPES = ("chief", "worker", "ps")
DEFAULT_PORT = 2222
_PATTERN_VARS = ("RECSYS_SERVICE", "RECSYS_JOB_NAME", "RECSYS_NUM_WORKERS")


def _int(environ: Mapping[str, str], name: str, default: int | None = None, minimum: int = 0) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        if default is None:
            raise ValueError(f"{name} must be set. Received: no {name} in the environment")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer. Received: {name}={raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}. Received: {name}={raw!r}")
    return value


def _hosts(environ: Mapping[str, str], name: str) -> list[str]:
    raw = environ.get(name, "")
    hosts = [h.strip() for h in raw.split(",") if h.strip()]
    for host in hosts:
        address, sep, port = host.rpartition(":")
        if not sep or not address or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{name} must be comma-separated host:port entries. Received: {name}={raw!r} "
                             f"(bad entry {host!r})")
    return hosts


def _cluster_from_lists(environ: Mapping[str, str]) -> dict[str, list[str]]:
    workers = _hosts(environ, "RECSYS_WORKER_HOSTS")
    if not workers:
        raise ValueError("RECSYS_WORKER_HOSTS must list at least one host:port. "
                         f"Received: RECSYS_WORKER_HOSTS={environ.get('RECSYS_WORKER_HOSTS')!r}")
    cluster = {"chief": _hosts(environ, "RECSYS_CHIEF_HOSTS"), "worker": workers,
               "ps": _hosts(environ, "RECSYS_PS_HOSTS")}
    if len(cluster["chief"]) > 1:
        raise ValueError(f"RECSYS_CHIEF_HOSTS may list one host. Received: {environ['RECSYS_CHIEF_HOSTS']!r}")
    return cluster


def _cluster_from_pattern(environ: Mapping[str, str]) -> dict[str, list[str]]:
    missing = [name for name in _PATTERN_VARS if not environ.get(name, "").strip()]
    if missing:
        given = {name: environ.get(name) for name in _PATTERN_VARS}
        raise ValueError(f"The indexed-Job pattern needs {list(_PATTERN_VARS)}; missing {missing}. Received: {given}")
    service, job = environ["RECSYS_SERVICE"].strip(), environ["RECSYS_JOB_NAME"].strip()
    num_workers = _int(environ, "RECSYS_NUM_WORKERS", minimum=1)
    num_chiefs = _int(environ, "RECSYS_NUM_CHIEFS", default=0)
    if num_chiefs > 1:
        raise ValueError(f"RECSYS_NUM_CHIEFS must be 0 or 1. Received: RECSYS_NUM_CHIEFS={num_chiefs}")
    num_ps = _int(environ, "RECSYS_NUM_PS", default=0)
    port = _int(environ, "RECSYS_PORT", default=DEFAULT_PORT, minimum=1)
    if port > 65535:
        raise ValueError(f"RECSYS_PORT must be a TCP port (1-65535). Received: RECSYS_PORT={port}")
    hosts = [f"{job}-{i}.{service}:{port}" for i in range(num_chiefs + num_workers + num_ps)]
    return {"chief": hosts[:num_chiefs], "worker": hosts[num_chiefs:num_chiefs + num_workers],
            "ps": hosts[num_chiefs + num_workers:]}


def _task(environ: Mapping[str, str], cluster: dict[str, list[str]]) -> dict[str, Any]:
    if environ.get("RECSYS_TASK_INDEX", "").strip():
        index_var = "RECSYS_TASK_INDEX"
    elif environ.get("JOB_COMPLETION_INDEX", "").strip():
        index_var = "JOB_COMPLETION_INDEX"
    else:
        raise ValueError("A cluster is configured but this replica's index is unknown: set RECSYS_TASK_INDEX or "
                         "run as a Kubernetes indexed Job (JOB_COMPLETION_INDEX)")
    index = _int(environ, index_var)
    task_type = environ.get("RECSYS_TASK_TYPE", "").strip()
    if task_type:
        if task_type not in TASK_TYPES:
            raise ValueError(f"RECSYS_TASK_TYPE must be one of {TASK_TYPES}. Received: RECSYS_TASK_TYPE={task_type!r}")
        if index >= len(cluster[task_type]):
            raise ValueError(f"{index_var}={index} is out of range for the {len(cluster[task_type])} "
                             f"{task_type!r} task(s) of the cluster {cluster}")
        return {"type": task_type, "index": index}
    offset = 0
    for kind in TASK_TYPES:
        if index < offset + len(cluster[kind]):
            return {"type": kind, "index": index - offset}
        offset += len(cluster[kind])
    raise ValueError(f"{index_var}={index} is out of range: the cluster has {offset} tasks "
                     f"(indices 0-{offset - 1}): {cluster}")


def derive_tf_config(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """TF_CONFIG for this replica from the RECSYS_* / JOB_COMPLETION_INDEX variables; None without a cluster.

    Args:
        environ: the environment to read (e.g. `os.environ`); an existing TF_CONFIG in it is ignored here.

    Raises:
        ValueError: the variables are inconsistent (see the module docstring).
    """
    explicit = bool(environ.get("RECSYS_WORKER_HOSTS", "").strip())
    pattern = any(environ.get(name, "").strip() for name in _PATTERN_VARS)
    if explicit and pattern:
        raise ValueError("Set either RECSYS_WORKER_HOSTS (explicit hosts) or the indexed-Job pattern "
                         f"{list(_PATTERN_VARS)}, not both")
    if not explicit and not pattern:
        return None
    cluster = _cluster_from_lists(environ) if explicit else _cluster_from_pattern(environ)
    cluster = {kind: hosts for kind, hosts in cluster.items() if hosts}
    task = _task(environ, {kind: cluster.get(kind, []) for kind in TASK_TYPES})
    return {"cluster": cluster, "task": task}


def ensure_tf_config(environ: MutableMapping[str, str] = os.environ) -> dict[str, Any] | None:
    """Sets `environ["TF_CONFIG"]` from the cluster variables when it is absent; returns the TF_CONFIG in force.

    An existing TF_CONFIG (e.g. written by Kubeflow's TFJob operator) is left untouched and returned parsed.

    Raises:
        ValueError: the existing TF_CONFIG is not a JSON object, or the cluster variables are inconsistent.
    """
    existing = environ.get("TF_CONFIG", "").strip()
    if existing:
        try:
            config = json.loads(existing)
        except json.JSONDecodeError as e:
            raise ValueError(f"TF_CONFIG is not valid JSON ({e}). Received: TF_CONFIG={existing!r:.200}") from None
        if not isinstance(config, dict):
            raise ValueError(f"TF_CONFIG must be a JSON object. Received: TF_CONFIG={existing!r:.200}")
        return config
    config = derive_tf_config(environ)
    if config is not None:
        environ["TF_CONFIG"] = json.dumps(config)
    return config
