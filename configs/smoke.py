"""A tiny model that trains in seconds: for checking an installation or a new data set end to end.

    python -m pipelines.train --config=configs/smoke.py --workdir=/tmp/ctr_smoke \
        --config.data.train='demo_out/data/part-*.tfrecord.gz'
"""
import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
    config = base.get_config()
    config.data.batch_size = 128
    config.data.shuffle_buffer = 1000
    config.model.embedding_dim = 4
    config.model.hidden_units = (32, 16)
    config.log_every_steps = 20
    config.checkpoint_every_steps = 20
    return config
