"""Embedding and OneHot (fnn.layers.embedding): lookups against one-hot products in NumPy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.core import LayerError, count_params
from fnn.layers import Embedding, OneHot

KEY = jax.random.PRNGKey(0)
IDS = jnp.array([[0, 3, 3, 1], [4, 2, 0, 0]])


def test_embedding_is_a_one_hot_product():
    layer = Embedding(5, 3)
    shape, params, state = layer.init(KEY, (None, 4))
    assert shape == (None, 4, 3) and count_params(params) == 5 * 3
    y, _ = layer.apply(params, state, IDS)
    one_hot = np.eye(5)[np.asarray(IDS)]  # (2, 4, 5)
    np.testing.assert_allclose(y, one_hot @ np.asarray(params["w"], np.float64), rtol=1e-6)
    assert abs(float(jnp.std(Embedding(50, 40).init(KEY, (None, 1))[1]["w"])) - 1) < 0.05


def test_embedding_gradient_adds_up_over_repeated_ids():
    layer = Embedding(5, 3)
    _, params, state = layer.init(KEY, (None, 4))
    cotangent = np.random.default_rng(0).normal(size=(2, 4, 3))
    grad = jax.grad(lambda p: jnp.sum(layer.apply(p, state, IDS)[0] * cotangent))(params)["w"]
    want = np.einsum("btv,btd->vd", np.eye(5)[np.asarray(IDS)], cotangent)
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)


def test_out_of_range_ids_are_loud_and_float_ids_rejected():
    layer = Embedding(5, 3)
    _, params, state = layer.init(KEY, (None, 2))
    y, _ = layer.apply(params, state, jnp.array([[1, 5]]))
    assert np.isfinite(y[0, 0]).all() and np.isnan(y[0, 1]).all()
    with pytest.raises(LayerError, match=r"Embedding\(5, 3\) expects integer token ids; got "
                                         r"float32"):
        layer.apply(params, state, jnp.zeros((1, 2)))
    with pytest.raises(ValueError, match="Embedding.*`dim` must be a positive integer"):
        Embedding(5, 0)


def test_one_hot():
    layer = OneHot(5)
    shape, params, state = layer.init(KEY, (None, 4))
    assert shape == (None, 4, 5) and params == {}
    y, _ = layer.apply(params, state, IDS)
    np.testing.assert_array_equal(y, np.eye(5)[np.asarray(IDS)])
    np.testing.assert_array_equal(layer.apply(params, state, jnp.array([[7]]))[0], 0.0)
