"""The synthetic click-log generator: determinism, format, malformed rows, calibration, realism, signal."""

import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

from recsys.data import criteo, stats, synthetic
from tests.conftest import CRITEO_SAMPLE, REPO_ROOT


def _generate(path, **kwargs):
    return synthetic.write_clicklogs(str(path), synthetic.GeneratorConfig(**kwargs))


def test_same_seed_gives_identical_bytes_across_chunks(tmp_path):
    rows = synthetic.CHUNK_ROWS + 1_500  # crosses a chunk boundary
    _generate(tmp_path / "a.tsv.gz", rows=rows, seed=11, days=2, malformed_fraction=0.01)
    _generate(tmp_path / "b.tsv.gz", rows=rows, seed=11, days=2, malformed_fraction=0.01)
    a, b = (tmp_path / "a.tsv.gz").read_bytes(), (tmp_path / "b.tsv.gz").read_bytes()
    assert a == b  # gzip header included: no name, no time stamp
    text = gzip.decompress(a)
    assert text.count(b"\n") == rows
    _generate(tmp_path / "a.tsv", rows=rows, seed=11, days=2, malformed_fraction=0.01)
    assert (tmp_path / "a.tsv").read_bytes() == text
    _generate(tmp_path / "c.tsv", rows=1_000, seed=12, days=2, malformed_fraction=0.01)
    other = (tmp_path / "c.tsv").read_bytes().split(b"\n")
    assert sum(x == y for x, y in zip(other, text.split(b"\n"), strict=False)) < 10  # another seed: other rows


def test_valid_rows_parse_and_malformed_rows_raise_with_their_kind(tmp_path):
    config = synthetic.GeneratorConfig(rows=12_000, seed=5, malformed_fraction=0.05)
    summary = synthetic.write_clicklogs(str(tmp_path / "log.tsv"), config)
    lines = (tmp_path / "log.tsv").read_text().split("\n")
    assert lines[-1] == "" and len(lines) - 1 == 12_000
    (chunk,) = synthetic.ClickLogGenerator(config).chunks()
    reasons = {}
    for line, kind, label in zip(lines[:-1], chunk.malformed, chunk.labels, strict=True):
        if kind < 0:
            row = criteo.parse_line(line)
            assert row.label == label
            assert all(len(v) == 8 for v in row.cats if v is not None)
        else:
            with pytest.raises(criteo.BadRowError) as error:
                criteo.parse_line(line)
            assert error.value.reason == synthetic.MALFORMED_KINDS[kind]
            reasons[error.value.reason] = reasons.get(error.value.reason, 0) + 1
    assert set(reasons) == set(criteo.BAD_REASONS)  # every bad kind occurs
    assert reasons == {k: v for k, v in summary.malformed.items() if v}
    assert summary.valid_rows == 12_000 - sum(reasons.values())
    assert 0.04 < sum(reasons.values()) / 12_000 < 0.06


def test_rows_match_the_generator_arrays(tmp_path):
    config = synthetic.GeneratorConfig(rows=500, seed=2)
    synthetic.write_clicklogs(str(tmp_path / "log.tsv"), config)
    (chunk,) = synthetic.ClickLogGenerator(config).chunks()
    chunk.ints[3, 1], chunk.int_present[3, 1] = -123, True  # formatting of negatives and of wide numbers
    chunk.ints[4, 11] = synthetic.MAX_INT_VALUE
    lines = synthetic.format_chunk(chunk).decode().split("\n")[:-1]
    for i in (0, 3, 4, 499):
        row = criteo.parse_line(lines[i])
        assert row.ints == tuple(
            int(v) if p else None for v, p in zip(chunk.ints[i], chunk.int_present[i], strict=True)
        )
        assert row.cats == tuple(
            f"{h:08x}" if c else None for h, c in zip(chunk.cat_hex[i], chunk.cat_ids[i], strict=True)
        )
    assert criteo.parse_line(lines[3]).ints[1] == -123
    assert criteo.parse_line(lines[4]).ints[11] == 999_999_999


@pytest.mark.parametrize("ctr", [0.01, 0.1])
def test_ctr_is_calibrated(ctr):
    config = synthetic.GeneratorConfig(rows=3 * synthetic.CHUNK_ROWS, seed=1, days=3, ctr=ctr)
    labels = np.concatenate([chunk.labels for chunk in synthetic.ClickLogGenerator(config).chunks()])
    standard_error = np.sqrt(ctr * (1 - ctr) / len(labels))
    assert abs(labels.mean() - ctr) < 5 * standard_error + 0.05 * ctr


def test_statistics_resemble_the_real_sample(tmp_path):
    _generate(tmp_path / "log.tsv", rows=10_000, seed=0, ctr=0.0265)
    real = stats.log_stats(stats.read_lines(str(CRITEO_SAMPLE)))
    fake = stats.log_stats(stats.read_lines(str(tmp_path / "log.tsv")))
    for name in criteo.INT_COLUMNS:
        assert abs(real.ints[name].missing - fake.ints[name].missing) < 0.03, name
        assert abs(real.ints[name].zero - fake.ints[name].zero) < 0.03, name
    assert fake.ints["I8"].negative > 0.03  # occasional negatives, like the sample's I8
    for name in criteo.CAT_COLUMNS:
        r, f = real.cats[name], fake.cats[name]
        assert abs(r.missing - f.missing) < 0.03, name
        assert 0.7 < f.distinct / r.distinct < 1.45, name
        assert abs(r.top10 - f.top10) < 0.12, name
    cardinalities = [spec.cardinality for spec in synthetic.CAT_SPECS.values()]
    assert min(cardinalities) < 10 and max(cardinalities) >= 1_000_000


