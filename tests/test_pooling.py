"""Pooling against a direct NumPy loop, the course's hand-computed gradients, and output sizes."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from fnn.core import LayerError, count_params, init_shapes
from fnn.layers import (
    AvgPool1D, AvgPool2D, GlobalAvgPool, GlobalMaxPool, MaxPool1D, MaxPool2D, MinPool1D,
    MinPool2D)

RNG = np.random.default_rng(1)
KEY = jax.random.PRNGKey(0)


def apply(layer, x, params=None, state=None):
    """``layer``'s output on ``x`` under one jax.jit (eager, each op compiles on its own)."""
    params, state = params or {}, state or {}
    return np.asarray(jax.jit(lambda v: layer.apply(params, state, v)[0])(x))


def np_pool(x, op, window, strides, pads, count_include_pad=False):
    """Pool x (N, M, M', C) per channel over windows of the padded input, by a loop. Padded
    cells are missing for max/min and for the average unless ``count_include_pad``."""
    n, m1, m2, c = x.shape
    q1 = (m1 + sum(pads[0]) - window[0]) // strides[0] + 1
    q2 = (m2 + sum(pads[1]) - window[1]) // strides[1] + 1
    y = np.zeros((n, q1, q2, c))
    for i, j in itertools.product(range(q1), range(q2)):
        cells = []
        for a, b in itertools.product(range(window[0]), range(window[1])):
            r, s = i * strides[0] + a - pads[0][0], j * strides[1] + b - pads[1][0]
            if 0 <= r < m1 and 0 <= s < m2:
                cells.append(x[:, r, s])
        stack = np.stack(cells)
        if op == "max":
            y[:, i, j] = stack.max(0)
        elif op == "min":
            y[:, i, j] = stack.min(0)
        else:
            y[:, i, j] = stack.sum(0) / (window[0] * window[1] if count_include_pad
                                         else len(cells))
    return y


LAYERS = {"max": MaxPool2D, "min": MinPool2D, "avg": AvgPool2D}
CASES = [  # op, (M, M'), window, strides, padding, pads
    ("max", (4, 6), 2, None, "VALID", [(0, 0), (0, 0)]),
    ("max", (5, 5), 3, 2, "SAME", [(1, 1), (1, 1)]),
    ("min", (5, 7), (2, 3), (1, 2), "VALID", [(0, 0), (0, 0)]),
    ("min", (4, 4), 2, 2, ((1, 0), (0, 1)), [(1, 0), (0, 1)]),
    ("avg", (6, 6), 2, None, "VALID", [(0, 0), (0, 0)]),
    ("avg", (5, 6), 3, 2, "SAME", [(1, 1), (0, 1)]),  # 6 columns: total padding 1, at the end
    ("avg", (5, 5), 3, 1, 1, [(1, 1), (1, 1)]),
]


@pytest.mark.parametrize("op,sizes,window,strides,padding,pads", CASES)
def test_pool2d_matches_numpy_loop(op, sizes, window, strides, padding, pads):
    x = RNG.normal(size=(2, *sizes, 3))
    w2 = (window, window) if isinstance(window, int) else window
    s2 = w2 if strides is None else ((strides,) * 2 if isinstance(strides, int) else strides)
    layer = LAYERS[op](window, strides, padding)
    out, params, state = layer.init(KEY, (None, *sizes, 3))
    y = apply(layer, jnp.asarray(x, jnp.float32), params, state)
    expected = np_pool(x, op, w2, s2, pads)
    assert out == (None, *expected.shape[1:]) and y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    assert params == {} and state == {} and count_params(params) == 0


