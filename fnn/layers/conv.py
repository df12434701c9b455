"""Convolution layers: images NHWC (sequences NWC, volumes NDHWC), kernels HWIO (WIO, DHWIO).

A convolution layer with kernel ``K × K'``, ``C`` input channels and ``F`` filters has a kernel
``w`` of shape ``(K, K', C, F)`` and a bias ``b`` of length ``F``. The default is the
cross-correlation deep-learning libraries compute,

    y[n, i, j, f] = b[f] + Σ_{k, k', c} x_pad[n, i·S + k·d, j·S' + k'·d', c] · w[k, k', c, f],

and ``flip_kernel=True`` gives the course's true convolution: the same correlation with the
kernel rotated 180° (``w[::-1, ::-1]``). Along each spatial axis the output size is

    Q = ⌊(M + P_lo + P_hi − d·(K − 1) − 1) / S⌋ + 1,

which is the course's ``Q = ⌊(M + 2P − K)/S⌋ + 1`` for symmetric padding ``P`` and dilation 1.

Padding is ``"VALID"`` (none), ``"SAME"`` (``Q = ⌈M/S⌉``; the total padding
``max((Q − 1)·S + d·(K − 1) + 1 − M, 0)`` is split with the odd cell at the end, as in
TensorFlow and `jax.lax`), an int ``P`` (P on both sides of every axis), or one entry per
spatial axis, each an int or a ``(lo, hi)`` pair: ``(1, 2)`` pads a 2-D input by 1 row and 2
columns on each side, ``((1, 0), (2, 1))`` by rows 1 above, 0 below and columns 2 left, 1
right; a 1-D layer also takes one ``(lo, hi)`` pair.

Lowering (how the correlation is computed; the result is the same up to float rounding):
``"xla"`` is one `jax.lax.conv_general_dilated`; ``"patches"`` gathers the patches with strided
slices into a matrix ``P`` of shape ``(K·K'·C, N·Q·Q')`` (channels first) and computes
``yᵀ = wᵀ P`` as one matrix product ``(F, K·K'·C) × (K·K'·C, N·Q·Q')`` (im2col). XLA:CPU's
convolution is slow for few input channels (LeNet-5's first layer has one), the patch product
is fast there, and its gradients (slices transpose to pads, the product to two products) are too.
``"offsets"`` keeps XLA's convolution for the value and the input gradient but computes the
weight gradient as one matrix product per kernel offset, ``∂L/∂w[k] = x_kᵀ · ∂L/∂y`` with
``x_k`` the input slice the offset ``k`` sees (a `jax.custom_jvp`, see `conv_offsets`):
XLA:CPU's weight-gradient convolution is slow when the output grid is small (LeNet-5's C3).
``"banded"`` also keeps XLA's convolution for the value, but computes the input gradient as
one matrix product with a banded (Toeplitz) matrix built from the kernel along the last
spatial axis, followed by a sum of shifted slices along the other axes (`conv_banded`;
XLA:CPU's input-gradient convolution is slow for few input channels: LeNet-5's C3 3× faster),
and the weight gradient as one product with the patch matrix (`patch_matrix`). ``"dense"`` is
for a kernel that covers the whole padded input (one output position, LeNet-5's C5): one
matrix product of the flattened input with the flattened kernel (`conv_dense`).
``"auto"`` (the default) takes ``"dense"`` for ungrouped convolutions whose kernel covers the
padded input, ``"patches"`` for other ungrouped ones with at most `PATCHES_MAX_CHANNELS` input
channels, ``"banded"`` or ``"offsets"`` for other ungrouped ones with between 2 and
`OFFSETS_MAX_POSITIONS` output positions per example (``"banded"`` for at most
`BANDED_MAX_CHANNELS` channels and a padded width at most `BANDED_MAX_RATIO` kernel widths),
else ``"xla"`` (measured in ``benchmarks/lenet5.py``; see `conv_lowering`).

The helpers `spatial_tuple`, `padding_pairs` and `window_output_size` are shared with
`fnn.layers.pooling`.
"""
from __future__ import annotations

import functools
import itertools
import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from fnn import init as initializers
from fnn.checks import check_int
from fnn.core import Layer, LayerError, check_rank, format_shape
from fnn.layers.combinators import serial

Padding = Union[str, int, Sequence[Union[int, Tuple[int, int]]]]

_DIMENSION_NUMBERS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"),
                      3: ("NDHWC", "DHWIO", "NDHWC")}
_EXPECTED = {1: "(batch, width, channels)", 2: "(batch, height, width, channels)",
             3: "(batch, depth, height, width, channels)"}


# ----------------------------------------------------------------------------- shared helpers

