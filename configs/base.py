"""Defaults of every trainer option; the other configs start from these.

    python -m pipelines.train --config=configs/base.py --workdir=/tmp/ctr_base \
        --config.data.train='demo_out/data/part-*.tfrecord.gz'

Every key can be overridden on the command line (`--config.model.activation=smelu:beta=1`); the config is
locked, so a misspelt key fails. docs/training.md describes each key.
"""
import ml_collections

# The Beam job's output directory as `make demo` writes it.
DEMO_DATA = "demo_out/data/part-*.tfrecord.gz"


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    config.data = ml_collections.ConfigDict()
    config.data.train = DEMO_DATA  # TFRecord glob, shards in time order
    config.data.features = ""  # "" = features.json beside the data
    config.data.shuffle = "window"  # none | window | full
    config.data.shuffle_buffer = 10_000  # window size (examples) for shuffle=window
    config.data.batch_size = 512  # global batch, split across replicas
    config.data.max_examples = 0  # stop after this many examples; 0 = the whole stream
    # How several workers split the stream (docs/training.md, "Strategies"): "example" = one global stream in time
    # order (multi_worker_mirrored: every worker reads all records and keeps its examples of each global batch;
    # parameter_server: the chief reads and ships every batch); "file" = each worker reads only its own files.
    config.data.shard_by = "example"
    # Pad the stream's last partial global batch to batch_size with zero-weight examples (label -1), so every step
    # has one static shape (TPUs, jit_compile_step); the padding is dropped from metrics, counts and positions.
    config.data.pad_final_batch = False

    config.seed = ml_collections.ConfigDict()
    config.seed.init = 0  # model initialisation
    config.seed.data = 0  # data order (shuffle)
    config.deterministic = True  # tf.config.experimental.enable_op_determinism()

    config.model = ml_collections.ConfigDict()
    config.model.categorical = "all"  # "all", "" (none) or "C1,C2,..."
    config.model.numeric = "all"  # "all", "" (none) or "I1,I2,..."
    config.model.embedding_dim = 16  # width of every embedding table ...
    config.model.embedding_dims = ""  # ... unless set per feature: "C1=32,C2=8"
    config.model.hidden_units = (1024, 512, 256, 128, 64, 16)
    config.model.activation = "relu"  # one spec, or one per hidden layer separated by ';'
    config.model.activation_clip = 6.0  # clip activations to ±this; 0 = off
    config.model.normalization = "layer"  # none | layer | weight
    config.model.weight_norm_scale = 1.0  # v: fixed L2 norm of each weight row (normalization=weight)
    config.model.cross_layers = 0  # DCN-v2 cross layers before the MLP
    config.model.cross_projection_dim = 0  # low-rank cross layers; 0 = full rank
    config.model.jit_compile = False  # XLA for the dense part (embedding gradients stay sparse)
    # Compute dtype: "" (float32) | "mixed_bfloat16" (bfloat16 compute; float32 variables, logits and losses).
    # "mixed_float16" is refused: it needs loss scaling (docs/training.md, "Mixed precision").
    config.model.mixed_precision = ""
    config.model.embedding_activation = False  # clip(f(embeddings)) before the first layer: a¹ = W¹ f(a⁰) + b¹

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.embedding_learning_rate = 0.05  # sparse Adagrad on the embedding tables
    config.optimizer.embedding_initial_accumulator = 0.1
    config.optimizer.dense = "adagrad"  # adagrad | adam | sgd, for every non-embedding variable
    config.optimizer.dense_learning_rate = 0.05
    config.optimizer.dense_initial_accumulator = 0.1  # adagrad only
    # Learning-rate schedule of both optimizers, in examples consumed (docs/training.md, "Settling"):
    # constant | warmup | inverse_sqrt | linear | cosine; linear and cosine decay to decay_floor × the base rate
    # over schedule_examples (0 = the stream's length: summary.json, capped by data.max_examples).
    config.optimizer.schedule = "constant"
    config.optimizer.warmup_examples = 0
    config.optimizer.decay_floor = 0.0
    config.optimizer.schedule_examples = 0

    # Weight averaging (docs/training.md, "Settling"): an exponential moving average of every trainable weight,
    # a <- d^k·a + (1 - d^k)·w after every k-th step (k = every_steps, at most 1/(1 - d)) once start_examples have
    # been consumed (before: a = w); ema_decay 0 = off. Each update is a dense pass over every weight, tables
    # included: k > 1 divides its cost by k. export: which weights the SavedModels hold (averaged | live);
    # progressive_averaged: also score each batch with the averaged weights before training (one more forward pass).
    config.averaging = ml_collections.ConfigDict()
    config.averaging.ema_decay = 0.0
    config.averaging.start_examples = 0
    config.averaging.every_steps = 1
    config.averaging.export = "averaged"
    config.averaging.progressive_averaged = False

    # Jitter (docs/training.md, "Settling"): every jitter_steps steps, the relative PD between the model now and
    # jitter_steps steps ago on the same batch; 0 = off.
    config.jitter_steps = 0

    # Replica mode (docs/training.md, "Replica mode"): R models of this config on one parsed stream, with the
    # progressive PD between them. noise: shuffle (replica r orders each window with seed.data + r) | init
    # (replica r initialised with seed.init + r, one order) | shuffle+init.
    config.replicas = ml_collections.ConfigDict()
    config.replicas.count = 1
    config.replicas.noise = "shuffle"

    # Distillation (docs/training.md, "Distillation"; recsys.training.distill): teacher "" (off) | "online" (a
    # second model trained alongside on the same stream) | a SavedModel folder. Student loss =
    # (1 - weight)·BCE(label) + weight·temperature²·BCE(σ(teacher_logit/T), σ(student_logit/T)).
    config.distill = ml_collections.ConfigDict()
    config.distill.teacher = ""
    config.distill.weight = 0.5
    config.distill.temperature = 1.0
    config.distill.teacher_activation = ""  # online teacher's activation spec; "" = config.model.activation

    # Co-distillation (docs/training.md, "Co-distillation"): with replicas.count >= 2, each replica's loss =
    # (1 - weight)·BCE(label) + weight·BCE(mean of the other replicas' predictions on its batch); 0 = off.
    config.codistill = ml_collections.ConfigDict()
    config.codistill.weight = 0.0

    config.metrics_window = 100_000  # examples in the sliding window of the progressive metrics
    config.metrics_auc_bins = 2**20  # resolution of the cumulative progressive AUC (recsys.metrics.streaming)
    config.log_every_steps = 100
    config.checkpoint_every_steps = 1000
    config.keep_checkpoints = 3
    config.export_saved_model = True

    config.strategy = "default"  # default | mirrored | multi_worker_mirrored | parameter_server | tpu
    # XLA-compile the whole replica train step (forward, gradients, both optimizers, settling work) as one
    # function; strategy default (tpu compiles it anyway). With data.pad_final_batch every step has one shape.
    config.jit_compile_step = False
    config.tpu = ""  # TPU name or grpc:// address for strategy=tpu ("" = from the environment)

    # Sharded variables (docs/training.md, "Sharded embedding tables"; recsys.training.sharding): how
    # strategy=parameter_server splits each variable (in practice the embedding tables) into row shards placed
    # round-robin on the ps tasks. partitioner: none (every variable whole on one ps task) | min_size
    # (⌈bytes / min_shard_bytes⌉ shards: variables up to min_shard_bytes stay whole) | fixed_shards (num_shards
    # shards of every variable with that many rows) | max_size (as few shards as keep each <= max_shard_bytes).
    # max_shards caps min_size/max_size and num_shards is fixed_shards' count; 0 = the number of ps tasks. Other
    # strategies refuse a partitioner.
    config.sharding = ml_collections.ConfigDict()
    config.sharding.partitioner = "none"
    config.sharding.min_shard_bytes = 256 << 10
    config.sharding.max_shard_bytes = 64 << 20
    config.sharding.num_shards = 0
    config.sharding.max_shards = 0

    # Dry run (docs/training.md, "Dry run"): pipelines.train prints the parameters per table and the bytes of
    # weights + optimizer slots per ps task (the partitioner's placement) and exits, reading no data and training
    # nothing. dry_run_vocab_size: > 0 = every categorical feature of the Criteo schema gets that many ids (as
    # features.json would after `pipelines.preprocess --vocab_mode=hash --hash_buckets=N`); 0 = read
    # features.json. dry_run_ps_tasks: the ps tasks planned for when TF_CONFIG names none.
    config.dry_run = False
    config.dry_run_vocab_size = 0
    config.dry_run_ps_tasks = 2
    return config
