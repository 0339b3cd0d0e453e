"""`recsys.training.tf_config`: TF_CONFIG from a cluster's environment (indexed Jobs, explicit host lists)."""
import json

import pytest

from recsys.training.tf_config import derive_tf_config, ensure_tf_config

INDEXED_JOB = {"RECSYS_JOB_NAME": "train", "RECSYS_SERVICE": "train-svc", "RECSYS_NUM_WORKERS": "3"}


def test_no_cluster_variables_means_no_cluster():
    assert derive_tf_config({}) is None
    assert derive_tf_config({"JOB_COMPLETION_INDEX": "0", "HOME": "/root"}) is None  # a non-distributed indexed Job


@pytest.mark.parametrize("index", [0, 1, 2])
def test_indexed_job_workers(index):
    config = derive_tf_config({**INDEXED_JOB, "JOB_COMPLETION_INDEX": str(index)})
    assert config == {
        "cluster": {"worker": ["train-0.train-svc:2222", "train-1.train-svc:2222", "train-2.train-svc:2222"]},
        "task": {"type": "worker", "index": index},
    }


def test_indexed_job_with_chief_and_ps_lays_out_indices():
    env = {**INDEXED_JOB, "RECSYS_NUM_WORKERS": "2", "RECSYS_NUM_CHIEFS": "1", "RECSYS_NUM_PS": "1",
           "RECSYS_PORT": "5000"}
    cluster = {"chief": ["train-0.train-svc:5000"], "worker": ["train-1.train-svc:5000", "train-2.train-svc:5000"],
               "ps": ["train-3.train-svc:5000"]}
    expected_tasks = [("chief", 0), ("worker", 0), ("worker", 1), ("ps", 0)]
    for index, (task_type, task_index) in enumerate(expected_tasks):
        config = derive_tf_config({**env, "JOB_COMPLETION_INDEX": str(index)})
        assert config == {"cluster": cluster, "task": {"type": task_type, "index": task_index}}


def test_explicit_hosts_and_task_type_override():
    env = {"RECSYS_WORKER_HOSTS": "w0:1, w1:1", "RECSYS_PS_HOSTS": "p0:2", "RECSYS_CHIEF_HOSTS": "c:3",
           "RECSYS_TASK_TYPE": "ps", "RECSYS_TASK_INDEX": "0", "JOB_COMPLETION_INDEX": "1"}
    assert derive_tf_config(env) == {"cluster": {"chief": ["c:3"], "worker": ["w0:1", "w1:1"], "ps": ["p0:2"]},
                                     "task": {"type": "ps", "index": 0}}


def test_task_index_overrides_job_completion_index():
    config = derive_tf_config({**INDEXED_JOB, "JOB_COMPLETION_INDEX": "0", "RECSYS_TASK_INDEX": "2"})
    assert config["task"] == {"type": "worker", "index": 2}


