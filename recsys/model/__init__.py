"""The sparse-embedding CTR model: `ModelSpec` (what to build) and `CTRModel` (a tfrs.models.Model)."""
from recsys.model.ctr import CTRModel, EmbeddingSpec, ModelSpec, build_model, parse_activations

__all__ = ["CTRModel", "EmbeddingSpec", "ModelSpec", "build_model", "parse_activations"]
