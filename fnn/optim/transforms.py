"""Gradient transformations that compose with any rule in a ``chain``.

Clipping, L2/L1 weight decay, masking and freezing sub-trees, gradient accumulation, and two
learning-rate rules driven by the loss (the course's bold driver, reduce-on-plateau). Each is an
``Optimizer``: ``update(grads, state, params=None, **extra) -> (updates, state)``.

The loss-driven rules read the scalar mini-batch loss from ``extra`` and ignore everything else;
all other transforms ignore ``extra`` (the composite ones pass it on)::

    optimizer = chain(clip_by_global_norm(1.0), scale_by_learning_rate(0.1), scale_by_bold_driver())
    updates, opt_state = optimizer.update(grads, opt_state, params, loss=loss)

Masks say which leaves a transform touches, with the meaning of ``fnn.param_masks`` (the same
as for ``fnn.losses.l2_penalty`` and the monitor): None (the weights, not biases), a bool, a
prefix tree of bools whose missing dict keys mean False (``{"dense_0": True}``), a collection of
layer names, or a predicate ``(path, leaf) -> bool``. Masks are static: they are resolved to
Python bools at trace time.

Every float scalar kept in a state here has the parameters' dtype (``scalar_dtype``).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn import param_masks
from fnn.checks import check_choice, check_in_range, check_int, check_nonnegative
from fnn.optim.base import EmptyState, Optimizer, ScalarOrSchedule, scalar_dtype, value_at

__all__ = [
    "ClipByGlobalNormState", "WeightDecayState", "MaskedState",
    "AccumulateGradientsState", "BoldDriverState", "ReduceOnPlateauState",
    "global_norm", "clip", "clip_by_global_norm", "set_to_zero", "negate_gradients", "masked",
    "freeze",
    "add_decayed_weights", "add_l1_decay", "accumulate_gradients", "scale_by_bold_driver",
    "reduce_on_plateau",
]

_tree_map = jax.tree_util.tree_map


def _scalar(value, dtype) -> jax.Array:
    """``value`` as a scalar of ``dtype`` (``scalar_dtype(params)``, or a state field's dtype)."""
    return jnp.asarray(value, dtype)


def _scale(tree, factor):
    """``factor · x`` for every leaf ``x``, keeping each leaf's dtype."""
    return _tree_map(lambda x: (factor * x).astype(x.dtype), tree)


# --------------------------------------------------------------------------------------------
# Clipping.


def clip(max_delta: float) -> Optimizer:
    """``u = max(−Δ0, min(Δ0, g))`` element-wise, with ``Δ0 = max_delta`` (min-char-rnn uses 5)."""
    check_nonnegative("clip", "max_delta", max_delta)

    def update(grads, state, params=None, **extra):
        return _tree_map(lambda g: jnp.clip(g, -max_delta, max_delta), grads), state

    return Optimizer(lambda params: EmptyState(), update)


class ClipByGlobalNormState(NamedTuple):
    """``global_norm``: ``‖g‖`` of the last gradients, before clipping (``inf``/NaN if they were)."""

    global_norm: jax.Array


def global_norm(tree) -> jax.Array:
    """``‖g‖ = sqrt(Σ g²)`` over every element of every leaf (at least float32 precision)."""
    squares = [jnp.sum(jnp.square(x.astype(jnp.promote_types(x.dtype, jnp.float32))))
               for x in jax.tree_util.tree_leaves(tree)]
    return jnp.sqrt(sum(squares, jnp.zeros((), jnp.float32)))


def clip_by_global_norm(max_norm: float) -> Optimizer:
    """``u = g · min(1, c/‖g‖)`` with ``c = max_norm`` and ``‖g‖`` the norm over all leaves.

    Gradients with ``‖g‖ <= c`` pass unchanged (bit for bit), so ``‖g‖ = c = 0`` gives zeros, not
    NaN. A non-finite norm (an ``inf`` or NaN anywhere) makes every update NaN: divergence shows
    up in the parameters and the next loss instead of being clipped into a silent zero step.
    The state records ``‖g‖`` for logging.
    """
    check_nonnegative("clip_by_global_norm", "max_norm", max_norm)

    def init(params):
        return ClipByGlobalNormState(_scalar(0, scalar_dtype(params)))

    def update(grads, state, params=None, **extra):
        norm = global_norm(grads)
        too_long = norm > max_norm
        factor = jnp.where(too_long, max_norm / jnp.where(too_long, norm, 1.0), 1.0)
        factor = jnp.where(jnp.isfinite(norm), factor, jnp.nan)
        return _scale(grads, factor), ClipByGlobalNormState(_scalar(norm, state.global_norm.dtype))

    return Optimizer(init, update)


# --------------------------------------------------------------------------------------------
# Masks: applying a transform to part of the tree.


def _mask_flags(function: str, mask, tree) -> list[bool]:
    """One Python bool per leaf of ``tree`` (in ``tree_leaves`` order), see ``fnn.param_masks``."""
    return param_masks.flags(mask, tree, where=function)


def _keep(tree, flags: list[bool]):
    """``tree`` with its unselected leaves replaced by None (an empty sub-tree, which transforms
    skip), so an inner transform sees, and keeps state for, the selected leaves only."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef.unflatten([leaf if flag else None for leaf, flag in zip(leaves, flags)])


def _fill(selected, flags: list[bool], others):
    """The leaves of ``selected`` (a ``_keep`` tree) where flagged, those of ``others`` elsewhere."""
    other_leaves, treedef = jax.tree_util.tree_flatten(others)
    selected_leaves = treedef.flatten_up_to(selected)
    return treedef.unflatten([s if flag else o
                              for s, o, flag in zip(selected_leaves, other_leaves, flags)])


class MaskedState(NamedTuple):
    """The inner transform's state, over the selected leaves (None in place of the others)."""

    inner_state: Any


def _masked(function: str, inner: Optimizer, flags_of: Callable[[Any], list[bool]]) -> Optimizer:
    """``inner`` on the leaves ``flags_of(params)`` selects; the other gradients pass unchanged."""

    def init(params):
        return MaskedState(inner.init(_keep(params, flags_of(params))))

    def update(grads, state, params=None, **extra):
        flags = flags_of(grads if params is None else params)
        kept_params = None if params is None else _keep(params, flags)
        updates, inner_state = inner.update(_keep(grads, flags), state.inner_state, kept_params,
                                            **extra)
        return _fill(updates, flags, grads), MaskedState(inner_state)

    return Optimizer(init, update)


def masked(inner: Optimizer, mask) -> Optimizer:
    """Apply ``inner`` to the leaves ``mask`` selects; the other gradients pass unchanged.

    ``inner`` sees only the selected sub-tree (so ``masked(clip_by_global_norm(1.0), mask)``
    clips the norm of the selected leaves) and keeps state for it alone.
    """
    return _masked("masked", inner, partial(_mask_flags, "masked", mask))


def negate_gradients() -> Optimizer:
    """``u = −g``. First in a chain it turns any descent rule into ascent: ``θ ← θ + ...``
    climbs the objective (every alias's ``maximize=True``; PyTorch's ``maximize``)."""

    def update(grads, state, params=None, **extra):
        return _tree_map(jnp.negative, grads), state

    return Optimizer(lambda params: EmptyState(), update)


def set_to_zero() -> Optimizer:
    """``u = 0``."""

    def update(grads, state, params=None, **extra):
        return _tree_map(jnp.zeros_like, grads), state

    return Optimizer(lambda params: EmptyState(), update)


def freeze(mask) -> Optimizer:
    """``u = 0`` on the leaves ``mask`` selects (``{"dense_0": True}`` freezes a layer); the
    other updates pass unchanged. Put it last in a chain, after any rule that adds to updates.
    """
    return _masked("freeze", set_to_zero(), partial(_mask_flags, "freeze", mask))


# --------------------------------------------------------------------------------------------
# Weight decay.


class WeightDecayState(NamedTuple):
    """``step``: updates done so far (the weight decay may be a schedule of it)."""

    step: jax.Array


def _add_decay(function: str, weight_decay: ScalarOrSchedule, mask,
               penalty_gradient: Callable[[jax.Array], jax.Array]) -> Optimizer:
    """``u = g + λ_t · penalty_gradient(w)`` on the weights ``mask`` selects (default: not biases)."""
    if not callable(weight_decay):
        check_nonnegative(function, "weight_decay", weight_decay)

    def init(params):
        return WeightDecayState(jnp.zeros((), jnp.int32))

    def update(grads, state, params=None, **extra):
        if params is None:
            raise ValueError(f"{function}: needs the parameters; call update(grads, state, params).")
        decay = value_at(weight_decay, state.step)
        updates = _tree_map(lambda g, w: (g + decay * penalty_gradient(w)).astype(g.dtype),
                            grads, params)
        return updates, WeightDecayState(state.step + 1)

    def flags_of(params):
        return _mask_flags(function, mask, params)

    return _masked(function, Optimizer(init, update), flags_of)


def add_decayed_weights(weight_decay: ScalarOrSchedule, mask=None) -> Optimizer:
    """L2 weight decay as a transform: ``u = g + λ w``, the gradient of ``λ/2 Σ w²``.

    ``weight_decay`` (λ) may be a schedule. ``mask`` selects the decayed leaves
    (``fnn.param_masks``); by default the weights: every leaf except biases and normalisation
    parameters (``b``, ``bias``, ``gamma``, ``beta``, ...). The course's ``C = C0 + λ/(2P) Σ w²`` over P
    training patterns, with the mean loss ``C0``, is ``add_decayed_weights(λ / P)``.
    """
    return _add_decay("add_decayed_weights", weight_decay, mask, lambda w: w)


def add_l1_decay(weight_decay: ScalarOrSchedule, mask=None) -> Optimizer:
    """L1 weight decay as a transform: ``u = g + λ sign(w)`` (``sign(0) = 0``), the gradient of
    ``λ Σ|w|``. ``weight_decay`` and ``mask`` as in ``add_decayed_weights``; the course's
    ``C = C0 + λ/P Σ|w|`` is ``add_l1_decay(λ / P)``.
    """
    return _add_decay("add_l1_decay", weight_decay, mask, jnp.sign)


# --------------------------------------------------------------------------------------------
# Gradient accumulation.


class AccumulateGradientsState(NamedTuple):
    """``micro_step``: micro-batches summed since the last inner update (``0 <= micro_step < k``);
    ``gradient_sum`` and ``loss_sum``: their sums; ``inner_state``: the wrapped rule's state."""

    micro_step: jax.Array
    gradient_sum: Any
    loss_sum: jax.Array
    inner_state: Any


def accumulate_gradients(inner: Optimizer, every_k: int) -> Optimizer:
    """Apply ``inner`` to the mean gradient of every ``k = every_k`` micro-batches (MultiSteps).

    Calls 1 … k−1 of each cycle return zero updates and leave ``inner``'s state alone; call k
    returns ``inner.update((g_1 + … + g_k)/k, ...)``, so ``inner`` counts steps (and evaluates
    its schedules) in whole batches. A ``loss=`` given to ``update`` reaches ``inner`` as the
    mean over the k micro-batches.
    """
    every_k = check_int("accumulate_gradients", "every_k", every_k)

    def init(params):
        return AccumulateGradientsState(jnp.zeros((), jnp.int32), _tree_map(jnp.zeros_like, params),
                                        _scalar(0, scalar_dtype(params)), inner.init(params))

    def update(grads, state, params=None, **extra):
        gradient_sum = _tree_map(lambda s, g: (s + g).astype(s.dtype), state.gradient_sum, grads)
        loss_sum = state.loss_sum
        if "loss" in extra:
            loss_sum = loss_sum + _scalar(extra["loss"], loss_sum.dtype)
        micro_step = state.micro_step + 1

        def apply_inner():
            mean_extra = {**extra, "loss": loss_sum / every_k} if "loss" in extra else extra
            mean = _tree_map(lambda s: (s / every_k).astype(s.dtype), gradient_sum)
            updates, inner_state = inner.update(mean, state.inner_state, params, **mean_extra)
            return updates, AccumulateGradientsState(
                jnp.zeros_like(micro_step), _tree_map(jnp.zeros_like, gradient_sum),
                jnp.zeros_like(loss_sum), inner_state)

        def wait():
            return _tree_map(jnp.zeros_like, grads), AccumulateGradientsState(
                micro_step, gradient_sum, loss_sum, state.inner_state)

        return jax.lax.cond(micro_step == every_k, apply_inner, wait)

    return Optimizer(init, update)


# --------------------------------------------------------------------------------------------
# Learning-rate rules driven by the loss. Each multiplies the updates by a factor ``s`` kept in
# the state field ``learning_rate`` (params' dtype, starting at 1; ``fnn.optim.learning_rate`` multiplies
# it into the base rate) and adjusts it at the end of every period of ``steps_per_period`` steps
# (an epoch, or 1) from the period's mean loss.


def _loss(function: str, extra: dict, dtype) -> jax.Array:
    """The scalar loss passed to ``update`` as ``loss=``, or an error saying how to pass it."""
    if "loss" not in extra:
        raise TypeError(
            f"{function}: needs the mini-batch loss; call update(grads, state, params, loss=loss) "
            f"(fnn.train.fit does so).")
    loss = jnp.asarray(extra["loss"])
    if loss.shape != ():
        raise ValueError(f"{function}: loss must be a scalar (the mean mini-batch loss); "
                         f"got shape {loss.shape}.")
    return loss.astype(dtype)


def _period_rule(function: str, steps_per_period: int, initial_state: Callable[[Any], Any],
                 end_period: Callable[[Any, jax.Array], Any]) -> Optimizer:
    """``u = s · g`` with ``s = state.learning_rate``, where ``state`` (fields ``step``,
    ``learning_rate``, ``loss_sum``, ...) becomes ``end_period(state, mean loss)`` after every
    ``steps_per_period`` steps. The factor set at the end of a period applies to that step's update.
    """

    def update(grads, state, params=None, **extra):
        loss_sum = state.loss_sum + _loss(function, extra, state.loss_sum.dtype)
        ended = end_period(state, loss_sum / steps_per_period)._replace(
            loss_sum=jnp.zeros_like(loss_sum))
        period_over = (state.step + 1) % steps_per_period == 0
        state = _tree_map(partial(jnp.where, period_over), ended, state._replace(loss_sum=loss_sum))
        state = state._replace(step=state.step + 1)
        return _scale(grads, state.learning_rate), state

    return Optimizer(initial_state, update)


class BoldDriverState(NamedTuple):
    """``step``: updates done so far; ``learning_rate``: the factor ``s`` on the updates;
    ``loss_sum``: the loss summed over the current period; ``previous_loss``: the last period's
    mean loss (NaN before the first period ends)."""

    step: jax.Array
    learning_rate: jax.Array
    loss_sum: jax.Array
    previous_loss: jax.Array


def scale_by_bold_driver(steps_per_period: int = 1, max_error_ratio: float = 1.04,
                         decrease_factor: float = 0.7, increase_factor: float = 1.05) -> Optimizer:
    """The course's bold driver: ``u = s · g``, with ``s`` adjusted after every period.

    With ``ε_i`` the mean loss of period i (``steps_per_period`` steps: an epoch, or 1), ``k_w =
    max_error_ratio``, ``ρ_d = decrease_factor``, ``ρ_i = increase_factor``: if ``ε_i > k_w ε_{i−1}``
    then ``s ← ρ_d s``, else ``s ← ρ_i s``. ``s`` starts at 1 and the first period only records
    ``ε_1``. Chain it after a learning rate η, so the effective rate is ``η s``::

        chain(scale_by_learning_rate(0.1), scale_by_bold_driver(steps_per_period=len(batches)))

    Needs ``loss=`` in every ``update``. The test is computed as ``ε_i > ε_{i−1} + (k_w − 1)|ε_{i−1}|``:
    ``k_w ε_{i−1}`` for positive losses, and still "up by more than k_w − 1" for negative ones. A
    NaN loss counts as up.
    """
    function = "scale_by_bold_driver"
    steps_per_period = check_int(function, "steps_per_period", steps_per_period)
    check_in_range(function, "max_error_ratio", max_error_ratio, 1)
    check_in_range(function, "decrease_factor", decrease_factor, 0, 1, closed="right")
    check_in_range(function, "increase_factor", increase_factor, 1)

    def initial_state(params):
        dtype = scalar_dtype(params)
        return BoldDriverState(jnp.zeros((), jnp.int32), _scalar(1, dtype), _scalar(0, dtype),
                               _scalar(jnp.nan, dtype))

    def end_period(state, loss):
        previous = state.previous_loss
        within = loss <= previous + (max_error_ratio - 1) * jnp.abs(previous)  # False for NaN
        factor = jnp.where(within, increase_factor, decrease_factor)
        first_period = state.step < steps_per_period
        rate = jnp.where(first_period, state.learning_rate, factor * state.learning_rate)
        return state._replace(learning_rate=_scalar(rate, state.learning_rate.dtype),
                              previous_loss=loss)

    return _period_rule(function, steps_per_period, initial_state, end_period)


class ReduceOnPlateauState(NamedTuple):
    """``step``: updates done so far; ``learning_rate``: the factor ``s`` on the updates;
    ``loss_sum``: the loss summed over the current period; ``best_loss``: the best period mean so
    far; ``bad_periods``: periods since it last improved; ``cooldown_left``: periods left before
    bad periods count again."""

    step: jax.Array
    learning_rate: jax.Array
    loss_sum: jax.Array
    best_loss: jax.Array
    bad_periods: jax.Array
    cooldown_left: jax.Array


def reduce_on_plateau(factor: float = 0.1, patience: int = 10, threshold: float = 1e-4,
                      threshold_mode: str = "relative", cooldown: int = 0, min_scale: float = 0.0,
                      steps_per_period: int = 1) -> Optimizer:
    """``u = s · g``, with ``s ← max(factor · s, min_scale)`` when the loss stops improving.

    At the end of every period (``steps_per_period`` steps) with mean loss ``ε``: ``ε`` improves
    on the best ``ε*`` if ``ε < ε* − δ``, with ``δ = threshold · |ε*|`` (``"relative"``) or
    ``δ = threshold`` (``"absolute"``); the ``|ε*|`` keeps the test right for negative losses. A
    NaN loss never improves. After more than ``patience`` periods without improvement ``s`` is
    reduced, then ``cooldown`` periods pass before bad periods count again. ``s`` starts at 1;
    chain it after a learning rate. The defaults and the counting are PyTorch's
    ``ReduceLROnPlateau(mode="min")`` (its ``min_lr`` is ``min_scale`` times the base rate).
    Needs ``loss=`` in every ``update``.
    """
    function = "reduce_on_plateau"
    check_in_range(function, "factor", factor, 0, 1, closed="neither")
    patience = check_int(function, "patience", patience, minimum=0)
    check_nonnegative(function, "threshold", threshold)
    check_choice(function, "threshold_mode", threshold_mode, ("relative", "absolute"))
    cooldown = check_int(function, "cooldown", cooldown, minimum=0)
    check_nonnegative(function, "min_scale", min_scale)
    steps_per_period = check_int(function, "steps_per_period", steps_per_period)

    def initial_state(params):
        zero, dtype = jnp.zeros((), jnp.int32), scalar_dtype(params)
        return ReduceOnPlateauState(zero, _scalar(1, dtype), _scalar(0, dtype),
                                    _scalar(jnp.inf, dtype), zero, zero)

    def end_period(state, loss):
        best = state.best_loss
        margin = threshold * jnp.abs(best) if threshold_mode == "relative" else threshold
        improved = loss < best - jnp.where(jnp.isfinite(best), margin, 0)  # False for NaN
        bad_periods = jnp.where(improved | (state.cooldown_left > 0), 0, state.bad_periods + 1)
        reduce = bad_periods > patience
        rate = jnp.where(reduce, jnp.maximum(factor * state.learning_rate, min_scale),
                         state.learning_rate)
        return state._replace(
            learning_rate=_scalar(rate, state.learning_rate.dtype),
            best_loss=jnp.where(improved, loss, best),
            bad_periods=jnp.where(reduce, 0, bad_periods),
            cooldown_left=jnp.where(reduce, cooldown, jnp.maximum(state.cooldown_left - 1, 0)))

    return _period_rule(function, steps_per_period, initial_state, end_period)
