"""The generator's ground-truth modes: the additive default unchanged, the deep network (determinism, calibration,
drift, interactions), the oracle AUC and log loss, the summary file, and the deep-regime study config."""

import hashlib
import json

import numpy as np
import pytest

from recsys.data import criteo, synthetic
from recsys.metrics import accuracy

FIVE = ("C1", "C2", "C3", "C4", "C5")


def _deep(**kwargs) -> synthetic.GeneratorConfig:
    return synthetic.GeneratorConfig(ground_truth="deep", **kwargs)


def test_additive_default_is_byte_identical_to_before_the_deep_mode():
    # Hashes recorded on the commit before the ground-truth modes existed (same platform and NumPy version).
    generator = synthetic.ClickLogGenerator(
        synthetic.GeneratorConfig(rows=70_000, seed=7, days=3, ctr=0.1, malformed_fraction=0.01)
    )
    assert generator.config.ground_truth == "additive"
    assert generator.bias == -2.7582809860427444
    assert hashlib.sha256(synthetic.format_chunk(generator.chunk(0))).hexdigest() == (
        "ca8ef8c96346e8913b4ca20be2d8b7ff531f1eae84b88f66fbe62c9009af0343"
    )


def test_deep_mode_is_deterministic_and_changes_only_the_labels(tmp_path):
    config = _deep(rows=3_000, seed=11, days=2, ctr=0.1, malformed_fraction=0.01)
    first = synthetic.write_clicklogs(str(tmp_path / "a.tsv.gz"), config)
    second = synthetic.write_clicklogs(str(tmp_path / "b.tsv.gz"), config)
    assert (tmp_path / "a.tsv.gz").read_bytes() == (tmp_path / "b.tsv.gz").read_bytes()
    assert first.bias == second.bias and first.oracle_auc == second.oracle_auc
    (deep,) = synthetic.ClickLogGenerator(config).chunks()
    (additive,) = synthetic.ClickLogGenerator(synthetic.GeneratorConfig(**{
        **config.__dict__, "ground_truth": "additive"})).chunks()
    for name in ("ints", "int_present", "cat_ids", "cat_hex", "malformed"):
        np.testing.assert_array_equal(getattr(deep, name), getattr(additive, name), err_msg=name)
    assert np.mean(deep.labels != additive.labels) > 0.05
    assert np.corrcoef(deep.probabilities, additive.probabilities)[0, 1] < 0.3  # another truth, not a rescaling


@pytest.mark.parametrize(("ctr", "truth_features"), [(0.02, ()), (0.1, FIVE)])
def test_deep_mode_ctr_is_calibrated(ctr, truth_features):
    config = _deep(rows=2 * synthetic.CHUNK_ROWS, seed=1, days=3, ctr=ctr, truth_features=truth_features)
    generator = synthetic.ClickLogGenerator(config)
    labels = np.concatenate([chunk.labels for chunk in generator.chunks()])
    standard_error = np.sqrt(ctr * (1 - ctr) / len(labels))
    assert abs(labels.mean() - ctr) < 5 * standard_error + 0.05 * ctr
    rng = np.random.default_rng(3)
    logits = generator.draw_features(rng, rng.uniform(0, 3, 20_000))[3]
    assert logits.std() == pytest.approx(synthetic.DEEP_LOGIT_STD, rel=0.05)  # the output scale


def test_deep_truth_reads_only_its_truth_features():
    generator = synthetic.ClickLogGenerator(_deep(rows=10, seed=0, truth_features=FIVE))
    ints, present, ids, logits = generator.draw_features(np.random.default_rng(4), np.zeros(2_000))
    ids[:, 5:] = np.roll(ids[:, 5:], 1, axis=0)  # every other categorical from another row
    ints = np.roll(ints, 1, axis=0)
    np.testing.assert_array_equal(generator.logits(ints, present, ids, np.zeros(2_000)), logits)
    ids[:, 2] = np.roll(ids[:, 2], 1)  # C3 is read
    assert np.mean(generator.logits(ints, present, ids, np.zeros(2_000)) != logits) > 0.5