@pytest.mark.parametrize("env, fragment", [
    ({**INDEXED_JOB, "JOB_COMPLETION_INDEX": "3"}, "JOB_COMPLETION_INDEX=3 is out of range"),
    ({**INDEXED_JOB, "JOB_COMPLETION_INDEX": "-1"}, "JOB_COMPLETION_INDEX must be >= 0"),
    ({**INDEXED_JOB, "JOB_COMPLETION_INDEX": "one"}, "JOB_COMPLETION_INDEX must be an integer"),
    (INDEXED_JOB, "index is unknown"),
    ({"RECSYS_SERVICE": "svc", "JOB_COMPLETION_INDEX": "0"}, "missing ['RECSYS_JOB_NAME', 'RECSYS_NUM_WORKERS']"),
    ({**INDEXED_JOB, "RECSYS_NUM_WORKERS": "0", "JOB_COMPLETION_INDEX": "0"}, "RECSYS_NUM_WORKERS must be >= 1"),
    ({**INDEXED_JOB, "RECSYS_NUM_CHIEFS": "2", "JOB_COMPLETION_INDEX": "0"}, "RECSYS_NUM_CHIEFS must be 0 or 1"),
    ({**INDEXED_JOB, "RECSYS_PORT": "70000", "JOB_COMPLETION_INDEX": "0"}, "RECSYS_PORT must be a TCP port"),
    ({"RECSYS_WORKER_HOSTS": "w0", "RECSYS_TASK_INDEX": "0"}, "bad entry 'w0'"),
    ({"RECSYS_WORKER_HOSTS": "w0:1", "RECSYS_TASK_INDEX": "0", "RECSYS_TASK_TYPE": "evaluator"},
     "RECSYS_TASK_TYPE must be one of"),
    ({"RECSYS_WORKER_HOSTS": "w0:1", "RECSYS_TASK_INDEX": "1", "RECSYS_TASK_TYPE": "worker"}, "out of range"),
    ({"RECSYS_WORKER_HOSTS": "w0:1", "RECSYS_TASK_INDEX": "0", "RECSYS_TASK_TYPE": "ps"}, "out of range"),
    ({"RECSYS_WORKER_HOSTS": "w0:1,w1:1", "RECSYS_CHIEF_HOSTS": "c0:1,c1:1", "RECSYS_TASK_INDEX": "0"},
     "RECSYS_CHIEF_HOSTS may list one host"),
    ({**INDEXED_JOB, "RECSYS_WORKER_HOSTS": "w0:1", "JOB_COMPLETION_INDEX": "0"}, "not both"),
])
def test_inconsistent_environment_raises(env, fragment):
    with pytest.raises(ValueError) as info:
        derive_tf_config(env)
    assert fragment in str(info.value)


def test_ensure_sets_tf_config_when_absent():
    env = {**INDEXED_JOB, "JOB_COMPLETION_INDEX": "1"}
    config = ensure_tf_config(env)
    assert json.loads(env["TF_CONFIG"]) == config
    assert config["task"] == {"type": "worker", "index": 1}


def test_ensure_leaves_existing_tf_config_alone():
    existing = json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}})
    env = {**INDEXED_JOB, "JOB_COMPLETION_INDEX": "2", "TF_CONFIG": existing}
    assert ensure_tf_config(env) == json.loads(existing)
    assert env["TF_CONFIG"] == existing


def test_ensure_without_cluster_sets_nothing():
    env = {"PATH": "/bin"}
    assert ensure_tf_config(env) is None
    assert "TF_CONFIG" not in env


@pytest.mark.parametrize("value", ["{not json", "[1, 2]"])
def test_ensure_rejects_malformed_existing_tf_config(value):
    with pytest.raises(ValueError, match="TF_CONFIG"):
        ensure_tf_config({"TF_CONFIG": value})


def test_ensure_defaults_to_os_environ(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for key, value in {**INDEXED_JOB, "JOB_COMPLETION_INDEX": "0"}.items():
        monkeypatch.setenv(key, value)
    import os

    assert ensure_tf_config()["task"] == {"type": "worker", "index": 0}
    assert json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"][0] == "train-0.train-svc:2222"


def test_derived_config_is_accepted_by_tensorflow(monkeypatch):
    import tensorflow as tf

    env = {**INDEXED_JOB, "RECSYS_NUM_CHIEFS": "1", "RECSYS_NUM_PS": "1", "JOB_COMPLETION_INDEX": "2"}
    monkeypatch.setenv("TF_CONFIG", json.dumps(derive_tf_config(env)))
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    assert resolver.task_type == "worker" and resolver.task_id == 1
    assert resolver.cluster_spec().as_dict() == {"chief": ["train-0.train-svc:2222"],
                                                 "worker": ["train-1.train-svc:2222", "train-2.train-svc:2222",
                                                            "train-3.train-svc:2222"],
                                                 "ps": ["train-4.train-svc:2222"]}
