"""Defaults of every study option; configs/study_*.py start from `base_config(configs.base.get_config())`.

Keys (docs/study.md describes each):

    name                         shown in results.md and the figure title
    data.raw_tsv                 Criteo-format TSV (glob) to preprocess into <workdir>/data ("" = none)
    data.raw_max_rows            use only the first N rows of raw_tsv (0 = all)
    data.generate_rows           > 0: generate a synthetic log of this many rows instead (pipelines.generate_clicklogs)
    data.generate_seed/_ctr/_days   its --seed, --ctr, --days
    data.generate_ground_truth   its --ground_truth: "additive" or "deep" (a random network over drifting latents)
    data.generate_truth_features its --truth_features: columns the deep ground truth reads ("" = all; e.g. the
                                 model's "C1,C2,C3,C4,C5", so that the oracle AUC is the model's ceiling)
    data.rows_per_shard, data.min_count   pipelines.preprocess options
    data.leak_free_vocabulary    vocabulary from the training rows only (pipelines.preprocess --vocab_rows)
    data.eval_shards             the last N preprocessed shards are held out for scoring
    data.train, data.eval, data.features   TFRecord globs (and features.json) when there is no raw log
    data.max_eval_examples       score on at most this many held-out examples (0 = all)
    train                        the trainer config (configs/base.py keys); its data.train is set by the study
    grid.activations             activation specs (recsys.layers.activations syntax; ';' = one per layer)
    grid.noise                   noise sources: "shuffle", "init", "shuffle+init"
    grid.replicas                R >= 2 replicas per cell
    grid.ensemble_k              k-ensembles for grid.ensemble_activations (0 = none); needs 2k replicas
    grid.ensemble_activations    activation families whose cells also report k-ensembles (default ReLU)
    grid.ensemble_replicas       replicas of those cells when more than grid.replicas (0 = grid.replicas)
    grid.ensemble_equal_budget   add, per ensemble activation, a cell of narrower components (embeddings and hidden
                                 layers) whose k-ensemble has the single model's parameter count within 5%
    grid.beta_layer_scales       per-layer multipliers of β (one per hidden layer; () = same β everywhere)
    grid.distill_students        activation specs of students distilled from an online teacher (noise 'init')
    grid.distill_teacher         the online teacher's activation spec (default learnable gSmeLU)
    grid.distill_weights         one student cell per weight w (student loss (1-w)·label + w·teacher)
    grid.distill_temperature     T on the logits of the soft term
    grid.codistill_activations   activation specs of co-distilled replica cells (every noise source)
    grid.codistill_weight        w of co-distillation; grid.codistill_replicas: R of those cells
    analysis.bootstrap/confidence/seed   bootstrap of the PD intervals and of the paired comparison with ReLU
    analysis.power               power of the detectable change reported beside each paired verdict
    analysis.max_ensemble_splits cap on the disjoint ensemble pairs evaluated per cell
    analysis.score_batch_size    examples per SavedModel call when scoring
    analysis.checkpoint_pd       also score each replica at its checkpoint before the final one: PD of a model
                                 with itself over the last part of the stream (keeps 2 trainer checkpoints)
    study.replica_mode           auto (trainer replica mode when available) | replicas | separate
"""
from __future__ import annotations

from typing import Any

import ml_collections

from recsys.training.noise import NOISE_SOURCES

# The paper's Fig. 4 grid: ReLU, SmeLU and the β-parameterised smooth activations at several widths, and
# learned gSmeLU; ReLU also as k-ensembles.
PAPER_ACTIVATIONS = (
    "relu",
    "smelu:beta=0.5", "smelu:beta=1", "smelu:beta=2",
    "softplus:beta=1", "softplus:beta=4",
    "swish:beta=1", "swish:beta=4",
    "gelu:beta=1", "gelu:beta=4",
    "gsmelu:trainable=true",
)
PAPER_NOISE = NOISE_SOURCES


def base_config(train: Any) -> ml_collections.ConfigDict:
    """The study defaults around `train`, a trainer config (configs/base.py `get_config()`), adjusted in place."""
    config = ml_collections.ConfigDict()
    config.name = "study"

    config.data = ml_collections.ConfigDict()
    config.data.raw_tsv = ""
    config.data.raw_max_rows = 0
    config.data.generate_rows = 0
    config.data.generate_seed = 0
    config.data.generate_ctr = 0.1
    config.data.generate_days = 1
    config.data.generate_ground_truth = "additive"
    config.data.generate_truth_features = ""
    config.data.rows_per_shard = 100_000
    config.data.min_count = 1
    config.data.leak_free_vocabulary = True
    config.data.eval_shards = 1
    config.data.train = ""
    config.data.eval = ""
    config.data.features = ""
    config.data.max_eval_examples = 0

    # The paper's setting: one pass in time order, replicas shuffled within windows, activations clipped, and
    # layer norm before each activation (paper-notes: without normalisation β is not scale-free and SmeLU loses).
    train.data.shuffle = "window"
    train.model.normalization = "layer"
    train.model.activation_clip = 6.0
    train.checkpoint_every_steps = 2000
    train.keep_checkpoints = 1
    config.train = train

    config.grid = ml_collections.ConfigDict()
    config.grid.activations = ("relu", "smelu:beta=1")
    config.grid.noise = ("shuffle",)
    config.grid.replicas = 2
    config.grid.ensemble_k = 0
    config.grid.ensemble_activations = ("relu",)
    config.grid.ensemble_replicas = 0
    config.grid.ensemble_equal_budget = False
    config.grid.beta_layer_scales = ()
    # Distillation and co-distillation cells (issue #9; docs/study.md, "Distillation"); none by default.
    config.grid.distill_students = ()
    config.grid.distill_teacher = "gsmelu:trainable=true"
    config.grid.distill_weights = (0.5,)
    config.grid.distill_temperature = 1.0
    config.grid.codistill_activations = ()
    config.grid.codistill_weight = 0.5
    config.grid.codistill_replicas = 2

    config.analysis = ml_collections.ConfigDict()
    config.analysis.bootstrap = 200
    config.analysis.confidence = 0.95
    config.analysis.seed = 0
    config.analysis.power = 0.8
    config.analysis.max_ensemble_splits = 50
    config.analysis.score_batch_size = 8192
    config.analysis.checkpoint_pd = False

    config.study = ml_collections.ConfigDict()
    config.study.replica_mode = "auto"
    return config
