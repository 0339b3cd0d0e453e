"""The paper's toy setting on 1.1M generated click-log rows: MLP [1024, 512, 256, 128, 64, 16] on 5 categorical
features embedded to 240 inputs (48 each), clipped activations, layer norm, one online pass.

    python -m pipelines.study --config=configs/study_synthetic.py --workdir=runs/study_synthetic

Generates 1,100,000 rows (`pipelines.generate_clicklogs --seed=0 --ctr=0.1`), preprocesses them into 11 shards of
100,000 (the last is held out: 1,000,000 training rows, 100,000 held-out rows), then trains the full grid below:
ReLU (6 replicas, for 3-ensembles) and SmeLU, Softplus, Swish, GELU at several β and learned gSmeLU (4 replicas),
under the three noise sources. Run time on the shared 2-core machine: data generation and preprocessing 205 s; in
replica mode a cell of 4 replicas over the 1M rows took 295–341 s with the machine largely to itself and 341–588 s
beside other jobs. The whole `shuffle` panel (docs/results.md §2b, `--config.grid.noise="('shuffle',)"
--config.grid.replicas=4`) ran; the full three-panel grid is estimated at roughly 3–5.5 hours and was not run.

A reduced run (what docs/results.md reports) overrides the grid, e.g.
    --config.grid.noise="('shuffle',)" --config.grid.activations="('relu','smelu:beta=1')"
"""
import ml_collections

from configs import base
from recsys.study.config import PAPER_ACTIVATIONS, PAPER_NOISE, base_config


def get_config() -> ml_collections.ConfigDict:
    config = base_config(base.get_config())
    config.name = "study_synthetic"
    config.data.generate_rows = 1_100_000
    config.data.generate_seed = 0
    config.data.generate_ctr = 0.1
    config.data.generate_days = 1
    config.data.rows_per_shard = 100_000
    config.data.eval_shards = 1

    train = config.train
    train.data.batch_size = 512
    train.data.shuffle_buffer = 10_000
    train.model.categorical = "C1,C2,C3,C4,C5"
    train.model.numeric = ""
    train.model.embedding_dim = 48
    train.model.hidden_units = (1024, 512, 256, 128, 64, 16)
    train.log_every_steps = 200
    train.checkpoint_every_steps = 500

    config.grid.activations = PAPER_ACTIVATIONS
    config.grid.noise = PAPER_NOISE
    config.grid.replicas = 4
    config.grid.ensemble_k = 3
    config.grid.ensemble_replicas = 6
    config.analysis.bootstrap = 200
    return config
