"""The optimizer protocol: an `init`/`update` pair of pure functions over pytrees.

    opt_state        = optimizer.init(params)
    updates, state   = optimizer.update(grads, opt_state, params)
    params           = apply_updates(params, updates)
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp

Schedule = Callable[[jax.Array], jax.Array]  # step count -> value
ScalarOrSchedule = Union[float, Schedule]


class Optimizer(NamedTuple):
    """``init(params) -> opt_state``; ``update(grads, opt_state, params=None) -> (updates, opt_state)``."""

    init: Callable[[Any], Any]
    update: Callable[..., Any]


def apply_updates(params, updates):
    """``θ ← θ + u`` leaf by leaf, keeping each parameter's dtype."""
    return jax.tree_util.tree_map(lambda p, u: (p + u).astype(p.dtype), params, updates)


def evaluate(value: ScalarOrSchedule, step):
    """A hyper-parameter at ``step``: a constant, or a schedule called with the step count."""
    return value(step) if callable(value) else jnp.asarray(value)


class ScaleByLearningRateState(NamedTuple):
    """The step count (updates done so far) and the learning rate used by the last update."""

    step: jax.Array
    learning_rate: jax.Array


def scale_by_learning_rate(learning_rate: ScalarOrSchedule) -> Optimizer:
    """``u = −η_t g``, with ``η_t`` a constant or a schedule of the step count t = 0, 1, ..."""

    def init(params):
        return ScaleByLearningRateState(jnp.zeros((), jnp.int32),
                                        jnp.asarray(evaluate(learning_rate, 0), jnp.float32))

    def update(grads, state, params=None):
        lr = evaluate(learning_rate, state.step)
        updates = jax.tree_util.tree_map(lambda g: (-lr * g).astype(g.dtype), grads)
        return updates, ScaleByLearningRateState(state.step + 1, jnp.asarray(lr, jnp.float32))

    return Optimizer(init, update)


def chain(*optimizers: Optimizer) -> Optimizer:
    """Compose gradient transformations: each one's updates are the next one's gradients."""

    def init(params):
        return tuple(opt.init(params) for opt in optimizers)

    def update(grads, state, params=None):
        new_state = []
        for opt, s in zip(optimizers, state):
            grads, s = opt.update(grads, s, params)
            new_state.append(s)
        return grads, tuple(new_state)

    return Optimizer(init, update)
