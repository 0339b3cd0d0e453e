"""The verdict study (issue #14, item 5): does SmeLU lower PD against ReLU on the 1M-row synthetic log, paired?

    python -m pipelines.study --config=configs/study_verdict.py --workdir=runs/study_verdict

The data of `study_synthetic` (1,100,000 generated rows, seed 0, CTR 0.1, 11 shards of 100,000; the last is held
out), rebuilt leak-free: the vocabulary is counted over the 1,000,000 training rows only, so held-out values never
seen in training map to the trained out-of-vocabulary id. The paper's toy model (5 × 48-wide embeddings, MLP
[1024, 512, 256, 128, 64, 16], clip ±6, layer norm), one online pass under `shuffle` noise with 6 replicas per
cell: ReLU, SmeLU β = 0.25 and β = 1, and ReLU 3-ensembles at 3× budget and at equal budget. Replica r of every
cell sees the same data order, so the study reports each cell's PD ratio to ReLU with a paired bootstrap interval,
the AUC difference, a verdict per axis and the smallest PD change these 6 replicas can resolve. Two checkpoints
are kept (every 200 steps of 512), so the PD between a replica's last two snapshots (`analysis.checkpoint_pd`)
is measured next to the PD between replicas.
Measured on the shared 2-core machine with other jobs running: the three single-model cells 677, 753 and 655 s
each (39 min with the data step), the equal-budget ReLU cell 245 s, scoring and checkpoint exports of a rerun that
reuses the trained cells 36-45 s per cell.
"""
import ml_collections

from configs import study_synthetic


def get_config() -> ml_collections.ConfigDict:
    config = study_synthetic.get_config()
    config.name = "study_verdict"
    config.data.leak_free_vocabulary = True
    config.train.checkpoint_every_steps = 200
    config.train.keep_checkpoints = 2
    config.analysis.checkpoint_pd = True
    config.grid.activations = ("relu", "smelu:beta=0.25", "smelu:beta=1")
    config.grid.noise = ("shuffle",)
    config.grid.replicas = 6
    config.grid.ensemble_k = 3
    config.grid.ensemble_replicas = 6
    config.grid.ensemble_equal_budget = True
    return config
