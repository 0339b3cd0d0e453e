"""Static checks of docker/k8s/*.yaml: they parse, carry the required fields, and their wiring is consistent."""
import pathlib
import re

import pytest
import yaml

from recsys.training.tf_config import derive_tf_config

REPO = pathlib.Path(__file__).resolve().parents[2]
K8S = REPO / "docker" / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d is not None]


def _one(name: str, kind: str) -> dict:
    (doc,) = [d for d in _docs(name) if d["kind"] == kind]
    return doc


def _pod_specs(doc: dict) -> dict[str, dict]:
    if doc["kind"] in ("Job", "Deployment"):
        return {doc["kind"]: doc["spec"]["template"]["spec"]}
    if doc["kind"] == "TFJob":
        return {role: spec["template"]["spec"] for role, spec in doc["spec"]["tfReplicaSpecs"].items()}
    return {}


def _env(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_there_are_manifests():
    assert {m.name for m in MANIFESTS} >= {"train-multiworker-job.yaml", "train-parameter-server-tfjob.yaml",
                                           "train-tpu-job.yaml", "serving.yaml"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_document_parses_and_has_the_basic_fields(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs
    for doc in docs:
        assert isinstance(doc, dict)
        assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), doc
        for role, pod in _pod_specs(doc).items():
            assert pod.get("containers"), f"{path.name} {role}: no containers"
            for container in pod["containers"]:
                assert container.get("name") and container.get("image"), container
                assert re.fullmatch(r"[\w./-]+/recsys-[\w-]+:[\w.-]+", container["image"]), container["image"]


@pytest.mark.parametrize("path", [p for p in MANIFESTS if p.name.startswith("train-")], ids=lambda p: p.name)
def test_training_containers_run_the_trainer_with_an_existing_config(path):
    for doc in yaml.safe_load_all(path.read_text()):
        for pod in _pod_specs(doc).values():
            for container in pod["containers"]:
                assert "recsys-trainer" in container["image"]
                args = container["args"]
                config = next(a.split("=", 1)[1] for a in args if a.startswith("--config="))
                assert (REPO / config).is_file(), config
                assert any(a.startswith("--workdir=") for a in args)
                assert any(a.startswith("--config.strategy=") for a in args)


def test_indexed_job_tf_config_wiring():
    """The indexed Job's env, service and ports yield TF_CONFIG whose hosts are the pods' DNS names."""
    service = _one("train-multiworker-job.yaml", "Service")
    job = _one("train-multiworker-job.yaml", "Job")
    spec = job["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    env = _env(container)
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == int(env["RECSYS_NUM_WORKERS"])
    assert service["spec"]["clusterIP"] == "None"
    assert pod["subdomain"] == service["metadata"]["name"] == env["RECSYS_SERVICE"]
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": job["metadata"]["name"]}
    assert env["RECSYS_JOB_NAME"] == {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}}
    port = int(env["RECSYS_PORT"])
    assert port in [p["containerPort"] for p in container["ports"]]
    assert port in [p["port"] for p in service["spec"]["ports"]]
    assert "--config.strategy=multi_worker_mirrored" in container["args"]
    # What each pod's trainer will compute (Kubernetes supplies the job name label and the index).
    resolved = {k: v for k, v in env.items() if isinstance(v, str)}
    resolved["RECSYS_JOB_NAME"] = job["metadata"]["name"]
    name, subdomain = job["metadata"]["name"], pod["subdomain"]
    for index in range(spec["completions"]):
        config = derive_tf_config({**resolved, "JOB_COMPLETION_INDEX": str(index)})
        assert config["task"] == {"type": "worker", "index": index}
        assert config["cluster"]["worker"] == [f"{name}-{i}.{subdomain}:{port}" for i in range(spec["completions"])]


def test_multiworker_tfjob():
    job = _one("train-multiworker-tfjob.yaml", "TFJob")
    assert job["apiVersion"] == "kubeflow.org/v1"
    worker = job["spec"]["tfReplicaSpecs"]["Worker"]
    assert worker["replicas"] >= 2
    (container,) = worker["template"]["spec"]["containers"]
    assert container["name"] == "tensorflow"  # the operator finds the container by this name
    assert "--config.strategy=multi_worker_mirrored" in container["args"]
    assert "TF_CONFIG" not in _env(container)  # written by the operator


def test_parameter_server_tfjob_has_chief_workers_and_ps():
    job = _one("train-parameter-server-tfjob.yaml", "TFJob")
    replicas = job["spec"]["tfReplicaSpecs"]
    assert set(replicas) == {"Chief", "Worker", "PS"}
    assert replicas["Chief"]["replicas"] == 1
    assert replicas["Worker"]["replicas"] >= 1 and replicas["PS"]["replicas"] >= 1
    for role, spec in replicas.items():
        (container,) = spec["template"]["spec"]["containers"]
        assert container["name"] == "tensorflow", role
        assert "--config.strategy=parameter_server" in container["args"], role
        assert {"name": "tfjob-port", "containerPort": 2222} in container["ports"], role


def test_tpu_job_targets_a_gke_tpu_node_pool():
    job = _one("train-tpu-job.yaml", "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["cloud.google.com/gke-tpu-accelerator"].startswith("tpu-")
    assert re.fullmatch(r"\d+x\d+(x\d+)?", pod["nodeSelector"]["cloud.google.com/gke-tpu-topology"])
    (container,) = pod["containers"]
    resources = container["resources"]
    assert resources["limits"]["google.com/tpu"] == resources["requests"]["google.com/tpu"] > 0
    assert "--config.strategy=tpu" in container["args"]
    assert "recsys-trainer-tpu" in container["image"]


def test_serving_deployment_and_service():
    deployment = _one("serving.yaml", "Deployment")
    service = _one("serving.yaml", "Service")
    template = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    (container,) = template["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}
    model_name = _env(container)["MODEL_NAME"]
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == f"/v1/models/{model_name}" and ports[probe["port"]] == 8501
    assert container["livenessProbe"]
    assert {(p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {(8500, "grpc"), (8501, "http")}
    assert "recsys-serving" in container["image"]
