"""Noise sources and replica seeds: one owner (`recsys.training.noise`) for the trainer and the study."""
import pytest

from recsys.study import config as study_config
from recsys.study import grid
from recsys.training import noise
from recsys.training.replicas import ReplicaPlan
from tests.training.helpers import small_config


def test_noise_sources_are_parsed_by_name_not_by_substring():
    assert noise.NOISE_SOURCES == ("shuffle", "init", "shuffle+init")
    assert [(n.shuffle, n.init) for n in map(noise.parse_noise, noise.NOISE_SOURCES)] == [
        (True, False), (False, True), (True, True)]
    for bad in ("init+shuffle", "reinit", "shuffled", "", None):
        with pytest.raises(ValueError, match=r"`config.replicas.noise` must be one of \('shuffle', 'init', "):
            noise.parse_noise(bad, key="`config.replicas.noise`")


def test_the_study_uses_the_trainers_noise_sources():
    assert grid.NOISE_SOURCES is noise.NOISE_SOURCES
    assert study_config.PAPER_NOISE == noise.NOISE_SOURCES
    assert grid.replica_seeds is noise.replica_seeds


@pytest.mark.parametrize("source", noise.NOISE_SOURCES)
def test_replica_mode_and_separate_runs_give_every_replica_the_same_seeds(source):
    config = small_config("unused", **{"replicas.count": 3, "replicas.noise": source, "seed.init": 7,
                                       "seed.data": 100})
    plan = ReplicaPlan.from_config(config)
    separate = [noise.replica_seeds(source, r, 7, 100) for r in range(3)]
    assert list(zip(plan.init_seeds, plan.data_seeds, strict=True)) == separate
    assert separate[0] == (7, 100)  # replica 0 is the ordinary run


def test_replica_seed_values():
    assert [noise.replica_seeds("shuffle", r, 7, 100) for r in range(3)] == [(7, 100), (7, 101), (7, 102)]
    assert [noise.replica_seeds("init", r, 7, 100) for r in range(3)] == [(7, 100), (8, 100), (9, 100)]
    assert noise.replica_seeds("shuffle+init", 2, 7, 100) == (9, 102)
    with pytest.raises(ValueError, match="`noise` must be one of"):
        noise.replica_seeds("seed", 0, 7, 100)