def test_drift_changes_labels_and_brings_new_tail_values():
    generator = synthetic.ClickLogGenerator(synthetic.GeneratorConfig(rows=10, seed=0, days=30))
    n = 20_000

    def draw(day):
        rng = np.random.default_rng(99)  # the same underlying draws on every day
        return generator.draw_features(rng, np.full(n, float(day)))

    _, _, ids0, logits0 = draw(0)
    _, _, ids1, logits1 = draw(1)
    _, _, ids20, logits20 = draw(20)
    head = ids0[:, 0] <= synthetic.HEAD_VALUES
    np.testing.assert_array_equal(ids0[head, 0], ids1[head, 0])  # popular values keep their id
    assert np.mean(ids0[~head, 0] != ids1[~head, 0]) > 0.99  # the long tail is new every day
    near, far = np.corrcoef(logits0, logits1)[0, 1], np.corrcoef(logits0, logits20)[0, 1]
    assert 0.75 < near and far < near - 0.1  # slow drift (plus the tail's new values)


def test_five_categorical_features_carry_signal_an_mlp_learns():
    import tensorflow as tf

    config = synthetic.GeneratorConfig(rows=2 * synthetic.CHUNK_ROWS, seed=0, ctr=0.1)
    chunks = list(synthetic.ClickLogGenerator(config).chunks())
    labels = np.concatenate([c.labels for c in chunks]).astype("float32")
    buckets = 2_000  # ids are popularity ranks: keep the top values, the rest share one out-of-vocabulary id
    ids = np.minimum(np.concatenate([c.cat_ids[:, :5] for c in chunks]), buckets - 1)
    train, test = slice(0, 100_000), slice(100_000, None)
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input(shape=(5,), dtype="int64")
    embedded = tf.keras.layers.Flatten()(tf.keras.layers.Embedding(5 * buckets, 8)(inputs + np.arange(5) * buckets))
    hidden = tf.keras.layers.Dense(32, activation="relu")(tf.keras.layers.Dense(64, activation="relu")(embedded))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1, activation="sigmoid")(hidden))
    model.compile(tf.keras.optimizers.Adam(0.005), "binary_crossentropy", metrics=[tf.keras.metrics.AUC(name="auc")])
    model.fit(ids[train], labels[train], batch_size=512, epochs=1, verbose=0)
    auc = model.evaluate(ids[test], labels[test], batch_size=4096, verbose=0, return_dict=True)["auc"]
    assert auc > 0.65, auc


def test_bad_arguments_raise_clear_errors(tmp_path):
    cases = [
        (dict(rows=0), "`rows` must be an integer >= 1. Received: rows=0"),
        (dict(rows=10, ctr=1.0), "`ctr` must be a number in \\(0, 1\\). Received: ctr=1.0"),
        (dict(rows=10, days=0), "`days`"),
        (dict(rows=10, seed=-1), "`seed`"),
        (dict(rows=10, malformed_fraction=1.0), "`malformed_fraction`"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            synthetic.GeneratorConfig(**kwargs)
    with pytest.raises(ValueError, match="must end in .tsv or .tsv.gz"):
        _generate(tmp_path / "log.csv", rows=10)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _generate(tmp_path / "missing" / "log.tsv", rows=10)


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "pipelines.generate_clicklogs", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_entry_point_writes_the_log_and_rejects_bad_flags(tmp_path):
    out = tmp_path / "clicks.tsv.gz"
    done = _run(f"--output={out}", "--rows=3000", "--seed=4", "--days=2", "--ctr=0.2", "--malformed_fraction=0.01",
                "--ground_truth=deep", "--truth_features=C1,C2")
    assert done.returncode == 0, done.stderr
    assert "3000 rows" in done.stdout
    lines = gzip.decompress(out.read_bytes()).decode().splitlines()
    assert len(lines) == 3000
    assert not list(tmp_path.glob("*.tmp-*"))  # the temporary file was renamed
    summary = json.loads((tmp_path / "clicks.tsv.gz.summary.json").read_text())
    assert summary["config"] == {"rows": 3000, "seed": 4, "days": 2, "ctr": 0.2, "malformed_fraction": 0.01,
                                 "ground_truth": "deep", "truth_features": ["C1", "C2"]}
    assert f"oracle AUC {summary['oracle_auc']:.4f}" in done.stdout and summary["oracle_auc"] > 0.5

    out.write_bytes(b"keep me")
    failed = _run(f"--output={out}", "--rows=3000", "--seed=4", "--ctr=1.5")
    assert failed.returncode != 0
    assert failed.stderr.strip().splitlines()[-1] == (
        "generate_clicklogs: error: `ctr` must be a number in (0, 1). Received: ctr=1.5"
    )
    assert out.read_bytes() == b"keep me"  # nothing already written is lost
    failed = _run(f"--output={tmp_path / 'x.txt'}", "--rows=5", "--seed=0")
    assert failed.returncode != 0 and "must end in .tsv or .tsv.gz" in failed.stderr
    failed = _run("--rows=5", "--seed=0")
    assert failed.returncode != 0 and "--output" in failed.stderr
