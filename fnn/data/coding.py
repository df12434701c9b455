"""Input and output codings for categorical and ordinal values, with their decoders (jitted).

    one-hot      k of num_classes    -> unit k on                 (…,) -> (…, num_classes)
    thermometer  k of num_levels     -> units 0..k−1 on           (…,) -> (…, num_levels − 1)
    binary       k of num_classes    -> the bits of k             (…,) -> (…, ⌈log₂ num_classes⌉)

Encoders add a trailing code axis; decoders remove it and return int32.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from fnn.checks import check_int


def _unit_index(values: jax.Array, width: int) -> jax.Array:
    """``arange(width)`` shaped (1, ..., 1, width) to compare with ``values[..., None]``."""
    return jnp.arange(width).reshape((1,) * values.ndim + (width,))


@partial(jax.jit, static_argnames=("num_classes", "dtype"))
def one_hot(labels, num_classes: int, dtype=jnp.float32) -> jax.Array:
    """One-of-n code: ``y[..., j] = 1 if labels == j else 0``; (…,) int -> (…, num_classes).

    Labels outside ``0..num_classes−1`` give an all-zero row.
    """
    check_int("one_hot", "num_classes", num_classes)
    labels = jnp.asarray(labels)
    return (labels[..., None] == _unit_index(labels, num_classes)).astype(dtype)


@jax.jit
def decode_one_hot(codes) -> jax.Array:
    """The most active unit, ``argmax_j codes[..., j]``: (…, n) -> (…,) int32."""
    return jnp.argmax(jnp.asarray(codes), axis=-1).astype(jnp.int32)


@partial(jax.jit, static_argnames=("num_levels", "dtype"))
def thermometer(values, num_levels: int, dtype=jnp.float32) -> jax.Array:
    """Thermometer code of ordinal values ``k ∈ {0, …, num_levels − 1}``: the first k units on.

    ``y[..., j] = 1 if j < k else 0``; (…,) int -> (…, num_levels − 1), so 0 is all off and
    ``num_levels − 1`` all on. Values outside the range are clipped.
    """
    check_int("thermometer", "num_levels", num_levels, minimum=2)
    values = jnp.asarray(values)
    return (_unit_index(values, num_levels - 1) < values[..., None]).astype(dtype)


@jax.jit
def decode_thermometer(codes) -> jax.Array:
    """The level of the nearest thermometer code (in L1/Hamming distance): (…, L−1) -> (…,) int32.

    For codes ``c`` in [0, 1] the distance to level k is a constant minus ``Σ_{j<k} (2c_j − 1)``,
    so ``k* = argmax_k Σ_{j<k} (c_j − ½)``: exact on valid codes, robust on network outputs
    (ties go to the lower level).
    """
    codes = jnp.asarray(codes)
    gains = jnp.cumsum(codes - 0.5, axis=-1)
    gains = jnp.concatenate([jnp.zeros_like(gains[..., :1]), gains], axis=-1)  # level 0 gains 0
    return jnp.argmax(gains, axis=-1).astype(jnp.int32)


def num_bits(num_classes: int) -> int:
    """Width of the binary code of ``num_classes`` classes, ``⌈log₂ num_classes⌉``."""
    return (check_int("num_bits", "num_classes", num_classes, minimum=2) - 1).bit_length()


def _bit_values(values: jax.Array, width: int) -> jax.Array:
    """``2^(width−1), …, 2, 1`` shaped (1, ..., 1, width): the value of each bit, MSB first."""
    return 2 ** jnp.arange(width - 1, -1, -1).reshape((1,) * values.ndim + (width,))


@partial(jax.jit, static_argnames=("num_classes", "dtype"))
def binary_code(labels, num_classes: int, dtype=jnp.float32) -> jax.Array:
    """Binary code: class k as its ``B = ⌈log₂ num_classes⌉`` bits, most significant first.

    ``y[..., j] = ⌊k / 2^(B−1−j)⌋ mod 2``; (…,) int -> (…, B), e.g. 5 of 8 -> [1, 0, 1].
    Ten classes need 4 outputs instead of one-hot's 10. Labels outside the range are clipped.
    """
    check_int("binary_code", "num_classes", num_classes, minimum=2)
    labels = jnp.clip(jnp.asarray(labels), 0, num_classes - 1)
    bits = _bit_values(labels, num_bits(num_classes))
    return (labels[..., None] // bits % 2).astype(dtype)


@partial(jax.jit, static_argnames=("num_classes",))
def decode_binary_code(codes, num_classes: int) -> jax.Array:
    """The class whose bits are the units above ½: (…, B) -> (…,) int32.

    ``k = Σ_j [c_j > ½] · 2^(B−1−j)``, clipped to ``num_classes − 1`` (with B bits, codes
    ``num_classes … 2^B − 1`` belong to no class). A unit at exactly ½ counts as off.
    """
    check_int("decode_binary_code", "num_classes", num_classes, minimum=2)
    codes = jnp.asarray(codes)
    width = num_bits(num_classes)
    if codes.ndim == 0 or codes.shape[-1] != width:
        raise ValueError(f"decode_binary_code: {num_classes} classes need codes of shape "
                         f"(..., {width}); got {codes.shape}.")
    bits = _bit_values(codes[..., 0], width)
    value = jnp.sum(jnp.where(codes > 0.5, bits, 0), axis=-1)
    return jnp.minimum(value, num_classes - 1).astype(jnp.int32)
