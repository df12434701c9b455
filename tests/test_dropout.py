"""Dropout and DropConnect: masks from the key only, expected outputs preserved, exact eval modes.

Statistical checks average over many masks, drawn for many copies of X in one batch (masks are
independent per entry) or, for a mask shared by the batch, for many keys; tolerances are 5
standard errors.
"""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.core import LayerError
from fnn.layers import Dense, DropConnect, Dropout, serial

# Results are inspected with NumPy: each eager jnp op on them would compile a program of its own
# (the layers' own eager ops are shared by the tests, which all use a few shapes).
KEY = jax.random.PRNGKey(0)
# Inputs are made in NumPy and device_put (no compile); X is a jax.Array (eval mode returns it).
X = jax.device_put(np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32))
N = 5000  # copies of X, or keys
COPIES = jax.device_put(np.tile(np.asarray(X), (N, 1)))  # (N·4, 6)
ONES = np.ones(COPIES.shape, np.float32)
KEYS = jax.random.split(jax.random.PRNGKey(2), N)


def build(layer, shape=X.shape):
    _, params, state = layer.init(KEY, shape)
    return params, state


def train_output(layer, params, state, x, key=KEY):
    """The train-mode output of ``layer`` on ``x``, as a NumPy array."""
    return np.asarray(layer.apply(params, state, x, key=key, train=True)[0])


def mean_train_output(layer, params, state, over="copies"):
    """The train-mode output on X averaged over N draws of the mask: of copies of X or of keys."""
    if over == "keys":
        apply = jax.vmap(lambda k: layer.apply(params, state, X, key=k, train=True)[0])
        return np.asarray(jax.jit(lambda keys: apply(keys).mean(axis=0))(KEYS))
    y = train_output(layer, params, state, COPIES)
    return y.reshape(N, *X.shape[:-1], y.shape[-1]).mean(axis=0)


# --- Dropout ----------------------------------------------------------------------------------

def test_same_key_same_mask_other_key_other_mask():
    layer = Dropout(0.5)
    y1, y2, y3 = (train_output(layer, {}, {}, X, key) for key in (KEY, KEY, jax.random.PRNGKey(5)))
    chex.assert_trees_all_equal(y1, y2)
    assert not np.array_equal(y1 == 0, y3 == 0)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_fraction_dropped_is_the_rate(rate):
    y = train_output(Dropout(rate), {}, {}, ONES)
    n, dropped = y.size, float(np.mean(y == 0))
    assert abs(dropped - rate) < 5 * np.sqrt(rate * (1 - rate) / n)
    np.testing.assert_allclose(y[y != 0], 1 / (1 - rate), rtol=1e-6)  # kept units: x / (1 − p)


@pytest.mark.parametrize("mode", ["inverted", "classic"])
def test_expected_train_output_is_the_eval_output(mode):
    rate = 0.3
    layer = Dropout(rate, mode=mode)
    y_eval, _ = layer.apply({}, {}, X)  # no key needed in eval mode
    expected = X if mode == "inverted" else (1 - rate) * np.asarray(X)
    chex.assert_trees_all_close(y_eval, expected, rtol=1e-6)
    mean = mean_train_output(layer, {}, {})
    spread = np.abs(X) * np.sqrt(rate * (1 - rate)) / (1 - rate if mode == "inverted" else 1)
    assert np.all(np.abs(mean - np.asarray(y_eval)) < 5 * spread / np.sqrt(N) + 1e-6)


def test_eval_mode_is_exact_and_ignores_the_key():
    layer = Dropout(0.5)
    assert layer.apply({}, {}, X)[0] is X
    chex.assert_trees_all_equal(layer.apply({}, {}, X, key=KEY)[0], X)


def test_rate_zero_is_the_identity_and_needs_no_key():
    for mode in ["inverted", "classic"]:
        y, _ = Dropout(0.0, mode=mode).apply({}, {}, X, train=True)
        chex.assert_trees_all_equal(y, X)


