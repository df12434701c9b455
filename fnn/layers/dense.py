"""Fully connected layers and Flatten. Inputs are (batch, ..., features); Dense acts on the last axis."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn import init as initializers
from fnn.core import Layer, LayerError, check_rank, format_shape, size


def _check_features(layer: str, x, n_in: int):
    """Raise a `LayerError` unless the last axis of ``x`` has ``n_in`` features."""
    if x.ndim < 2 or x.shape[-1] != n_in:
        hint = " Did you forget a Flatten?" if x.ndim > 2 else ""
        raise LayerError(layer, f"expects inputs of shape (batch, {n_in}); "
                                f"got {format_shape(tuple(x.shape))}.{hint}")


def _check_units(layer: str, **counts):
    for arg, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{layer}: `{arg}` must be a positive integer; got {value!r}.")


def Dense(units: int, *, use_bias: bool = True, w_init="glorot_uniform", b_init="zeros",
          dtype=jnp.float32) -> Layer:
    """Affine map on the last axis: ``z = x W + b``.

    Shapes: x (batch, ..., n_in) -> z (batch, ..., units); params ``w`` (n_in, units) and
    ``b`` (units,). Initializers may be names (``"he_normal"``) or `fnn.init` initializers.
    """
    name = f"Dense({units})"
    _check_units(name, units=units)
    w_init, b_init = initializers.get(w_init), initializers.get(b_init)

    def init(key, input_shape):
        check_rank(name, input_shape, 2, "(batch, features)",
                   " Inputs need a leading batch axis." if len(input_shape or ()) == 1 else "")
        n_in = input_shape[-1]
        w_key, b_key = jax.random.split(key)
        params = {"w": w_init(w_key, (n_in, units), dtype)}
        if use_bias:
            params["b"] = b_init(b_key, (units,), dtype)
        return tuple(input_shape[:-1]) + (units,), params, {}

    def apply(params, state, x, *, key=None, train=False):
        _check_features(name, x, params["w"].shape[0])
        z = x @ params["w"]
        if use_bias:  # b (units,) broadcast explicitly over the leading axes of z
            z = z + jnp.expand_dims(params["b"], tuple(range(z.ndim - 1)))
        return z, state

    return Layer(init, apply, name, "dense")


def Flatten() -> Layer:
    """Flatten every axis but the batch axis: (batch, d1, ..., dk) -> (batch, d1·...·dk)."""
    name = "Flatten()"

    def init(key, input_shape):
        check_rank(name, input_shape, 1, "(batch, ...)")
        return (input_shape[0], size(input_shape[1:])), {}, {}

    def apply(params, state, x, *, key=None, train=False):
        return x.reshape(x.shape[0], -1), state

    return Layer(init, apply, name, "flatten")


def Maxout(units: int, pieces: int = 2, *, w_init="glorot_uniform", b_init="zeros",
           dtype=jnp.float32) -> Layer:
    """Maxout units: ``y_j = max_k (x W_k + b_k)_j`` over ``pieces`` linear pieces.

    Shapes: x (batch, n_in) -> y (batch, units); params ``w`` (pieces, n_in, units) and
    ``b`` (pieces, units); piece k is initialized like a Dense kernel (n_in, units).
    """
    name = f"Maxout({units}, pieces={pieces})"
    _check_units(name, units=units, pieces=pieces)
    w_init, b_init = initializers.get(w_init), initializers.get(b_init)

    def init(key, input_shape):
        check_rank(name, input_shape, 2, "(batch, features)")
        n_in = input_shape[-1]
        w_keys = jax.random.split(jax.random.fold_in(key, 0), pieces)
        b_keys = jax.random.split(jax.random.fold_in(key, 1), pieces)
        params = {"w": jnp.stack([w_init(k, (n_in, units), dtype) for k in w_keys]),
                  "b": jnp.stack([b_init(k, (units,), dtype) for k in b_keys])}
        return tuple(input_shape[:-1]) + (units,), params, {}

    def apply(params, state, x, *, key=None, train=False):
        _check_features(name, x, params["w"].shape[1])
        z = jnp.einsum("...i,kij->...kj", x, params["w"])  # (batch, ..., pieces, units)
        z = z + jnp.expand_dims(params["b"], tuple(range(z.ndim - 2)))
        return z.max(axis=-2), state

    return Layer(init, apply, name, "maxout")