def test_avg_pool_count_include_pad():
    x = RNG.normal(size=(1, 4, 5, 2))
    excl = AvgPool2D(3, 2, 1)
    incl = AvgPool2D(3, 2, 1, count_include_pad=True)
    y_excl = apply(excl, jnp.asarray(x, jnp.float32))
    y_incl = apply(incl, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(y_excl, np_pool(x, "avg", (3, 3), (2, 2), [(1, 1)] * 2), rtol=1e-5)
    np.testing.assert_allclose(y_incl, np_pool(x, "avg", (3, 3), (2, 2), [(1, 1)] * 2, True),
                               rtol=1e-5, atol=1e-6)
    # the corner window holds 4 real cells of 9: the two means differ by the factor 4/9
    np.testing.assert_allclose(y_incl[0, 0, 0], y_excl[0, 0, 0] * 4 / 9, rtol=1e-5)


def test_pool1d_is_pool2d_on_one_row():
    x = RNG.normal(size=(2, 9, 3)).astype(np.float32)
    for one, two in [(MaxPool1D(3, 2, "SAME"), MaxPool2D((1, 3), (1, 2), "SAME")),
                     (MinPool1D(2), MinPool2D((1, 2))),
                     (AvgPool1D(3, 1, (2, 0)), AvgPool2D((1, 3), 1, ((0, 0), (2, 0))))]:
        y1, y2 = apply(one, jnp.asarray(x)), apply(two, jnp.asarray(x[:, None]))
        np.testing.assert_allclose(y1, y2[:, 0], rtol=1e-6)
        assert init_shapes(one, (None, 9, 3))[0] == (None, y1.shape[1], 3)


def test_global_pools():
    x = RNG.normal(size=(2, 3, 4, 5)).astype(np.float32)
    y = apply(GlobalAvgPool(), jnp.asarray(x))
    np.testing.assert_allclose(y, x.mean(axis=(1, 2)), rtol=1e-5)
    y = apply(GlobalMaxPool(keepdims=True), jnp.asarray(x))
    np.testing.assert_allclose(y, x.max(axis=(1, 2), keepdims=True))
    assert init_shapes(GlobalAvgPool(), (None, 3, 4, 5))[0] == (None, 5)
    assert init_shapes(GlobalMaxPool(keepdims=True), (None, 3, 4, 5))[0] == (None, 1, 1, 5)
    assert init_shapes(GlobalAvgPool(), (None, 7, 5))[0] == (None, 5)


def test_max_pool_gradient_goes_to_the_winner():
    """The course's example: 2×2 max pooling of a 4×4 map; each output delta lands on the
    position of its window's maximum, every other input gets 0."""
    x = np.array([[1, 1, 2, 4],
                  [5, 6, 7, 8],
                  [3, 2, 1, 0],
                  [1, 2, 3, 4]], np.float32).reshape(1, 4, 4, 1)
    delta = np.array([[1, 2], [3, 4]], np.float32).reshape(1, 2, 2, 1)
    y, pulled_back = jax.jit(lambda v, d: (lambda out, vjp: (out, vjp(d)[0]))(
        *jax.vjp(lambda v: MaxPool2D(2).apply({}, {}, v)[0], v)))(jnp.asarray(x), delta)
    np.testing.assert_array_equal(y[0, :, :, 0], [[6, 8], [3, 4]])
    expected = np.array([[0, 0, 0, 0],
                         [0, 1, 0, 2],
                         [3, 0, 0, 0],
                         [0, 0, 0, 4]], np.float32)
    np.testing.assert_array_equal(pulled_back[0, :, :, 0], expected)


def test_avg_pool_gradient_is_spread_evenly():
    """Average pooling over N×N windows gives every input of a window 1/(N·N) of its delta."""
    x = jnp.asarray(RNG.normal(size=(1, 4, 4, 1)), jnp.float32)
    delta = np.array([[1, 2], [3, 4]], np.float32).reshape(1, 2, 2, 1)
    pulled_back = jax.jit(lambda v, d: jax.vjp(lambda v: AvgPool2D(2).apply({}, {}, v)[0], v)[1](
        d)[0])(x, delta)
    expected = np.kron(delta[0, :, :, 0], np.ones((2, 2))) / 4
    np.testing.assert_allclose(pulled_back[0, :, :, 0], expected)


@pytest.mark.parametrize("layer", [AvgPool2D(3, 2, "SAME"), MaxPool2D(2, 1)],
                         ids=["avg", "max"])
def test_finite_differences_float64(x64, layer):
    x = jnp.asarray(RNG.permutation(2 * 5 * 5 * 2).reshape(2, 5, 5, 2) / 10.0)  # no ties
    check_grads(lambda v: layer.apply({}, {}, v)[0], (x,), order=1, modes=["rev"], eps=1e-6)


@pytest.mark.parametrize("m,k,s,p", [(28, 2, 2, 0), (27, 2, 2, 0), (5, 3, 2, 1), (55, 3, 2, 0),
                                     (112, 3, 2, 1), (4, 4, 1, 0)])
def test_output_size_table(m, k, s, p):
    """Q = ⌊(M + 2P − K)/S⌋ + 1; e.g. AlexNet's 55 → 27, ResNet's stem pool 112 → 56."""
    q = (m + 2 * p - k) // s + 1
    assert init_shapes(MaxPool2D(k, s, p), (None, m, m, 3))[0] == (None, q, q, 3)
    assert {(55, 3, 2, 0): 27, (112, 3, 2, 1): 56, (27, 2, 2, 0): 13}.get((m, k, s, p), q) == q


def test_errors_and_kinds():
    with pytest.raises(LayerError, match=r"MaxPool2D\(3×3\) has a window of size 3 .*2 \+ 0 \+ 0"):
        MaxPool2D(3).init(KEY, (1, 2, 5, 1))
    with pytest.raises(LayerError, match=r"\(batch, height, width, channels\)"):
        AvgPool2D().init(KEY, (1, 4, 4))
    with pytest.raises(ValueError, match=r"MaxPool2D: `window` must be a positive integer"):
        MaxPool2D(0)
    assert [f().kind for f in (MaxPool2D, MinPool2D, AvgPool2D, MaxPool1D, AvgPool1D,
                               MinPool1D, GlobalAvgPool, GlobalMaxPool)] == [
        "max_pool2d", "min_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d", "min_pool1d",
        "global_avg_pool", "global_max_pool"]