@pytest.mark.parametrize("mode,scale", [("inverted", 1 / (1 - 0.4)), ("classic", 1.0)])
def test_gradients_flow_only_through_kept_units(mode, scale):
    layer = Dropout(0.4, mode=mode)
    y = train_output(layer, {}, {}, X)
    grad = jax.jit(jax.grad(lambda x: layer.apply({}, {}, x, key=KEY, train=True)[0].sum()))(X)
    kept = y != 0
    assert 0 < kept.sum() < kept.size
    np.testing.assert_allclose(grad, np.where(kept, scale, 0.0), rtol=1e-6)


def test_jit_with_static_train_matches_eager():
    layer = Dropout(0.5)
    apply = jax.jit(layer.apply, static_argnames="train")
    for train in [False, True]:
        chex.assert_trees_all_close(apply({}, {}, X, key=KEY, train=train),
                                    layer.apply({}, {}, X, key=KEY, train=train))


def test_dtype_preserved(x64):
    for dtype in [jnp.float32, jnp.float64, jnp.bfloat16]:
        x = jax.ShapeDtypeStruct(X.shape, dtype)
        for mode in ["inverted", "classic"]:
            for train in [False, True]:
                layer = Dropout(0.3, mode=mode)
                y = jax.eval_shape(lambda x: layer.apply({}, {}, x, key=KEY, train=train)[0], x)
                assert y.dtype == dtype


def test_broadcast_axes_share_the_mask():
    # (batch, time, features): the same features dropped at every step
    x = np.ones((8, 5, 6), np.float32)
    y = train_output(Dropout(0.5, broadcast_axes=(1,)), {}, {}, x)
    chex.assert_trees_all_equal(y, np.broadcast_to(y[:, :1], y.shape))
    assert not np.all(y[:, 0] == y[:1, 0])  # but not across examples
    _, _, _ = Dropout(0.5, broadcast_axes=(-2,)).init(KEY, (None, 5, 6))


def test_inside_a_model_children_get_their_own_keys():
    model = serial(Dropout(0.5), Dropout(0.5))
    y = train_output(model, {"dropout_0": {}, "dropout_1": {}}, {"dropout_0": {}, "dropout_1": {}},
                     ONES)
    # independent masks drop 1 − (1/2)² = 3/4; one mask used twice would drop 1/2
    assert abs(float(np.mean(y == 0)) - 0.75) < 5 * np.sqrt(0.75 * 0.25 / y.size)


def test_missing_key_in_train_mode():
    model = serial(Dense(3), Dropout(0.5))
    params, state = build(model)
    with pytest.raises(LayerError, match=r"Dropout\(0\.5\) in `dropout_0` needs a key in train "
                                         r"mode: pass `key=` to apply"):
        jax.jit(lambda p, s, x: model.apply(p, s, x, train=True))(params, state, X)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, True, "0.5", None])
def test_invalid_rate(rate):
    with pytest.raises(ValueError, match=r"Dropout: `drop_rate` is the probability of dropping "
                                         r"and must be in \[0, 1\); got"):
        Dropout(rate)


def test_invalid_mode_and_axes():
    with pytest.raises(ValueError, match=r"Dropout: `mode` must be one of \('inverted', "
                                         r"'classic'\); got 'keep'"):
        Dropout(0.5, mode="keep")
    with pytest.raises(ValueError, match=r"`broadcast_axes` must be integers"):
        Dropout(0.5, broadcast_axes=(1.0,))
    with pytest.raises(LayerError, match=r"shares its mask along axis 2, which inputs of shape "
                                         r"\(batch, 6\) do not have"):
        Dropout(0.5, broadcast_axes=(2,)).init(KEY, (None, 6))


# --- DropConnect ------------------------------------------------------------------------------

def test_dropconnect_eval_is_dense():
    layer, dense = DropConnect(3, 0.5), Dense(3)
    params, state = build(layer)
    chex.assert_trees_all_equal(params, build(dense)[0])  # same names, same initialization
    chex.assert_trees_all_equal(layer.apply(params, state, X)[0],
                                dense.apply(params, state, X)[0])
    chex.assert_trees_all_equal(DropConnect(3, 0.0).apply(params, state, X, train=True)[0],
                                dense.apply(params, state, X)[0])


