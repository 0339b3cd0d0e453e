"""The study on the bundled 10,000 real Criteo rows (data/criteo_sample/day_0_head10k.tsv), paper toy model.

    python -m pipelines.study --config=configs/study_criteo_sample.py --workdir=runs/study_criteo_sample

Preprocesses the sample into <workdir>/data (10 shards of 1,000 rows in time order; the last 2 are held out:
8,000 training rows, 2,000 held-out rows with 2.65% clicks), then trains the grid: ReLU (6 replicas, for
3-ensembles) and SmeLU β ∈ {0.5, 1, 2}, Softplus/Swish/GELU β ∈ {1, 4} and learned gSmeLU (5 replicas = 10 pairs
each), under the three noise sources, with the paper's toy model: 5 categorical features × 48-wide embeddings
(240 inputs), MLP [1024, 512, 256, 128, 64, 16], activations clipped to ±6, layer norm, batch 128, one pass.
Run time: 36.5 min measured on the shared 2-core machine under load (33 cells, 168 trainer runs as separate
runs); a rerun that reuses every cell: about 3 min (scoring included).

With 8,000 training rows the models barely learn (held-out AUC near 0.5-0.6): this is a real-data check of the
whole pipeline, not a measurement of the paper's effect; study_synthetic is the larger one.
"""
import ml_collections

from configs import base
from recsys.study.config import PAPER_ACTIVATIONS, PAPER_NOISE, base_config


def get_config() -> ml_collections.ConfigDict:
    config = base_config(base.get_config())
    config.name = "study_criteo_sample"
    config.data.raw_tsv = "data/criteo_sample/day_0_head10k.tsv"
    config.data.rows_per_shard = 1000
    config.data.eval_shards = 2

    train = config.train
    train.data.batch_size = 128
    train.data.shuffle_buffer = 1000
    # The five features of configs/criteo_toy.py: the sample's most often repeated values.
    train.model.categorical = "C2,C3,C7,C12,C24"
    train.model.numeric = ""
    train.model.embedding_dim = 48
    train.model.hidden_units = (1024, 512, 256, 128, 64, 16)
    train.log_every_steps = 10

    config.grid.activations = PAPER_ACTIVATIONS
    config.grid.noise = PAPER_NOISE
    config.grid.replicas = 5
    config.grid.ensemble_k = 3
    config.grid.ensemble_replicas = 6
    return config
