"""The Criteo 1TB Click Logs (24 days, about 4.4 billion rows) on a parameter-server cluster, tables sharded.

Preprocess every day with hashed vocabularies (one pass, no vocabulary to count; docs/data.md), then train:

    python -m pipelines.preprocess --input='/data/criteo/day_*.gz' --output_dir=/data/criteo_1tb \
        --vocab_mode=hash --hash_buckets=40000004 [--runner=DataflowRunner ...]
    python -m pipelines.train --config=configs/criteo_1tb.py --config.dry_run=True   # the memory plan below
    # on every task of the cluster (docker/k8s/train-parameter-server-tfjob.yaml), with its own TF_CONFIG:
    python -m pipelines.train --config=configs/criteo_1tb.py --workdir=gs://BUCKET/runs/criteo_1tb \
        --config.data.train='gs://BUCKET/criteo_1tb/part-*.tfrecord.gz'

Vocabularies: `--hash_buckets=40000004` gives every categorical feature ids 1..40,000,003 (a prime modulus)
and 0 for a missing value: 40M rows per table, the per-table cap of the MLPerf DLRM reference on these logs.
The Beam job hashes all 26 features into the same number of buckets, so small features (C6 has a handful of
values) get tables far larger than they use; a frequency vocabulary (`--vocab_mode=frequency
--max_vocab_size=40000004`, two passes) sizes each table to its feature at the cost of the counting pass.

Memory, as the dry run prints it (`--config.dry_run=True`: no data read, no cluster; recsys/training/dry_run.py):

    parameters: 16,641,142,321 (16,640,001,664 in 26 tables of 40,000,004 × 16, 1,140,657 dense)
    bytes: weights 66,564,569,308 (61.99 GiB) + Adagrad slots 66,564,569,284 (61.99 GiB) = 123.99 GiB
    16 ps tasks, partitioner max_size (max_shard_bytes = 160 MiB): every table in 16 shards of 2,500,001 or
    2,500,000 rows (160 MB), one per ps task (round robin); the dense variables stay whole.
    per ps task: 27 or 28 shards or whole variables, 4.160-4.162 GB of weights + as much Adagrad slot
    = 8.32 GB (7.75 GiB)

so a ps pod of 12 GiB holds its share with room for gRPC buffers and the runtime (124 GiB in all would fit no
single task).

Every step reads and updates only the looked-up rows (sparse Adagrad), so ps traffic per step scales with the
batch (26 × 4,096 rows), not with the tables.
"""
import ml_collections

from configs import criteo

# `pipelines.preprocess --hash_buckets`: ids 1..HASH_BUCKETS-1 (modulus 40,000,003, a prime), 0 = missing.
HASH_BUCKETS = 40_000_004
PS_TASKS = 16


def get_config() -> ml_collections.ConfigDict:
    config = criteo.get_config()
    config.data.train = "/data/criteo_1tb/part-*.tfrecord.gz"
    config.data.batch_size = 4096
    config.data.shuffle_buffer = 1_000_000
    config.metrics_window = 1_000_000
    config.log_every_steps = 1000
    config.checkpoint_every_steps = 10_000
    config.strategy = "parameter_server"
    # 40M × 16 floats = 2.56 GB a table; shards of at most 160 MiB → 16 shards, one per ps task (round robin),
    # while the dense variables (at most 429 × 1024 floats) stay whole.
    config.sharding.partitioner = "max_size"
    config.sharding.max_shard_bytes = 160 << 20
    config.dry_run_vocab_size = HASH_BUCKETS
    config.dry_run_ps_tasks = PS_TASKS
    return config
