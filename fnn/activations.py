"""Activation functions of the course, as plain element-wise (or axis-wise) functions.

Each has a layer twin in `fnn.layers` (``ReLU()``, ``Sigmoid(beta)``, ...).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp


def identity(x):
    """f(z) = z."""
    return x


def binary_step(x, bipolar: bool = False):
    """f(z) = 1 if z > 0 else 0 (bipolar: +1 / -1); its gradient is zero everywhere."""
    low = -1.0 if bipolar else 0.0
    return jnp.where(x > 0, 1.0, low).astype(jnp.result_type(x, float))


def sigmoid(x, beta: float = 1.0):
    """Logistic sigmoid with slope β: f(z) = 1 / (1 + e^{-βz}); f' = β f (1 − f)."""
    return jax.nn.sigmoid(beta * x)


def tanh(x, beta: float = 1.0):
    """f(z) = tanh(βz) = 2·sigmoid(2βz) − 1; f' = β (1 − f²)."""
    return jnp.tanh(beta * x)


def arctan(x):
    """f(z) = arctan(z), with range (−π/2, π/2); f' = 1 / (1 + z²)."""
    return jnp.arctan(x)


def relu(x):
    """f(z) = max(0, z), with f'(0) = 0 as in JAX, PyTorch and Keras (``jnp.maximum``'s own
    derivative splits a tie, giving 1/2 at 0, where a zero-padded or all-zero input often puts
    a unit at the start of training)."""
    return jax.nn.relu(x)


def leaky_relu(x, alpha: float = 0.01):
    """f(z) = max(αz, z) for 0 <= α < 1 (the course uses α = 0.1; frameworks default to 0.01)."""
    return jnp.where(x >= 0, x, alpha * x)


def prelu(x, alpha):
    """Parametric ReLU: f(z) = z if z >= 0 else αz, with α learned (broadcast on the last axis)."""
    alpha = jnp.asarray(alpha)
    alpha = jnp.expand_dims(alpha, tuple(range(x.ndim - alpha.ndim)))  # explicit rank promotion
    return jnp.where(x >= 0, x, alpha * x)


def elu(x, alpha: float = 1.0):
    """f(z) = z if z > 0 else α(e^z − 1)."""
    safe = jnp.where(x > 0, 0.0, x)  # keeps expm1 finite (and its gradient NaN-free) for z > 0
    return jnp.where(x > 0, x, alpha * jnp.expm1(safe))


def softplus(x):
    """f(z) = ln(1 + e^z), computed stably as logaddexp(z, 0)."""
    return jnp.logaddexp(x, 0.0)


def log_softmax(x, axis: int = -1):
    """log S_j = a_j − log Σ_k e^{a_k}, computed stably."""
    return x - logsumexp(x, axis=axis, keepdims=True)


def softmax(x, axis: int = -1):
    """S_j = e^{a_j} / Σ_k e^{a_k}; Jacobian ∂S_i/∂a_j = S_i (δ_ij − S_j)."""
    return jnp.exp(log_softmax(x, axis))


def maxout(x, pieces: int, axis: int = -1):
    """Max over groups of ``pieces`` consecutive units: (..., n·pieces) -> (..., n)."""
    axis = axis % x.ndim
    n = x.shape[axis]
    if n % pieces:
        raise ValueError(f"maxout: axis {axis} has {n} units, not a multiple of pieces={pieces}.")
    grouped = x.reshape(x.shape[:axis] + (n // pieces, pieces) + x.shape[axis + 1:])
    return grouped.max(axis=axis + 1)


_BY_NAME = {
    f.__name__: f
    for f in (identity, binary_step, sigmoid, tanh, arctan, relu, leaky_relu, elu, softplus,
              softmax, log_softmax)
}
_BY_NAME["linear"] = identity


def get(name_or_fn):
    """Resolve an activation by name (``"relu"``, ``"tanh"``, ...) or pass a callable through."""
    if callable(name_or_fn):
        return name_or_fn
    try:
        return _BY_NAME[name_or_fn]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {name_or_fn!r}; expected one of "
                         f"{sorted(_BY_NAME)} or a callable.") from None
