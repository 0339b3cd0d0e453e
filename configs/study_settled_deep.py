"""Issue #15 item 6 in the harder synthetic regime: the settled study on a log whose labels come from a random deep
network, with ReLU against SmeLU β ∈ {0.1, 0.25, 0.5, 1}, Swish β = 1 and GELU β = 1.

    python -m pipelines.study --config=configs/study_settled_deep.py --workdir=runs/study_settled_deep

`study_settled` (the verdict study's data shape and model: 1,100,000 generated rows, seed 0, CTR 0.1, 11 shards
of 100,000 with the last held out, leak-free vocabulary; the paper's toy model on C1–C5; `shuffle` noise with 6
paired replicas per cell; EMA of the weights, decay 0.995, exported), with `data.generate_ground_truth = "deep"`:
the labels come from a random tanh network over drifting 8-d latent vectors of each value of C1–C5, the features
the model sees (`data.generate_truth_features`), so every feature interacts with every other, and the oracle AUC
in `<workdir>/raw/clicks.tsv.gz.summary.json` (0.888 measured on these rows) is the model's ceiling
(docs/data.md). The rows are those of `study_settled` (same seed); only the labels differ.
Not run yet: 7 cells at roughly 11–13 min each on the shared 2-core machine (from `study_settled`) is about 1.5 h.
"""
import ml_collections

from configs import study_settled


def get_config() -> ml_collections.ConfigDict:
    config = study_settled.get_config()
    config.name = "study_settled_deep"
    config.data.generate_ground_truth = "deep"
    config.data.generate_truth_features = config.train.model.categorical  # "C1,C2,C3,C4,C5"
    config.grid.activations = (
        "relu", "smelu:beta=0.1", "smelu:beta=0.25", "smelu:beta=0.5", "smelu:beta=1", "swish:beta=1", "gelu:beta=1",
    )
    return config
