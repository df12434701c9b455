"""Schedules: plain functions ``step -> value`` for learning rates and other hyper-parameters.

Every factory here returns a jit-able function of the step count ``t`` (a Python int or an int32
array): the number of updates done before the current one, so an optimizer's first update
evaluates its schedules at ``t = 0``. Values are arrays of the default float dtype (float32, or
float64 under ``jax_enable_x64``). Schedules work element-wise, so ``schedule(jnp.arange(n))``
gives the first n values (for plots)::

    lr = warmup_then(cosine_decay(0.1, decay_steps=10_000), warmup_steps=500)
    optimizer = chain(..., scale_by_learning_rate(lr))

Schedules written in epochs become schedules in steps with ``per_epoch``. Segment boundaries are
half-open: the value of the segment starting at ``b`` is used from step ``b`` on.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from fnn.checks import check_callable, check_in_range, check_int, check_real
from fnn.optim.base import Schedule

__all__ = [
    "constant_schedule", "linear_schedule", "step_decay", "exponential_decay",
    "inverse_time_decay", "polynomial_decay", "cosine_decay", "piecewise_constant_schedule",
    "join_schedules", "warmup_then", "per_epoch", "DECAYS", "get_decay",
]


# --------------------------------------------------------------------------------------------
# Argument checks (``fnn.checks``); messages name the function and the argument.


def _finite(function: str, argument: str, value) -> float:
    """``value`` as a float if it is a finite number, else a ValueError."""
    return check_real(function, argument, value, expected="a finite real number")


def _positive(function: str, argument: str, value) -> float:
    """``value`` as a float if it is a finite number ``> 0``, else a ValueError."""
    return check_in_range(function, argument, value, 0, closed="neither")


def _boundaries(function: str, boundaries: Sequence[int], pieces: int, what: str) -> tuple[int, ...]:
    """Strictly increasing positive step counts, one fewer than the ``pieces`` they separate."""
    boundaries = tuple(check_int(function, "boundaries", b) for b in boundaries)
    if any(later <= earlier for earlier, later in zip(boundaries, boundaries[1:])):
        raise ValueError(f"{function}: `boundaries` must be strictly increasing; got {boundaries}.")
    if pieces != len(boundaries) + 1:
        raise ValueError(
            f"{function}: {len(boundaries)} boundaries separate {len(boundaries) + 1} {what}; "
            f"got {pieces} {what}.")
    return boundaries


# --------------------------------------------------------------------------------------------
# Shared arithmetic.


def _float(x) -> jax.Array:
    """``x`` as an array of the default float dtype."""
    return jnp.asarray(x, dtype=float)


def _progress(step, steps: int) -> jax.Array:
    """``min(t, T) / T``: the fraction of a transition of ``T`` steps done at step ``t``."""
    return _float(jnp.minimum(step, steps)) / steps


def _periods(step, period: int, staircase: bool) -> jax.Array:
    """``t / T``, or ``⌊t / T⌋`` with ``staircase``."""
    return _float(jnp.asarray(step) // period if staircase else _float(step) / period)


def _segment(boundaries: tuple[int, ...], step) -> jax.Array:
    """The index ``i`` of the segment holding step ``t``: the number of boundaries ``<= t``."""
    return jnp.searchsorted(jnp.asarray(boundaries, jnp.int32), step, side="right")


# --------------------------------------------------------------------------------------------
# Schedules.


def constant_schedule(value: float) -> Schedule:
    """``η_t = η`` for every step."""
    value = _finite("constant_schedule", "value", value)
    return lambda step: _float(value)


def _polynomial(initial_value: float, end_value: float, steps: int, power: float) -> Schedule:
    """``(η0 − η_end) (1 − min(t, T)/T)^p + η_end``; arguments already checked."""
    return lambda step: (initial_value - end_value) * (1 - _progress(step, steps)) ** power + end_value


def polynomial_decay(initial_value: float, end_value: float, decay_steps: int,
                     power: float = 1.0) -> Schedule:
    """``η_t = (η0 − η_end) (1 − min(t, T)/T)^p + η_end`` with ``T = decay_steps``, ``p = power``.

    Reaches ``η_end`` at ``t = T`` and stays there.
    """
    return _polynomial(
        _finite("polynomial_decay", "initial_value", initial_value),
        _finite("polynomial_decay", "end_value", end_value),
        check_int("polynomial_decay", "decay_steps", decay_steps),
        _positive("polynomial_decay", "power", power))


def linear_schedule(start_value: float, end_value: float, transition_steps: int) -> Schedule:
    """``η_t = η_start + (η_end − η_start) min(t, T)/T``: a linear warm-up (or decay) over ``T``
    steps, constant afterwards. The same as ``polynomial_decay(..., power=1)``.
    """
    return _polynomial(
        _finite("linear_schedule", "start_value", start_value),
        _finite("linear_schedule", "end_value", end_value),
        check_int("linear_schedule", "transition_steps", transition_steps),
        1.0)


def _exponential(initial_value: float, rate: float, period: int, staircase: bool) -> Schedule:
    """``η0 · r^(t/T)`` (exponent ``⌊t/T⌋`` with ``staircase``); arguments already checked."""
    return lambda step: initial_value * rate ** _periods(step, period, staircase)


def exponential_decay(initial_value: float, decay_rate: float, decay_steps: int,
                      staircase: bool = False) -> Schedule:
    """``η_t = η0 · r^(t/T)`` with ``r = decay_rate``, ``T = decay_steps``.

    With ``staircase`` the exponent is ``⌊t/T⌋``: the value drops by ``r`` every ``T`` steps.
    """
    return _exponential(
        _finite("exponential_decay", "initial_value", initial_value),
        _positive("exponential_decay", "decay_rate", decay_rate),
        check_int("exponential_decay", "decay_steps", decay_steps),
        staircase)


def step_decay(initial_value: float, decay_factor: float, decay_every: int) -> Schedule:
    """``η_t = η0 · γ^⌊t/n⌋`` with ``γ = decay_factor``, ``n = decay_every`` (PyTorch's ``StepLR``).

    The same as ``exponential_decay(initial_value, decay_factor, decay_every, staircase=True)``.
    """
    return _exponential(
        _finite("step_decay", "initial_value", initial_value),
        _positive("step_decay", "decay_factor", decay_factor),
        check_int("step_decay", "decay_every", decay_every),
        staircase=True)


def inverse_time_decay(initial_value: float, decay_rate: float, decay_steps: int,
                       staircase: bool = False) -> Schedule:
    """``η_t = η0 / (1 + r · t/T)`` with ``r = decay_rate``, ``T = decay_steps``.

    With ``staircase`` the ratio is ``⌊t/T⌋``.
    """
    initial_value = _finite("inverse_time_decay", "initial_value", initial_value)
    check_in_range("inverse_time_decay", "decay_rate", decay_rate, 0)
    decay_steps = check_int("inverse_time_decay", "decay_steps", decay_steps)

    def schedule(step):
        return initial_value / (1 + decay_rate * _periods(step, decay_steps, staircase))

    return schedule


def cosine_decay(initial_value: float, decay_steps: int, end_value: float = 0.0) -> Schedule:
    """``η_t = η_end + (η0 − η_end) · ½ (1 + cos(π min(t, T)/T))`` with ``T = decay_steps``.

    Reaches ``η_end`` at ``t = T`` and stays there. TensorFlow's and optax's ``alpha`` (a
    fraction of ``η0``) is ``end_value = alpha * initial_value``.
    """
    initial_value = _finite("cosine_decay", "initial_value", initial_value)
    end_value = _finite("cosine_decay", "end_value", end_value)
    decay_steps = check_int("cosine_decay", "decay_steps", decay_steps)

    def schedule(step):
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * _progress(step, decay_steps)))
        return end_value + (initial_value - end_value) * cosine

    return schedule


def piecewise_constant_schedule(boundaries: Sequence[int], values: Sequence[float]) -> Schedule:
    """``η_t = values[i]`` for ``boundaries[i−1] <= t < boundaries[i]`` (``len(values) =
    len(boundaries) + 1``), like PyTorch's ``MultiStepLR``: the new value starts at the boundary.
    """
    values = tuple(_finite("piecewise_constant_schedule", "values", v) for v in values)
    boundaries = _boundaries("piecewise_constant_schedule", boundaries, len(values), "values")
    return lambda step: _float(values)[_segment(boundaries, step)]


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """``η_t = schedules[i](t − boundaries[i−1])`` for ``boundaries[i−1] <= t < boundaries[i]``.

    Each schedule restarts its count at its own boundary (the first at 0), so
    ``join_schedules([warm_up, decay], [1000])`` runs ``decay`` from its step 0 at step 1000.
    """
    schedules = tuple(check_callable("join_schedules", "schedules", s, "functions step -> value")
                      for s in schedules)
    boundaries = _boundaries("join_schedules", boundaries, len(schedules), "schedules")
    starts = (0, *boundaries)

    def joined(step):
        step = jnp.asarray(step)
        # Every piece is evaluated (at a clamped, non-negative step) and the right one selected.
        values = [_float(s(jnp.maximum(step - start, 0))) for s, start in zip(schedules, starts)]
        return jnp.choose(_segment(boundaries, step), values, mode="clip")

    return joined


def warmup_then(schedule: Schedule, warmup_steps: int, start_value: float = 0.0) -> Schedule:
    """A linear warm-up from ``start_value`` to ``schedule(0)`` over ``warmup_steps`` steps, then
    ``schedule(t − warmup_steps)``: ``η_t = η_start + (schedule(0) − η_start) t/W`` for ``t < W``.
    """
    check_callable("warmup_then", "schedule", schedule, "a function step -> value")
    warmup = _polynomial(_finite("warmup_then", "start_value", start_value), float(schedule(0)),
                         check_int("warmup_then", "warmup_steps", warmup_steps), 1.0)
    return join_schedules([warmup, schedule], [warmup_steps])


def per_epoch(schedule: Schedule, steps_per_epoch: int, staircase: bool = True) -> Schedule:
    """A schedule written in epochs as one in steps: ``η_t = schedule(⌊t / steps_per_epoch⌋)``,
    or, without ``staircase``, ``schedule(t / steps_per_epoch)`` read at the fractional epoch (the
    rate then changes every step)."""
    check_callable("per_epoch", "schedule", schedule, "a function epoch -> value")
    steps_per_epoch = check_int("per_epoch", "steps_per_epoch", steps_per_epoch)
    if staircase:
        return lambda step: schedule(jnp.asarray(step) // steps_per_epoch)
    return lambda step: schedule(_float(step) / steps_per_epoch)


# The schedules a config may name (``[schedule] name = "cosine_decay"``): each takes the initial
# value as its first argument, the optimizer's learning rate.
DECAYS = {
    "constant": constant_schedule, "polynomial_decay": polynomial_decay,
    "exponential_decay": exponential_decay, "step_decay": step_decay,
    "inverse_time_decay": inverse_time_decay, "cosine_decay": cosine_decay,
}


def get_decay(name: str):
    """The schedule factory called ``name`` in `DECAYS` (for configs): ``get_decay("cosine_decay")(0.1,
    decay_steps=100)``; a ValueError names the known ones."""
    try:
        return DECAYS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown schedule {name!r}; expected one of {sorted(DECAYS)}.") from None
