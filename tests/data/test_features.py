"""features.json round trip and validation."""
import json

import pytest

from recsys.data import features as features_lib
from recsys.data.features import Feature, FeatureSet


def test_criteo_feature_set_round_trip(tmp_path):
    vocab = {f"C{i}": 10 + i for i in range(1, 27)}
    fs = features_lib.criteo_feature_set(vocab, {"vocab_mode": "hash"})
    path = tmp_path / "features.json"
    fs.save(str(path))
    loaded = FeatureSet.load(str(path))
    assert loaded == fs
    assert loaded.label.name == "label" and loaded.time.name == "ts"
    assert [f.name for f in loaded.numeric] == [f"I{i}" for i in range(1, 14)]
    assert loaded["C3"].vocab_size == 13
    assert json.loads(path.read_text())["vocab_mode"] == "hash"
    spec = loaded.parse_spec()
    assert len(spec) == 41 and spec["I1"].dtype.name == "float32" and spec["C1"].dtype.name == "int64"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"name": "C1", "type": "int64", "role": "categorical"}, "vocab_size"),
        ({"name": "C1", "type": "int64", "role": "categorical", "vocab_size": 0}, "vocab_size=0"),
        ({"name": "x", "type": "float64", "role": "numeric"}, "type='float64'"),
        ({"name": "x", "type": "float32", "role": "dense"}, "role='dense'"),
    ],
)
def test_bad_feature(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Feature(**kwargs)


def test_feature_set_needs_one_label_and_unique_names():
    with pytest.raises(ValueError, match="role 'label'"):
        FeatureSet((Feature("x", "float32", "numeric"),))
    with pytest.raises(ValueError, match="duplicates"):
        FeatureSet((Feature("label", "int64", "label"), Feature("x", "float32", "numeric"),
                    Feature("x", "float32", "numeric")))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="features file not found"):
        FeatureSet.load(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        FeatureSet.load(str(bad))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format_version": 99, "features": []}))
    with pytest.raises(ValueError, match="format_version"):
        FeatureSet.load(str(wrong))


def test_default_features_path():
    assert features_lib.default_features_path("/d/x/part-*.tfrecord.gz") == "/d/x/features.json"
    # The directory of the first glob of a comma-separated pattern; a bare glob means the working directory.
    assert features_lib.default_features_path(" /d/x/part-0.gz, /e/part-1.gz") == "/d/x/features.json"
    assert features_lib.default_features_path("part-*") == "./features.json"
