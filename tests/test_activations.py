"""fnn.activations against the course's formulas (COURSE.md §2–3 and §7), written in NumPy."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import activations as act
from fnn import layers
from fnn.core import init_shapes

# Points on both sides of 0 (0 itself excluded: kinks are tested on their own).
Z = np.array([-6.0, -2.5, -1.0, -0.3, -1e-3, 1e-3, 0.2, 0.7, 1.5, 4.0])
KEY = jax.random.PRNGKey(0)  # made once, outside x64: PRNGKey(0) under x64 compiles again


def elementwise_grad(fn):
    """f'(z) at every point of a 1-D array, one jax.grad per element (vmapped).

    Everything here runs under jit: one compilation instead of one per eager op.
    """
    return jax.jit(jax.vmap(jax.grad(fn)))


def np_sigmoid(z, beta=1.0):
    return 1.0 / (1.0 + np.exp(-beta * z))


# --- each function against its formula --------------------------------------------------------

FORMULAS = [
    ("identity", act.identity, lambda z: z),
    ("sigmoid", act.sigmoid, np_sigmoid),
    ("sigmoid_beta", lambda z: act.sigmoid(z, beta=2.5), lambda z: np_sigmoid(z, 2.5)),
    ("tanh", act.tanh, np.tanh),
    ("tanh_beta", lambda z: act.tanh(z, beta=0.5), lambda z: np.tanh(0.5 * z)),
    ("arctan", act.arctan, np.arctan),
    ("relu", act.relu, lambda z: np.maximum(0.0, z)),
    ("leaky_relu_course", lambda z: act.leaky_relu(z, alpha=0.1), lambda z: np.maximum(0.1 * z, z)),
    ("leaky_relu_default", act.leaky_relu, lambda z: np.maximum(0.01 * z, z)),
    ("elu", act.elu, lambda z: np.where(z > 0, z, np.exp(z) - 1.0)),
    ("elu_alpha", lambda z: act.elu(z, alpha=0.5), lambda z: np.where(z > 0, z, 0.5 * (np.exp(z) - 1))),
    ("softplus", act.softplus, lambda z: np.log1p(np.exp(z))),
    ("binary_step", act.binary_step, lambda z: (z > 0).astype(float)),
    ("binary_step_bipolar", lambda z: act.binary_step(z, bipolar=True),
     lambda z: np.where(z > 0, 1.0, -1.0)),
    ("prelu", lambda z: act.prelu(z, 0.3), lambda z: np.where(z >= 0, z, 0.3 * z)),
]


@functools.lru_cache(maxsize=None)
def every_function_on_z(x64_enabled):
    """{name: fn(Z)} for every FORMULAS entry, in ONE jitted program (one compile, not one per
    function); keyed by the x64 flag so a value is never reused across dtypes."""
    return jax.device_get(jax.jit(lambda z: {name: fn(z) for name, fn, _ in FORMULAS})(Z))


@pytest.mark.parametrize("name,formula", [(f[0], f[2]) for f in FORMULAS],
                         ids=[f[0] for f in FORMULAS])
def test_matches_formula(name, formula, x64):
    np.testing.assert_allclose(every_function_on_z(jax.config.jax_enable_x64)[name], formula(Z),
                               rtol=1e-12, atol=1e-14)


def test_binary_step_at_zero_and_range():
    """y = 1 if z > θ(=0) else 0 (McCulloch–Pitts); bipolar gives −1 instead of 0."""
    z = np.array([-1.0, 0.0, 1.0], np.float32)
    unipolar, bipolar, from_integers = jax.jit(lambda z, n: (  # one program
        act.binary_step(z), act.binary_step(z, bipolar=True), act.binary_step(n)))(
            z, np.array([1, -2], np.int32))
    np.testing.assert_array_equal(unipolar, [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(bipolar, [-1.0, -1.0, 1.0])
    assert from_integers.dtype == jnp.float32  # integer inputs give floats


# --- derivatives ---------------------------------------------------------------------------

@pytest.mark.parametrize("beta", [1.0, 0.5, 3.0])
def test_sigmoid_derivative(beta, x64):
    """f' = β f (1 − f)."""
    f = np_sigmoid(Z, beta)
    grad = elementwise_grad(lambda z: act.sigmoid(z, beta=beta))(jnp.asarray(Z))
    np.testing.assert_allclose(grad, beta * f * (1 - f), rtol=1e-12)


