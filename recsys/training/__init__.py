"""The online single-pass trainer.

Modules: `task` (model state, optimizers, train/score steps), `loop` (the `Trainer`: progressive validation,
checkpoints, outputs), `data` (input validation and the distributed dataset), `checkpoint` (exact-resume
checkpoints), `export` (the SavedModel), `strategy` (tf.distribute strategies from the config and TF_CONFIG),
`parameter_server` (the asynchronous coordinator path), `summaries` (TensorBoard scalars), `replicas` (replica
mode: seeds per replica, progressive PD), `tf_config` (TF_CONFIG from a cluster's environment). Entry point:
`python -m pipelines.train` (docs/training.md).
"""
