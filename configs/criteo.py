"""All 39 Criteo features: 26 categorical (16-wide embeddings) + 13 numeric → MLP [1024, 512, 256, 128, 64, 16].

    python -m pipelines.preprocess --input=data/criteo_sample/day_0_head10k.tsv --output_dir=demo_out/data
    python -m pipelines.train --config=configs/criteo.py --workdir=/tmp/ctr_criteo

On a cluster, point `--config.data.train` at the preprocessed days and pick a strategy, e.g.
`--config.strategy=multi_worker_mirrored` (TF_CONFIG per worker; see docs/training.md).
"""
import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
    config = base.get_config()
    config.model.categorical = "all"
    config.model.numeric = "all"
    config.model.embedding_dim = 16
    return config
