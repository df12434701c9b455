"""Tests for fnn.init: statistics against the formulas, fans, orthogonality, keys, dtypes, names."""
import math

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given, settings

from fnn import init

KEY = jax.random.key(0)
SMALL = (16, 8)  # one small shape everywhere, so compiled kernels are reused across tests
DENSE = (1000, 1000)
CONV = (3, 3, 64, 128)  # HWIO: fan_in = 9·64 = 576, fan_out = 9·128 = 1152

# name -> (initializer, distribution, variance(fan_in, fan_out)); the variances are the course's
# formulas, written out independently of the implementation.
RANDOM_RULES = {
    "uniform(0.5)": (init.uniform(0.5), "uniform", lambda i, o: 0.5**2 / 3),
    "normal(0.3)": (init.normal(0.3), "normal", lambda i, o: 0.3**2),
    "uniform_fan_in(1.5)": (init.uniform_fan_in(1.5), "uniform", lambda i, o: 1.5**2 / (3 * i)),
    "sigmoid_uniform": (init.sigmoid_uniform(), "uniform", lambda i, o: 2.38**2 / (3 * i)),
    "uniform_2_over_sqrt_fan_in": (
        init.uniform_2_over_sqrt_fan_in(), "uniform", lambda i, o: 4 / (3 * i)
    ),
    "lecun_normal": (init.lecun_normal(), "normal", lambda i, o: 1 / i),
    "lecun_uniform": (init.lecun_uniform(), "uniform", lambda i, o: 1 / i),
    "glorot_normal": (init.glorot_normal(), "normal", lambda i, o: 2 / (i + o)),
    "glorot_uniform": (init.glorot_uniform(), "uniform", lambda i, o: 2 / (i + o)),
    "he_normal": (init.he_normal(), "normal", lambda i, o: 2 / i),
    "he_uniform": (init.he_uniform(), "uniform", lambda i, o: 2 / i),
}
CONSTANT_RULES = {"zeros": (init.zeros(), 0.0), "ones": (init.ones(), 1.0),
                  "constant(-0.25)": (init.constant(-0.25), -0.25)}
ALL_INITIALIZERS = {
    **{name: rule[0] for name, rule in RANDOM_RULES.items()},
    **{name: rule[0] for name, rule in CONSTANT_RULES.items()},
    "orthogonal": init.orthogonal(),
}
# One initializer per code path, for the costlier dtype and jit checks.
REPRESENTATIVES = ("zeros", "uniform(0.5)", "normal(0.3)", "he_normal", "glorot_uniform",
                   "orthogonal")
KURTOSIS = {"normal": 3.0, "uniform": 1.8}  # E[w⁴]/E[w²]²


def orthogonal_sample(shape, gain=1.0, dtype=jnp.float32):
    """``orthogonal(gain)(KEY, shape, dtype)`` under jit: one compile instead of one per op."""
    return jax.jit(init.orthogonal(gain), static_argnums=(1, 2))(KEY, shape, dtype)


# --------------------------------------------------------------------------------------------
# Fans.


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((), (1, 1)),
        ((7,), (7, 7)),
        ((784, 300), (784, 300)),
        ((3, 3, 64, 128), (576, 1152)),  # 2-D conv, HWIO
        ((5, 16, 32), (80, 160)),  # 1-D conv
        ((2, 3, 4, 5, 6), (120, 144)),  # 3-D conv
    ],
)
def test_fans(shape, expected):
    assert init.fans(shape) == expected


# --------------------------------------------------------------------------------------------
# Statistics: mean, variance, support and shape of the distribution match the formula.


@pytest.mark.parametrize("shape", [DENSE, CONV], ids=["dense", "conv"])
@pytest.mark.parametrize("name", sorted(RANDOM_RULES))
def test_sample_statistics_match_formula(name, shape):
    initializer, distribution, variance_formula = RANDOM_RULES[name]
    fan_in, fan_out = (1000, 1000) if shape == DENSE else (576, 1152)
    variance = variance_formula(fan_in, fan_out)
    w = np.asarray(initializer(KEY, shape), np.float64).ravel()
    n = w.size
    # Tolerances are 5 standard errors of the estimators under the target distribution.
    assert abs(w.mean()) < 5 * math.sqrt(variance / n)
    relative_error = w.var() / variance - 1
    assert abs(relative_error) < 5 * math.sqrt((KURTOSIS[distribution] - 1) / n)
    if distribution == "uniform":
        limit = math.sqrt(3 * variance)
        assert np.abs(w).max() <= limit
        assert np.abs(w).max() > 0.999 * limit
    else:  # an untruncated Gaussian: 68.27% within one stddev, and some beyond three
        within = np.mean(np.abs(w) < math.sqrt(variance))
        assert abs(within - 0.6827) < 5 * math.sqrt(0.6827 * 0.3173 / n)
        assert np.abs(w).max() > 3 * math.sqrt(variance)


