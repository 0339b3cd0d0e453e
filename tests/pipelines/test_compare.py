"""End-to-end tests of `python -m pipelines.compare` in real subprocesses on real SavedModels and TFRecords."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from recsys import metrics
from recsys.data import fingerprint
from recsys.testing import export_toy_saved_model, toy_feature_set, write_toy_tfrecords
from tests.conftest import REPO_ROOT


def run_compare(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "pipelines.compare", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Toy TFRecords (two GZIP files carrying the feature fingerprint: a plain TFRecord cannot carry one and is
    refused, tests/faults), four toy SavedModels and their in-process predictions."""
    import tensorflow as tf

    root = tmp_path_factory.mktemp("compare")
    features = toy_feature_set()
    data_dir = root / "data"
    data_dir.mkdir()
    features.save(str(data_dir / "features.json"))
    write_toy_tfrecords(str(data_dir / "eval-0.tfrecord.gz"), features, 500, seed=1)
    write_toy_tfrecords(str(data_dir / "eval-1.tfrecord.gz"), features, 250, seed=2)
    models = []
    for seed in range(4):
        workdir = root / f"run{seed}"
        # Small weights keep the toy models close, like replicas of one training.
        export_toy_saved_model(str(workdir / "saved_model"), features, seed=seed, scale=0.05)
        models.append(str(workdir))
    # The reference: score the same records, in sorted file order, in this process.
    records = []
    for name in ("eval-0.tfrecord.gz", "eval-1.tfrecord.gz"):
        path = str(data_dir / name)
        records += list(tf.data.TFRecordDataset(path, compression_type="GZIP" if name.endswith(".gz") else ""))
    serialized = tf.stack(records)
    parsed = tf.io.parse_example(serialized, features.parse_spec())
    labels = parsed["label"].numpy()
    queries = parsed["C1"].numpy()
    predictions = []
    for workdir in models:
        signature = tf.saved_model.load(os.path.join(workdir, "saved_model")).signatures["serving_default"]
        predictions.append(signature(examples=serialized)["probabilities"].numpy())
    return {
        "root": root, "data": str(data_dir / "eval-*"), "models": models, "labels": labels, "queries": queries,
        "predictions": np.stack(predictions),
    }