def test_deep_truth_drifts_and_new_values_appear_on_later_days():
    generator = synthetic.ClickLogGenerator(_deep(rows=10, seed=0, days=30, truth_features=FIVE))
    n = 20_000

    def draw(day):
        rng = np.random.default_rng(99)  # the same underlying draws on every day
        return generator.draw_features(rng, np.full(n, float(day)))

    _, _, ids0, logits0 = draw(0)
    ints, present, ids1, logits1 = draw(1)
    _, _, _, logits20 = draw(20)
    head = ids0[:, 0] <= synthetic.HEAD_VALUES
    np.testing.assert_array_equal(ids0[head, 0], ids1[head, 0])  # popular values keep their id
    assert len(np.setdiff1d(ids1[~head, 0], ids0[:, 0])) > 0.9 * len(np.unique(ids1[~head, 0]))  # new values
    near, far = np.corrcoef(logits0, logits1)[0, 1], np.corrcoef(logits0, logits20)[0, 1]
    assert 0.75 < near and far < near - 0.1

    # One value's own contribution (its logit minus that of the reference value 1, on the same rows) drifts.
    value = ids0[head, 0][np.argmax(ids0[head, 0] > 1)]

    def contribution(day):
        t = np.full(n, float(day))
        with_value, reference = ids1.copy(), ids1.copy()
        with_value[:, 0], reference[:, 0] = value, 1
        return generator.logits(ints, present, with_value, t) - generator.logits(ints, present, reference, t)

    day0, day0_again, day20 = contribution(0), contribution(0), contribution(20)
    np.testing.assert_array_equal(day0, day0_again)
    assert np.sqrt(np.mean((day20 - day0) ** 2)) > 0.3 * np.sqrt(np.mean(day0**2))
    latent0, latent20 = (generator._deep.latents(0, np.array([value]), np.array([d]))[0] for d in (0.0, 20.0))
    cos = latent0 @ latent20 / np.linalg.norm(latent0) / np.linalg.norm(latent20)
    assert 0.0 < cos < 0.95  # a rotation by 1 rad between two random vectors


def _second_differences(generator, c, d, n=5_000):
    """f(a, b) - f(a', b) - f(a, b') + f(a', b') over rows, swapping features c and d with other rows' values,
    and the first differences f(a, b) - f(a', b)."""
    t = np.zeros(n)
    ints, present, ids, _ = generator.draw_features(np.random.default_rng(5), t)
    other = np.random.default_rng(6).permutation(n)

    def f(c_from, d_from):
        x = ids.copy()
        x[:, c], x[:, d] = ids[c_from, c], ids[d_from, d]
        return generator.logits(ints, present, x, t)

    same, moved = np.arange(n), other
    f11, f21, f12, f22 = f(same, same), f(moved, same), f(same, moved), f(moved, moved)
    return f11 - f21 - f12 + f22, f11 - f21


def test_deep_truth_is_not_additive_where_the_additive_truth_is():
    additive = synthetic.ClickLogGenerator(synthetic.GeneratorConfig(rows=10, seed=0))
    interacting = {frozenset((c, d)) for c, d, *_ in additive._interactions}
    c, d = next((c, d) for c in range(26) for d in range(c + 1, 26) if frozenset((c, d)) not in interacting)
    second, first = _second_differences(additive, c, d)
    assert np.abs(second).max() < 1e-9 and np.sqrt(np.mean(first**2)) > 0.1
    deep = synthetic.ClickLogGenerator(_deep(rows=10, seed=0, truth_features=FIVE))
    second, first = _second_differences(deep, 0, 1)
    assert np.sqrt(np.mean(second**2)) > 0.3 * np.sqrt(np.mean(first**2))


@pytest.mark.parametrize("ground_truth", synthetic.GROUND_TRUTHS)
def test_oracle_auc_and_logloss_match_the_returned_probabilities(tmp_path, ground_truth):
    config = synthetic.GeneratorConfig(rows=20_000, seed=3, ctr=0.1, malformed_fraction=0.02,
                                       ground_truth=ground_truth)
    summary = synthetic.write_clicklogs(str(tmp_path / "log.tsv"), config, summary_path=str(tmp_path / "s.json"))
    (chunk,) = synthetic.ClickLogGenerator(config).chunks()
    valid = chunk.malformed < 0
    assert summary.ground_truth == ground_truth and summary.oracle_rows == int(valid.sum()) < 20_000
    assert summary.oracle_auc == accuracy.auc(chunk.labels[valid], chunk.probabilities[valid])
    assert summary.oracle_logloss == accuracy.logloss(chunk.labels[valid], chunk.probabilities[valid])
    assert 0.75 < summary.oracle_auc < 0.99
    recorded = json.loads((tmp_path / "s.json").read_text())
    assert recorded["oracle_auc"] == summary.oracle_auc and recorded["oracle_logloss"] == summary.oracle_logloss
    assert recorded["config"]["ground_truth"] == ground_truth and recorded["clicks"] == summary.clicks


