"""Optimizers: hand-written `init`/`update` pairs over pytrees."""
from fnn.optim.base import (
    Optimizer, Schedule, ScaleByLearningRateState, apply_updates, chain, evaluate,
    scale_by_learning_rate)
from fnn.optim.sgd import sgd

_BY_NAME = {"sgd": sgd}


def get(name: str):
    """The optimizer factory called ``name`` (for configs)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(_BY_NAME)}.") from None


__all__ = ["Optimizer", "Schedule", "ScaleByLearningRateState", "apply_updates", "chain",
           "evaluate", "get", "scale_by_learning_rate", "sgd"]
