"""The conformance suite: every layer of the registry (layer_registry.py) against the protocol.

init(key, input_shape) -> (output_shape, params, state)
apply(params, state, x, *, key=None, train=False) -> (y, new_state)
"""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

from fnn.core import init_shapes
from layer_registry import (
    CASES, DEFAULT_SIZES, Sizes, cast_floats, leaf_shapes, make_inputs, map_shapes, with_batch)

KEY = jax.random.PRNGKey(0)
APPLY_KEY = jax.random.PRNGKey(1)
by_name = pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
train_modes = pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])


def build(case, sizes=DEFAULT_SIZES, dtype=jnp.float32, seed=0):
    """The layer, its output shape, params and state (floats cast to ``dtype``), and inputs."""
    layer, input_shape = case.build(sizes)
    out_shape, params, state = layer.init(KEY, input_shape)
    x = make_inputs(case, input_shape, seed=seed, dtype=dtype)
    return layer, out_shape, cast_floats(params, dtype), state, x


@functools.lru_cache(maxsize=None)
def built(case):
    """`build` at the default sizes, once per case: tests that share the same ``layer.apply``
    object share its jit compilations too, which keeps the suite fast."""
    return build(case)


@functools.lru_cache(maxsize=None)
def eager_reference(case, train):
    layer, _, params, state, x = built(case)
    return layer.apply(params, state, x, key=APPLY_KEY, train=train)


TRACES = {}  # case name -> how many times `counted_apply(case)` has been traced


@functools.lru_cache(maxsize=None)
def counted_apply(case):
    """``layer.apply`` with a trace counter: a Python side effect runs only while tracing."""
    layer = built(case)[0]

    def apply(params, state, x, *, key=None, train=False):
        TRACES[case.name] = TRACES.get(case.name, 0) + 1
        return layer.apply(params, state, x, key=key, train=train)

    return apply


def jitted_apply(case):
    # jax caches compilations per function object, so this shares them with the chex variant
    return jax.jit(counted_apply(case), static_argnames="train")


def shape_tree(tree):
    return jax.tree_util.tree_map(lambda a: (tuple(a.shape), jnp.dtype(a.dtype)), tree)


def output_shapes(y):
    """The shape of an output, or the tuple of shapes of a tuple of outputs."""
    return jax.tree_util.tree_map(lambda a: tuple(a.shape), y)


# --- shapes -----------------------------------------------------------------------------------

@by_name
def test_init_shape_equals_apply_shape(case):
    _, out_shape, params, state, x = built(case)
    y, _ = jitted_apply(case)(params, state, x, key=APPLY_KEY)
    assert output_shapes(y) == out_shape


@by_name
def test_unknown_batch_axis(case):
    """init on a ``None`` batch axis reports ``None`` there and the rest as for a real batch."""
    layer, input_shape = case.build(DEFAULT_SIZES)
    unknown = map_shapes(lambda s: (None,) + s[1:], input_shape)
    out_unknown, params, _ = layer.init(KEY, unknown)
    out_known, params_known, _ = layer.init(KEY, input_shape)
    assert with_batch(out_unknown, DEFAULT_SIZES.batch) == out_known
    assert all(s[0] is None for s in leaf_shapes(out_unknown))
    chex.assert_trees_all_equal(params, params_known)


@by_name
@settings(max_examples=4, deadline=None)
@given(batch=st.integers(1, 7), features=st.integers(1, 9), units=st.integers(1, 6))
def test_shapes_over_random_sizes(case, batch, features, units):
    layer, input_shape = case.build(Sizes(batch, features, units))
    out_shape, params, state = init_shapes(layer, input_shape)
    inputs = map_shapes(lambda s: jax.ShapeDtypeStruct(s, jnp.float32), input_shape)
    y, new_state = jax.eval_shape(
        lambda p, s, x: layer.apply(p, s, x, key=APPLY_KEY), params, state, inputs)
    assert output_shapes(y) == out_shape
    assert shape_tree(new_state) == shape_tree(state)
    unknown = map_shapes(lambda s: (None,) + s[1:], input_shape)
    assert with_batch(init_shapes(layer, unknown)[0], batch) == out_shape


