"""Schedules against their formulas, under jit, and evaluated at the right step by optimizers.

Compile time: a `jnp` call outside `jax.jit` compiles a program per primitive, so steps are
NumPy arrays and schedules read at several steps are jitted once (one program each), except where
a test is about eager calls."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.optim import base
from fnn.optim import schedules as S

# (schedule, its formula as a plain Python function of the step t)
FORMULAS = {
    "constant": (S.constant_schedule(0.3), lambda t: 0.3),
    "step_decay": (S.step_decay(2.0, 0.5, decay_every=3), lambda t: 2.0 * 0.5 ** (t // 3)),
    "exponential": (S.exponential_decay(2.0, 0.5, decay_steps=3), lambda t: 2.0 * 0.5 ** (t / 3)),
    "exponential_staircase": (S.exponential_decay(2.0, 0.5, 3, staircase=True),
                              lambda t: 2.0 * 0.5 ** (t // 3)),
    "inverse_time": (S.inverse_time_decay(2.0, 0.5, decay_steps=4),
                     lambda t: 2.0 / (1 + 0.5 * t / 4)),
    "inverse_time_staircase": (S.inverse_time_decay(2.0, 0.5, 4, staircase=True),
                               lambda t: 2.0 / (1 + 0.5 * (t // 4))),
    "polynomial": (S.polynomial_decay(2.0, 0.1, decay_steps=8, power=2.0),
                   lambda t: (2.0 - 0.1) * (1 - min(t, 8) / 8) ** 2 + 0.1),
    "linear": (S.linear_schedule(0.0, 1.0, transition_steps=8), lambda t: min(t, 8) / 8),
    "cosine": (S.cosine_decay(2.0, decay_steps=8),
               lambda t: 2.0 * 0.5 * (1 + math.cos(math.pi * min(t, 8) / 8))),
    "cosine_to_end_value": (S.cosine_decay(2.0, 8, end_value=0.2),
                            lambda t: 0.2 + 1.8 * 0.5 * (1 + math.cos(math.pi * min(t, 8) / 8))),
    "piecewise": (S.piecewise_constant_schedule([3, 7], [1.0, 0.1, 0.01]),
                  lambda t: 1.0 if t < 3 else 0.1 if t < 7 else 0.01),
    "warmup_then_cosine": (S.warmup_then(S.cosine_decay(2.0, 8), warmup_steps=4),
                           lambda t: 2.0 * t / 4 if t < 4 else
                           2.0 * 0.5 * (1 + math.cos(math.pi * min(t - 4, 8) / 8))),
    "per_epoch": (S.per_epoch(S.step_decay(1.0, 0.1, decay_every=2), steps_per_epoch=5),
                  lambda t: 0.1 ** ((t // 5) // 2)),
}
STEPS = [0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 100]  # t = 0, the boundaries at 3, 4, 7, 8, and t >= T


@pytest.mark.parametrize("name", FORMULAS)
def test_schedule_matches_its_formula_jitted_and_eager(name, x64):
    schedule, formula = FORMULAS[name]
    jitted = jax.jit(schedule)(np.asarray(STEPS, np.int32))  # element-wise over an array
    np.testing.assert_allclose(jitted, [formula(t) for t in STEPS], rtol=1e-12, atol=1e-15)
    for t in (0, 8):  # a Python int, eagerly
        assert float(schedule(t)) == pytest.approx(formula(t), rel=1e-12, abs=1e-15)


def test_values_have_the_default_float_dtype():
    assert S.cosine_decay(1.0, 10)(jnp.asarray(3, jnp.int32)).dtype == jnp.float32


def test_schedules_jit_on_a_scalar_step_and_vmap():
    schedule = S.join_schedules([S.linear_schedule(0.0, 1.0, 2), S.step_decay(1.0, 0.5, 1)], [2])
    assert float(jax.jit(schedule)(np.int32(3))) == 0.5
    np.testing.assert_array_equal(jax.jit(jax.vmap(schedule))(np.arange(4, dtype=np.int32)),
                                  [0.0, 0.5, 1.0, 0.5])


def test_values_are_float64_under_x64(x64):
    assert S.cosine_decay(1.0, 10)(jnp.asarray(3, jnp.int32)).dtype == jnp.float64


def test_polynomial_and_cosine_hold_their_end_value_after_decay_steps():
    for schedule in (S.polynomial_decay(1.0, 0.25, 10, power=3.0), S.cosine_decay(1.0, 10, 0.25)):
        schedule = jax.jit(schedule)  # one program for the three (scalar) steps
        assert [float(schedule(t)) for t in (10, 11, 10_000)] == [0.25] * 3


def test_join_schedules_restarts_the_count_at_each_boundary():
    joined = S.join_schedules([S.constant_schedule(5.0), S.linear_schedule(0.0, 4.0, 4),
                               S.step_decay(1.0, 0.5, 1)], boundaries=[2, 6])
    joined = jax.jit(joined)  # one program for every (scalar) step
    assert [float(joined(t)) for t in range(9)] == [5, 5, 0, 1, 2, 3, 1, 0.5, 0.25]


def test_piecewise_constant_switches_at_the_boundary():
    schedule = jax.jit(S.piecewise_constant_schedule([10], [1.0, 0.5]))
    assert [float(schedule(t)) for t in (9, 10, 11)] == [1.0, 0.5, 0.5]


def test_warmup_then_starts_at_start_value_and_joins_continuously():
    schedule = jax.jit(S.warmup_then(S.constant_schedule(0.8), warmup_steps=4, start_value=0.4))
    assert [float(schedule(t)) for t in range(6)] == pytest.approx([0.4, 0.5, 0.6, 0.7, 0.8, 0.8])


def test_per_epoch_evaluates_the_epoch_schedule_at_step_floor_division():
    epoch_of = S.per_epoch(lambda epoch: jnp.asarray(epoch, jnp.float32), steps_per_epoch=3)
    assert [int(epoch_of(t)) for t in range(10)] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert int(jax.jit(epoch_of)(np.int32(7))) == 2


def test_optimizer_evaluates_its_schedule_at_the_update_count():
    """The first update uses schedule(0), the n-th schedule(n − 1), jitted or not."""
    schedule = S.piecewise_constant_schedule([1, 2], [1.0, 10.0, 100.0])
    optimizer = base.chain(base.scale_by_learning_rate(schedule))
    grads = {"w": jax.device_put(np.ones(2, np.float32))}
    for update in (optimizer.update, jax.jit(optimizer.update)):
        state = optimizer.init(grads)
        assert int(base.step_count(state)) == 0
        rates = []
        for _ in range(4):
            updates, state = update(grads, state)
            rates.append(-float(updates["w"][0]))
        assert rates == [1.0, 10.0, 100.0, 100.0]
        assert int(base.step_count(state)) == 4


@pytest.mark.parametrize("make, match", [
    (lambda: S.exponential_decay(1.0, 0.5, decay_steps=0),
     r"exponential_decay: `decay_steps` must be a positive integer; got 0"),
    (lambda: S.step_decay(1.0, 0.5, decay_every=2.5),
     r"step_decay: `decay_every` must be a positive integer; got 2.5"),
    (lambda: S.exponential_decay(1.0, -0.5, 10), r"exponential_decay: `decay_rate` must be a real number > 0"),
    (lambda: S.polynomial_decay(float("nan"), 0.0, 10),
     r"polynomial_decay: `initial_value` must be a finite real number; got nan"),
    (lambda: S.cosine_decay(1.0, decay_steps=True), r"cosine_decay: `decay_steps` must be a positive"),
    (lambda: S.inverse_time_decay(1.0, -1.0, 10), r"inverse_time_decay: `decay_rate` must be a real number >= 0"),
    (lambda: S.constant_schedule("fast"), r"constant_schedule: `value` must be a finite real number"),
    (lambda: S.piecewise_constant_schedule([5, 3], [1.0, 0.5, 0.1]),
     r"piecewise_constant_schedule: `boundaries` must be strictly increasing; got \(5, 3\)"),
    (lambda: S.piecewise_constant_schedule([5], [1.0]),
     r"piecewise_constant_schedule: 1 boundaries separate 2 values; got 1 values"),
    (lambda: S.join_schedules([S.constant_schedule(1.0), 0.1], [5]),
     r"join_schedules: `schedules` must be functions step -> value; got 0.1"),
    (lambda: S.warmup_then(0.1, 10), r"warmup_then: `schedule` must be a function step -> value"),
    (lambda: S.per_epoch(S.constant_schedule(1.0), steps_per_epoch=0),
     r"per_epoch: `steps_per_epoch` must be a positive integer; got 0"),
])
def test_bad_arguments_raise_naming_the_function_and_argument(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()