def spatial_tuple(where: str, arg: str, value, ndim: int, *, minimum: int = 1) -> Tuple[int, ...]:
    """``value`` (an int, or ``ndim`` ints) as a tuple of ``ndim`` ints ``>= minimum``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,) * ndim
    if not isinstance(value, (tuple, list)) or len(value) != ndim:
        raise ValueError(f"{where}: `{arg}` must be an int or {ndim} ints; got {value!r}.")
    return tuple(check_int(where, arg, v, minimum=minimum) for v in value)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_padding(where: str, padding: Padding, ndim: int):
    """``"VALID"``/``"SAME"`` (any case) as upper case, or explicit padding as ``ndim``
    ``(lo, hi)`` pairs of ints ``>= 0``; else a ValueError naming ``where``."""
    if isinstance(padding, str):
        if padding.upper() in ("VALID", "SAME"):
            return padding.upper()
    elif _is_int(padding) and padding >= 0:
        return ((int(padding), int(padding)),) * ndim
    elif (ndim == 1 and isinstance(padding, (tuple, list)) and len(padding) == 2
          and all(_is_int(q) and q >= 0 for q in padding)):
        return ((int(padding[0]), int(padding[1])),)  # 1-D: one (lo, hi) pair
    elif isinstance(padding, (tuple, list)) and len(padding) == ndim:
        pairs = []
        for p in padding:
            if _is_int(p) and p >= 0:
                pairs.append((int(p), int(p)))
            elif (isinstance(p, (tuple, list)) and len(p) == 2
                  and all(_is_int(q) and q >= 0 for q in p)):
                pairs.append((int(p[0]), int(p[1])))
            else:
                break
        else:
            return tuple(pairs)
    raise ValueError(f"{where}: `padding` must be 'VALID', 'SAME', an int >= 0, or {ndim} "
                     f"entries (an int or a (lo, hi) pair each); got {padding!r}.")


def padding_pairs(padding, sizes: Sequence[int], windows: Sequence[int],
                  strides: Sequence[int]) -> Tuple[Tuple[int, int], ...]:
    """Explicit ``(lo, hi)`` pads per spatial axis for ``padding`` as returned by
    `check_padding`. ``windows`` are effective window sizes (``d·(K − 1) + 1`` for a dilated
    kernel). ``"SAME"``: output ``⌈M/S⌉``, total padding ``max((Q − 1)·S + K − M, 0)`` with
    ``lo = total // 2``."""
    if padding == "VALID":
        return tuple((0, 0) for _ in sizes)
    if padding == "SAME":
        pairs = []
        for m, k, s in zip(sizes, windows, strides):
            total = max((-(-m // s) - 1) * s + k - m, 0)
            pairs.append((total // 2, total - total // 2))
        return tuple(pairs)
    return tuple(padding)


def window_output_size(size: int, window: int, stride: int, pads: Tuple[int, int]) -> int:
    """``Q = ⌊(M + P_lo + P_hi − K)/S⌋ + 1`` for an (effective) window ``K``."""
    return (size + pads[0] + pads[1] - window) // stride + 1


def output_sizes(padded_sizes, kernel, strides, dilation) -> Tuple[int, ...]:
    """`window_output_size` per axis of an already padded input, for a kernel of dilation d
    (effective window ``d(K − 1) + 1``): ``Q = ⌊(M_pad − d(K − 1) − 1)/S⌋ + 1``."""
    return tuple(window_output_size(m, d * (k - 1) + 1, s, (0, 0))
                 for m, k, s, d in zip(padded_sizes, kernel, strides, dilation))


def check_windows(layer: str, input_shape, windows, strides, pads, what: str = "kernel"):
    """The spatial output sizes; a `LayerError` naming the numbers if a window is larger than
    the padded input along some axis."""
    sizes = input_shape[1:-1]
    out = []
    for axis, (m, k, s, p) in enumerate(zip(sizes, windows, strides, pads)):
        if k > m + p[0] + p[1]:
            raise LayerError(layer, f"has a {what} of size {k} along spatial axis {axis}, larger "
                                    f"than the padded input {m} + {p[0]} + {p[1]} = "
                                    f"{m + p[0] + p[1]} (input shape "
                                    f"{format_shape(tuple(input_shape))}).")
        out.append(window_output_size(m, k, s, p))
    return tuple(out)


def check_spatial_input(layer: str, input_shape, ndim: int):
    """A `LayerError` unless ``input_shape`` is (batch, *ndim known spatial sizes, channels)."""
    check_rank(layer, input_shape, ndim + 2, _EXPECTED.get(ndim, f"(batch, {ndim} axes, channels)"))
    if len(input_shape) != ndim + 2 or any(d is None for d in input_shape[1:]):
        raise LayerError(layer, f"expects inputs of shape {_EXPECTED.get(ndim)} with known sizes; "
                                f"got {format_shape(tuple(input_shape))}.")


def _check_channels(layer: str, x, channels: int, ndim: int):
    if x.ndim != ndim + 2 or x.shape[-1] != channels:
        raise LayerError(layer, f"expects inputs of shape {_EXPECTED[ndim]} with {channels} "
                                f"channels; got {format_shape(tuple(x.shape))}.")


def _add_bias(y, b):
    return y + jnp.expand_dims(b, tuple(range(y.ndim - 1))).astype(y.dtype)


def _flip(w, ndim: int):
    return jnp.flip(w, axis=tuple(range(ndim)))


def _effective(kernel, dilation):
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))


def _describe(kernel, strides, padding, dilation, groups=1):
    parts = ["×".join(map(str, kernel))]
    if any(s != 1 for s in strides):
        parts.append(f"strides={strides if len(strides) > 1 else strides[0]}")
    if not (padding == 0 or (isinstance(padding, str) and padding.upper() == "VALID")):
        parts.append(f"padding={padding!r}")
    if any(d != 1 for d in dilation):
        parts.append(f"dilation={dilation if len(dilation) > 1 else dilation[0]}")
    if groups != 1:
        parts.append(f"groups={groups}")
    return ", ".join(parts)


# ----------------------------------------------------------------------------- lowerings

LOWERINGS = ("auto", "xla", "patches", "offsets", "banded", "dense")
# "auto" uses patches up to this many input channels (ungrouped). Measured on 2 CPU cores
# (benchmarks/README.md): in isolation the patches are 3.3× faster than XLA for C = 1, 1.1×
# for C = 2…4; inside LeNet-5's step, patches for C1 (C = 1) make the step faster but for C3
# (C = 6) clearly slower.
PATCHES_MAX_CHANNELS = 3
# "auto" uses "offsets" for ungrouped convolutions with more channels whose output has between
# 2 and this many positions per example: XLA:CPU's weight-gradient convolution is slow when
# the output grid (the "kernel" of that convolution) is small but not a single position
# (LeNet-5's C3, 10×10: forward + gradients 1.4× faster; 11×11 with 64 → 128 channels: 1.9×;
# 28×28 with 64 → 64 channels: slower; a 1×1 output: slower).
OFFSETS_MAX_POSITIONS = 256
# Of those, "auto" takes "banded" (the input gradient as one product with a banded matrix, see
# `conv_banded`, the weight gradient as one product with the patch matrix) for at most this
# many input channels and a padded last spatial axis at most BANDED_MAX_RATIO times the
# kernel's (effective) width, the band's multiply-adds being that ratio times the
# convolution's. Forward + both gradients, CPU ms on one core, offsets / banded (2026-11-30):
# LeNet-5's C3 (14×14×6 → 16, 5×5, batch 128) 15.0 / 7.5; 14×14×12 → 16 20.9 / 15.3;
# 14×14×24 → 32 55.6 / 105.9; 8×8×64 → 64 (3×3, batch 64) 12.3 / 15.1; 10×10×8 → 16 (3×3,
# ratio 3.3) 1.7 / 1.6.
BANDED_MAX_CHANNELS = 12
BANDED_MAX_RATIO = 3


def check_lowering(where: str, lowering: str, choices: Sequence[str] = LOWERINGS) -> str:
    """``lowering`` if it is one of ``choices``, else a ValueError naming ``where``."""
    if lowering not in choices:
        raise ValueError(f"{where}: `lowering` must be one of {', '.join(map(repr, choices))}; "
                         f"got {lowering!r}.")
    return lowering


def covers_input(sizes, kernel, pads, dilation) -> bool:
    """Whether an undilated kernel covers the whole padded input (``K = M + P_lo + P_hi`` along
    every axis): the convolution then has one output position and is a dense layer."""
    return all(d == 1 and k == m + p[0] + p[1]
               for m, k, p, d in zip(sizes, kernel, pads, dilation))


def conv_lowering(lowering: str, channels: int, groups: int, out_positions: int,
                  whole: bool = False, band_ratio: float = math.inf) -> str:
    """The lowering ``"auto"`` stands for, for a convolution of ``channels`` input channels
    whose output has ``out_positions`` positions per example (``whole``: the kernel covers the
    whole padded input, see `covers_input`; ``band_ratio``: the padded last spatial axis over
    the kernel's effective width along it): ``"dense"`` for an ungrouped ``whole`` one,
    ``"patches"`` for an ungrouped convolution of at most `PATCHES_MAX_CHANNELS` input
    channels; for other ungrouped ones with ``2 <= out_positions <=`` `OFFSETS_MAX_POSITIONS`,
    ``"banded"`` if ``channels <=`` `BANDED_MAX_CHANNELS` and ``band_ratio <=``
    `BANDED_MAX_RATIO`, else ``"offsets"``; ``"xla"`` otherwise. An explicit choice is kept
    (``"patches"``, ``"offsets"``, ``"banded"`` and ``"dense"`` need ``groups = 1``,
    ``"dense"`` also ``whole``)."""
    if lowering != "auto":
        return lowering
    if groups != 1:
        return "xla"
    if whole:
        return "dense"
    if channels <= PATCHES_MAX_CHANNELS:
        return "patches"
    if not 2 <= out_positions <= OFFSETS_MAX_POSITIONS:
        return "xla"
    if channels <= BANDED_MAX_CHANNELS and band_ratio <= BANDED_MAX_RATIO:
        return "banded"
    return "offsets"


def conv_xla(x, w, strides, pads, dilation, groups: int = 1):
    """The correlation of x (N, *spatial, C) with w (*kernel, C/groups, F) (explicit ``(lo, hi)``
    pads) as one `jax.lax.conv_general_dilated`: y (N, *out, F)."""
    ndim = x.ndim - 2
    return jax.lax.conv_general_dilated(
        x, w, window_strides=strides, padding=pads, rhs_dilation=dilation,
        dimension_numbers=_DIMENSION_NUMBERS[ndim], feature_group_count=groups)


@jax.custom_jvp
def _kernel_times_patches(w2, patches):
    """``w2ᵀ · patches``: (K·C, F), (K·C, M) -> (F, M), with ``w2ᵀ`` materialized row-major
    (XLA:CPU folds a plain transpose into the product, whose transposed left operand then
    misses YNNPACK's fast kernel: LeNet-5's C1 5.6 ms against 0.7–1.1 ms on one core). The
    tangent in ``w2`` is written ``(patchesᵀ · ẇ2)ᵀ`` so that its transpose, the weight
    gradient, is ``patches · ∂L/∂yᵀ`` (K·C, F), the fast orientation (2.5 ms against 6.7 ms
    for ``∂L/∂y · patchesᵀ``)."""
    return jnp.matmul(jax.lax.optimization_barrier(w2.T), patches)


def _kernel_times_patches_jvp(primals, tangents):
    (w2, patches), (w2_dot, patches_dot) = primals, tangents
    parts = []
    if not isinstance(patches_dot, SymbolicZero):
        parts.append(jnp.matmul(w2.T, patches_dot))
    if not isinstance(w2_dot, SymbolicZero):
        parts.append(jax.lax.dot_general(patches, w2_dot, (((0,), (0,)), ((), ()))).T)
    return _kernel_times_patches(w2, patches), functools.reduce(jnp.add, parts)


_kernel_times_patches.defjvp(_kernel_times_patches_jvp, symbolic_zeros=True)


def patch_matrix(x, kernel, strides, pads, dilation):
    """The patches of x (N, *spatial, C) as one matrix ``P`` (K·C, N·Q) (K = K·K'…, Q = Q·Q'…,
    rows in ``w``'s row-major (k, k', …, c) order, channels first: im2col), and the output
    sizes ``out``. With ``x_pad`` the padded input moved to channels first, (C, N, *spatial),
    each kernel offset ``k`` gives the strided slice ``x_pad[:, :, k·d : k·d + (Q − 1)·S + 1 : S]``
    (C, N, *out), taken one spatial axis at a time (5 + 5 slices for a 5×5 kernel instead of
    25 slices of the whole padded input: 2.2 ms against 4.0 ms for LeNet-5's C1)."""
    ndim = x.ndim - 2
    xt = jnp.pad(jnp.moveaxis(x, -1, 0), ((0, 0), (0, 0)) + tuple(pads))
    out = output_sizes(xt.shape[2:], kernel, strides, dilation)
    # after axis a: patches[k_0, …, k_a, C, N, out_0, …, out_a, M_{a+1}, …]
    patches = xt
    for a in range(ndim):
        patches = jnp.stack([jax.lax.slice_in_dim(patches, o * dilation[a],
                                                  o * dilation[a] + (out[a] - 1) * strides[a] + 1,
                                                  strides[a], 2 * a + 2)
                             for o in range(kernel[a])], a)
    return patches.reshape(math.prod(kernel) * x.shape[-1], x.shape[0] * math.prod(out)), out


def conv_patches(x, w, strides, pads, dilation):
    """The same correlation as `conv_xla` (groups 1) as one matrix product over the patches
    ``P`` (K·C, N·Q) of `patch_matrix`:

        yᵀ = w.reshape(K·C, F)ᵀ · P   (F, N·Q), moved back to (N, *out, F).
    """
    ndim = x.ndim - 2
    features = w.shape[-1]
    patches, out = patch_matrix(x, w.shape[:ndim], strides, pads, dilation)
    y_t = _kernel_times_patches(w.reshape(-1, features), patches)
    return jnp.moveaxis(y_t.reshape((features, x.shape[0]) + out), 0, -1)


def conv_dense(x, w, pads):
    """The same correlation as `conv_xla` (groups 1) when the kernel covers the whole padded
    input (`covers_input`; e.g. LeNet-5's C5, 5×5×16 → 1×1×120): one matrix product

        y = x_pad.reshape(N, K·K'·C) · w.reshape(K·K'·C, F),   reshaped to (N, 1, 1, F),

    whose gradients are two more products (XLA:CPU's convolution gradients at this shape are
    10× slower)."""
    ndim = x.ndim - 2
    if any(p != (0, 0) for p in pads):
        x = jnp.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),))
    y = x.reshape(x.shape[0], -1) @ w.reshape(-1, w.shape[-1])
    return y.reshape((x.shape[0],) + (1,) * ndim + (w.shape[-1],))