def test_end_to_end_on_saved_models(workspace):
    out = workspace["root"] / "out"
    result = run_compare(
        f"--models={','.join(workspace['models'])}", f"--data={workspace['data']}", f"--output={out}",
        "--ensemble_size=2", "--query_key=C1", "--max_relative_pd=1.99", "--bootstrap=50",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert set(report) >= {"models", "pairs", "ensembles", "summary"}
    p, y, q = workspace["predictions"], workspace["labels"], workspace["queries"]
    assert [m["name"] for m in report["models"]] == ["run0", "run1", "run2", "run3"]
    for m, model in enumerate(report["models"]):
        assert model["auc"] == pytest.approx(metrics.auc(y, p[m]), abs=1e-12)
        assert model["logloss"] == pytest.approx(metrics.logloss(y, p[m]), rel=1e-9)
        assert model["calibration"] == pytest.approx(metrics.calibration(y, p[m]), rel=1e-9)
        assert model["pqauc"] == pytest.approx(metrics.pqauc(y, p[m], q).value, abs=1e-12)
    assert len(report["pairs"]) == 6
    first = report["pairs"][0]
    assert (first["a"], first["b"]) == ("run0", "run1")
    assert first["relative_pd"] == pytest.approx(metrics.relative_pd(p[0], p[1]), rel=1e-9)
    assert first["absolute_pd"] == pytest.approx(metrics.absolute_pd(p[0], p[1]), rel=1e-9)
    assert first["relative_pd_ci"][0] < first["relative_pd"] < first["relative_pd_ci"][1]
    assert first["absolute_pd_ci"][0] < first["absolute_pd"] < first["absolute_pd_ci"][1]
    assert 0.0 < report["summary"]["mean_relative_pd"] < 1.0
    ensembles = report["ensembles"]
    assert [e["members"] for e in ensembles["models"]] == [["run0", "run1"], ["run2", "run3"]]
    p64 = p.astype(np.float64)  # the report averages in float64
    expected = metrics.relative_pd((p64[0] + p64[1]) / 2, (p64[2] + p64[3]) / 2)
    assert ensembles["pairs"][0]["relative_pd"] == pytest.approx(expected, rel=1e-9)
    assert report["summary"]["churn_gate"] == {"max_relative_pd": 1.99, "passed": True}
    text = (out / "report.md").read_text()
    assert "## Pairs" in text and "## Ensembles of 2" in text and "run0" in text
    import matplotlib.image

    for png in ("pd_vs_auc.png", "pd_hist.png"):
        image = matplotlib.image.imread(str(out / png))
        assert image.shape[0] > 300 and image.shape[1] > 500
        assert image[..., :3].std() > 0.05  # something was drawn


def test_churn_gate_exit_status_with_prediction_files(workspace):
    root, p = workspace["root"], workspace["predictions"]
    np.save(root / "old.npy", p[0])
    np.savetxt(root / "new.txt", p[1])  # one-column text from another system
    np.savetxt(root / "labels.txt", workspace["labels"], fmt="%d")
    pd_value = metrics.relative_pd(p[0], p[1].astype(np.float64))
    common = [f"--predictions={root / 'old.npy'},{root / 'new.txt'}", f"--labels={root / 'labels.txt'}",
              "--bootstrap=0"]
    blocked = run_compare(*common, f"--output={root / 'gate_fail'}", f"--max_relative_pd={pd_value * 0.9}")
    assert blocked.returncode == 3, blocked.stderr
    assert last_line(blocked.stderr).startswith("churn gate failed: mean relative PD")
    report = json.loads((root / "gate_fail" / "report.json").read_text())  # written before the gate exits
    assert report["summary"]["churn_gate"]["passed"] is False
    assert report["summary"]["mean_relative_pd"] == pytest.approx(pd_value, rel=1e-6)
    assert [m["name"] for m in report["models"]] == ["old", "new"]
    passed = run_compare(*common, f"--output={root / 'gate_pass'}", f"--max_relative_pd={pd_value * 1.1}")
    assert passed.returncode == 0, passed.stderr


# Each bad input below gets `compare`'s own main() on its parsed flags, all in ONE fresh interpreter (issue 17:
# starting Python with TensorFlow costs seconds, and 11 of them did): exit status and stderr per run. The
# command-line layer itself (app.run, exit status, quiet console) runs in real `python -m pipelines.compare`
# subprocesses above and in tests/pipelines/test_console.py.
_MAINS_IN_ONE_PROCESS = """
import contextlib, io, json, sys
from absl import flags
import pipelines.compare as compare
runs = []
for args in json.loads(sys.argv[1]):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["compare", *args])
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = compare.main(["compare"])
    runs.append({"returncode": status, "stderr": stderr.getvalue()})
with open(sys.argv[2], "w") as f:
    json.dump(runs, f)
"""

BAD_INPUTS = [
    ([], "give the models to compare with --models"),
    (["--models=/nonexistent/run,{root}/run0", "--data={data}"],
     "--models: model directory not found: /nonexistent/run"),
    (["--models={root}/run0,{root}/run1", "--data={root}/nothing-*"],
     "compare: error: --data: no files match {root}/nothing-*"),
    (["--predictions={root}/old.npy,{root}/short.npy", "--labels={root}/labels.txt"],
     "has 10 predictions but the data has 750 examples"),
    (["--predictions={root}/old.npy,{root}/old.npy", "--labels={root}/labels.txt", "--max_relative_pd=5"],
     r"--max_relative_pd is a fraction in [0, 2] (0.05 means 5%); got 5.0"),
    (["--predictions={root}/old.npy,{root}/bad.npy", "--labels={root}/labels.txt"],
     "`predictions` must be probabilities in [0, 1]. Received 1.5 for model bad, example 0"),
    (["--predictions={root}/old.npy,{root}/old.npy,{root}/old.npy", "--labels={root}/labels.txt",
      "--ensemble_size=2"], "--ensemble_size=2 needs at least 4 models"),
    (["--models={root}/run0", "--data={data}"], "need at least 2 models to compare"),
]

WITHOUT_CONTRACT = [
    ("predict", "probabilities", "has no 'serving_default' signature (found: ['predict'])"),
    ("serving_default", "scores", "serving_default must return `probabilities`; it returns ['scores']"),
]


def _without_contract(root, signature_name: str, output_name: str) -> str:
    """A SavedModel whose signature breaks the serving contract."""
    import tensorflow as tf

    class Other(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def predict(self, examples):
            return {output_name: tf.zeros_like(examples, dtype=tf.float32)}

    model = Other()
    path = root / f"other_{signature_name}_{output_name}"
    tf.saved_model.save(model, str(path), signatures={signature_name: model.predict})
    return str(path)


@pytest.fixture(scope="module")
def bad_runs(workspace):
    """Every bad-input run of this module (the cases above, the two contracts, unparsable data), in one process."""
    root = workspace["root"]
    np.save(root / "old.npy", workspace["predictions"][0])
    np.save(root / "short.npy", np.full(10, 0.5))
    np.save(root / "bad.npy", np.full(750, 1.5))
    np.savetxt(root / "labels.txt", workspace["labels"], fmt="%d")
    cases = {}
    for args, _ in BAD_INPUTS:
        cases[("input", tuple(args))] = [a.format(root=root, data=workspace["data"]) for a in args] + [
            f"--output={root / 'bad_out'}"]
    for signature_name, output_name, _ in WITHOUT_CONTRACT:
        path = _without_contract(root, signature_name, output_name)
        cases[("contract", signature_name)] = [f"--models={workspace['models'][0]},{path}",
                                               f"--data={workspace['data']}", f"--output={root / 'sig_out'}"]
    bad = root / "bad_data"
    bad.mkdir(exist_ok=True)
    (bad / "features.json").write_text((root / "data" / "features.json").read_text())
    # The gzip header carries the right fingerprint; what follows is not deflate data.
    stamp = json.loads((root / "data" / "features.json").read_text())[fingerprint.KEY]
    (bad / "part-0.tfrecord.gz").write_bytes(fingerprint.gzip_header(stamp) + b"this is not a TFRecord file" * 10)
    cases["bad_data"] = [f"--models={','.join(workspace['models'][:2])}", f"--data={bad / 'part-*'}",
                         f"--output={root / 'bad_data_out'}"]
    out = root / "bad_runs.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", _MAINS_IN_ONE_PROCESS, json.dumps(list(cases.values())), str(out)],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(out.read_text())
    return {key: subprocess.CompletedProcess(args, run["returncode"], "", run["stderr"])
            for (key, args), run in zip(cases.items(), runs, strict=True)}


@pytest.mark.parametrize("args, message", BAD_INPUTS)
def test_bad_inputs_fail_with_one_line(workspace, bad_runs, args, message):
    message = message.format(root=workspace["root"])
    result = bad_runs[("input", tuple(args))]
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    line = last_line(result.stderr)
    assert line.startswith("compare: error: ") and message in line, result.stderr


@pytest.mark.parametrize("signature_name, output_name, message", WITHOUT_CONTRACT)
def test_saved_model_without_the_serving_contract_fails_cleanly(bad_runs, signature_name, output_name, message):
    result = bad_runs[("contract", signature_name)]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in last_line(result.stderr)


def test_data_that_does_not_parse_fails_cleanly(bad_runs):
    result = bad_runs["bad_data"]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert last_line(result.stderr).startswith("compare: error: --data: cannot read or parse")
