"""A minutes-long study on 3,000 rows of the bundled Criteo sample: checks the whole study pipeline end to end.

    python -m pipelines.study --config=configs/study_smoke.py --workdir=/tmp/study_smoke

Preprocesses the first 3,000 rows into <workdir>/data (3 shards of 1,000; the last is held out) and trains, under
shuffle noise, ReLU and SmeLU β=1 with R=4 replicas each (tiny MLP [16, 8] on 5 categorical features, 4-wide
embeddings, layer norm), reported as single models and as 2-ensembles (2× the parameters), plus the equal-budget
cells of both (components with 2-wide embeddings and hidden [10, 5]: two of them have 0.992× the single model's
17,613 parameters). Writes results.json (with the paired comparison of each cell with ReLU), results.md (opening
with the verdict table) and pd_vs_accuracy.png. With `analysis.checkpoint_pd` every replica is also
exported at its checkpoint before the final one (a checkpoint every 4 steps of 128, so at most 512 examples,
about one shuffle window, before the end) and scored: self PD. The numbers mean nothing at this size;
tests/pipelines/test_study.py runs it.
Measured on the shared 2-core machine (4 cells of 4 replicas): 68–73 s for a first run (about 32 s of CPU) with
other jobs on the same cores. Before the equal-budget cells (ReLU 4 + SmeLU 2 replicas): 36 s for a first run and 5 s
for a rerun that reuses both cells; 81–85 s wall (about 26 s of CPU) while another study was training.
"""
import ml_collections

from configs import base
from recsys.study.config import base_config


def get_config() -> ml_collections.ConfigDict:
    config = base_config(base.get_config())
    config.name = "study_smoke"
    config.data.raw_tsv = "data/criteo_sample/day_0_head10k.tsv"
    config.data.raw_max_rows = 3000
    config.data.rows_per_shard = 1000
    config.data.eval_shards = 1

    train = config.train
    train.data.batch_size = 128
    train.data.shuffle_buffer = 500
    train.model.categorical = "C2,C3,C7,C12,C24"
    train.model.numeric = ""
    train.model.embedding_dim = 4
    train.model.hidden_units = (16, 8)
    train.log_every_steps = 10
    train.metrics_auc_bins = 2**12
    train.checkpoint_every_steps = 4

    config.grid.activations = ("relu", "smelu:beta=1")
    config.grid.noise = ("shuffle",)
    config.grid.replicas = 2
    # ReLU and SmeLU train 4 replicas and report 2-ensembles (the mean of 2 vs the mean of the other 2), at 2× the
    # single model's parameters and at equal budget (components with 2-wide embeddings and hidden [10, 5]).
    config.grid.ensemble_k = 2
    config.grid.ensemble_replicas = 4
    config.grid.ensemble_activations = ("relu", "smelu")
    config.grid.ensemble_equal_budget = True
    config.analysis.bootstrap = 50
    config.analysis.checkpoint_pd = True
    return config
