"""The optimizer protocol: an ``init``/``update`` pair of pure functions over pytrees.

    opt_state          = optimizer.init(params)
    updates, opt_state = optimizer.update(grads, opt_state, params, loss=loss)
    params             = apply_updates(params, updates)

The contract every piece keeps:

- ``update(grads, state, params=None, **extra) -> (updates, new_state)``. ``extra`` carries optional
  per-step information, today only ``loss`` (the scalar mini-batch loss): pieces that need it (bold
  driver, reduce-on-plateau) read it, all others ignore it. ``chain`` hands ``params`` and ``extra``
  to every piece.
- A hyper-parameter documented as "float or schedule" may be a callable ``step -> value``, called
  with the number of updates done so far (an int32 scalar): the first update uses ``schedule(0)``.
- Every state is a NamedTuple of arrays (``chain``'s state is the plain tuple of its pieces'
  states); its structure, shapes and dtypes never change across updates, so it jits, scans and
  checkpoints with ``fnn.checkpoint``.
- A piece that counts updates keeps the count in an int32 field named ``step``; a piece that scales
  the updates by a learning rate keeps that rate in a field named ``learning_rate`` (a factor
  stacked on it, such as the bold driver's, in a field named ``scale``). ``step_count`` and
  ``learning_rate`` read them back for logging.
- Every float in a state follows the parameters' dtype: trees like the parameters leaf by leaf,
  scalars in ``scalar_dtype(params)`` (at least float32; a float64 run stays float64 throughout).
- Updates have the dtype of the gradients (hence of the parameters).
- ``value_at(value, step)`` reads a "float or schedule" hyper-parameter; the argument checks
  are ``fnn.checks``'.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp

from fnn.checks import check_real

Schedule = Callable[[jax.Array], jax.Array]  # step count -> value
ScalarOrSchedule = Union[float, Schedule]


class Optimizer(NamedTuple):
    """``init(params) -> state``;
    ``update(grads, state, params=None, **extra) -> (updates, new_state)``."""

    init: Callable[[Any], Any]
    update: Callable[..., Any]


class EmptyState(NamedTuple):
    """The state of a piece that remembers nothing."""


def apply_updates(params, updates):
    """``θ ← θ + u`` leaf by leaf, keeping each parameter's dtype."""
    return jax.tree_util.tree_map(lambda p, u: (p + u).astype(p.dtype), params, updates)


def value_at(value: ScalarOrSchedule, step):
    """A hyper-parameter at ``step``: a constant, or a schedule called with the step count."""
    return value(step) if callable(value) else jnp.asarray(value)


def scalar_dtype(params):
    """The dtype of the float scalars a piece keeps in its state (a product of momenta, a factor
    on the updates, a loss sum): the promoted dtype of the floating leaves of ``params``, at least
    float32 (float64 for float64 parameters, float32 for bfloat16 ones), or the default float
    dtype if there are none."""
    dtypes = [leaf.dtype for leaf in jax.tree_util.tree_leaves(params)
              if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating)]
    if not dtypes:
        return jnp.result_type(float)
    return jnp.promote_types(jnp.result_type(*dtypes), jnp.float32)


def check_learning_rate(owner: str, value):
    """A learning rate: a real number >= 0, or a schedule ``step -> value`` (checked when
    called). Raises a ValueError naming ``owner``."""
    if not callable(value):
        check_real(owner, "learning_rate", value,
                   expected="a real number >= 0 or a schedule step -> value",
                   valid=lambda v: v >= 0.0)


# --- gradient descent ----------------------------------------------------------------------------

class ScaleByLearningRateState(NamedTuple):
    """The step count (updates done so far) and the learning rate of the last update (of the first
    update before any)."""

    step: jax.Array
    learning_rate: jax.Array


def scale_by_learning_rate(learning_rate: ScalarOrSchedule) -> Optimizer:
    """Gradient descent: ``u_t = −η_t g_t``; ``η`` is a float or a schedule of t = 0, 1, ..."""
    check_learning_rate("scale_by_learning_rate", learning_rate)

    def init(params):
        step = jnp.zeros((), jnp.int32)
        rate = jnp.asarray(value_at(learning_rate, step), scalar_dtype(params))
        return ScaleByLearningRateState(step, rate)

    def update(grads, state, params=None, **extra):
        rate = value_at(learning_rate, state.step)
        updates = jax.tree_util.tree_map(lambda g: (-rate * g).astype(g.dtype), grads)
        new_rate = jnp.asarray(rate, state.learning_rate.dtype)
        return updates, ScaleByLearningRateState(state.step + 1, new_rate)

    return Optimizer(init, update)


# --- composition ---------------------------------------------------------------------------------

def chain(*optimizers: Optimizer) -> Optimizer:
    """Compose pieces: each one's updates are the next one's gradients; every piece receives
    ``params`` and ``extra``. The state is the tuple of the pieces' states, in order."""

    def init(params):
        return tuple(opt.init(params) for opt in optimizers)

    def update(grads, state, params=None, **extra):
        if type(state) is not tuple or len(state) != len(optimizers):
            raise ValueError(
                f"chain: expected the state made by this chain's init, a tuple of "
                f"{len(optimizers)} piece states; got {jax.tree_util.tree_structure(state)}.")
        new_state = []
        for opt, piece_state in zip(optimizers, state):
            grads, piece_state = opt.update(grads, piece_state, params, **extra)
            new_state.append(piece_state)
        return grads, tuple(new_state)

    return Optimizer(init, update)


# --- reading an optimizer state ------------------------------------------------------------------

def _is_named_tuple(node) -> bool:
    return isinstance(node, tuple) and hasattr(node, "_fields")


def named_states(opt_state) -> list:
    """Every NamedTuple inside ``opt_state`` (a chain's state, or nested wrappers' states), each
    before the states it contains, in chain order."""
    found = []
    for node in jax.tree_util.tree_leaves(opt_state, is_leaf=_is_named_tuple):
        if _is_named_tuple(node):
            found.append(node)
            found.extend(named_states(tuple(node)))
    return found


def _fields_named(opt_state, names: tuple, reader: str) -> list:
    values = [getattr(state, name) for state in named_states(opt_state)
              for name in names if name in state._fields]
    if not values:
        raise ValueError(
            f"{reader}: no state inside opt_state has a field named {' or '.join(names)}; got "
            f"{jax.tree_util.tree_structure(opt_state)}. Every alias keeps one; chain your "
            f"pieces with scale_by_learning_rate.")
    return values


def step_count(opt_state) -> jax.Array:
    """The number of updates done so far: the first field named ``step`` (outer states first)."""
    return _fields_named(opt_state, ("step",), "step_count")[0]


def learning_rate(opt_state) -> jax.Array:
    """The effective learning rate of the last update (of the first one before any update): the
    product of every field named ``learning_rate`` and of every factor on the updates kept in a
    field named ``scale`` (bold driver, reduce-on-plateau)."""
    return math.prod(_fields_named(opt_state, ("learning_rate", "scale"), "learning_rate"))


__all__ = ["EmptyState", "Optimizer", "ScaleByLearningRateState", "Schedule", "ScalarOrSchedule",
           "apply_updates", "chain", "learning_rate", "named_states",
           "scale_by_learning_rate", "step_count"]
