"""Token ids to vectors: `Embedding` (a learned lookup table) and `OneHot` (the course's one-hot
characters). Inputs are integer ids of any shape (batch, ...)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn import init as initializers
from fnn.checks import check_int
from fnn.core import Layer, LayerError, check_rank, format_shape


def _check_ids(name: str, ids):
    if not jnp.issubdtype(ids.dtype, jnp.integer):
        raise LayerError(name, f"expects integer token ids; got {ids.dtype} of shape "
                               f"{format_shape(tuple(ids.shape))}. Convert with "
                               "`ids.astype(jnp.int32)`.")


def Embedding(vocab: int, dim: int, *, w_init=None, dtype=jnp.float32) -> Layer:
    """A lookup table: ``y[..., :] = W[ids[...], :]``, the product of one-hot ids with ``W``
    without building the one-hot vectors.

    Shapes: ids (batch, ...) integers in ``[0, vocab)`` -> y (batch, ..., dim); params ``w``
    (vocab, dim), **vocab·dim** parameters, drawn from ``N(0, 1)`` by default (PyTorch's; give
    ``w_init`` to change it). An id outside ``[0, vocab)`` gives a row of NaN (so that the
    mistake shows) and no gradient.
    """
    name = f"Embedding({vocab}, {dim})"
    check_int(name, "vocab", vocab)
    check_int(name, "dim", dim)
    w_init = initializers.normal(1.0) if w_init is None else initializers.get(w_init)

    def init(key, input_shape):
        check_rank(name, input_shape, 1, "(batch, ...) integer ids")
        return tuple(input_shape) + (dim,), {"w": w_init(key, (vocab, dim), dtype)}, {}

    def apply(params, state, ids, *, key=None, train=False):
        _check_ids(name, ids)
        return jnp.take(params["w"], ids, axis=0, mode="fill", fill_value=jnp.nan), state

    return Layer(init, apply, name, "embedding")


def OneHot(vocab: int, *, dtype=jnp.float32) -> Layer:
    """One-hot vectors: ``y[..., k] = 1 if ids[...] == k else 0`` (the course's character
    inputs). Shapes: ids (batch, ...) -> y (batch, ..., vocab); no params. An id outside
    ``[0, vocab)`` gives a row of zeros."""
    name = f"OneHot({vocab})"
    check_int(name, "vocab", vocab)

    def init(key, input_shape):
        check_rank(name, input_shape, 1, "(batch, ...) integer ids")
        return tuple(input_shape) + (vocab,), {}, {}

    def apply(params, state, ids, *, key=None, train=False):
        _check_ids(name, ids)
        return jax.nn.one_hot(ids, vocab, dtype=dtype), state

    return Layer(init, apply, name, "one_hot")


__all__ = ["Embedding", "OneHot"]