def test_sigmoid_derivative_at_most_a_quarter(x64):
    """The vanishing-gradient bound: σ' <= 1/4, reached at 0."""
    grad = elementwise_grad(act.sigmoid)(np.linspace(-8, 8, 161))
    assert grad.max() == pytest.approx(0.25, rel=1e-12)
    assert np.all(grad <= 0.25)


@pytest.mark.parametrize("beta", [1.0, 0.5, 3.0])
def test_tanh_derivative(beta, x64):
    """f' = β (1 − f²)."""
    f = np.tanh(beta * Z)
    grad = elementwise_grad(lambda z: act.tanh(z, beta=beta))(jnp.asarray(Z))
    np.testing.assert_allclose(grad, beta * (1 - f**2), rtol=1e-12, atol=1e-13)  # 1 − f² cancels


def test_tanh_is_a_scaled_sigmoid(x64):
    """tanh(x) = 2·sigm(2x) − 1."""
    x = np.linspace(-5, 5, 41)
    tanh, via_sigmoid = jax.jit(lambda x: (act.tanh(x), 2 * act.sigmoid(2 * x) - 1))(x)
    np.testing.assert_allclose(tanh, via_sigmoid, atol=1e-14)


def test_arctan_derivative(x64):
    grad = elementwise_grad(act.arctan)(jnp.asarray(Z))
    np.testing.assert_allclose(grad, 1 / (1 + Z**2), rtol=1e-12)


def test_relu_family_derivatives(x64):
    """Slopes 1 for z > 0 and 0 / α / learned α for z < 0."""
    def slope(fn):
        return jax.vmap(jax.grad(fn))

    @jax.jit  # every derivative in one program: one compile instead of one per eager op
    def slopes(z, zeros, nan):
        return (slope(act.relu)(z), slope(act.relu)(zeros), act.relu(nan),
                slope(lambda z: act.leaky_relu(z, alpha=0.1))(z),
                slope(lambda z: act.prelu(z, 0.3))(z),
                # PReLU's slope is learned: ∂f/∂α = z for z < 0, else 0
                jax.vmap(jax.grad(lambda a, z: act.prelu(z, a)), in_axes=(None, 0))(0.3, z))

    relu, relu_at_0, relu_of_nan, leaky, prelu, d_alpha = jax.device_get(
        slopes(Z, np.zeros(3), np.array([np.nan])))
    np.testing.assert_array_equal(relu, (Z > 0).astype(float))
    assert relu_at_0.tolist() == [0.0, 0.0, 0.0]  # f'(0) = 0
    assert np.isnan(relu_of_nan).all()  # a NaN stays visible
    np.testing.assert_allclose(leaky, np.where(Z > 0, 1.0, 0.1))
    np.testing.assert_allclose(prelu, np.where(Z > 0, 1.0, 0.3))
    np.testing.assert_allclose(d_alpha, np.where(Z < 0, Z, 0.0))


def test_elu_gradient_is_finite_everywhere(x64):
    """The unused branch of a `where` must not poison the gradient (e^z overflows for big z)."""
    z = jnp.array([-1000.0, -50.0, -1.0, 0.0, 1.0, 50.0, 800.0, 1000.0])
    for alpha in [1.0, 0.5]:
        values = jax.jit(lambda z: act.elu(z, alpha=alpha))(z)
        grad = elementwise_grad(lambda z: act.elu(z, alpha=alpha))(z)
        assert np.all(np.isfinite(values)) and np.all(np.isfinite(grad))
        expected = np.where(np.asarray(z) > 0, 1.0, alpha * np.exp(np.minimum(z, 0)))
        # atol: JAX differentiates expm1 as expm1(z) + 1, exact to ~1e-16 absolute
        np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-15)
    # float32 too (the default dtype overflows sooner)
    grad32 = elementwise_grad(act.elu)(jnp.array([-200.0, 0.5, 100.0], jnp.float32))
    assert grad32.dtype == jnp.float32 and np.all(np.isfinite(grad32))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softplus_is_stable(dtype, x64):
    """ln(1 + e^z) neither overflows at +1000 nor loses everything at −1000; f' = sigmoid."""
    z = jnp.array([-1000.0, -30.0, 0.0, 30.0, 1000.0], dtype)
    values = jax.jit(act.softplus)(z)
    assert values.dtype == jnp.dtype(dtype)
    np.testing.assert_allclose(values, [0.0, np.log1p(np.exp(-30.0)), np.log(2.0),
                                        30.0 + np.log1p(np.exp(-30.0)), 1000.0], rtol=1e-6)
    grad = elementwise_grad(act.softplus)(z)
    with np.errstate(over="ignore"):  # e^1000 overflows in the NumPy reference: 1/(1+inf) = 0
        expected = np_sigmoid(np.asarray(z, np.float64))
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-30)


