"""Where the PD comes from, on hand numbers: frequency buckets from vocabulary counts, self PD between snapshots."""
import numpy as np
import pytest

from recsys.data.features import Feature, FeatureSet
from recsys.study import sources

FEATURES = FeatureSet((Feature("label", "int64", "label"), Feature("C1", "int64", "categorical", 4),
                       Feature("C2", "int64", "categorical", 3)), {"vocab_mode": "frequency"})


def _write_vocab(data_dir, name, lines):
    (data_dir / "vocab").mkdir(parents=True, exist_ok=True)
    (data_dir / "vocab" / f"{name}.txt").write_text("".join(f"{value}\t{count}\n" for value, count in lines))


def test_pd_per_bucket_equals_a_hand_computation(tmp_path):
    # C1: ids 1, 2, 3 seen 5000, 50 and 3 times; C2: ids 1, 2 seen 2000 and 12 times. Id 0 and ids past the
    # vocabulary count 0.
    _write_vocab(tmp_path, "C1", [("a", 5000), ("b", 50), ("c", 3)])
    _write_vocab(tmp_path, "C2", [("x", 2000), ("y", 12)])
    counts, description = sources.vocabulary_counts(str(tmp_path), FEATURES, ["C1", "C2"])
    assert counts["C1"].tolist() == [0, 5000, 50, 3] and counts["C2"].tolist() == [0, 2000, 12]
    assert "C1, C2" in description
    ids = {"C1": np.array([1, 1, 2, 3, 0, 1]), "C2": np.array([1, 2, 1, 1, 1, 7])}
    frequency = sources.example_frequency(ids, counts)
    assert frequency.tolist() == [2000, 12, 50, 3, 0, 0]  # head, torso, torso, tail, tail, tail

    p = np.array([[0.10, 0.20, 0.30, 0.40, 0.50, 0.60],
                  [0.10, 0.30, 0.30, 0.20, 0.50, 0.20],
                  [0.30, 0.20, 0.10, 0.40, 0.50, 0.60]])
    summary = sources.pd_by_frequency(p, frequency)

    def term(a, b):
        return 2 * abs(a - b) / (a + b)

    def bucket_pd(columns):  # mean over the 3 pairs of the mean over the bucket's examples
        pairs = [(0, 1), (0, 2), (1, 2)]
        return np.mean([np.mean([term(p[i, t], p[j, t]) for t in columns]) for i, j in pairs])

    every = bucket_pd(range(6)) * 6
    for name, columns in (("head", [0]), ("torso", [1, 2]), ("tail", [3, 4, 5])):
        assert summary[name]["examples"] == len(columns)
        assert summary[name]["fraction"] == pytest.approx(len(columns) / 6)
        assert summary[name]["relative_pd"] == pytest.approx(bucket_pd(columns))
        assert summary[name]["pd_share"] == pytest.approx(bucket_pd(columns) * len(columns) / every)
    assert sum(b["pd_share"] for b in summary.values()) == pytest.approx(1.0)


def test_an_empty_bucket_has_no_pd():
    summary = sources.pd_by_frequency(np.array([[0.1, 0.2], [0.2, 0.2]]), np.array([5, 0]))
    assert summary["head"] == {"examples": 0, "fraction": 0.0, "relative_pd": None, "pd_share": 0.0}
    assert summary["tail"]["examples"] == 2


def test_bucket_thresholds_are_half_open():
    masks = sources.frequency_buckets(np.array([0, 9, 10, 999, 1000, 10**9]))
    assert [name for value in range(6) for name, mask in masks.items() if mask[value]] == [
        "tail", "tail", "torso", "torso", "head", "head"]


def test_counts_are_not_available_without_matching_vocabulary_files(tmp_path):
    counts, why = sources.vocabulary_counts(str(tmp_path), FEATURES, ["C1"])
    assert counts is None and why.startswith("not available: no vocabulary file")
    _write_vocab(tmp_path, "C1", [("a", 5), ("b", 1)])  # 2 values, features.json says vocab_size 4
    counts, why = sources.vocabulary_counts(str(tmp_path), FEATURES, ["C1"])
    assert counts is None and "vocab_size 4" in why
    hashed = FeatureSet(FEATURES.features, {"vocab_mode": "hash"})
    assert sources.vocabulary_counts(str(tmp_path), hashed, ["C1"])[0] is None


def test_self_pd_is_zero_for_the_same_snapshot_and_the_mean_over_replicas_otherwise():
    final = np.array([[0.1, 0.4, 0.3], [0.2, 0.2, 0.5]])
    same = sources.self_pd_summary(final.copy(), final, examples_apart=0, replica_pd=0.3)
    assert same["self_relative_pd"] == 0.0 and same["self_to_replica_pd"] == 0.0
    earlier = np.array([[0.1, 0.2, 0.3], [0.2, 0.2, 0.25]])
    moved = sources.self_pd_summary(earlier, final, examples_apart=512, replica_pd=0.5)
    expected = [np.mean([0, 2 * 0.2 / 0.6, 0]), np.mean([0, 0, 2 * 0.25 / 0.75])]
    assert moved["self_relative_pd_replicas"] == pytest.approx(expected)
    assert moved["self_relative_pd"] == pytest.approx(np.mean(expected))
    assert moved["self_to_replica_pd"] == pytest.approx(np.mean(expected) / 0.5)
    assert moved["self_pd_examples_apart"] == 512


def test_eval_set_reads_the_categorical_ids_in_scoring_order(tmp_path):
    from recsys.study.data import EvalSet
    from tests.training.helpers import write_examples

    features = FEATURES.stamped()  # held-out data carries its feature fingerprint, as the Beam job writes it
    features.save(str(tmp_path / "features.json"))
    write_examples(tmp_path / "held_out.tfrecord.gz", [{"label": 1, "C1": 3, "C2": 2}, {"label": 0, "C2": 1},
                                                       {"label": 0, "C1": 1, "C2": 0}], features)
    eval_set = EvalSet((str(tmp_path / "held_out.tfrecord.gz"),), str(tmp_path / "features.json"), batch_size=2)
    ids = eval_set.categorical_ids()
    assert ids["C1"].tolist() == [3, 0, 1] and ids["C2"].tolist() == [2, 1, 0]  # a missing value reads as id 0
    assert list(eval_set.categorical_ids(("C2",))) == ["C2"]
    with pytest.raises(ValueError, match="must be categorical"):
        eval_set.categorical_ids(("label",))
