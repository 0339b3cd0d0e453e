"""configs/smoke.py with distillation on: a tiny student learning from labels and a teacher (docs/training.md).

    python -m pipelines.train --config=configs/distill_smoke.py --workdir=/tmp/ctr_distill \
        --config.data.train='demo_out/data/part-*.tfrecord.gz' \
        --config.distill.teacher=/tmp/ctr_smoke/saved_model

`--config.distill.teacher=online` trains a teacher (here a trainable gSmeLU model) alongside the student on the same
stream instead; metrics.json then has `teacher_progressive_auc` and the teacher is exported to saved_model_teacher/.
"""
import ml_collections

from configs import smoke


def get_config() -> ml_collections.ConfigDict:
    config = smoke.get_config()
    config.distill.teacher = "online"
    config.distill.weight = 0.5
    config.distill.temperature = 2.0
    config.distill.teacher_activation = "gsmelu:trainable=true"
    return config