def test_softplus_derivative_is_sigmoid(x64):
    np.testing.assert_allclose(elementwise_grad(act.softplus)(jnp.asarray(Z)), np_sigmoid(Z),
                               rtol=1e-12)


def test_binary_step_gradient_is_zero(x64):
    for bipolar in [False, True]:
        grad = elementwise_grad(lambda z: act.binary_step(z, bipolar=bipolar))(jnp.asarray(Z))
        np.testing.assert_array_equal(grad, np.zeros_like(Z))


# --- softmax -------------------------------------------------------------------------------

def test_softmax_formula_and_sum(x64):
    a = np.array([[1.0, 2.0, 0.5, -1.0], [1000.0, 1001.0, 999.0, 0.0]])  # row 2: stability
    e = np.exp(a - a.max(axis=1, keepdims=True))
    expected = e / e.sum(axis=1, keepdims=True)
    s, log_s = jax.jit(lambda a: (act.softmax(a), act.log_softmax(a)))(jnp.asarray(a))
    np.testing.assert_allclose(s, expected, rtol=1e-12)
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-12)
    log_expected = a - a.max(axis=1, keepdims=True) - np.log(e.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(log_s, log_expected, rtol=1e-12)
    assert int(np.argmax(s[0])) == 1  # prediction = argmax


def test_softmax_axis(x64):
    a = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 4)))
    s = np.asarray(jax.jit(lambda a: act.softmax(a, axis=1))(a))
    np.testing.assert_allclose(s.sum(axis=1), np.ones((2, 4)), rtol=1e-12)
    e = np.exp(np.asarray(a))
    np.testing.assert_allclose(s, e / e.sum(axis=1, keepdims=True), rtol=1e-12)


def test_softmax_jacobian(x64):
    """∂S_i/∂a_j = S_i (δ_ij − S_j)."""
    a = np.array([0.3, -1.2, 2.0, 0.0, 0.7])
    s = np.exp(a) / np.exp(a).sum()
    expected = np.diag(s) - np.outer(s, s)  # S_i δ_ij − S_i S_j
    np.testing.assert_allclose(jax.jit(jax.jacobian(act.softmax))(a), expected, atol=1e-15)
    assert expected[0, 0] == pytest.approx(s[0] * (1 - s[0]))


# --- maxout --------------------------------------------------------------------------------

def test_maxout_function(x64):
    """Max over groups of `pieces` consecutive units."""
    x = np.random.default_rng(1).normal(size=(3, 12))
    for pieces in [1, 2, 3, 4]:
        expected = x.reshape(3, 12 // pieces, pieces).max(axis=-1)
        np.testing.assert_array_equal(jax.jit(act.maxout, static_argnums=1)(x, pieces), expected)
    # along another axis
    x3 = np.random.default_rng(2).normal(size=(2, 6, 5))
    np.testing.assert_array_equal(jax.jit(lambda x: act.maxout(x, 3, axis=1))(x3),
                                  x3.reshape(2, 2, 3, 5).max(axis=2))


def test_maxout_needs_a_multiple_of_pieces():
    with pytest.raises(ValueError, match=r"maxout: axis 1 has 5 units, not a multiple of pieces=2"):
        act.maxout(np.ones((2, 5), np.float32), 2)


def test_maxout_layer_is_max_of_affine_pieces(x64):
    """Maxout(units, pieces=2): y = max(x W1 + b1, x W2 + b2) (course §7)."""
    layer = layers.Maxout(4, pieces=2)
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(2, 3, 4)), "b": rng.normal(size=(2, 4))}
    x = rng.normal(size=(5, 3))
    assert jax.tree_util.tree_map(np.shape, params) == jax.tree_util.tree_map(
        np.shape, init_shapes(layer, (None, 3))[1])
    y, _ = jax.jit(layer.apply)(params, {}, x)
    pieces = [x @ params["w"][k] + params["b"][k] for k in range(2)]
    np.testing.assert_allclose(y, np.maximum(*pieces), rtol=1e-12)


