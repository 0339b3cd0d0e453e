"""recsys.layers: Keras layers of the project (activations in `recsys.layers.activations`)."""
from recsys.layers.activations import (
    GELU,
    RESCU,
    ClippedActivation,
    GeneralizedSmeLU,
    ReLU,
    SmeLU,
    Softplus,
    Swish,
)
from recsys.layers.activations import get as get_activation

__all__ = [
    "GELU",
    "RESCU",
    "ClippedActivation",
    "GeneralizedSmeLU",
    "ReLU",
    "SmeLU",
    "Softplus",
    "Swish",
    "get_activation",
]
