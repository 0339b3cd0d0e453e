"""The online single-pass trainer.

Modules: `task` (model state, optimizers, replica train steps, the synchronous step builder, `StepResult`),
`modes` (training modes: states, steps and outputs of plain, replica, distillation, co-distillation and
parameter-server training), `loop` (the `Trainer`: progressive validation, checkpoints, outputs),
`metrics_record` (metrics.json as `TrainingMetrics`), `noise` (noise sources and replica seeds), `distill`
(distillation), `data` (input validation and the distributed dataset), `checkpoint` (exact-resume checkpoints),
`export` (the SavedModel), `strategy` (tf.distribute strategies from the config and TF_CONFIG),
`parameter_server` (the asynchronous coordinator path), `summaries` (TensorBoard scalars), `replicas` (replica
mode: seeds per replica, progressive PD), `tf_config` (TF_CONFIG from a cluster's environment). Entry point:
`python -m pipelines.train` (docs/training.md).
"""
