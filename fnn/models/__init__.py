"""Ready-made models built from `fnn.layers`."""
from fnn.models.mlp import mlp

__all__ = ["mlp"]