def conv_banded(x, w, strides, pads, dilation):
    """The same correlation as `conv_xla` (groups 1) as one matrix product with a banded
    (block-Toeplitz) matrix along the last spatial axis and slices along the others.

    Along the last axis (padded size M, output size Q, kernel K', stride S, dilation d) the
    kernel becomes ``B[k, m, c, q, f] = w[k, k', c, f]`` where ``m = q·S + k'·d`` (0 elsewhere),
    for each offset ``k`` of the other axes (``B`` is ``E · w`` with a constant 0/1 tensor
    ``E[m, q, k']``). With ``X_k`` the padded input sliced at the offset ``k`` along the other
    axes (N, *out_lead, M, C), stacked over ``k`` and reshaped to (N·Q_lead, K_lead·M·C),

        y = X · B.reshape(K_lead·M·C, Q·F),   reshaped to (N, *out, F).

    It does M/K' times the multiply-adds of the correlation (the zeros of the band), but as one
    product with long rows; its transpose, the input gradient ``∂L/∂X = ∂L/∂y · Bᵀ`` followed
    by a sum of K_lead shifted slices, is 3× faster than XLA:CPU's input-gradient convolution
    for LeNet-5's C3 (M = 14, K' = 5). Used for that gradient by ``lowering="banded"``
    (`conv_offsets` with ``banded=True``); as the forward pass it is slower than XLA's."""
    ndim = x.ndim - 2
    kernel, (channels, features) = w.shape[:ndim], w.shape[ndim:]
    # X_k: the other axes sliced at each of their kernel offsets, the last axis whole (M)
    rows, sliced = _offset_slices(x, kernel[:-1] + (1,), tuple(strides[:-1]) + (1,), pads,
                                  tuple(dilation[:-1]) + (1,))
    width = sliced[-1]  # M, the padded last axis
    out = sliced[:-1] + output_sizes((width,), kernel[-1:], strides[-1:], dilation[-1:])
    band = np.zeros((width, out[-1], kernel[-1]), np.float32)
    for q in range(out[-1]):
        for k in range(kernel[-1]):
            band[q * strides[-1] + k * dilation[-1], q, k] = 1.0
    b = jnp.einsum("mqj,...jcf->...mcqf", band.astype(w.dtype), w)  # (*kernel_lead, M, C, Q, F)
    lead = x.shape[0] * math.prod(out[:-1])
    stacked = jnp.stack(rows, ndim).reshape(lead, -1)  # (N, *out_lead, K_lead, M, C)
    y = stacked @ b.reshape(stacked.shape[1], out[-1] * features)
    return y.reshape((x.shape[0],) + out + (features,))


