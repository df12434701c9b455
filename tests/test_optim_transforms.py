"""Gradient transforms: formulas, edge cases, masks, accumulation, the loss-driven rules, and
the state contract (stable structure and dtypes, jit == eager, no retracing, checkpoints).

Compile time: a `jnp` call outside `jax.jit` compiles a program per new (shape, dtype), so test
data is made in NumPy and put on the device with `jax.device_put` (which compiles nothing), and
references are computed in NumPy."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn import checkpoint
from fnn.optim import base
from fnn.optim import schedules as S
from fnn.optim import transforms as T


def mlp_params(dtype=jnp.float32):
    """Two dense layers and a normalisation layer, with distinct non-zero values."""
    values = iter(np.arange(1, 100, dtype=np.float64) * 0.25)

    def leaf(*shape):
        return jax.device_put(np.asarray([next(values) for _ in range(int(np.prod(shape)))],
                                         dtype).reshape(shape))

    return {"dense_0": {"w": leaf(2, 3), "b": leaf(3)},
            "norm": {"gamma": leaf(3), "beta": leaf(3)},
            "dense_1": {"w": leaf(3, 1), "b": leaf(1)}}


def device(x, dtype=None):
    """``np.asarray(x, dtype)`` on the device: like ``jnp.asarray`` (float64 becomes float32
    unless x64 is on), without compiling a conversion program."""
    return jax.device_put(np.asarray(x, dtype))


def full_like(like, value):
    """``value`` in every element of leaves shaped and typed like those of ``like``."""
    return jax.tree_util.tree_map(lambda x: jax.device_put(np.full(x.shape, value, x.dtype)), like)


def random_like(like, seed):
    """Standard normal leaves shaped and typed like those of ``like``."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda x: jax.device_put(np.asarray(rng.standard_normal(x.shape), x.dtype)), like)


def run(optimizer, grads_sequence, params, losses=None):
    """Every (jitted) update's output, starting from ``init(params)``."""
    update = jax.jit(optimizer.update)
    state = optimizer.init(params)
    outputs = []
    for i, grads in enumerate(grads_sequence):
        extra = {} if losses is None else {"loss": losses[i]}
        updates, state = update(grads, state, params, **extra)
        outputs.append((updates, state))
    return outputs


# --------------------------------------------------------------------------------------------
# Clipping.


def test_clip_is_elementwise_max_min(x64):
    grads = {"w": device([-7.0, -5.0, -0.5, 0.0, 4.9, 5.0, 12.0])}
    updates, _ = T.clip(5.0).update(grads, T.clip(5.0).init(grads))
    np.testing.assert_array_equal(updates["w"], [-5.0, -5.0, -0.5, 0.0, 4.9, 5.0, 5.0])


def test_clip_by_global_norm_rescales_to_the_threshold(x64):
    grads = {"a": device([3.0, 0.0]), "b": device([[4.0], [12.0]])}  # ‖g‖ = 13
    clipper = T.clip_by_global_norm(6.5)
    updates, state = jax.jit(lambda grads: clipper.update(grads, clipper.init(grads)))(grads)
    chex.assert_trees_all_close(updates, jax.tree_util.tree_map(lambda g: np.asarray(g) / 2, grads),
                                rtol=1e-15)
    assert float(state.global_norm) == 13.0


def test_clip_by_global_norm_passes_a_norm_at_the_threshold_bit_for_bit():
    grads = {"a": device([0.3, 0.4], np.float32)}
    norm = float(T.global_norm(grads))
    for max_norm in (norm, norm * 2):
        clipper = T.clip_by_global_norm(max_norm)
        updates, _ = clipper.update(grads, clipper.init(grads))
        np.testing.assert_array_equal(updates["a"], grads["a"])