def test_oracle_samples_a_fixed_stride_of_a_long_log(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "ORACLE_MAX_ROWS", 1_000)
    config = _deep(rows=4_500, seed=2, ctr=0.2, truth_features=FIVE)
    summary = synthetic.write_clicklogs(str(tmp_path / "log.tsv"), config)
    (chunk,) = synthetic.ClickLogGenerator(config).chunks()
    rows = np.arange(0, 4_500, 5)  # stride ceil(4500 / 1000)
    assert summary.oracle_rows == len(rows)
    assert summary.oracle_auc == accuracy.auc(chunk.labels[rows], chunk.probabilities[rows])


def test_summary_check_refuses_a_log_of_another_config(tmp_path):
    config = _deep(rows=500, seed=1, truth_features=FIVE)
    path = str(tmp_path / "log.tsv.summary.json")
    synthetic.check_summary(path, config)  # no summary: passes
    synthetic.write_clicklogs(str(tmp_path / "log.tsv"), config, summary_path=path)
    synthetic.check_summary(path, config)
    with pytest.raises(ValueError, match="ground_truth.*'deep', 'additive'"):
        synthetic.check_summary(path, synthetic.GeneratorConfig(rows=500, seed=1))


def test_bad_ground_truth_arguments_raise_clear_errors():
    cases = [
        (dict(ground_truth="wide"), "`ground_truth` must be one of .*Received: ground_truth='wide'"),
        (dict(ground_truth="deep", truth_features=("C1", "C99")), "`truth_features` must be a tuple of distinct"),
        (dict(ground_truth="deep", truth_features=("C1", "C1")), "`truth_features`"),
        (dict(ground_truth="deep", truth_features=["C1"]), "`truth_features`"),
        (dict(truth_features=("C1",)), 'empty unless ground_truth="deep"'),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            synthetic.GeneratorConfig(rows=10, **kwargs)
    assert set(criteo.CAT_COLUMNS) >= set(FIVE)


def test_deep_study_config_generates_the_deep_log_and_expands_to_seven_cells():
    from configs import study_settled, study_settled_deep
    from recsys.study import grid

    config = study_settled_deep.get_config()
    assert config.data.generate_ground_truth == "deep"
    assert config.data.generate_truth_features == ",".join(config.train.model.categorical.split(","))
    cells = grid.expand_grid(config)
    assert [cell.spec for cell in cells] == [
        "relu", "smelu:beta=0.1", "smelu:beta=0.25", "smelu:beta=0.5", "smelu:beta=1", "swish:beta=1", "gelu:beta=1"]
    settled = study_settled.get_config()
    assert config.train.to_dict() == settled.train.to_dict()  # only the data and the grid differ
    assert config.grid.replicas == settled.grid.replicas


def test_study_generates_with_its_ground_truth_and_refuses_a_log_of_another(tmp_path, monkeypatch):
    from configs import base
    from recsys.study import data as study_data
    from recsys.study.config import base_config

    class Generated(Exception):
        pass

    def stop(*_):  # the Beam job is not what this test is about: stop right after the generation step
        raise Generated

    monkeypatch.setattr(study_data, "_preprocess", stop)
    config = base_config(base.get_config()).data
    config.generate_rows, config.generate_seed = 2_000, 3
    config.generate_ground_truth, config.generate_truth_features = "deep", "C1, C2"
    with pytest.raises(Generated):
        study_data.prepare_data(config, str(tmp_path))
    recorded = json.loads((tmp_path / "raw" / "clicks.tsv.gz.summary.json").read_text())
    assert recorded["config"]["ground_truth"] == "deep" and recorded["config"]["truth_features"] == ["C1", "C2"]
    assert recorded["rows"] == 2_000 and recorded["oracle_auc"] > 0.5
    config.generate_ground_truth, config.generate_truth_features = "additive", ""
    with pytest.raises(ValueError, match="generated with another config"):
        study_data.prepare_data(config, str(tmp_path))
