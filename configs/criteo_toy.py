"""The paper's toy model (Shamir & Lin 2022, Fig. 4): 5 categorical Criteo features embedded to 240 inputs
(48 each), MLP [1024, 512, 256, 128, 64, 16], activations clipped to ±6, layer norm, logistic output.

    python -m pipelines.preprocess --input=data/criteo_sample/day_0_head10k.tsv --output_dir=demo_out/data
    python -m pipelines.train --config=configs/criteo_toy.py --workdir=/tmp/ctr_toy_relu
    python -m pipelines.train --config=configs/criteo_toy.py --workdir=/tmp/ctr_toy_smelu \
        --config.model.activation=smelu:beta=1

The five features are the ones of the bundled sample with the most frequently repeated values (the richest
signal for 48-wide embeddings); use `--config.model.categorical=...` to pick others.
"""
import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
    config = base.get_config()
    config.model.categorical = "C2,C3,C7,C12,C24"
    config.model.numeric = ""
    config.model.embedding_dim = 48
    config.model.hidden_units = (1024, 512, 256, 128, 64, 16)
    return config