@by_name
def test_eval_shape_of_init(case):
    """`init_shapes` (`jax.eval_shape` over init) computes nothing and agrees with init."""
    layer, input_shape = case.build(DEFAULT_SIZES)
    out_abstract, params_abstract, state_abstract = init_shapes(layer, input_shape)
    out, params, state = layer.init(KEY, input_shape)
    assert out_abstract == out
    for abstract, real in [(params_abstract, params), (state_abstract, state)]:
        assert jax.tree_util.tree_structure(abstract) == jax.tree_util.tree_structure(real)
        assert all(isinstance(a, jax.ShapeDtypeStruct)
                   for a in jax.tree_util.tree_leaves(abstract))
        assert shape_tree(abstract) == shape_tree(real)


@by_name
def test_init_is_deterministic_per_key(case):
    layer, input_shape = case.build(DEFAULT_SIZES)
    _, params_a, state_a = layer.init(KEY, input_shape)
    _, params_b, state_b = layer.init(KEY, input_shape)
    chex.assert_trees_all_equal((params_a, state_a), (params_b, state_b))
    # params are nested dicts with named leaves, never positional tuples
    for path, _ in jax.tree_util.tree_flatten_with_path(params_a)[0]:
        assert all(isinstance(k, jax.tree_util.DictKey) for k in path), path


# --- dtypes -----------------------------------------------------------------------------------

@by_name
def test_params_are_float32_by_default(case):
    layer, input_shape = case.build(DEFAULT_SIZES)
    _, params, state = init_shapes(layer, input_shape)
    for leaf in jax.tree_util.tree_leaves((params, state)):
        assert leaf.dtype == jnp.float32 or not jnp.issubdtype(leaf.dtype, jnp.floating)


@by_name
@pytest.mark.parametrize("dtype,x64", [("float32", False), ("float32", True),
                                       ("float64", True)])
def test_dtype_preserved(case, dtype, x64):
    """float32 in -> float32 out (also with x64 on: no stray promotion); float64 likewise."""
    dtype = jnp.dtype(dtype)
    with jax.enable_x64(x64):
        layer, input_shape = case.build(DEFAULT_SIZES)
        _, params, state = init_shapes(layer, input_shape)
        params = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, dtype), params)
        x = map_shapes(lambda s: jax.ShapeDtypeStruct(s, dtype), input_shape)
        # abstract evaluation applies exactly the dtype rules that execution does
        y, new_state = jax.eval_shape(
            lambda p, s, x: layer.apply(p, s, x, key=APPLY_KEY), params, state, x)
        for leaf in jax.tree_util.tree_leaves(y):
            assert leaf.dtype == dtype
        assert shape_tree(new_state) == shape_tree(state)


# --- jit, tracing and state -------------------------------------------------------------------