@pytest.mark.parametrize("name", sorted(CONSTANT_RULES))
def test_constants(name):
    initializer, value = CONSTANT_RULES[name]
    np.testing.assert_array_equal(initializer(KEY, SMALL), np.full(SMALL, value, np.float32))


def test_constant_initializers_accept_integer_dtypes():
    w = init.zeros()(KEY, (2, 3), jnp.int32)
    assert w.dtype == jnp.int32 and not w.any()


def test_constants_called_eagerly_compile_nothing_and_jit_still_traces_them():
    compiles = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        w = init.constant(0.5)(KEY, (13, 11, 7))  # a shape no other test uses
        z = init.zeros()(KEY, (13, 11, 7), jnp.bfloat16)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert not compiles  # eager `jnp.full` compiles one program per shape and dtype
    assert isinstance(w, jax.Array) and w.dtype == jnp.float32 and np.all(np.asarray(w) == 0.5)
    assert z.dtype == jnp.bfloat16 and not np.asarray(z, np.float32).any()
    traced = jax.jit(lambda key: init.ones()(key, (3, 2)))(KEY)
    np.testing.assert_array_equal(traced, np.ones((3, 2), np.float32))


# --------------------------------------------------------------------------------------------
# Orthogonal.


@pytest.mark.parametrize(
    "shape, gain",
    [((16, 16), 1.0), ((64, 32), 2.0), ((3, 3, 4, 64), 0.5)],
    ids=["square", "tall", "wide-conv"],
)
def test_orthogonal_is_orthogonal(shape, gain):
    w = np.asarray(orthogonal_sample(shape, gain), np.float64)
    assert w.shape == shape
    matrix = w.reshape(-1, shape[-1])  # (receptive field · in, out)
    rows, cols = matrix.shape
    gram = matrix.T @ matrix if rows >= cols else matrix @ matrix.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), atol=1e-5 * gain**2)


def test_orthogonal_float64_is_exact_to_roundoff(x64):
    w = orthogonal_sample((50, 20), dtype=jnp.float64)
    assert w.dtype == jnp.float64
    np.testing.assert_allclose(w.T @ w, np.eye(20), atol=1e-13)


def test_orthogonal_is_not_a_signed_permutation():
    w = np.asarray(orthogonal_sample((16, 16)))
    assert np.sum(np.abs(w) > 1e-3) > 16 * 8


# --------------------------------------------------------------------------------------------
# Keys, dtypes, jit.


@pytest.mark.parametrize("name", sorted(ALL_INITIALIZERS))
def test_deterministic_per_key(name):
    initializer = ALL_INITIALIZERS[name]
    a = initializer(jax.random.key(1), SMALL)
    np.testing.assert_array_equal(a, initializer(jax.random.key(1), SMALL))
    raw_key = jax.random.PRNGKey(1)  # raw uint32 keys work too, with the same stream
    np.testing.assert_array_equal(a, initializer(raw_key, SMALL))
    if name not in CONSTANT_RULES:
        assert not np.allclose(a, initializer(jax.random.key(2), SMALL))


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_dtype_respected(name):
    initializer = ALL_INITIALIZERS[name]
    assert jax.eval_shape(lambda key: initializer(key, SMALL), KEY).dtype == jnp.float32
    w = initializer(KEY, SMALL, jnp.bfloat16)
    assert w.dtype == jnp.bfloat16 and w.shape == SMALL
    assert np.isfinite(np.asarray(w, np.float32)).all()  # NumPy: no eager program to compile


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_float64_under_x64(name, x64):
    w = ALL_INITIALIZERS[name](KEY, SMALL, jnp.float64)
    assert w.dtype == jnp.float64


def test_eval_shape_needs_no_computation():
    out = jax.eval_shape(lambda key: init.he_normal()(key, CONV), KEY)
    assert out.shape == CONV and out.dtype == jnp.float32


class JitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*((name, name) for name in REPRESENTATIVES))
    def test_jit_equals_eager(self, name):
        initializer = ALL_INITIALIZERS[name]
        w = self.variant(initializer, static_argnums=(1,))(KEY, SMALL)
        np.testing.assert_allclose(w, initializer(KEY, SMALL), rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Properties over random shapes.


@settings(max_examples=100, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=0, max_size=5).map(tuple))
def test_fans_of_kernels_share_the_receptive_field(shape):
    fan_in, fan_out = init.fans(shape)
    if len(shape) >= 2:
        assert fan_in * shape[-1] == fan_out * shape[-2]  # both are receptive field × channels
        assert fan_in * shape[-1] == math.prod(shape)
    else:
        assert fan_in == fan_out == math.prod(shape)


# --------------------------------------------------------------------------------------------
# get().


@pytest.mark.parametrize(
    "name, factory",
    [("he_normal", init.he_normal), ("glorot_uniform", init.glorot_uniform),
     ("xavier_normal", init.glorot_normal), ("zeros", init.zeros),
     ("orthogonal", init.orthogonal), ("sigmoid_uniform", init.sigmoid_uniform)],
)
def test_get_resolves_names_with_default_arguments(name, factory):
    np.testing.assert_array_equal(init.get(name)(KEY, SMALL), factory()(KEY, SMALL))


def test_get_forwards_factory_arguments():
    np.testing.assert_array_equal(
        init.get("uniform", scale=0.5)(KEY, SMALL), init.uniform(0.5)(KEY, SMALL)
    )


def test_get_passes_initializers_through():
    initializer = init.he_normal()
    assert init.get(initializer) is initializer


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: init.get("he_normall"), ValueError,
         r"get: unknown initializer 'he_normall'; valid names: .*glorot_normal.*he_normal"),
        (lambda: init.get("uniform"), TypeError,
         r"get: initializer 'uniform' takes the arguments \(scale\); got none"),
        (lambda: init.get("he_normal", gain=2), TypeError,
         r"get: initializer 'he_normal' takes the arguments \(\); got \{'gain': 2\}"),
        (lambda: init.get(3), TypeError, r"get: expected an initializer name .* got int"),
        (lambda: init.get(init.zeros(), scale=1), TypeError,
         r"get: factory arguments are only accepted with a name"),
    ],
)
def test_get_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --------------------------------------------------------------------------------------------
# Argument errors.


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: init.he_normal()(KEY, (0, 3)), ValueError,
         r"he_normal: fan_in of shape \(0, 3\) is 0"),
        (lambda: init.glorot_uniform()(KEY, (3, 3), jnp.int32), TypeError,
         r"glorot_uniform: random weights need a floating dtype .* got int32"),
        (lambda: init.uniform(0.1)(KEY, (2,), jnp.int8), TypeError,
         r"uniform\(0\.1\): random weights need a floating dtype .* got int8"),
        (lambda: init.he_uniform()(KEY, 5), TypeError,
         r"he_uniform: shape must be a tuple of ints, e\.g\. \(784, 300\); got 5"),
        (lambda: init.zeros()(KEY, (2, -1)), ValueError,
         r"zeros: shape must have non-negative sizes; got \(2, -1\)"),
        (lambda: init.constant(0.5)(KEY, (2.0, 3)), TypeError,
         r"constant\(0\.5\): shape must be a tuple of ints, e\.g\. \(784, 300\); "
         r"got \(2\.0, 3\)"),
        (lambda: init.glorot_normal()(KEY, (0, 0)), ValueError,
         r"glorot_normal: fan_in \+ fan_out of shape \(0, 0\) is 0"),
        (lambda: init.sigmoid_uniform()(KEY, (0, 4)), ValueError,
         r"sigmoid_uniform: fan_in of shape \(0, 4\) is 0"),
        (lambda: init.orthogonal()(KEY, (5,)), ValueError,
         r"orthogonal\(1\.0\): needs a weight with at least 2 dimensions \(n_in, n_out\); "
         r"got \(5,\)"),
        (lambda: init.uniform(-1.0), ValueError, r"uniform: scale must be >= 0; got -1\.0"),
        (lambda: init.normal(-0.1), ValueError, r"normal: stddev must be >= 0; got -0\.1"),
        (lambda: init.uniform_fan_in(-2), ValueError, r"uniform_fan_in: a must be >= 0; got -2"),
    ],
)
def test_argument_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
