"""fnn: neural networks as pure JAX functions over parameter pytrees.

A layer is a pair of pure functions, ``init(key, input_shape) -> (output_shape, params, state)``
and ``apply(params, state, x, *, key=None, train=False, context=None) -> (y, new_state)``;
parameters are plain nested dicts of arrays. See README.md for a tour and `fnn.core` for the
protocol.
"""
from fnn import (activations, checkpoint, checks, classic, data, embeddings, init, layers, losses,
                 metrics, models, monitor, optim, param_masks, parallel, plots, sequence, testing,
                 validation)
from fnn.core import Layer, LayerError, count_params, init_shapes
from fnn.runs import load_run
from fnn.summary import summary
from fnn.train import (Batch, EarlyStopping, FitResult, TrainingDiverged, evaluate, fit,
                       make_train_step, predict)

__version__ = "0.1.0"

__all__ = [
    "Batch", "EarlyStopping", "FitResult", "Layer", "LayerError", "TrainingDiverged",
    "activations", "checkpoint", "checks", "classic", "count_params", "data", "embeddings",
    "evaluate", "fit", "init", "init_shapes", "layers", "load_run", "losses", "make_train_step",
    "metrics", "models", "monitor", "optim", "param_masks", "parallel", "plots", "predict", "sequence", "summary",
    "testing", "validation",
]