def _offset_slices(x, kernel, strides, pads, dilation):
    """The strided slices ``x_pad[:, k·d : k·d + (Q − 1)·S + 1 : S, …, :]`` (N, *out, C) of the
    padded NHWC input, one per kernel offset ``k`` in row-major order (as ``w`` is laid out),
    and the output sizes ``out``."""
    ndim = x.ndim - 2
    x_pad = jnp.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),))
    out = output_sizes(x_pad.shape[1:-1], kernel, strides, dilation)
    cols = [x_pad[(slice(None),) + tuple(slice(o * d, o * d + (q - 1) * s + 1, s)
                                         for o, d, q, s in zip(offsets, dilation, out, strides))]
            for offsets in itertools.product(*map(range, kernel))]
    return cols, out


def conv_offset_products(x, w, strides, pads, dilation):
    """The same correlation as `conv_xla` (groups 1) as a sum of one matrix product per kernel
    offset: ``y = Σ_k x_k.reshape(N·Q·Q', C) · w[k]`` (C, F), reshaped to (N, *out, F). As a
    function of ``w`` its transpose is ``∂L/∂w[k] = x_kᵀ · ∂L/∂y`` (C, N·Q·Q') × (N·Q·Q', F):
    K·K' products with a long contraction, which XLA:CPU computes faster than its own
    weight-gradient convolution for LeNet-5's C3."""
    ndim = x.ndim - 2
    kernel, (channels, features) = w.shape[:ndim], w.shape[ndim:]
    cols, out = _offset_slices(x, kernel, strides, pads, dilation)
    w_rows = w.reshape((-1, channels, features))
    y = functools.reduce(jnp.add, [col.reshape(-1, channels) @ w_rows[k]
                                   for k, col in enumerate(cols)])
    return y.reshape((x.shape[0],) + out + (features,))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5))