def test_clip_by_global_norm_of_zero_gradients_at_threshold_zero_is_zero_not_nan():
    grads = {"a": device(np.zeros(3)), "b": device(np.zeros((2, 2)))}
    clipper = T.clip_by_global_norm(0.0)
    updates, state = clipper.update(grads, clipper.init(grads))
    chex.assert_trees_all_equal(updates, grads)
    assert float(state.global_norm) == 0.0


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_clip_by_global_norm_makes_a_non_finite_norm_visible(bad):
    """An inf/NaN gradient must not be clipped into a silent (zero or finite) step."""
    grads = {"a": device([1.0, bad]), "b": device([2.0])}
    clipper = T.clip_by_global_norm(1.0)
    for update in (clipper.update, jax.jit(clipper.update)):
        updates, state = update(grads, clipper.init(grads))
        assert all(np.isnan(leaf).all() for leaf in jax.tree_util.tree_leaves(updates))
        assert not np.isfinite(state.global_norm)


def test_global_norm_of_low_precision_gradients_does_not_overflow():
    grads = {"a": device(np.full((4,), 300.0, np.float16))}  # 300² overflows float16
    assert float(T.global_norm(grads)) == pytest.approx(600.0)
    clipper = T.clip_by_global_norm(60.0)
    updates, _ = clipper.update(grads, clipper.init(grads))
    assert updates["a"].dtype == jnp.float16
    np.testing.assert_allclose(updates["a"], 30.0, rtol=1e-3)


# --------------------------------------------------------------------------------------------
# Weight decay and masks.


def test_add_decayed_weights_is_g_plus_lambda_w_on_weights_only(x64):
    params = mlp_params(jnp.float64)
    grads = full_like(params, 0.5)
    decay = T.add_decayed_weights(0.01)
    updates, _ = decay.update(grads, decay.init(params), params)
    for layer in ("dense_0", "dense_1"):
        np.testing.assert_array_equal(updates[layer]["w"],
                                      0.5 + 0.01 * np.asarray(params[layer]["w"]))
        np.testing.assert_array_equal(updates[layer]["b"], grads[layer]["b"])
    chex.assert_trees_all_equal(updates["norm"], grads["norm"])


def test_add_l1_decay_is_g_plus_lambda_sign_w(x64):
    params = {"w": device([-2.0, 0.0, 3.0]), "b": device([-1.0])}
    grads = full_like(params, 0.5)
    decay = T.add_l1_decay(0.1)
    updates, _ = decay.update(grads, decay.init(params), params)
    np.testing.assert_array_equal(updates["w"], [0.4, 0.5, 0.6])
    np.testing.assert_array_equal(updates["b"], [0.5])


@pytest.mark.parametrize("make", [T.add_decayed_weights, T.add_l1_decay])
def test_a_decay_that_skips_biases_leaves_every_bias_untouched(make):
    params = mlp_params()
    optimizer = base.chain(make(0.1), base.scale_by_learning_rate(0.5))
    update = jax.jit(optimizer.update)
    new_params, state = params, optimizer.init(params)
    for _ in range(3):
        updates, state = update(full_like(params, 0.0), state, new_params)
        new_params = base.apply_updates(new_params, updates)
    for name, leaf in jax.tree_util.tree_leaves_with_path(params):
        moved = not np.array_equal(leaf, new_params[name[0].key][name[1].key])
        assert moved == (name[-1].key == "w"), jax.tree_util.keystr(name)


def test_decay_mask_as_a_tree_or_a_predicate():
    params = mlp_params()
    grads = full_like(params, 0.0)
    only_dense_1 = {"dense_1": True}
    predicate = lambda path, leaf: path[0].key == "dense_1"  # noqa: E731
    for mask in (only_dense_1, predicate):
        decay = T.add_decayed_weights(1.0, mask=mask)
        updates, _ = decay.update(grads, decay.init(params), params)
        chex.assert_trees_all_equal(updates["dense_1"], params["dense_1"])
        chex.assert_trees_all_equal(updates["dense_0"], grads["dense_0"])


def test_weight_decay_may_be_a_schedule_of_the_step_count():
    params = {"w": device(np.ones(2))}
    decay = T.add_decayed_weights(S.piecewise_constant_schedule([1], [0.0, 1.0]))
    outputs = run(decay, [full_like(params, 0.0)] * 3, params)
    assert [float(updates["w"][0]) for updates, _ in outputs] == [0.0, 1.0, 1.0]


