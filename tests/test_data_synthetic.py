"""Toy 2-D sets: shapes, balance, determinism, and the geometry each one promises at zero noise."""
import jax
import numpy as np
import pytest

from fnn.data import circles, gaussians, spiral, synthetic, xor

KEY = jax.random.key(0)
N = 1001  # one size throughout: each new size compiles each generator again
GENERATORS = [spiral, circles, xor, gaussians]


@pytest.mark.parametrize("make", GENERATORS)
def test_shapes_balance_and_determinism(make):
    x, y = make(KEY, N, noise=0.1)
    assert x.shape == (N, 2) and x.dtype == np.float32
    assert y.shape == (N,) and y.dtype == np.int32
    assert np.bincount(y).tolist() == [501, 500]
    np.testing.assert_array_equal(x, make(jax.random.key(0), N, noise=0.1)[0])
    assert not np.allclose(x, make(jax.random.key(1), N, noise=0.1)[0])


def test_geometry_without_noise():
    x, y = circles(KEY, N)
    radius = np.linalg.norm(x, axis=1)
    assert radius[y == 0].max() <= 0.5 and 0.7 <= radius[y == 1].min() <= radius.max() <= 1

    x, y = xor(KEY, N)
    assert (np.sign(x[:, 0] * x[:, 1]) == np.where(y == 0, 1, -1)).all()
    assert 0.1 <= np.abs(x).min() <= np.abs(x).max() <= 1

    x, y = gaussians(KEY, N)
    np.testing.assert_allclose(x[y == 0].mean(0), [-0.5, -0.5], atol=0.03)
    np.testing.assert_allclose(x[y == 1].std(0), [0.25, 0.25], atol=0.03)

    x, y = spiral(KEY, N)  # the two arms are the same curve turned by π
    radius, angle = np.linalg.norm(x, axis=1), np.arctan2(x[:, 1], x[:, 0])
    assert radius.max() <= 1
    expected = 3.5 * np.pi * radius + np.pi * y
    np.testing.assert_allclose(np.cos(angle - expected), 1, atol=1e-4)


def test_noise_is_gaussian_with_the_given_std():
    clean, _ = xor(KEY, N)
    noisy, _ = xor(KEY, N, noise=0.3)
    np.testing.assert_allclose((noisy - clean).std(0), 0.3, rtol=0.1)


def test_registry():
    assert synthetic.get("spiral") is spiral
    with pytest.raises(ValueError, match=r"fnn\.data\.synthetic\.get: unknown data set 'moons'; "
                                         r"expected one of \['circles', 'gaussians', 'spiral', "
                                         r"'xor'\]"):
        synthetic.get("moons")


@pytest.mark.parametrize("n, noise, message", [
    (1, 0.0, r"spiral: `n` must be an integer >= 2; got 1"),
    (10, -0.1, r"spiral: `noise` must be a real number >= 0; got -0\.1"),
])
def test_argument_errors(n, noise, message):
    with pytest.raises(ValueError, match=message):
        spiral(KEY, n, noise)