def conv_offsets(x, w, strides, pads, dilation, banded: bool = False):
    """The correlation of `conv_xla` (groups 1), its value computed by XLA's convolution.

    ``banded=False`` (``lowering="offsets"``): the tangent is
    ``conv_xla(ẋ, w) + conv_offset_products(x, ẇ)``, which JAX transposes to XLA's usual input
    gradient and to the weight gradient as one matrix product per kernel offset,
    ``∂L/∂w[k] = x_kᵀ · ∂L/∂y``.

    ``banded=True`` (``lowering="banded"``): the tangent is
    ``conv_banded(ẋ, w) + (Pᵀ · ẇ)`` with ``P`` the patch matrix (`patch_matrix`), which JAX
    transposes to the input gradient ``∂L/∂y · Bᵀ`` followed by a sum of shifted slices, and
    to the weight gradient as one matrix product ``P · ∂L/∂y`` (K·C, N·Q) × (N·Q, F) (for
    LeNet-5's C3 2.3 ms against ~5 ms for the 25 per-offset products, whose transposed left
    operands XLA:CPU multiplies with a slow generic loop)."""
    return conv_xla(x, w, strides, pads, dilation)


def _conv_offsets_jvp(strides, pads, dilation, banded, primals, tangents):
    (x, w), (x_dot, w_dot) = primals, tangents
    parts = []
    if not isinstance(x_dot, SymbolicZero):
        parts.append((conv_banded if banded else conv_xla)(x_dot, w, strides, pads, dilation))
    if not isinstance(w_dot, SymbolicZero):
        if banded:  # ẏ = (Pᵀ · ẇ) reshaped: its transpose is ∂L/∂w = P · ∂L/∂y, one product
            ndim = x.ndim - 2
            patches, out = patch_matrix(x, w.shape[:ndim], strides, pads, dilation)
            y_dot = jax.lax.dot_general(patches, w_dot.reshape(-1, w.shape[-1]),
                                        (((0,), (0,)), ((), ())))
            parts.append(y_dot.reshape((x.shape[0],) + out + (w.shape[-1],)))
        else:
            parts.append(conv_offset_products(x, w_dot, strides, pads, dilation))
    return conv_offsets(x, w, strides, pads, dilation, banded), functools.reduce(jnp.add, parts)


conv_offsets.defjvp(_conv_offsets_jvp, symbolic_zeros=True)


# ----------------------------------------------------------------------------- convolutions

