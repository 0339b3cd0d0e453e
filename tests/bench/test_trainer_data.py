"""The trainer benchmark's generated data is accepted by the trainer's input checks (fingerprint, records)."""
import ml_collections

from recsys.bench import trainer as bench
from recsys.data.input import DataSource


def test_benchmark_data_passes_the_trainer_checks(tmp_path):
    pattern = bench._write_data(str(tmp_path), examples=400, vocab_size=10)
    data = ml_collections.ConfigDict({"train": pattern, "features": "", "shuffle": "window", "shuffle_buffer": 100,
                                      "batch_size": 32})
    source = DataSource.from_config(data, seed=0)
    assert len(source.files) == 4 and source.expected_examples() == 400