class JitMatchesEagerTest(chex.TestCase):
    """The jitted layer (``train`` static) computes what the eager one does."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        *[(f"{c.name}_{mode}", c, train) for c in CASES
          for mode, train in [("eval", False), ("train", True)]])
    def test_jit_matches_eager(self, case, train):
        layer, out_shape, params, state, x = built(case)
        expected, expected_state = eager_reference(case, train)
        apply = self.variant(counted_apply(case), static_argnames="train")
        y, new_state = apply(params, state, x, key=APPLY_KEY, train=train)
        chex.assert_trees_all_close((y, new_state), (expected, expected_state),
                                    rtol=1e-5, atol=1e-6)
        chex.assert_trees_all_equal_shapes_and_dtypes(y, expected)
        assert output_shapes(y) == out_shape


@by_name
def test_no_recompilation(case):
    """A second call with new values of the same shapes, fed the state the first call returned,
    reuses the compiled function: nothing in params, state or output changes dtype or weak type.
    Train mode is the one that matters: in eval mode the state comes back unchanged (checked in
    test_state_structure_stable), so the second call's arguments have the first call's types."""
    _, _, params, state, x = built(case)
    apply = jitted_apply(case)
    _, state_1 = apply(params, state, x, key=APPLY_KEY, train=True)
    traced = TRACES[case.name]
    params_2 = jax.tree_util.tree_map(lambda p: p * 0.5, params)
    x_2 = make_inputs(case, case.build(DEFAULT_SIZES)[1], seed=1)
    apply(params_2, state_1, x_2, key=jax.random.PRNGKey(7), train=True)
    assert TRACES[case.name] == traced


@by_name
@train_modes
def test_state_structure_stable(case, train):
    """new_state has the structure, shapes and dtypes of state, so it can go through lax.cond
    (and lax.scan) branches; in eval mode it is unchanged."""
    layer, _, params, state, x = built(case)
    _, new_state = jitted_apply(case)(params, state, x, key=APPLY_KEY, train=train)
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
    assert shape_tree(new_state) == shape_tree(state)
    if not train:
        chex.assert_trees_all_equal(new_state, state)

    def step(s):
        return layer.apply(params, s, x, key=APPLY_KEY, train=train)[1]

    cond = jax.jit(lambda pred, s: jax.lax.cond(pred, step, lambda s: s, s))
    for pred in [True, False]:  # pred is traced: one compilation serves both
        chex.assert_trees_all_close(cond(pred, state), new_state if pred else state)


@by_name
def test_eval_mode_needs_no_key(case):
    layer, _, params, state, x = built(case)
    y, _ = layer.apply(params, state, x)  # key=None, train=False
    y_keyed, _ = eager_reference(case, False)
    chex.assert_trees_all_close(y, y_keyed)


# --- gradients --------------------------------------------------------------------------------

@by_name
def test_gradients_match_finite_differences(case, x64):
    """jax.grad w.r.t. every parameter and every input equals central differences in float64."""
    if case.zero_grad:
        pytest.skip("the binary step is piecewise constant: its derivative is 0 wherever it "
                    "exists, so finite differences would only compare 0 with 0 (or blow up "
                    "across the jump); test_zero_gradient checks it instead")
    layer, _, params, state, _ = built(case)  # float32 params: cast to float64 under jit
    x = make_inputs(case, case.build(DEFAULT_SIZES)[1], dtype=jnp.float64)
    y = jax.eval_shape(lambda p, x: layer.apply(p, state, x)[0], params, x)
    rng = np.random.default_rng(3)
    cotangent = jax.tree_util.tree_map(lambda a: rng.normal(size=a.shape), y)
    eps = 1e-6

    @jax.jit  # one compilation for the gradient and all the finite differences
    def grad_and_finite_diff(params, x):
        flat, unravel = ravel_pytree((cast_floats(params, jnp.float64), x))

        def loss(flat):  # a generic scalar of the output: <apply(params, x), cotangent>
            params, x = unravel(flat)
            y, _ = layer.apply(params, state, x)
            return sum(jnp.vdot(a, c) for a, c in zip(jax.tree_util.tree_leaves(y),
                                                      jax.tree_util.tree_leaves(cotangent)))

        steps = eps * jnp.eye(flat.size, dtype=flat.dtype)  # one coordinate at a time
        values = jax.vmap(loss)(jnp.concatenate([flat[None] + steps, flat[None] - steps]))
        return flat, jax.grad(loss)(flat), (values[:flat.size] - values[flat.size:]) / (2 * eps)

    flat, grad, finite_diff = grad_and_finite_diff(params, x)
    assert flat.dtype == jnp.float64 and grad.dtype == jnp.float64
    np.testing.assert_allclose(grad, finite_diff, rtol=1e-5, atol=1e-7)
    assert np.abs(grad).max() > 0, "a gradient that is identically zero tests nothing"


@pytest.mark.parametrize("case", [c for c in CASES if c.zero_grad],
                         ids=[c.name for c in CASES if c.zero_grad])
def test_zero_gradient(case, x64):
    """Layers whose gradient is zero a.e. (binary step) give exactly 0, never NaN."""
    layer, _, params, state, _ = built(case)
    x = make_inputs(case, case.build(DEFAULT_SIZES)[1], dtype=jnp.float64)

    def loss(params, x):
        return jnp.sum(layer.apply(cast_floats(params, jnp.float64), state, x)[0])

    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)
    for g in jax.tree_util.tree_leaves(grads):
        np.testing.assert_array_equal(g, np.zeros_like(g))