def _conv(ndim: int, features: Optional[int], kernel_size, *, strides, padding, dilation,
          groups, depth_multiplier, use_bias, flip_kernel, w_init, b_init, dtype, name: str,
          kind: str, lowering: str = "auto") -> Layer:
    """The convolution behind every layer here. ``depth_multiplier`` set means depthwise:
    ``groups = C`` and ``F = C · depth_multiplier``, both known only at init."""
    kernel = spatial_tuple(name, "kernel_size", kernel_size, ndim)
    strides = spatial_tuple(name, "strides", strides, ndim)
    dilation = spatial_tuple(name, "dilation", dilation, ndim)
    padding = check_padding(name, padding, ndim)
    w_init, b_init = initializers.get(w_init), initializers.get(b_init)
    window = _effective(kernel, dilation)

    def resolve(channels):
        if depth_multiplier is not None:
            return channels, channels * depth_multiplier
        return groups, features

    def check_dense(shape, pads):
        if lowering == "dense" and not covers_input(shape[1:-1], kernel, pads, dilation):
            raise LayerError(name, f"uses lowering='dense', which needs an undilated kernel "
                                   f"covering the whole padded input; the kernel {kernel} "
                                   f"(dilation {dilation}) does not cover "
                                   f"{format_shape(tuple(shape))} padded by {pads}.")

    def init(key, input_shape):
        check_spatial_input(name, input_shape, ndim)
        channels = input_shape[-1]
        n_groups, n_out = resolve(channels)
        if channels % n_groups or n_out % n_groups:
            raise LayerError(name, f"splits its channels into groups={n_groups}; the input's "
                                   f"{channels} channels and the {n_out} filters must both be "
                                   f"divisible by it.")
        if lowering not in ("auto", "xla") and n_groups != 1:
            raise LayerError(name, f"uses lowering={lowering!r}, which needs groups=1; it has "
                                   f"groups={n_groups}.")
        pads = padding_pairs(padding, input_shape[1:-1], window, strides)
        out = check_windows(name, input_shape, window, strides, pads)
        check_dense(input_shape, pads)
        w_key, b_key = jax.random.split(key)
        params = {"w": w_init(w_key, kernel + (channels // n_groups, n_out), dtype)}
        if use_bias:
            params["b"] = b_init(b_key, (n_out,), dtype)
        return (input_shape[0],) + out + (n_out,), params, {}

    def apply(params, state, x, *, key=None, train=False):
        w = params["w"]
        n_groups, _ = resolve(x.shape[-1])
        _check_channels(name, x, w.shape[-2] * n_groups, ndim)
        pads = padding_pairs(padding, x.shape[1:-1], window, strides)
        if flip_kernel:
            w = _flip(w, ndim)
        out = (window_output_size(m, k, s, p)
               for m, k, s, p in zip(x.shape[1:-1], window, strides, pads))
        check_dense(x.shape, pads)
        band_ratio = (x.shape[-2] + sum(pads[-1])) / window[-1]
        chosen = conv_lowering(lowering, x.shape[-1], n_groups, math.prod(out),
                               covers_input(x.shape[1:-1], kernel, pads, dilation), band_ratio)
        if chosen == "dense":
            y = conv_dense(x, w.astype(x.dtype), pads)
        elif chosen == "patches":
            y = conv_patches(x, w.astype(x.dtype), strides, pads, dilation)
        elif chosen in ("offsets", "banded"):
            y = conv_offsets(x, w.astype(x.dtype), strides, pads, dilation, chosen == "banded")
        else:
            y = conv_xla(x, w.astype(x.dtype), strides, pads, dilation, n_groups)
        if use_bias:
            y = _add_bias(y, params["b"])
        return y, state

    return Layer(init, apply, name, kind)


def _conv_layer(ndim: int, features: int, kernel_size, strides, padding, dilation, groups,
                use_bias, flip_kernel, w_init, b_init, dtype, lowering) -> Layer:
    label = f"Conv{ndim}D"
    check_lowering(label, lowering)
    check_int(label, "features", features)
    check_int(label, "groups", groups)
    kernel = spatial_tuple(label, "kernel_size", kernel_size, ndim)
    strides_t = spatial_tuple(label, "strides", strides, ndim)
    dilation_t = spatial_tuple(label, "dilation", dilation, ndim)
    name = f"{label}({features}, {_describe(kernel, strides_t, padding, dilation_t, groups)}" \
           + (", flip_kernel=True" if flip_kernel else "") + ")"
    return _conv(ndim, features, kernel, strides=strides_t, padding=padding, dilation=dilation_t,
                 groups=groups, depth_multiplier=None, use_bias=use_bias,
                 flip_kernel=flip_kernel, w_init=w_init, b_init=b_init, dtype=dtype, name=name,
                 kind=f"conv{ndim}d", lowering=lowering)


def Conv1D(features: int, kernel_size, *, strides=1, padding: Padding = "VALID", dilation=1,
           groups: int = 1, use_bias: bool = True, flip_kernel: bool = False,
           w_init="glorot_uniform", b_init="zeros", dtype=jnp.float32,
           lowering: str = "auto") -> Layer:
    """1-D convolution: x (batch, M, C) -> y (batch, Q, F); params ``w`` (K, C/groups, F),
    ``b`` (F,). Arguments as `Conv2D` with one spatial axis."""
    return _conv_layer(1, features, kernel_size, strides, padding, dilation, groups, use_bias,
                       flip_kernel, w_init, b_init, dtype, lowering)


def Conv2D(features: int, kernel_size, *, strides=1, padding: Padding = "VALID", dilation=1,
           groups: int = 1, use_bias: bool = True, flip_kernel: bool = False,
           w_init="glorot_uniform", b_init="zeros", dtype=jnp.float32,
           lowering: str = "auto") -> Layer:
    """2-D convolution: x (batch, M, M', C) -> y (batch, Q, Q', F).

    Params ``w`` (K, K', C/groups, F) (HWIO; fans for `fnn.init`:
    ``fan_in = K·K'·C/groups``, ``fan_out = K·K'·F``) and ``b`` (F,) unless ``use_bias=False``.
    ``kernel_size``, ``strides``, ``dilation``: an int or one per axis. ``padding``: see the
    module docstring. ``groups`` g splits the channels into g groups, each convolved with its
    own F/g filters (C and F divisible by g; ``groups = C`` is a depthwise convolution).
    ``flip_kernel=True`` computes the true convolution (kernel rotated 180°) instead of the
    cross-correlation. Output size per axis: ``Q = ⌊(M + P_lo + P_hi − d(K−1) − 1)/S⌋ + 1``.
    A kernel larger than the padded input, or channels not divisible by ``groups``, is a
    `LayerError` at init. ``lowering``: ``"auto"``, ``"xla"``, ``"patches"``, ``"offsets"``,
    ``"banded"`` or ``"dense"`` (see the module docstring; the same numbers up to rounding,
    only the speed differs).
    """
    return _conv_layer(2, features, kernel_size, strides, padding, dilation, groups, use_bias,
                       flip_kernel, w_init, b_init, dtype, lowering)


def Conv3D(features: int, kernel_size, *, strides=1, padding: Padding = "VALID", dilation=1,
           groups: int = 1, use_bias: bool = True, flip_kernel: bool = False,
           w_init="glorot_uniform", b_init="zeros", dtype=jnp.float32,
           lowering: str = "auto") -> Layer:
    """3-D convolution: x (batch, D, H, W, C) -> y (batch, Q, Q', Q'', F); params ``w``
    (K, K', K'', C/groups, F), ``b`` (F,). Arguments as `Conv2D` with three spatial axes."""
    return _conv_layer(3, features, kernel_size, strides, padding, dilation, groups, use_bias,
                       flip_kernel, w_init, b_init, dtype, lowering)


def DepthwiseConv2D(kernel_size, *, depth_multiplier: int = 1, strides=1,
                    padding: Padding = "VALID", dilation=1, use_bias: bool = True,
                    flip_kernel: bool = False, w_init="glorot_uniform", b_init="zeros",
                    dtype=jnp.float32) -> Layer:
    """Depthwise convolution: each input channel convolved with its own ``depth_multiplier``
    filters, no mixing across channels (a `Conv2D` with ``groups = C``).

    x (batch, M, M', C) -> y (batch, Q, Q', C·m); output channel ``c·m + j`` is filter ``j`` of
    channel ``c``. Params ``w`` (K, K', 1, C·m) (HWIO with one input channel per group, so
    ``fan_in = K·K'``) and ``b`` (C·m,). Output size as `Conv2D`.
    """
    name = "DepthwiseConv2D"
    check_int(name, "depth_multiplier", depth_multiplier)
    kernel = spatial_tuple(name, "kernel_size", kernel_size, 2)
    strides_t = spatial_tuple(name, "strides", strides, 2)
    dilation_t = spatial_tuple(name, "dilation", dilation, 2)
    extra = f", depth_multiplier={depth_multiplier}" if depth_multiplier != 1 else ""
    name = f"DepthwiseConv2D({_describe(kernel, strides_t, padding, dilation_t)}{extra})"
    return _conv(2, None, kernel, strides=strides_t, padding=padding, dilation=dilation_t,
                 groups=None, depth_multiplier=depth_multiplier, use_bias=use_bias,
                 flip_kernel=flip_kernel, w_init=w_init, b_init=b_init, dtype=dtype, name=name,
                 kind="depthwise_conv2d")


def SeparableConv2D(features: int, kernel_size, *, depth_multiplier: int = 1, strides=1,
                    padding: Padding = "VALID", dilation=1, use_bias: bool = True,
                    w_init="glorot_uniform", b_init="zeros", dtype=jnp.float32) -> Layer:
    """Depthwise separable convolution (Xception, MobileNet): a `DepthwiseConv2D` without bias
    followed by a 1×1 `Conv2D` with F filters.

    x (batch, M, M', C) -> y (batch, Q, Q', F). Params ``{"depthwise": {"w": (K, K', 1, C·m)},
    "pointwise": {"w": (1, 1, C·m, F), "b": (F,)}}``: ``K·K'·C·m + C·m·F + F`` numbers against
    ``K·K'·C·F + F`` for a full convolution. Both parts are children (``Layer.layers``).
    """
    check_int("SeparableConv2D", "features", features)
    kernel = spatial_tuple("SeparableConv2D", "kernel_size", kernel_size, 2)
    strides_t = spatial_tuple("SeparableConv2D", "strides", strides, 2)
    dilation_t = spatial_tuple("SeparableConv2D", "dilation", dilation, 2)
    name = f"SeparableConv2D({features}, {_describe(kernel, strides_t, padding, dilation_t)})"
    model = serial(
        ("depthwise", DepthwiseConv2D(kernel, depth_multiplier=depth_multiplier,
                                      strides=strides_t, padding=padding, dilation=dilation_t,
                                      use_bias=False, w_init=w_init, dtype=dtype)),
        ("pointwise", Conv2D(features, 1, use_bias=use_bias, w_init=w_init, b_init=b_init,
                             dtype=dtype)),
        name=name)
    return model._replace(kind="separable_conv2d")


def Conv2DTranspose(features: int, kernel_size, *, strides=1, padding: Padding = "VALID",
                    output_padding=0, dilation=1, use_bias: bool = True,
                    w_init="glorot_uniform", b_init="zeros", dtype=jnp.float32) -> Layer:
    """Transposed convolution ("deconvolution"): every input pixel scatters a copy of the
    kernel, scaled by its value, into the output, ``S`` pixels apart:

        y[n, i·S + k·d − P_lo, j·S' + k'·d' − P'_lo, f] += x[n, i, j, c] · w[k, k', c, f],

    plus ``b[f]``; it is the adjoint (the gradient with respect to its input) of a `Conv2D`
    with the same strides, padding and dilation and the kernel ``w`` with its last two axes
    swapped. x (batch, M, M', C) -> y (batch, O, O', F); params ``w`` (K, K', C, F) (HWIO) and
    ``b`` (F,). Output size per axis:

        O = (M − 1)·S + d·(K − 1) + 1 − P_lo − P_hi + output_padding.

    ``padding`` crops ``P_lo``/``P_hi`` cells from the full output: ``"VALID"`` crops nothing
    (``O = (M − 1)·S + d(K−1) + 1 + output_padding``), ``"SAME"`` crops
    ``d(K−1) + 1 − S`` cells split as in `Conv2D` so that ``O = M·S + output_padding``; ints
    or ``(lo, hi)`` pairs as in `Conv2D` (PyTorch's ``padding``). ``output_padding`` (an int or
    one per axis, smaller than the stride or the dilation) adds cells at the end: a strided
    convolution maps several input sizes to one output size, and ``output_padding`` picks which
    one the transpose returns.
    """
    label = "Conv2DTranspose"
    check_int(label, "features", features)
    kernel = spatial_tuple(label, "kernel_size", kernel_size, 2)
    strides = spatial_tuple(label, "strides", strides, 2)
    dilation = spatial_tuple(label, "dilation", dilation, 2)
    out_pad = spatial_tuple(label, "output_padding", output_padding, 2, minimum=0)
    for op, s, d in zip(out_pad, strides, dilation):
        if op >= max(s, d):
            raise ValueError(f"{label}: `output_padding` must be smaller than the stride or the "
                             f"dilation; got output_padding={out_pad}, strides={strides}, "
                             f"dilation={dilation}.")
    shown, padding = padding, check_padding(label, padding, 2)
    w_init, b_init = initializers.get(w_init), initializers.get(b_init)
    window = _effective(kernel, dilation)
    extra = f", output_padding={out_pad}" if any(out_pad) else ""
    name = f"{label}({features}, {_describe(kernel, strides, shown, dilation)}{extra})"

    def crops(sizes):
        if padding == "SAME":  # total K_eff − S, possibly negative (then cells are added)
            return tuple(((k - s) // 2, (k - s) - (k - s) // 2) for k, s in zip(window, strides))
        return padding_pairs(padding, sizes, window, strides)

    def output_sizes(sizes, pads):
        return tuple((m - 1) * s + k - p[0] - p[1] + op
                     for m, s, k, p, op in zip(sizes, strides, window, pads, out_pad))

    def init(key, input_shape):
        check_spatial_input(name, input_shape, 2)
        pads = crops(input_shape[1:-1])
        out = output_sizes(input_shape[1:-1], pads)
        if min(out) < 1:
            raise LayerError(name, f"would give an output of spatial size {out} for inputs "
                                   f"{format_shape(tuple(input_shape))}: padding {pads} crops "
                                   f"more than the full output.")
        w_key, b_key = jax.random.split(key)
        params = {"w": w_init(w_key, kernel + (input_shape[-1], features), dtype)}
        if use_bias:
            params["b"] = b_init(b_key, (features,), dtype)
        return (input_shape[0],) + out + (features,), params, {}

    def apply(params, state, x, *, key=None, train=False):
        w = params["w"]
        _check_channels(name, x, w.shape[-2], 2)
        pads = crops(x.shape[1:-1])
        # a stride-1 correlation of the input dilated by S (S − 1 zeros between pixels) with
        # the flipped kernel; negative pads crop
        conv_pads = tuple((k - 1 - p[0], k - 1 - p[1] + op)
                          for k, p, op in zip(window, pads, out_pad))
        y = jax.lax.conv_general_dilated(
            x, _flip(w, 2).astype(x.dtype), window_strides=(1, 1), padding=conv_pads,
            lhs_dilation=strides, rhs_dilation=dilation, dimension_numbers=_DIMENSION_NUMBERS[2])
        if use_bias:
            y = _add_bias(y, params["b"])
        return y, state

    return Layer(init, apply, name, "conv2d_transpose")


__all__ = ["BANDED_MAX_CHANNELS", "BANDED_MAX_RATIO", "Conv1D", "Conv2D", "Conv3D",
           "Conv2DTranspose", "DepthwiseConv2D", "LOWERINGS", "OFFSETS_MAX_POSITIONS",
           "PATCHES_MAX_CHANNELS", "SeparableConv2D", "check_lowering", "check_padding",
           "check_spatial_input", "check_windows", "conv_banded", "conv_dense", "conv_lowering",
           "conv_offset_products", "conv_offsets", "conv_patches", "conv_xla", "covers_input",
           "output_sizes", "padding_pairs", "patch_matrix", "spatial_tuple", "window_output_size"]