@pytest.mark.parametrize("per_example", [False, True])
def test_dropconnect_expected_train_output_is_eval(per_example):
    rate = 0.5
    layer = DropConnect(3, rate, per_example=per_example)
    params, state = build(layer)
    y_eval, _ = layer.apply(params, state, X)
    mean = mean_train_output(layer, params, state, over="copies" if per_example else "keys")
    # Var z_j = Σ_i x_i² w_ij² p / (1 − p) for inverted scaling
    std = np.sqrt((np.asarray(X) ** 2) @ (np.asarray(params["w"]) ** 2) * rate / (1 - rate))
    assert np.all(np.abs(mean - np.asarray(y_eval)) < 5 * std / np.sqrt(N) + 1e-6)


@pytest.mark.parametrize("per_example", [False, True])
def test_dropconnect_drops_weights_not_units(per_example):
    """On the basis vectors x = e_i, z − b reads off the masked weights W ⊙ M / (1 − p)."""
    rate, n_in = 0.5, 6
    layer = DropConnect(3, rate, per_example=per_example)
    params, state = build(layer)
    x = np.tile(np.eye(n_in, dtype=np.float32), (2, 1))  # every basis vector twice
    z = train_output(layer, params, state, x)
    masked = (z - np.asarray(params["b"])[None]).reshape(2, n_in, 3)  # (n_in, units) per copy
    w = np.asarray(params["w"])[None]
    assert np.all(np.isclose(masked, 0) | np.isclose(masked, w / (1 - rate)))
    assert 0 < np.sum(masked == 0) < masked.size  # single weights dropped, not whole units
    assert np.array_equal(masked[0], masked[1]) != per_example  # one mask per batch or example


def test_dropconnect_gradients_reach_only_kept_weights():
    layer = DropConnect(3, 0.5)
    params, state = build(layer)
    x = np.eye(6, dtype=np.float32)

    @jax.jit  # one program: eager, every op of the gradient compiles on its own
    def gradient_and_output(p):
        def output(p):
            return layer.apply(p, state, x, key=KEY, train=True)[0]
        return jax.grad(lambda p: output(p).sum())(p), output(p)

    grads, z = jax.device_get(gradient_and_output(params))
    # row i of z − b is row i of the masked weights
    kept = (z - np.asarray(params["b"])[None]) != 0
    np.testing.assert_allclose(grads["w"], np.where(kept, 2.0, 0.0), rtol=1e-6)
    np.testing.assert_allclose(grads["b"], np.full(3, 6.0))  # biases are never dropped


def test_dropconnect_jit_and_options():
    layer = DropConnect(3, 0.5, use_bias=False, w_init="he_normal")
    params, state = build(layer, (None, 4, 6))  # on sequences too, as Dense
    assert set(params) == {"w"}
    apply = jax.jit(layer.apply, static_argnames="train")
    x = np.ones((2, 4, 6), np.float32)
    chex.assert_trees_all_close(apply(params, state, x, key=KEY, train=True),
                                layer.apply(params, state, x, key=KEY, train=True))


def test_dropconnect_errors_name_the_layer():
    layer = DropConnect(3, 0.5)
    params, state = build(layer)
    with pytest.raises(LayerError, match=r"DropConnect\(3, 0\.5\) expects inputs of shape "
                                         r"\(batch, 6\); got \(4, 5\)"):
        layer.apply(params, state, np.ones((4, 5), np.float32), key=KEY, train=True)
    with pytest.raises(LayerError, match=r"DropConnect\(3, 0\.5\) expects inputs of shape "
                                         r"\(batch, features\); got \(6,\)"):
        layer.init(KEY, (6,))
    with pytest.raises(LayerError, match=r"DropConnect\(3, 0\.5\) needs a key in train mode"):
        layer.apply(params, state, X, train=True)
    with pytest.raises(ValueError, match=r"DropConnect\(0, 0\.5\): `units` must be a positive"):
        DropConnect(0, 0.5)
    with pytest.raises(ValueError, match=r"DropConnect: `drop_rate` is the probability of "
                                         r"dropping and must be in \[0, 1\); got 1"):
        DropConnect(3, 1)