def test_freeze_leaves_the_frozen_subtree_exactly_unchanged():
    params = mlp_params()
    optimizer = base.chain(T.add_decayed_weights(0.1), base.scale_by_learning_rate(0.5),
                           T.freeze({"dense_0": True, "norm": {"gamma": True}}))
    update = jax.jit(optimizer.update)
    new_params, state = params, optimizer.init(params)
    for seed in range(3):
        updates, state = update(random_like(params, seed), state, new_params)
        new_params = base.apply_updates(new_params, updates)
    chex.assert_trees_all_equal(new_params["dense_0"], params["dense_0"])
    np.testing.assert_array_equal(new_params["norm"]["gamma"], params["norm"]["gamma"])
    assert not np.array_equal(new_params["dense_1"]["w"], params["dense_1"]["w"])
    assert not np.array_equal(new_params["norm"]["beta"], params["norm"]["beta"])


def test_masked_inner_sees_and_keeps_state_for_the_selected_subtree_only():
    params = {"a": device([3.0, 4.0]), "b": device([100.0])}
    clipper = T.masked(T.clip_by_global_norm(1.0), {"a": True})
    state = clipper.init(params)
    updates, state = clipper.update(params, state, params)
    np.testing.assert_allclose(updates["a"], [0.6, 0.8], rtol=1e-6)  # ‖a‖ = 5, b not counted
    np.testing.assert_array_equal(updates["b"], params["b"])
    assert float(state.inner_state.global_norm) == 5.0
    accumulated = T.masked(T.accumulate_gradients(T.clip(1.0), 2), {"b": True}).init(params)
    gradient_sum = accumulated.inner_state.gradient_sum
    assert gradient_sum["a"] is None and gradient_sum["b"].shape == (1,)


