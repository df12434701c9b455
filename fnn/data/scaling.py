"""Input scaling as pure fit/transform pairs, jitted (``axis`` is static: an int, tuple or None).

Min-max, mean normalization and standardization are all the affine map ``y = (x − shift) / scale``:

    scaler               shift    scale
    min-max              min      max − min
    mean normalization   mean     max − min
    standardization      mean     σ (population std)

so one `Affine` statistics pytree, one `rescale` and one `unscale` serve all three. Statistics
are reduced over ``axis`` (default 0, the batch axis: one statistic per feature) with the reduced
axes kept at size 1, so they broadcast against any batch of the same rank.

Constant features (max == min, or a spread that underflows to 0) get ``scale = 1``: they map to
``x − shift`` (0 on the fitted data) instead of NaN/inf, and `unscale` still inverts `rescale`.

Unit norm ``x / ‖x‖`` is per example (over every non-batch axis) and needs no statistics; an
all-zero example stays zero.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

Axis = int | tuple[int, ...] | None


class Affine(NamedTuple):
    """Statistics of an affine scaler, ``y = (x − shift) / scale``; a pytree, so it checkpoints."""

    shift: jax.Array
    scale: jax.Array


def _as_float(x) -> jax.Array:
    """Floating inputs keep their dtype; integers (e.g. uint8 pixels) become the default float."""
    x = jnp.asarray(x)
    return x.astype(jnp.result_type(x.dtype, float))


def _range(x, axis: Axis):
    """``x`` as floats and its min and max over ``axis`` (kept as size-1 axes)."""
    x = _as_float(x)
    return x, x.min(axis, keepdims=True), x.max(axis, keepdims=True)


def _affine(shift, scale, low, high) -> Affine:
    """`Affine` statistics with ``scale = 1`` wherever the feature is constant (max == min) or its
    spread underflows to 0 (σ of tiny values)."""
    usable = (high > low) & (scale > 0)
    return Affine(shift, jnp.where(usable, scale, jnp.ones_like(scale)))


@partial(jax.jit, static_argnames="axis")
def fit_minmax(x, axis: Axis = 0) -> Affine:
    """Min-max scaling to [0, 1]: ``y = (x − min) / (max − min)``."""
    x, low, high = _range(x, axis)
    return _affine(low, high - low, low, high)


@partial(jax.jit, static_argnames="axis")
def fit_mean_norm(x, axis: Axis = 0) -> Affine:
    """Mean normalization, zero mean within [−1, 1]: ``y = (x − mean) / (max − min)``."""
    x, low, high = _range(x, axis)
    return _affine(x.mean(axis, keepdims=True), high - low, low, high)


@partial(jax.jit, static_argnames="axis")
def fit_standardize(x, axis: Axis = 0) -> Affine:
    """Standardization, zero mean and unit variance: ``y = (x − x̄) / σ``, σ the population std."""
    x, low, high = _range(x, axis)
    return _affine(x.mean(axis, keepdims=True), x.std(axis, keepdims=True), low, high)


@jax.jit
def rescale(x, stats: Affine) -> jax.Array:
    """Apply fitted statistics: ``y = (x − shift) / scale``."""
    return (_as_float(x) - stats.shift) / stats.scale


@jax.jit
def unscale(y, stats: Affine) -> jax.Array:
    """Invert `rescale`: ``x = y · scale + shift``."""
    return jnp.asarray(y) * stats.scale + stats.shift


@jax.jit
def unit_norm(x) -> jax.Array:
    """Scale each example to unit L2 norm: x (batch, ...) -> x / ‖x‖ over the non-batch axes."""
    x = _as_float(x)
    if x.ndim < 1:
        raise ValueError("unit_norm: expects a batch of examples (batch, ...); got a scalar.")
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=tuple(range(1, x.ndim)), keepdims=True))
    return x / jnp.where(norm > 0, norm, jnp.ones_like(norm))


class Scaler(NamedTuple):
    """``stats = fit(x, axis=0)``; ``y = transform(x, stats)``; ``x = inverse(y, stats)``."""

    fit: Callable
    transform: Callable
    inverse: Callable


def _no_stats(x, axis: Axis = 0) -> tuple:
    return ()


def _no_inverse(y, stats):
    raise ValueError("unit_norm has no inverse: it discards each example's norm.")


SCALERS = {
    "minmax": Scaler(fit_minmax, rescale, unscale),
    "mean": Scaler(fit_mean_norm, rescale, unscale),
    "standardize": Scaler(fit_standardize, rescale, unscale),
    "unit_norm": Scaler(_no_stats, lambda x, stats: unit_norm(x), _no_inverse),
    "none": Scaler(_no_stats, lambda x, stats: _as_float(x), lambda y, stats: jnp.asarray(y)),
}


def get(name: str) -> Scaler:
    """The `Scaler` called ``name``: ``"minmax"``, ``"mean"`` (mean normalization),
    ``"standardize"``, ``"unit_norm"`` or ``"none"`` (identity; like every scaler it turns
    integer inputs into floats)."""
    if name not in SCALERS:
        raise ValueError(f"fnn.data.scaling.get: unknown scaler {name!r}; "
                         f"expected one of {sorted(SCALERS)}.")
    return SCALERS[name]
