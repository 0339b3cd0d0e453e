"""Issue #9 on the synthetic click log of `study_synthetic` (the same 1.1M generated rows, same model): a learnable
gSmeLU teacher, SmeLU students distilled from it, SmeLU alone, ReLU, ReLU 3-ensembles and a co-distilled ReLU pair,
all under the `init` noise source (every model sees the stream in one order; replicas differ in their initial
weights), so that an online teacher can score each batch before any model trains on it.

    python -m pipelines.study --config=configs/study_distill.py --workdir=runs/study_distill

Cells (R = 3 unless noted):
  * ReLU (6 replicas: PD of single models and of disjoint 3-ensembles), SmeLU β=1, gSmeLU (learned) alone;
  * SmeLU β=1 students of an online learnable-gSmeLU teacher, at distillation weights 0.3 and 0.7 (one job per
    weight: 3 students + 1 teacher);
  * ReLU co-distilled pair (2 replicas, weight 0.5).
results.md's "Distillation" table compares each student with SmeLU alone (PD, AUC, AUC at equal PD over the two
weights, examples to reach SmeLU-alone's final progressive AUC); convergence.png plots progressive AUC over the
stream. To reuse an existing study_synthetic workdir's data, add
    --config.data.generate_rows=0 --config.data.train='<dir>/data/part-00000-00000[0-9].tfrecord.gz'
    --config.data.eval='<dir>/data/part-00000-000010.tfrecord.gz'
Run time: 57 min wall for the whole grid on the shared 2-core machine with other studies training beside it
(docs/results.md, section 5), after the data step of study_synthetic (205 s when it has to generate the data).
"""
import ml_collections

from configs import study_synthetic


def get_config() -> ml_collections.ConfigDict:
    config = study_synthetic.get_config()
    config.name = "study_distill"
    config.grid.activations = ("relu", "smelu:beta=1", "gsmelu:trainable=true")
    config.grid.noise = ("init",)
    config.grid.replicas = 3
    config.grid.ensemble_k = 3
    config.grid.ensemble_replicas = 6
    config.grid.distill_students = ("smelu:beta=1",)
    config.grid.distill_teacher = "gsmelu:trainable=true"
    config.grid.distill_weights = (0.3, 0.7)
    config.grid.codistill_activations = ("relu",)
    config.grid.codistill_weight = 0.5
    config.grid.codistill_replicas = 2
    return config
