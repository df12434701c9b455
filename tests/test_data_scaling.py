"""Scaling: formulas against NumPy, inverse round trips, constant features, jit, the registry."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fnn.data import (Affine, fit_mean_norm, fit_minmax, fit_standardize, rescale, scaling,
                      unit_norm, unscale)

X = np.array([[1.0, -2.0, 5.0], [3.0, 0.0, 5.0], [8.0, 4.0, 5.0], [0.0, 1.0, 5.0]], np.float32)
BY_NUMPY = {  # (shift, scale) per feature, by the formula; feature 2 is constant (scale -> 1)
    fit_minmax: lambda x: (x.min(0), x.max(0) - x.min(0)),
    fit_mean_norm: lambda x: (x.mean(0), x.max(0) - x.min(0)),
    fit_standardize: lambda x: (x.mean(0), x.std(0)),
}


@pytest.mark.parametrize("fit", BY_NUMPY)
def test_formulas(fit):
    stats = fit(X)
    shift, spread = BY_NUMPY[fit](X)
    spread[2] = 1.0
    assert isinstance(stats, Affine) and stats.shift.shape == stats.scale.shape == (1, 3)
    # results inspected in NumPy: an eager jnp op on them would compile a program of its own
    np.testing.assert_allclose(np.asarray(stats.shift)[0], shift, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(stats.scale)[0], spread, rtol=1e-6)
    np.testing.assert_allclose(rescale(X, stats), (X - shift) / spread, rtol=1e-5, atol=1e-6)


def test_what_each_scaler_promises():
    y = np.asarray(rescale(X, fit_minmax(X)))  # NumPy below: no eager compiles
    np.testing.assert_allclose(y[:, :2].min(0), 0)
    np.testing.assert_allclose(y[:, :2].max(0), 1)
    y = np.asarray(rescale(X, fit_mean_norm(X)))
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(y.max(0)[:2] - y.min(0)[:2], 1, rtol=1e-6)
    y = np.asarray(rescale(X, fit_standardize(X)))
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(y.std(0)[:2], 1, rtol=1e-5)


@pytest.mark.parametrize("fit", BY_NUMPY)
def test_constant_features_are_finite_zero_and_invertible(fit):
    x = np.full((7, 2), 0.1, np.float32)  # float32 rounding makes this naive std 7e-9, not 0
    stats = fit(x)
    y = rescale(x, stats)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, 0, atol=1e-6)
    np.testing.assert_allclose(unscale(y, stats), x, rtol=1e-6)


finite_batches = hnp.arrays(np.float64, st.sampled_from([(1, 1), (6, 2), (3, 2, 2)]),
                            elements=st.floats(-1e3, 1e3))  # few shapes: each new one compiles


@functools.lru_cache(maxsize=None)
def round_trip(fit):
    """x -> (rescale(x, fit(x)), unscale of that), jitted once per fit: one program per (fit,
    shape) instead of three."""
    def fit_rescale_unscale(x):
        stats = fit(x)
        y = rescale(x, stats)
        return y, unscale(y, stats)
    return jax.jit(fit_rescale_unscale)


@settings(max_examples=30, deadline=None)
@given(finite_batches, st.sampled_from(sorted(BY_NUMPY, key=lambda f: f.__name__)))
def test_unscale_inverts_rescale(x, fit):
    with jax.enable_x64(True):
        y, back = round_trip(fit)(x)
        assert np.isfinite(y).all()
        np.testing.assert_allclose(back, x, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("axis, shape", [(0, (1, 2, 3)), (None, (1, 1, 1)), ((0, 1), (1, 1, 3))])
def test_axis_sets_which_statistics_are_shared(axis, shape):
    x = np.random.default_rng(0).normal(size=(4, 2, 3)).astype(np.float32)
    stats = fit_standardize(x, axis=axis)
    assert stats.shift.shape == shape
    np.testing.assert_allclose(np.asarray(rescale(x, stats)).mean(axis), 0, atol=1e-6)


@pytest.mark.parametrize("fit", BY_NUMPY)
def test_jitted_matches_eager(fit):
    """The public functions are jitted; they also nest inside a user's jit."""
    with jax.disable_jit():
        eager = fit(X, axis=0)
        expected = rescale(X, eager), unscale(X, eager), unit_norm(X)
    stats = jax.jit(fit, static_argnames="axis")(X, axis=0)
    jax.tree_util.tree_map(np.testing.assert_allclose, stats, eager)
    got = jax.jit(lambda x, s: (rescale(x, s), unscale(x, s), unit_norm(x)))(X, stats)
    jax.tree_util.tree_map(np.testing.assert_allclose, got, expected)


def test_integer_pixels_become_floats():
    pixels = np.array([[0, 255], [255, 0]], np.uint8)
    y = rescale(pixels, fit_minmax(pixels))
    assert y.dtype == jnp.float32
    np.testing.assert_array_equal(y, [[0, 1], [1, 0]])


def test_unit_norm_per_example():
    x = np.array([[[3.0, 0.0], [0.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]], np.float32)
    y = np.asarray(unit_norm(x))
    np.testing.assert_allclose(y[0], x[0] / 5)
    np.testing.assert_array_equal(y[1], 0)  # the zero example stays zero
    with pytest.raises(ValueError, match=r"unit_norm: expects a batch of examples \(batch, "
                                         r"\.\.\.\); got a scalar"):
        unit_norm(1.0)


@pytest.mark.parametrize("name", sorted(scaling.SCALERS))
def test_registry_round_trips(name):
    scaler = scaling.get(name)
    stats = scaler.fit(X, axis=0)
    y = scaler.transform(X, stats)
    assert y.shape == X.shape and y.dtype == jnp.float32
    if name == "unit_norm":
        np.testing.assert_allclose(np.linalg.norm(np.asarray(y), axis=1), 1, rtol=1e-6)
        with pytest.raises(ValueError, match=r"unit_norm has no inverse: it discards each "
                                             r"example's norm"):
            scaler.inverse(y, stats)
    else:
        np.testing.assert_allclose(scaler.inverse(y, stats), X, rtol=1e-6, atol=1e-6)


def test_get_unknown_scaler():
    with pytest.raises(ValueError, match=r"fnn\.data\.scaling\.get: unknown scaler 'zscore'; "
                                         r"expected one of \['mean', 'minmax', 'none', "):
        scaling.get("zscore")
