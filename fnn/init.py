"""Weight initializers.

An ``Initializer`` is a function ``init(key, shape, dtype=jnp.float32) -> Array`` that is
deterministic per key and returns an array of exactly ``shape`` and ``dtype``. Every initializer
here is a *factory* that returns an Initializer, so all of them are used the same way (the other
public names are helpers: ``fans``, ``filled``, ``get``)::

    w = he_normal()(key, (784, 300))
    b = zeros()(key, (300,))
    v = uniform(0.5)(key, (300, 10))   # the course's output-layer rule

Layouts and fans (see ``fans``): dense kernels are ``(n_in, n_out)``; convolution kernels are HWIO,
``(*spatial, in, out)``, so ``fan_in = prod(spatial) * in`` and ``fan_out = prod(spatial) * out``.

The "normal" initializers draw from a plain (untruncated) Gaussian, so the variance of the weights
is exactly the formula in their docstring. The "uniform" ones draw from ``U(-limit, limit)``, whose
variance is ``limit**2 / 3``.
"""
from __future__ import annotations

import functools
import inspect
import math
import operator
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Shape = tuple[int, ...]
Initializer = Callable[..., Array]  # init(key, shape, dtype=jnp.float32) -> Array

# The course's constant for shallow sigmoid nets: U(±a/√n_in) with a = 2.38 puts the net inputs
# of a standard sigmoid unit near its points of maximal curvature.
SIGMOID_UNIFORM_A = 2.38


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape``.

    ``()`` -> (1, 1); ``(n,)`` -> (n, n); dense ``(n_in, n_out)`` -> (n_in, n_out);
    HWIO convolution ``(*spatial, in, out)`` -> (prod(spatial)·in, prod(spatial)·out).
    """
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return receptive_field * shape[-2], receptive_field * shape[-1]


# --------------------------------------------------------------------------------------------
# Shared plumbing.


def _checked_shape(name: str, shape) -> Shape:
    """``shape`` as a tuple of non-negative ints, or a clear error naming the initializer."""
    try:
        checked = tuple(operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(
            f"{name}: shape must be a tuple of ints, e.g. (784, 300); got {shape!r}"
        ) from None
    if any(d < 0 for d in checked):
        raise ValueError(f"{name}: shape must have non-negative sizes; got {checked}")
    return checked


def _check_float_dtype(name: str, dtype) -> None:
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{name}: random weights need a floating dtype such as jnp.float32; "
            f"got {jnp.dtype(dtype).name}"
        )


def _check_non_negative(name: str, arg: str, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{name}: {arg} must be >= 0; got {value!r}")


def _named(init: Initializer, name: str) -> Initializer:
    """Give an Initializer a readable name (shown in reprs and tracebacks)."""
    init.__name__ = init.__qualname__ = name
    return init


# --------------------------------------------------------------------------------------------
# Constants and fixed-scale random weights.


def filled(shape, value, dtype, like=None) -> Array:
    """An array of ``shape`` and ``dtype`` filled with ``value``: `jnp.full` while tracing
    (``like`` is a tracer: the caller runs under `jax.jit`, `jax.grad`, `jax.eval_shape`, ...),
    otherwise built by NumPy and put where ``like`` is (its sharding, for a `jax.Array` committed
    to devices; the default device otherwise).
    Called eagerly, `jnp.full` would compile a small XLA program for every new shape and dtype
    (tens of milliseconds each on a CPU); a model's biases and an optimizer's moments need many."""
    if isinstance(like, jax.core.Tracer):
        return jnp.full(shape, value, dtype)
    sharding = like.sharding if isinstance(like, jax.Array) and like.committed else None
    return jax.device_put(np.full(shape, value, jax.dtypes.canonicalize_dtype(dtype)), sharding)


def _constant(name: str, value) -> Initializer:
    def init(key, shape, dtype=jnp.float32):
        return filled(_checked_shape(name, shape), value, dtype, like=key)  # deterministic

    return _named(init, name)


def constant(value: float) -> Initializer:
    """Every entry equals ``value``. Works for any dtype (also integer or bool state)."""
    return _constant(f"constant({value!r})", value)


def zeros() -> Initializer:
    """All zeros: the course's rule for biases (and BatchNorm's β)."""
    return _constant("zeros", 0)


def ones() -> Initializer:
    """All ones (BatchNorm's γ)."""
    return _constant("ones", 1)


def _random(name: str, draw: Callable[[Array, Shape, jnp.dtype], Array]) -> Initializer:
    """An Initializer: check ``shape`` and ``dtype``, then ``draw(key, shape, dtype)``."""

    def init(key, shape, dtype=jnp.float32):
        shape = _checked_shape(name, shape)
        _check_float_dtype(name, dtype)
        return draw(key, shape, dtype)

    return _named(init, name)


def _uniform_draw(key, shape, dtype, limit: float) -> Array:
    return jax.random.uniform(key, shape, dtype, minval=-limit, maxval=limit)


def _normal_draw(key, shape, dtype, stddev: float) -> Array:
    return stddev * jax.random.normal(key, shape, dtype)


def uniform(scale: float) -> Initializer:
    """``w ~ U(-scale, scale)``, variance ``scale**2 / 3``.

    ``uniform(0.5)`` is the course's rule for the output layer of a shallow net.
    """
    _check_non_negative("uniform", "scale", scale)
    return _random(f"uniform({scale!r})", functools.partial(_uniform_draw, limit=scale))


def normal(stddev: float) -> Initializer:
    """``w ~ N(0, stddev**2)`` (untruncated)."""
    _check_non_negative("normal", "stddev", stddev)
    return _random(f"normal({stddev!r})", functools.partial(_normal_draw, stddev=stddev))


# --------------------------------------------------------------------------------------------
# Fan-scaled random weights: a uniform limit or a normal stddev of ``numerator / √fan``.

_FANS: dict[str, Callable[[int, int], int]] = {
    "fan_in": lambda fan_in, fan_out: fan_in,
    "fan_in + fan_out": lambda fan_in, fan_out: fan_in + fan_out,
}


def _fan_scaled(name: str, draw: Callable[..., Array], numerator: float, fan: str) -> Initializer:
    """``draw`` (``_uniform_draw`` or ``_normal_draw``) with scale ``numerator / √fan(shape)``."""

    def draw_scaled(key, shape, dtype):
        n = _FANS[fan](*fans(shape))
        if n == 0:
            raise ValueError(f"{name}: {fan} of shape {shape} is 0; the weights would be infinite")
        return draw(key, shape, dtype, numerator / math.sqrt(n))

    return _random(name, draw_scaled)


def uniform_fan_in(a: float = SIGMOID_UNIFORM_A) -> Initializer:
    """``w ~ U(-a/√n_in, a/√n_in)``, the course's rule for shallow nets.

    ``a = 2.38`` (default, also ``sigmoid_uniform()``) suits the standard sigmoid;
    ``a = 2`` is the course's other choice (``uniform_2_over_sqrt_fan_in()``).
    """
    _check_non_negative("uniform_fan_in", "a", a)
    return _fan_scaled(f"uniform_fan_in({a!r})", _uniform_draw, a, "fan_in")


def sigmoid_uniform() -> Initializer:
    """``w ~ U(±2.38/√n_in)`` (``uniform_fan_in(2.38)``): shallow nets with the standard sigmoid."""
    return _fan_scaled("sigmoid_uniform", _uniform_draw, SIGMOID_UNIFORM_A, "fan_in")


def uniform_2_over_sqrt_fan_in() -> Initializer:
    """``w ~ U(±2/√n_in)``: the course's second shallow-net rule (``uniform_fan_in(2.0)``)."""
    return _fan_scaled("uniform_2_over_sqrt_fan_in", _uniform_draw, 2.0, "fan_in")


def lecun_normal() -> Initializer:
    """``w ~ N(0, 1/n_in)``; the course calls this "Xavier normal with variance 1/n_in"."""
    return _fan_scaled("lecun_normal", _normal_draw, 1.0, "fan_in")


def lecun_uniform() -> Initializer:
    """``w ~ U(±√3/√n_in)``, variance ``1/n_in``."""
    return _fan_scaled("lecun_uniform", _uniform_draw, math.sqrt(3.0), "fan_in")


def glorot_normal() -> Initializer:
    """Xavier/Glorot normal: ``w ~ N(0, 2/(n_in + n_out))``."""
    return _fan_scaled("glorot_normal", _normal_draw, math.sqrt(2.0), "fan_in + fan_out")


def glorot_uniform() -> Initializer:
    """Xavier/Glorot uniform: ``w ~ U(±√6/√(n_in + n_out))``, variance ``2/(n_in + n_out)``."""
    return _fan_scaled("glorot_uniform", _uniform_draw, math.sqrt(6.0), "fan_in + fan_out")


def he_normal() -> Initializer:
    """He/Kaiming normal for ReLU: ``w ~ N(0, 2/n_in)``, i.e. ``N(0, 1)·√2/√n_in``."""
    return _fan_scaled("he_normal", _normal_draw, math.sqrt(2.0), "fan_in")


def he_uniform() -> Initializer:
    """He/Kaiming uniform for ReLU: ``w ~ U(±√6/√n_in)``, variance ``2/n_in``."""
    return _fan_scaled("he_uniform", _uniform_draw, math.sqrt(6.0), "fan_in")


# --------------------------------------------------------------------------------------------
# Orthogonal.


def orthogonal(gain: float = 1.0) -> Initializer:
    """``gain ·`` a random orthogonal matrix (Haar-distributed, via QR of a Gaussian).

    The weight is viewed as the matrix ``(prod(shape[:-1]), shape[-1])`` — for an HWIO kernel,
    (receptive field · in, out). With ``rows >= cols`` the columns are orthonormal
    (``WᵀW = gain²·I``); otherwise the rows are (``WWᵀ = gain²·I``). Needs at least 2 dimensions.
    """

    name = f"orthogonal({gain!r})"

    def draw(key, shape, dtype):
        if len(shape) < 2:
            raise ValueError(
                f"{name}: needs a weight with at least 2 dimensions (n_in, n_out); got {shape}"
            )
        return _orthogonal_draw(key, shape, jnp.dtype(dtype), gain)

    return _random(name, draw)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _orthogonal_draw(key, shape, dtype, gain):
    """`orthogonal`'s draw as one compiled program per shape and dtype (called eagerly, its
    half-dozen operations would each compile one)."""
    rows, cols = math.prod(shape[:-1]), shape[-1]
    compute_dtype = jnp.promote_types(dtype, jnp.float32)  # no QR in bf16/fp16
    gaussian = jax.random.normal(key, (max(rows, cols), min(rows, cols)), compute_dtype)
    q, r = jnp.linalg.qr(gaussian)
    # Fixing the signs of diag(r) makes QR unique, so q is Haar-distributed.
    q = q * jnp.sign(jnp.diagonal(r))[None, :]
    matrix = q if rows >= cols else q.T
    return (gain * matrix).reshape(shape).astype(dtype)


# --------------------------------------------------------------------------------------------
# Names for configs.

_FACTORIES: dict[str, Callable[..., Initializer]] = {
    f.__name__: f
    for f in (
        zeros, ones, constant, uniform, normal, uniform_fan_in, sigmoid_uniform,
        uniform_2_over_sqrt_fan_in, lecun_normal, lecun_uniform, glorot_normal, glorot_uniform,
        he_normal, he_uniform, orthogonal,
    )
}
# The usual alternative names.
_FACTORIES.update(xavier_normal=glorot_normal, xavier_uniform=glorot_uniform)


def get(name_or_initializer: str | Initializer, **factory_kwargs) -> Initializer:
    """Resolve a config entry to an Initializer.

    A string names a factory, called with ``factory_kwargs``: ``get("he_normal")``,
    ``get("uniform", scale=0.5)``. A callable is taken to be an Initializer and returned as is.
    """
    if callable(name_or_initializer):
        if factory_kwargs:
            raise TypeError(
                "get: factory arguments are only accepted with a name; "
                f"got an Initializer and {factory_kwargs}"
            )
        return name_or_initializer
    if not isinstance(name_or_initializer, str):
        raise TypeError(
            "get: expected an initializer name or an Initializer; "
            f"got {type(name_or_initializer).__name__}"
        )
    try:
        factory = _FACTORIES[name_or_initializer]
    except KeyError:
        raise ValueError(
            f"get: unknown initializer {name_or_initializer!r}; "
            f"valid names: {', '.join(sorted(_FACTORIES))}"
        ) from None
    signature = inspect.signature(factory)
    try:
        signature.bind(**factory_kwargs)
    except TypeError:
        raise TypeError(
            f"get: initializer {name_or_initializer!r} takes the arguments "
            f"({', '.join(signature.parameters)}); got {factory_kwargs or 'none'}"
        ) from None
    return factory(**factory_kwargs)
