"""Combinators: naming, keys, shapes and values against direct computation, and error messages."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.core import Layer, LayerError, init_shapes
from fnn.layers import (
    Activation, Add, BinaryStep, Concatenate, Dense, Flatten, Identity, Lambda, LeakyReLU,
    LogSoftmax, Maxout, PReLU, ReLU, Sigmoid, Tanh, branch, parallel, residual, serial)
from fnn.models import mlp

KEY = jax.random.PRNGKey(0)


def init(layer, shape, key=KEY):
    return layer.init(key, shape)


def init_zeros(layer, shape):
    """(output shape, params, state) with NumPy zeros for params: no XLA work at all, for tests
    of structure and of error messages (eager init would compile every random op it uses)."""
    out, params, state = init_shapes(layer, shape)
    zeros = lambda s: np.zeros(s.shape, s.dtype)  # noqa: E731
    return out, jax.tree_util.tree_map(zeros, params), jax.tree_util.tree_map(zeros, state)


def shapes_of(tree):
    return jax.tree_util.tree_map(jnp.shape, tree)


def rng_array(*shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape))


# --- naming ---------------------------------------------------------------------------------

def test_auto_names_count_per_kind():
    model = serial(Dense(4), ReLU(), Dense(3), ReLU(), Dense(2), LogSoftmax())
    assert [name for name, _ in model.layers] == [
        "dense_0", "relu_0", "dense_1", "relu_1", "dense_2", "log_softmax_0"]
    _, params, state = init_zeros(model, (None, 5))
    assert set(params) == {name for name, _ in model.layers}
    assert set(state) == set(params) and all(s == {} for s in state.values())


def test_auto_names_of_every_kind():
    model = serial(Flatten(), Dense(6), LeakyReLU(0.1), BinaryStep(), Sigmoid(), Tanh(), PReLU(),
                   Maxout(4), Activation("tanh"), Activation(lambda x: x), Lambda(jnp.sin),
                   serial(Identity()), residual(Dense(4)), branch(Identity(), Identity()),
                   Add())
    assert [name for name, _ in model.layers] == [
        "flatten_0", "dense_0", "leaky_relu_0", "binary_step_0", "sigmoid_0", "tanh_0",
        "prelu_0", "maxout_0", "tanh_1", "activation_0", "lambda_0", "serial_0", "residual_0",
        "branch_0", "add_0"]
    out, _, _ = init_zeros(model, (None, 2, 3))
    assert out == (None, 4)


def test_explicit_names():
    model = serial(("encoder", serial(Dense(4), ReLU())), Dense(3), ("head", Dense(2)))
    assert [name for name, _ in model.layers] == ["encoder", "dense_0", "head"]
    _, params, _ = init_zeros(model, (None, 5))
    assert set(params) == {"encoder", "dense_0", "head"}
    assert set(params["encoder"]) == {"dense_0", "relu_0"}


def test_duplicate_explicit_names_are_an_error():
    with pytest.raises(ValueError, match=re.escape("serial: child names must be unique; "
                                                   "['enc'] repeat.")):
        serial(("enc", Dense(3)), ("enc", Dense(2)))
    with pytest.raises(ValueError, match=r"^trunk: child names must be unique"):
        branch(("a", Dense(3)), ("a", ReLU()), name="trunk")


def test_explicit_name_colliding_with_an_auto_name():
    """An explicit ``dense_0`` keeps its name; the automatic name skips to the next free one."""
    model = serial(Dense(3), ("dense_0", Dense(4)), Dense(2))
    assert [name for name, _ in model.layers] == ["dense_1", "dense_0", "dense_2"]
    _, params, _ = init_zeros(model, (None, 5))
    assert shapes_of(params) == {"dense_1": {"w": (5, 3), "b": (3,)},
                                 "dense_0": {"w": (3, 4), "b": (4,)},
                                 "dense_2": {"w": (4, 2), "b": (2,)}}


def test_children_must_be_layers():
    with pytest.raises(TypeError, match=r"serial: each child must be a Layer or a \(name, Layer\) "
                                        r"pair; got ufunc"):
        serial(Dense(3), np.tanh)
    with pytest.raises(TypeError, match=r"got tuple"):
        serial(("a", "b"))


# --- params ---------------------------------------------------------------------------------

def test_params_are_nested_dicts_with_w_and_b():
    model = serial(Dense(4), ReLU(), ("head", serial(Dense(2), Sigmoid())))
    out, params, state = init(model, (None, 3))
    assert out == (None, 2)
    assert shapes_of(params) == {"dense_0": {"w": (3, 4), "b": (4,)}, "relu_0": {},
                                 "head": {"dense_0": {"w": (4, 2), "b": (2,)}, "sigmoid_0": {}}}
    assert state == {"dense_0": {}, "relu_0": {}, "head": {"dense_0": {}, "sigmoid_0": {}}}
    np.testing.assert_array_equal(params["dense_0"]["b"], np.zeros(4))  # biases start at 0
    assert params["dense_0"]["w"].dtype == jnp.float32


def test_serial_computes_the_composition(x64):
    model = serial(Dense(4), Tanh(), Dense(2))
    _, params, _ = init_zeros(model, (None, 3))
    params = jax.tree_util.tree_map(lambda p: rng_array(*p.shape, seed=p.size), params)
    x = rng_array(5, 3)
    y, _ = jax.jit(model.apply)(params, {"dense_0": {}, "tanh_0": {}, "dense_1": {}}, x)
    expected = affine(params["dense_1"], np.tanh(affine(params["dense_0"], x)))
    np.testing.assert_allclose(y, expected, rtol=1e-12)


# --- keys -----------------------------------------------------------------------------------

def KeyRecorder(log, tag):
    """A parameter-free layer that records the keys it receives at init and apply."""
    def init(key, input_shape):
        log.append((tag, "init", key))
        return input_shape, {}, {}

    def apply(params, state, x, *, key=None, train=False):
        log.append((tag, "apply", key))
        return x, state

    return Layer(init, apply, "KeyRecorder()")


def keys_by(log, stage):
    return {tag: key for tag, s, key in log if s == stage}


def assert_same_key(a, b):
    np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(b))


def test_serial_children_get_folded_keys():
    log = []
    model = serial(KeyRecorder(log, "a"), KeyRecorder(log, "b"),
                   ("inner", serial(KeyRecorder(log, "c"), KeyRecorder(log, "d"))))
    _, params, state = model.init(KEY, (None, 2))
    apply_key = jax.random.PRNGKey(42)
    model.apply(params, state, jnp.ones((1, 2)), key=apply_key, train=True)
    fold = jax.random.fold_in
    for stage, key in [("init", KEY), ("apply", apply_key)]:
        got = keys_by(log, stage)
        expected = {"a": fold(key, 0), "b": fold(key, 1), "c": fold(fold(key, 2), 0),
                    "d": fold(fold(key, 2), 1)}
        for tag in expected:
            assert_same_key(got[tag], expected[tag])
        data = [tuple(np.asarray(jax.random.key_data(k)).ravel()) for k in got.values()]
        assert len(set(data)) == 4, "every child gets its own key"
        assert tuple(np.asarray(key).ravel()) not in data, "no child gets its parent's key"


def test_no_key_means_no_key_for_children():
    log = []
    model = serial(KeyRecorder(log, "a"), branch(KeyRecorder(log, "b"), KeyRecorder(log, "c")))
    _, params, state = model.init(KEY, (None, 2))
    model.apply(params, state, jnp.ones((1, 2)))
    assert keys_by(log, "apply") == {"a": None, "b": None, "c": None}


@pytest.mark.parametrize("combinator", [parallel, branch])
def test_parallel_and_branch_fold_keys(combinator):
    log = []
    model = combinator(KeyRecorder(log, "a"), KeyRecorder(log, "b"))
    shape = ((None, 2), (None, 2)) if combinator is parallel else (None, 2)
    _, params, state = model.init(KEY, shape)
    x = jnp.ones((1, 2))
    model.apply(params, state, (x, x) if combinator is parallel else x, key=KEY)
    for stage in ["init", "apply"]:
        got = keys_by(log, stage)
        assert_same_key(got["a"], jax.random.fold_in(KEY, 0))
        assert_same_key(got["b"], jax.random.fold_in(KEY, 1))


def test_residual_folds_keys_for_block_and_shortcut():
    log = []
    model = residual(KeyRecorder(log, "f"), shortcut=KeyRecorder(log, "s"))
    _, params, state = model.init(KEY, (None, 2))
    model.apply(params, state, jnp.ones((1, 2)), key=KEY)
    got = keys_by(log, "apply")
    assert_same_key(got["f"], jax.random.fold_in(jax.random.fold_in(KEY, 0), 0))
    assert_same_key(got["s"], jax.random.fold_in(KEY, 1))


def test_same_layers_get_different_weights():
    model = serial(Dense(4), Dense(4), branch(Dense(4), Dense(4)))
    _, params, _ = init(model, (None, 4))
    ws = [params["dense_0"]["w"], params["dense_1"]["w"], params["branch_0"]["dense_0"]["w"],
          params["branch_0"]["dense_1"]["w"]]
    for i in range(len(ws)):
        for j in range(i):
            assert not np.allclose(ws[i], ws[j])
    _, again, _ = init(model, (None, 4))
    _, other, _ = init(model, (None, 4), key=jax.random.PRNGKey(1))
    np.testing.assert_array_equal(again["dense_0"]["w"], params["dense_0"]["w"])
    assert not np.allclose(other["dense_0"]["w"], params["dense_0"]["w"])


# --- shapes and values of parallel, branch, residual, Concatenate, Add ------------------------

def random_params(layer, shape, seed=0):
    """Params of the right structure filled with normal noise (biases included) in float64."""
    _, params, state = init_zeros(layer, shape)
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda p: jnp.asarray(rng.normal(size=p.shape)), params), state


def affine(p, x):
    return np.asarray(x) @ np.asarray(p["w"]) + np.asarray(p["b"])


def test_parallel(x64):
    model = parallel(Dense(3), Tanh(), ("skip", Identity()))
    out, _, _ = init_zeros(model, ((None, 4), (None, 2), (None, 7)))
    assert out == ((None, 3), (None, 2), (None, 7))
    params, state = random_params(model, ((None, 4), (None, 2), (None, 7)))
    xs = (rng_array(5, 4), rng_array(5, 2, seed=1), rng_array(5, 7, seed=2))
    ys, _ = jax.jit(model.apply)(params, state, xs)
    assert isinstance(ys, tuple) and len(ys) == 3
    np.testing.assert_allclose(ys[0], affine(params["dense_0"], xs[0]), rtol=1e-12)
    np.testing.assert_allclose(ys[1], np.tanh(xs[1]), rtol=1e-12)
    np.testing.assert_array_equal(ys[2], xs[2])


def test_branch(x64):
    model = branch(Dense(3), Sigmoid(), Identity())
    out, _, _ = init_zeros(model, (None, 4))
    assert out == ((None, 3), (None, 4), (None, 4))
    params, state = random_params(model, (None, 4))
    x = rng_array(5, 4)
    ys, _ = jax.jit(model.apply)(params, state, x)
    np.testing.assert_allclose(ys[0], affine(params["dense_0"], x), rtol=1e-12)
    np.testing.assert_allclose(ys[1], 1 / (1 + np.exp(-np.asarray(x))), rtol=1e-12)
    np.testing.assert_array_equal(ys[2], x)


def test_concatenate(x64):
    model = serial(branch(Dense(3), Identity()), Concatenate())
    out, _, _ = init_zeros(model, (None, 4))
    assert out == (None, 7)
    params, state = random_params(model, (None, 4))
    x = rng_array(5, 4)
    y, _ = jax.jit(model.apply)(params, state, x)
    expected = np.concatenate([affine(params["branch_0"]["dense_0"], x), x], axis=-1)
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    # along another axis
    layer = Concatenate(axis=1)
    assert init(layer, ((None, 2, 3), (None, 4, 3)))[0] == (None, 6, 3)
    a, b = rng_array(2, 2, 3), rng_array(2, 4, 3, seed=1)
    np.testing.assert_array_equal(layer.apply({}, {}, (a, b))[0], np.concatenate([a, b], 1))


def test_add(x64):
    model = serial(branch(Dense(3), Dense(3), Dense(3)), Add())
    out, _, _ = init_zeros(model, (None, 4))
    assert out == (None, 3)
    params, state = random_params(model, (None, 4))
    x = rng_array(5, 4)
    y, _ = jax.jit(model.apply)(params, state, x)
    expected = sum(affine(params["branch_0"][f"dense_{i}"], x) for i in range(3))
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_residual_identity_shortcut(x64):
    """y = F(x) + x with F = Dense → ReLU → Dense."""
    model = residual(Dense(6), ReLU(), Dense(4))
    out, params, _ = init_zeros(model, (None, 4))
    assert out == (None, 4)
    assert shapes_of(params) == {"block": {"dense_0": {"w": (4, 6), "b": (6,)}, "relu_0": {},
                                           "dense_1": {"w": (6, 4), "b": (4,)}}}
    params, state = random_params(model, (None, 4))
    x = rng_array(5, 4)
    y, _ = jax.jit(model.apply)(params, state, x)
    block = params["block"]
    expected = affine(block["dense_1"], np.maximum(affine(block["dense_0"], x), 0)) + x
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_residual_projection_shortcut(x64):
    model = residual(Dense(3), Tanh(), shortcut=Dense(3))
    out, params, _ = init_zeros(model, (None, 5))
    assert out == (None, 3)
    assert set(params) == {"block", "shortcut"}
    params, state = random_params(model, (None, 5))
    x = rng_array(2, 5)
    y, _ = jax.jit(model.apply)(params, state, x)
    expected = np.tanh(affine(params["block"]["dense_0"], x)) + affine(params["shortcut"], x)
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_residual_shape_mismatch_error():
    msg = ("residual adds its block's output (batch, 3) to its shortcut (batch, 5); they must "
           "match. Give a projection as `shortcut=`.")
    with pytest.raises(LayerError, match=re.escape(msg)):
        init_shapes(residual(Dense(3)), (None, 5))  # raised while tracing init
    with pytest.raises(LayerError, match=re.escape("residual in `residual_0` adds its block's "
                                                   "output (batch, 3) to its shortcut (batch, 2)")):
        init_shapes(serial(Dense(4), residual(Dense(3), shortcut=Dense(2))), (None, 5))


# --- error messages ---------------------------------------------------------------------------

def test_wrong_input_names_layer_path_and_shapes():
    """The message of the brief: a flat serial, images given to a model built for vectors."""
    model = serial(Dense(300), ReLU(), Dense(10))
    _, params, state = init_zeros(model, (None, 784))
    msg = ("Dense(300) in `dense_0` expects inputs of shape (batch, 784); got (5, 28, 28). "
           "Did you forget a Flatten?")
    with pytest.raises(LayerError, match="^" + re.escape(msg) + "$") as info:
        model.apply(params, state, jnp.ones((5, 28, 28)))
    assert info.value.layer == "Dense(300)" and info.value.path == ("dense_0",)
    assert isinstance(info.value, ValueError)
    # the same at trace time under jit
    with pytest.raises(LayerError, match=re.escape(msg)):
        jax.jit(model.apply)(params, state, jnp.ones((5, 28, 28)))


def test_wrong_input_path_inside_nested_serials():
    model = serial(("mlp", serial(Dense(300), ReLU(), Dense(100), ReLU())),
                   ("head", serial(("out", serial(Dense(10))))))
    _, params, state = init_zeros(model, (None, 784))
    params["mlp"]["dense_1"] = {"w": np.zeros((784, 100)), "b": np.zeros(100)}  # wrong params
    with pytest.raises(LayerError, match=re.escape(
            "Dense(100) in `mlp/dense_1` expects inputs of shape (batch, 784); got (32, 300).")):
        model.apply(params, state, jnp.ones((32, 784)))
    _, params, state = init_zeros(model, (None, 784))
    params["head"]["out"]["dense_0"]["w"] = np.zeros((99, 10))
    with pytest.raises(LayerError, match=re.escape(
            "Dense(10) in `head/out/dense_0` expects inputs of shape (batch, 99); got (32, 100).")):
        model.apply(params, state, jnp.ones((32, 784)))


def test_wrong_input_inside_residual_and_branch():
    model = serial(Dense(4), residual(Dense(4)), branch(Dense(2), ("proj", Dense(3))))
    _, params, state = init_zeros(model, (None, 6))
    with pytest.raises(LayerError, match=re.escape(
            "Dense(4) in `dense_0` expects inputs of shape (batch, 6); got (2, 5).")):
        model.apply(params, state, jnp.ones((2, 5)))
    params["residual_0"]["block"]["dense_0"]["w"] = np.zeros((5, 4))
    with pytest.raises(LayerError, match=re.escape("in `residual_0/block/dense_0` expects")):
        model.apply(params, state, jnp.ones((2, 6)))


def test_wrong_input_at_init():
    with pytest.raises(LayerError, match=re.escape(
            "Dense(3) in `dense_0` expects inputs of shape (batch, features); got (784,). "
            "Inputs need a leading batch axis.")):
        serial(Dense(3)).init(KEY, (784,))
    with pytest.raises(LayerError, match=re.escape(
            "Maxout(2, pieces=2) in `enc/maxout_0` expects inputs of shape (batch, features); "
            "got (5,).")):
        serial(("enc", serial(Maxout(2)))).init(KEY, (5,))


def test_mlp_without_flatten_hints_at_flatten():
    model = mlp([30, 10], flatten=False)
    _, params, state = init_zeros(model, (None, 784))
    with pytest.raises(LayerError, match=re.escape(
            "Dense(30) in `dense_0` expects inputs of shape (batch, 784); got (2, 28, 28). "
            "Did you forget a Flatten?")):
        model.apply(params, state, jnp.ones((2, 28, 28)))
    model = mlp([30, 10])  # with the Flatten: images go straight in
    _, params, state = init_zeros(model, (None, 28, 28))
    y = jax.eval_shape(model.apply, params, state, jax.ShapeDtypeStruct((2, 28, 28), jnp.float32))
    assert y[0].shape == (2, 10)


def test_wrong_params_structure():
    model = serial(Dense(3), ReLU(), Dense(2))
    _, params, state = init_zeros(model, (None, 4))
    _, other, _ = init_zeros(serial(Dense(3), Dense(2)), (None, 4))
    with pytest.raises(LayerError, match=re.escape(
            "serial expects params with keys ['dense_0', 'dense_1', 'relu_0']; "
            "got ['dense_0', 'dense_1'].")):
        model.apply(other, state, jnp.ones((1, 4)))
    with pytest.raises(LayerError, match=re.escape(
            "serial expects state with keys ['dense_0', 'dense_1', 'relu_0']; got [].")):
        model.apply(params, {}, jnp.ones((1, 4)))
    with pytest.raises(LayerError, match=re.escape(
            "serial expects params with keys ['dense_0', 'dense_1', 'relu_0']; got list.")):
        model.apply(list(params.values()), state, jnp.ones((1, 4)))


def test_wrong_params_structure_nested():
    model = serial(("encoder", serial(Dense(3), ReLU())), Dense(2))
    _, params, state = init_zeros(model, (None, 4))
    params["encoder"] = {"dense_0": params["encoder"]["dense_0"]}
    with pytest.raises(LayerError, match=re.escape(
            "serial in `encoder` expects params with keys ['dense_0', 'relu_0']; "
            "got ['dense_0'].")):
        model.apply(params, state, jnp.ones((1, 4)))
    model = branch(Dense(2), Dense(2), name="heads")
    _, params, state = init_zeros(model, (None, 4))
    with pytest.raises(LayerError, match=re.escape(
            "heads expects params with keys ['dense_0', 'dense_1']; got ['dense_0'].")):
        model.apply({"dense_0": params["dense_0"]}, state, jnp.ones((1, 4)))


def test_parallel_input_errors():
    model = parallel(Dense(3), Dense(2))
    with pytest.raises(LayerError, match=re.escape(
            "parallel expects a tuple of 2 inputs (or a dict keyed by ['dense_0', 'dense_1']); got (batch, 3).")):
        model.init(KEY, (None, 3))
    _, params, state = init_zeros(model, ((None, 3), (None, 3)))
    with pytest.raises(LayerError, match=re.escape(
            "parallel expects a tuple of 2 inputs (or a dict keyed by ['dense_0', 'dense_1']); got one array of shape (4, 3).")):
        model.apply(params, state, jnp.ones((4, 3)))
    with pytest.raises(LayerError, match=re.escape(
            "parallel expects a tuple of 2 inputs (or a dict keyed by ['dense_0', 'dense_1']); got a tuple of 3.")):
        model.apply(params, state, (jnp.ones((4, 3)),) * 3)


def test_add_and_concatenate_errors():
    with pytest.raises(LayerError, match=re.escape(
            "Add() in `add_0` expects inputs of one shape; got (batch, 3), (batch, 4).")):
        init_shapes(serial(branch(Dense(3), Dense(4)), Add()), (None, 2))
    with pytest.raises(LayerError, match=re.escape(
            "Add() expects inputs of one shape; got (2, 3), (2, 4).")):
        Add().apply({}, {}, (jnp.ones((2, 3)), jnp.ones((2, 4))))
    with pytest.raises(LayerError, match=re.escape(
            "Add() expects a tuple of inputs; got one array of shape (2, 3).")):
        Add().apply({}, {}, jnp.ones((2, 3)))
    with pytest.raises(LayerError, match=re.escape(
            "Concatenate(axis=-1) in `concatenate_0` cannot be applied to inputs of shape "
            "((batch, 3), (batch, 4, 2))")):
        serial(parallel(Identity(), Identity()), Concatenate()).init(
            KEY, ((None, 3), (None, 4, 2)))


def test_lambda_errors_name_the_shape():
    with pytest.raises(LayerError, match=re.escape(
            "square in `square_0` cannot be applied to inputs of shape (batch, 3):")):
        serial(Lambda(lambda x: x @ jnp.ones((4, 4)), name="square")).init(KEY, (None, 3))


# --- a user's own layer -------------------------------------------------------------------------

def Scale(init_value=1.0):
    """A user's layer in a few lines: y = x · s, one learned scale per feature."""
    def init(key, input_shape):
        return input_shape, {"s": jnp.full(input_shape[-1:], init_value)}, {}

    def apply(params, state, x, *, key=None, train=False):
        return x * params["s"][None, :], state

    return Layer(init, apply, "Scale()")


def test_custom_layer_inside_serial(x64):
    model = serial(Dense(3), Scale(2.0), Tanh(), Scale())
    out, params, state = init(model, (None, 4))
    assert out == (None, 3)
    assert [name for name, _ in model.layers] == ["dense_0", "scale_0", "tanh_0", "scale_1"]
    assert shapes_of(params["scale_0"]) == {"s": (3,)}
    x = rng_array(2, 4)
    params = jax.tree_util.tree_map(lambda p: np.asarray(p, np.float64), params)
    y, _ = jax.jit(model.apply)(params, state, x)
    np.testing.assert_allclose(y, np.tanh(2.0 * affine(params["dense_0"], x)), rtol=1e-12)

    def loss(params):
        return jnp.sum(model.apply(params, state, x)[0])

    grads = jax.jit(jax.grad(loss))(params)
    assert shapes_of(grads) == shapes_of(params)
    expected = np.sum(np.tanh(2.0 * affine(params["dense_0"], x)), axis=0)  # ∂/∂s of Σ s·t
    np.testing.assert_allclose(grads["scale_1"]["s"], expected, rtol=1e-12)