def test_masks_nest():
    params = {k: device(np.ones(1)) for k in "abc"}
    optimizer = T.masked(T.freeze({"b": True}), {"a": True, "b": True})
    updates, _ = optimizer.update(params, optimizer.init(params), params)
    assert [float(updates[k][0]) for k in "abc"] == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("make, match", [
    (lambda: T.freeze({"dense0": True}),
     r"freeze: mask names \['dense0'\], which params does not have; its keys are \['dense_0'"),
    (lambda: T.freeze({"dense_0": {"kernel": True}}),
     r"freeze: mask\['dense_0'\] names \['kernel'\], which params\['dense_0'\] does not have"),
    (lambda: T.masked(T.clip(1.0), [True, False]),
     r"masked: mask must be a bool, or a tree of bools shaped like params"),
    (lambda: T.add_decayed_weights(0.1, mask=lambda path, leaf: leaf.ndim),
     r"add_decayed_weights: mask entries must be Python bools \(masks are static\); got 1 "),
    (lambda: T.add_l1_decay(0.1, mask={"dense_0": {"w": 1}}),
     r"add_l1_decay: mask entries must be Python bools"),
])
def test_bad_masks_raise_naming_the_function_and_the_mismatch(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make().init(mlp_params())


def test_weight_decay_without_params_raises():
    params = {"w": device(np.ones(2))}
    decay = T.add_decayed_weights(0.1)
    with pytest.raises(ValueError, match=r"add_decayed_weights: needs the parameters; call "
                                         r"update\(grads, state, params\)"):
        decay.update(params, decay.init(params))


# --------------------------------------------------------------------------------------------
# Gradient accumulation.


def test_accumulating_k_micro_batches_equals_one_step_on_their_mean(x64):
    params = mlp_params(jnp.float64)
    micro = [random_like(params, seed) for seed in range(6)]
    learning_rate = S.piecewise_constant_schedule([1], [0.1, 0.01])  # counts whole batches
    # No multiply-add in the inner rule: XLA may fuse one into an FMA, which rounds differently.
    inner = base.chain(T.clip(0.5), base.scale_by_learning_rate(learning_rate))
    accumulated = T.accumulate_gradients(inner, every_k=3)

    means = [jax.tree_util.tree_map(lambda a, b, c: (a + b + c) / 3, *cycle)
             for cycle in (micro[:3], micro[3:])]
    expected = [updates for updates, _ in run(inner, means, params)]

    outputs = run(accumulated, micro, params)
    for i, (updates, state) in enumerate(outputs):
        assert int(state.micro_step) == (i + 1) % 3
        if i % 3 == 2:
            chex.assert_trees_all_equal(updates, expected[i // 3])
        else:
            chex.assert_trees_all_equal(updates, full_like(params, 0.0))
    assert int(base.step_count(outputs[-1][1])) == 2


def test_accumulation_feeds_the_inner_rule_the_mean_loss():
    params = {"w": device(np.ones(1))}
    accumulated = T.accumulate_gradients(T.scale_by_bold_driver(), every_k=2)
    outputs = run(accumulated, [params] * 4, params, losses=[1.0, 3.0, 0.5, 0.5])
    inner_states = [state.inner_state for _, state in outputs]
    assert [int(s.step) for s in inner_states] == [0, 1, 1, 2]
    assert [float(s.previous_loss) for s in inner_states[1::2]] == [2.0, 0.5]


# --------------------------------------------------------------------------------------------
# Loss-driven rules.


def factors(optimizer, losses):
    """The factor ``s`` applied at each step (updates of a gradient of ones), checked against
    the state's ``learning_rate``."""
    params = {"w": device(np.ones((), np.float32))}
    outputs = run(optimizer, [params] * len(losses), params, losses=losses)
    for updates, state in outputs:
        assert float(updates["w"]) == float(state.learning_rate)
    return [float(state.learning_rate) for _, state in outputs]


def products(*multipliers):
    """Running float32 products: the exact values the float32 state holds."""
    values, value = [], np.float32(1)
    for factor in multipliers:
        value = np.float32(np.float32(factor) * value)
        values.append(float(value))
    return values


def test_bold_driver_follows_the_course_rule_step_by_step():
    losses = [1.0, 0.9, 1.0, 0.95, 0.98, float("nan"), 0.5]
    # 1.0: no previous period; 0.9 <= 1.04 · 1.0: ×1.05; 1.0 > 1.04 · 0.9: ×0.7; 0.95: ×1.05;
    # 0.98 <= 1.04 · 0.95 (up, but within k_w): ×1.05; NaN counts as up: ×0.7; so does after NaN.
    expected = products(1, 1.05, 0.7, 1.05, 1.05, 0.7, 0.7)
    assert factors(T.scale_by_bold_driver(), losses) == expected


def test_bold_driver_compares_period_means():
    losses = [1.0, 3.0, 1.0, 1.0, 3.0, 1.0]  # period means 2, 1, 2
    expected = products(1, 1, 1, 1.05, 1, 0.7)
    assert factors(T.scale_by_bold_driver(steps_per_period=2), losses) == expected


def test_bold_driver_with_negative_losses_decreases_when_the_loss_goes_up():
    losses = [-1.0, -2.0, -1.9, -1.95]  # -1.9 > -2 + 0.04·2; -1.95 <= -1.9 + 0.04·1.9
    assert factors(T.scale_by_bold_driver(), losses) == products(1, 1.05, 0.7, 1.05)


def test_bold_driver_in_a_chain_scales_the_learning_rate():
    params = {"w": device(np.ones(()))}
    optimizer = base.chain(T.clip(10.0), base.scale_by_learning_rate(0.1), T.scale_by_bold_driver())
    outputs = run(optimizer, [params] * 2, params, losses=[1.0, 0.5])
    updates, state = outputs[-1]
    assert float(updates["w"]) == pytest.approx(-0.1 * 1.05)
    assert float(base.learning_rate(state)) == pytest.approx(0.1 * 1.05)


def plateau_factors(losses, **options):
    return factors(T.reduce_on_plateau(factor=0.5, patience=2, **options), losses)


@pytest.mark.parametrize("offset", [0.0, -10.0])
def test_reduce_on_plateau_with_positive_and_negative_losses(offset):
    losses = [offset + x for x in (1.0, 0.9, 0.95, 0.9, 0.95, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5)]
    # best 1, 0.9; three bad periods (> patience 2) → ×0.5; 0.5 improves; three bad → ×0.5 twice
    expected = [1.0] * 4 + [0.5] * 4 + [0.25] * 3 + [0.125]
    assert plateau_factors(losses) == expected


def test_reduce_on_plateau_relative_threshold_uses_the_magnitude_of_a_negative_best():
    # ε* = −10, threshold 10%: improving needs ε < −11. The sign-blind test ε < ε*(1 − 0.1) = −9
    # would count −9.5 (worse than −10) as an improvement and never reduce.
    losses = [-10.0, -9.5, -10.5, -11.5]
    assert factors(T.reduce_on_plateau(factor=0.5, patience=0, threshold=0.1), losses) == \
        [1.0, 0.5, 0.25, 0.25]


def test_reduce_on_plateau_absolute_threshold_cooldown_and_floor():
    losses = [1.0, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]
    absolute = factors(T.reduce_on_plateau(factor=0.5, patience=0, threshold=0.1,
                                           threshold_mode="absolute"), losses)
    assert absolute == [1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125]
    cooled = factors(T.reduce_on_plateau(factor=0.5, patience=0, cooldown=2, min_scale=0.2),
                     losses + [0.95])
    assert cooled == products(1, 1, 0.5, 1, 1, 0.5, 1, 1, 0.8)  # 0.125 floored at 0.2


def test_reduce_on_plateau_over_periods_and_with_nan():
    losses = [1.0, 1.0, 0.0, 3.0, float("nan"), 0.0]  # period means 1, 1.5, NaN
    assert factors(T.reduce_on_plateau(factor=0.5, patience=0, steps_per_period=2), losses) == \
        [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]


@pytest.mark.parametrize("make", [T.scale_by_bold_driver, T.reduce_on_plateau])
def test_loss_driven_rules_need_a_scalar_loss(make):
    params = {"w": device(np.ones(2))}
    optimizer = base.chain(base.scale_by_learning_rate(0.1), make())
    state = optimizer.init(params)
    name = make.__name__
    with pytest.raises(TypeError, match=rf"{name}: needs the mini-batch loss; call "
                                        rf"update\(grads, state, params, loss=loss\)"):
        jax.jit(optimizer.update)(params, state, params)
    with pytest.raises(ValueError, match=rf"{name}: loss must be a scalar .* got shape \(2,\)"):
        optimizer.update(params, state, params, loss=device(np.ones(2)))


@pytest.mark.parametrize("make, match", [
    (lambda: T.clip(-1.0), r"clip: `max_delta` must be a real number >= 0; got -1.0"),
    (lambda: T.clip_by_global_norm(float("nan")), r"clip_by_global_norm: `max_norm` must be a real number >= 0"),
    (lambda: T.add_decayed_weights(-0.1), r"add_decayed_weights: `weight_decay` must be a real number >= 0"),
    (lambda: T.accumulate_gradients(T.clip(1.0), every_k=0),
     r"accumulate_gradients: `every_k` must be a positive integer; got 0"),
    (lambda: T.scale_by_bold_driver(steps_per_period=1.5),
     r"scale_by_bold_driver: `steps_per_period` must be a positive integer"),
    (lambda: T.scale_by_bold_driver(decrease_factor=1.2),
     r"scale_by_bold_driver: `decrease_factor` must be a real number in \(0, 1\]; got 1.2"),
    (lambda: T.scale_by_bold_driver(max_error_ratio=0.9),
     r"scale_by_bold_driver: `max_error_ratio` must be a real number >= 1"),
    (lambda: T.reduce_on_plateau(factor=1.0), r"reduce_on_plateau: `factor` must be a real number in \(0, 1\)"),
    (lambda: T.reduce_on_plateau(patience=-1),
     r"reduce_on_plateau: `patience` must be an integer >= 0; got -1"),
    (lambda: T.reduce_on_plateau(threshold_mode="rel"),
     r"reduce_on_plateau: `threshold_mode` must be one of \('relative', 'absolute'\); got 'rel'"),
])
def test_bad_hyperparameters_raise_naming_the_function_and_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# --------------------------------------------------------------------------------------------
# The state contract, over every transform.

TRANSFORMS = {
    "clip": lambda: T.clip(0.5),
    "clip_by_global_norm": lambda: T.clip_by_global_norm(1.0),
    "add_decayed_weights": lambda: T.add_decayed_weights(S.cosine_decay(0.1, 10)),
    "add_l1_decay": lambda: T.add_l1_decay(0.1, mask=lambda path, leaf: leaf.ndim > 1),
    "masked": lambda: T.masked(T.clip_by_global_norm(0.1), lambda path, leaf: leaf.ndim == 1),
    "freeze": lambda: T.freeze(lambda path, leaf: leaf.ndim == 0),
    "accumulate_gradients": lambda: T.accumulate_gradients(
        base.chain(T.add_decayed_weights(0.1), T.scale_by_bold_driver()), every_k=2),
    "scale_by_bold_driver": lambda: T.scale_by_bold_driver(),
    "reduce_on_plateau": lambda: T.reduce_on_plateau(patience=0, steps_per_period=2),
}
LOSSES = [1.0, 2.0, 0.5]


def three_updates(optimizer, params, update):
    """The updates and states of three steps (gradient 2θ) from ``init(params)``."""
    grads = jax.tree_util.tree_map(lambda p: 2 * p, params)
    states, updates = [optimizer.init(params)], []
    for loss in LOSSES:
        u, state = update(grads, states[-1], params, loss=np.float32(loss))
        updates.append(u)
        states.append(state)
    return updates, states


def assert_stable(updates, states, params):
    """Updates shaped and typed like the parameters; every state like the initial one."""
    for state in states[1:]:
        chex.assert_trees_all_equal_shapes_and_dtypes(state, states[0])
    for u in updates:
        chex.assert_trees_all_equal_shapes_and_dtypes(u, params)


@functools.lru_cache(maxsize=None)
def jitted_run(name):
    """``three_updates`` of ``TRANSFORMS[name]`` under jit on ``mlp_params()``, and the number
    of times the update was traced (computed once, shared by the tests below)."""
    optimizer = TRANSFORMS[name]()
    traces = []

    def update(*args, **kwargs):
        traces.append(None)
        return optimizer.update(*args, **kwargs)

    return three_updates(optimizer, mlp_params(), jax.jit(update)), len(traces)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_state_is_stable_and_update_traces_once(name):
    (updates, states), traces = jitted_run(name)
    assert traces == 1  # a state whose structure or dtypes changed would retrace
    assert_stable(updates, states, mlp_params())


@pytest.mark.parametrize("name", TRANSFORMS)
def test_jit_agrees_with_eager(name):
    (jit_updates, jit_states), _ = jitted_run(name)
    optimizer = TRANSFORMS[name]()
    eager_updates, eager_states = three_updates(optimizer, mlp_params(), optimizer.update)
    chex.assert_trees_all_close(jit_updates, eager_updates, rtol=1e-6)
    chex.assert_trees_all_close(jit_states, eager_states, rtol=1e-6)


leaf_names = st.sampled_from(["w", "b", "gamma", "beta", "kernel"])
shapes = st.lists(st.integers(1, 3), max_size=2).map(tuple)
pytrees = st.dictionaries(st.sampled_from(["dense_0", "dense_1", "conv"]),
                          st.dictionaries(leaf_names, shapes, min_size=1, max_size=3),
                          min_size=1, max_size=3)


@settings(max_examples=3, deadline=None)
@given(shapes=pytrees, dtype=st.sampled_from([jnp.float32, jnp.bfloat16, jnp.float64]),
       seed=st.integers(0, 99))
def test_random_pytrees_keep_state_structure_and_dtypes(shapes, dtype, seed):
    with jax.enable_x64(dtype == jnp.float64):
        params = random_like(jax.tree_util.tree_map(lambda shape: np.zeros(shape, dtype), shapes,
                                                    is_leaf=lambda x: type(x) is tuple), seed)

        optimizers = [make() for make in TRANSFORMS.values()]

        @jax.jit
        def run_all(params):
            return [three_updates(optimizer, params, optimizer.update) for optimizer in optimizers]

        for updates, states in run_all(params):
            assert_stable(updates, states, params)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_states_round_trip_through_checkpoints(name, tmp_path):
    (_, states), _ = jitted_run(name)
    path = checkpoint.save(tmp_path / "state.npz", states[-1])
    for restored in (checkpoint.load(path), checkpoint.load(path, like=states[0])):
        assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(states[-1])
        chex.assert_trees_all_equal(restored, states[-1])
        chex.assert_trees_all_equal_shapes_and_dtypes(restored, states[-1])