# --- the layer twins ----------------------------------------------------------------------

LAYER_TWINS = [
    (layers.Identity(), act.identity),
    (layers.BinaryStep(), act.binary_step),
    (layers.BinaryStep(bipolar=True), lambda z: act.binary_step(z, bipolar=True)),
    (layers.Sigmoid(beta=2.0), lambda z: np_sigmoid(z, 2.0)),
    (layers.Tanh(beta=0.5), lambda z: np.tanh(0.5 * z)),
    (layers.Arctan(), np.arctan),
    (layers.ReLU(), lambda z: np.maximum(z, 0)),
    (layers.LeakyReLU(0.1), lambda z: np.maximum(0.1 * z, z)),
    (layers.ELU(0.5), lambda z: np.where(z > 0, z, 0.5 * np.expm1(z))),
    (layers.Softplus(), lambda z: np.logaddexp(z, 0)),
    (layers.Softmax(), lambda z: np.exp(z) / np.exp(z).sum(-1, keepdims=True)),
    (layers.LogSoftmax(), lambda z: z - np.log(np.exp(z).sum(-1, keepdims=True))),
    (layers.PReLU(alpha_init=0.25), lambda z: np.where(z >= 0, z, 0.25 * z)),
    (layers.Activation("tanh"), np.tanh),
    (layers.Activation("linear"), lambda z: z),
]


TWIN_Z = np.random.default_rng(0).normal(size=(3, 4))


@functools.lru_cache(maxsize=None)
def every_twin_on_z(x64_enabled):
    """[layer.apply(its init params, TWIN_Z) for each of LAYER_TWINS], in ONE jitted program;
    keyed by the x64 flag so a value is never reused across dtypes."""
    variables = [layer.init(KEY, (None, 4))[1:] for layer, _ in LAYER_TWINS]
    return jax.device_get(jax.jit(lambda variables, z: [
        layer.apply(params, state, z)[0]
        for (layer, _), (params, state) in zip(LAYER_TWINS, variables)])(variables, TWIN_Z))


@pytest.mark.parametrize("index", range(len(LAYER_TWINS)), ids=[t[0].name for t in LAYER_TWINS])
def test_activation_layers_apply_their_function(index, x64):
    layer, formula = LAYER_TWINS[index]
    out_shape, params, state = layer.init(KEY, (None, 4))
    assert out_shape == (None, 4) and state == {}
    y = every_twin_on_z(jax.config.jax_enable_x64)[index]
    np.testing.assert_allclose(y, formula(TWIN_Z), rtol=1e-6, atol=1e-7)


def test_prelu_learns_one_slope_per_feature(x64):
    layer = layers.PReLU()
    _, params, _ = layer.init(KEY, (None, 2, 3))
    assert jax.tree_util.tree_map(jnp.shape, params) == {"alpha": (3,)}
    alpha = np.array([0.1, 0.2, 0.3])
    x = -np.ones((4, 2, 3))
    y, _ = jax.jit(layer.apply)({"alpha": alpha}, {}, x)
    np.testing.assert_allclose(y, -np.broadcast_to(alpha, (4, 2, 3)))


# --- get -----------------------------------------------------------------------------------

def test_get_by_name_and_callable():
    assert act.get("relu") is act.relu
    assert act.get("linear") is act.identity
    assert act.get("softmax") is act.softmax
    fn = lambda z: z  # noqa: E731
    assert act.get(fn) is fn


@pytest.mark.parametrize("bad", ["rellu", "ReLU", None, 3])
def test_get_errors(bad):
    with pytest.raises(ValueError, match=r"unknown activation .*expected one of \[.*'relu'.*"
                                         r"or a callable"):
        act.get(bad)


def test_activation_layer_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown activation 'sigmoidd'"):
        layers.Activation("sigmoidd")
