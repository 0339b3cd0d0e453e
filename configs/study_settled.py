"""Issue #15's first settled rerun: the verdict study with an exponential moving average of the weights.

    python -m pipelines.study --config=configs/study_settled.py --workdir=runs/study_settled

`study_verdict` (1.1M generated rows, leak-free vocabulary, the paper's toy model, `shuffle` noise, 6 paired
replicas per cell), ReLU and SmeLU β = 0.25 only, with `averaging.ema_decay = 0.995` (an average over roughly the
last 200 steps = 100,000 examples, a tenth of the stream; not tuned) and the SavedModels exported with the averaged
weights, so the held-out PD, the paired ratio and the self PD between the last two checkpoints are those of the
averaged models. Progressive validation still scores the live weights.
Measured on the shared 2-core machine with other jobs running: 684 s (ReLU) and 797 s (SmeLU) per cell, 26 min in
all with the data step.
"""
import ml_collections

from configs import study_verdict


def get_config() -> ml_collections.ConfigDict:
    config = study_verdict.get_config()
    config.name = "study_settled"
    config.train.averaging.ema_decay = 0.995
    config.train.averaging.export = "averaged"
    config.grid.activations = ("relu", "smelu:beta=0.25")
    config.grid.ensemble_k = 0
    config.grid.ensemble_replicas = 0
    config.grid.ensemble_equal_budget = False
    return config
