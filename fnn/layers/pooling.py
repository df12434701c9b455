"""Pooling: max, average and min over windows, and global pooling. No parameters, no state.

Inputs are (batch, M, C) for the 1-D layers and (batch, M, M', C) (NHWC) for the 2-D ones;
each channel is pooled on its own. A window ``K`` moved by the stride ``S`` (default: ``K``,
non-overlapping windows) gives per spatial axis

    Q = ⌊(M + P_lo + P_hi − K)/S⌋ + 1

outputs, with padding as in `fnn.layers.conv` (``"VALID"``, ``"SAME"``, ints, ``(lo, hi)``
pairs). Padded cells never win a max or a min (they hold −∞ / +∞). Average pooling divides by
the number of real input cells in the window (``count_include_pad=False``, the default, as in
Keras and TensorFlow), or by ``K·K'`` with padded cells counted as zeros
(``count_include_pad=True``, PyTorch's default).

Gradients (the course's rules): max pooling routes each output delta to the winning input
(on a tie, the first winner in row-major order within the window, as `jax.lax.reduce_window`'s
gradient does); average pooling spreads it evenly, ``1/(K·K')`` to each cell of the window.

Lowering: ``"xla"`` is one `jax.lax.reduce_window`. ``"slices"`` works for non-overlapping
windows (stride = window): the input, padded with the identity (−∞, +∞ or 0) and cut to
``Q·K`` cells per axis, is split into its K·K' strided cells ``x[:, k::K, k'::K', :]``, which
are combined elementwise (`window_reduce`; 2–3× faster than reducing a reshaped
(batch, Q, K, Q', K', C) array on XLA:CPU). Its derivative reads the tangent through that
reshape (sums), or max/min take the tangent of the first winner (its flat index found once in
the forward pass), so the backward pass is a broadcast or one scatter-add of the output delta
at the winners instead of XLA:CPU's slow ``select_and_scatter``. ``"auto"`` (the default)
takes ``"slices"`` whenever the windows do not overlap. Both give the same numbers (sums up
to float rounding) and the same gradients.
"""
from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp

from fnn.checks import check_choice
from fnn.core import Layer, LayerError, check_rank, format_shape
from fnn.layers.conv import (
    Padding, check_lowering, check_padding, check_spatial_input, check_windows, padding_pairs,
    spatial_tuple)

_REDUCERS = {"max": (jax.lax.max, -math.inf), "min": (jax.lax.min, math.inf),
             "avg": (jax.lax.add, 0.0)}
_DISPLAY = {"max": "MaxPool", "min": "MinPool", "avg": "AvgPool"}
LOWERINGS = ("auto", "xla", "slices")
_COMBINE = {"max": jnp.maximum, "min": jnp.minimum, "sum": jnp.add}
# max/min over windows: inputs up to this many elements (int32 flat indices) get the gather /
# scatter-add derivative, larger ones the masked broadcast (see `window_reduce`)
SCATTER_MAX_SIZE = 2 ** 31 - 1


def window_cells(x, window, pads, identity):
    """Non-overlapping windows (stride = window) of x (N, *spatial, C): x padded by ``pads``
    with ``identity`` and cut to ``Q = ⌊(M + P_lo + P_hi − K)/K⌋ + 1`` windows per axis
    (N, Q·K, Q'·K', …, C), and its cells: one strided slice ``x[:, k::K, k'::K', …, :]``
    (N, Q, Q', …, C) per window offset ``(k, k', …)`` in row-major order."""
    if any(p != (0, 0) for p in pads):
        x = jnp.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),), constant_values=identity)
    out = tuple(m // k for m, k in zip(x.shape[1:-1], window))
    x = x[(slice(None),) + tuple(slice(0, q * k) for q, k in zip(out, window))]
    cells = tuple(x[(slice(None),) + tuple(slice(o, None, k) for o, k in zip(offsets, window))]
                  for offsets in itertools.product(*map(range, window)))
    return x, cells


def _blocks(x, window):
    """x (N, Q·K, Q'·K', …, C) as (N, Q, K, Q', K', …, C) and the window axes (2, 4, …)."""
    ndim = x.ndim - 2
    out = tuple(m // k for m, k in zip(x.shape[1:-1], window))
    shape = (x.shape[0],) + tuple(d for q, k in zip(out, window) for d in (q, k)) + (x.shape[-1],)
    return x.reshape(shape), tuple(range(2, 2 * ndim + 1, 2))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def window_reduce(x, window, op: str):
    """The ``max``, ``min`` or ``sum`` (``op``) over each non-overlapping window of x
    (N, Q·K, Q'·K', …, C), computed as an elementwise max/min/sum of its strided cells:
    (N, Q, Q', …, C).

    Derivatives: for the sum, the sum of the tangents over the window (read through the window
    blocks (N, Q, K, Q', K', …, C) of ``ẋ``, so the transpose is one broadcast of the output
    delta); for max/min, the tangent of the first winner in row-major order over the window
    (``y = x[k*]``, ``ẏ = ẋ[k*]``), which is `jax.lax.reduce_window`'s choice, with the
    winner's flat index in ``x`` found once in the forward pass: ``ẏ`` is a gather of ``ẋ`` at
    those indices and the backward pass one scatter-add of the output delta there (per output
    cell; a masked broadcast, per input cell, made XLA:CPU recompute the winners and the
    incoming delta four times in LeNet-5's step), never XLA:CPU's slow ``select_and_scatter``.
    Inputs of more than `SCATTER_MAX_SIZE` elements use a masked broadcast of the delta over
    the window blocks instead (int32 indices)."""
    cells = window_cells(x, window, ((0, 0),) * len(window), 0.0)[1]
    return functools.reduce(_COMBINE[op], cells)


def _window_reduce_jvp(window, op, primals, tangents):
    (x,), (x_dot,) = primals, tangents
    if op == "sum":
        blocks, axes = _blocks(x_dot, window)
        return window_reduce(x, window, op), jnp.sum(blocks, axes)
    cells = window_cells(x, window, ((0, 0),) * len(window), 0.0)[1]
    # a running winner over the window in row-major order, replaced only by a strictly better
    # cell (so the first of tied cells stays). Comparing the cells with each other, never with
    # y: XLA may recompute the cells in another fusion, a last-bit different copy of y would
    # then match no cell.
    better = jnp.greater if op == "max" else jnp.less
    flat_ok = x.size <= SCATTER_MAX_SIZE
    # the winner as its flat (row-major) offset inside x from the window's corner, or (for
    # inputs too large for int32 indices) as its cell number
    strides = [math.prod(x.shape[a + 1:]) for a in range(x.ndim)]
    offsets = [sum(o * strides[a + 1] for a, o in enumerate(cell)) if flat_ok else k
               for k, cell in enumerate(itertools.product(*map(range, window)))]
    best, winner = cells[0], jnp.full(cells[0].shape, offsets[0], jnp.int32)
    for k, cell in enumerate(cells[1:], 1):
        take = better(cell, best)
        best = jnp.where(take, cell, best)
        winner = jnp.where(take, offsets[k], winner)
    if flat_ok:
        # ẏ = ẋ.flat[corner + winner]: a gather, whose transpose is one scatter-add of the
        # output delta, computed per output cell instead of per input cell
        corner = sum(jax.lax.broadcasted_iota(jnp.int32, best.shape, a)
                     * strides[a] * (window[a - 1] if 0 < a <= len(window) else 1)
                     for a in range(best.ndim))
        return best, x_dot.reshape(-1).at[corner + winner].get(mode="promise_in_bounds",
                                                                unique_indices=True)
    blocks, axes = _blocks(x_dot, window)
    offset = sum(jax.lax.broadcasted_iota(jnp.int32, blocks.shape, a) * math.prod(window[i + 1:])
                 for i, a in enumerate(axes))
    chosen = offset == jnp.expand_dims(winner, axes)
    return best, jnp.sum(jnp.where(chosen, blocks, jnp.zeros((), blocks.dtype)), axes)


window_reduce.defjvp(_window_reduce_jvp)


def _pool(op: str, ndim: int, window, strides, padding, count_include_pad: bool,
          lowering: str = "auto") -> Layer:
    label = f"{_DISPLAY[op]}{ndim}D"
    check_lowering(label, lowering, LOWERINGS)
    window = spatial_tuple(label, "window", window, ndim)
    strides = window if strides is None else spatial_tuple(label, "strides", strides, ndim)
    if lowering == "slices" and strides != window:
        raise ValueError(f"{label}: lowering='slices' needs non-overlapping windows "
                         f"(strides = window); got window={window}, strides={strides}.")
    blockwise = lowering != "xla" and strides == window
    shown, padding = padding, check_padding(label, padding, ndim)
    args = ["×".join(map(str, window))]
    if strides != window:
        args.append(f"strides={strides if ndim > 1 else strides[0]}")
    if padding != "VALID":
        args.append(f"padding={shown!r}")
    if op == "avg" and count_include_pad:
        args.append("count_include_pad=True")
    name = f"{label}({', '.join(args)})"
    reducer, identity = _REDUCERS[op]
    dims, steps = (1,) + window + (1,), (1,) + strides + (1,)

    def init(key, input_shape):
        check_spatial_input(name, input_shape, ndim)
        pads = padding_pairs(padding, input_shape[1:-1], window, strides)
        out = check_windows(name, input_shape, window, strides, pads, what="window")
        return (input_shape[0],) + out + (input_shape[-1],), {}, {}

    def apply(params, state, x, *, key=None, train=False):
        if x.ndim != ndim + 2:
            raise LayerError(name, f"expects inputs with {ndim} spatial axes; got "
                                   f"{format_shape(tuple(x.shape))}.")
        pads = padding_pairs(padding, x.shape[1:-1], window, strides)
        if blockwise:
            cropped, _ = window_cells(x, window, pads, identity)
            y = window_reduce(cropped, window, "sum" if op == "avg" else op)
            if op != "avg":
                return y, state
            if count_include_pad or all(p == (0, 0) for p in pads):
                return y / math.prod(window), state
            _, ones = window_cells(jnp.ones((1,) + x.shape[1:-1] + (1,), x.dtype), window, pads,
                                   0.0)
            return y / functools.reduce(jnp.add, ones), state
        pads = ((0, 0),) + pads + ((0, 0),)
        # a Python scalar identity with lax.max/min/add: JAX then uses its differentiable
        # reduce_window_{max,min,sum} primitives
        y = jax.lax.reduce_window(x, identity, reducer, dims, steps, pads)
        if op == "avg":
            if count_include_pad or all(p == (0, 0) for p in pads):
                y = y / math.prod(window)
            else:  # the number of real cells under each window (same for every example)
                ones = jnp.ones((1,) + x.shape[1:-1] + (1,), x.dtype)
                y = y / jax.lax.reduce_window(ones, 0.0, jax.lax.add, dims, steps, pads)
        return y, state

    return Layer(init, apply, name, f"{op}_pool{ndim}d")


def MaxPool1D(window=2, strides=None, padding: Padding = "VALID",
              lowering: str = "auto") -> Layer:
    """Max over windows of ``window`` steps: x (batch, M, C) -> (batch, Q, C)."""
    return _pool("max", 1, window, strides, padding, False, lowering)


def MaxPool2D(window=2, strides=None, padding: Padding = "VALID",
              lowering: str = "auto") -> Layer:
    """Max over ``K × K'`` windows per channel: x (batch, M, M', C) -> (batch, Q, Q', C).
    ``strides`` defaults to ``window``; see the module docstring for the output size and
    ``lowering`` (``"auto"``, ``"xla"``, ``"slices"``: the same results, different speed)."""
    return _pool("max", 2, window, strides, padding, False, lowering)


def MinPool1D(window=2, strides=None, padding: Padding = "VALID",
              lowering: str = "auto") -> Layer:
    """Min over windows of ``window`` steps: x (batch, M, C) -> (batch, Q, C)."""
    return _pool("min", 1, window, strides, padding, False, lowering)


def MinPool2D(window=2, strides=None, padding: Padding = "VALID",
              lowering: str = "auto") -> Layer:
    """Min over ``K × K'`` windows per channel: x (batch, M, M', C) -> (batch, Q, Q', C)."""
    return _pool("min", 2, window, strides, padding, False, lowering)


def AvgPool1D(window=2, strides=None, padding: Padding = "VALID",
              count_include_pad: bool = False, lowering: str = "auto") -> Layer:
    """Mean over windows of ``window`` steps: x (batch, M, C) -> (batch, Q, C). Padded cells
    are left out of the mean unless ``count_include_pad=True``."""
    check_choice("AvgPool1D", "count_include_pad", count_include_pad, (False, True))
    return _pool("avg", 1, window, strides, padding, count_include_pad, lowering)


def AvgPool2D(window=2, strides=None, padding: Padding = "VALID",
              count_include_pad: bool = False, lowering: str = "auto") -> Layer:
    """Mean over ``K × K'`` windows per channel: x (batch, M, M', C) -> (batch, Q, Q', C).

    With padding, the mean is over the real cells of each window (``count_include_pad=False``,
    Keras' rule) or over all ``K·K'`` cells with padded ones counted as 0 (``True``, PyTorch's
    default)."""
    check_choice("AvgPool2D", "count_include_pad", count_include_pad, (False, True))
    return _pool("avg", 2, window, strides, padding, count_include_pad, lowering)


def _global(op: str, keepdims: bool) -> Layer:
    label = {"avg": "GlobalAvgPool", "max": "GlobalMaxPool"}[op]
    name = f"{label}(keepdims=True)" if keepdims else f"{label}()"
    reduce = jnp.mean if op == "avg" else jnp.max

    def init(key, input_shape):
        check_rank(name, input_shape, 3, "(batch, ..., channels) with at least one spatial axis")
        spatial = tuple(input_shape[1:-1])
        kept = (1,) * len(spatial) if keepdims else ()
        return (input_shape[0],) + kept + (input_shape[-1],), {}, {}

    def apply(params, state, x, *, key=None, train=False):
        if x.ndim < 3:
            raise LayerError(name, f"expects inputs of shape (batch, ..., channels); got "
                                   f"{format_shape(tuple(x.shape))}.")
        return reduce(x, axis=tuple(range(1, x.ndim - 1)), keepdims=keepdims), state

    return Layer(init, apply, name, f"global_{op}_pool")


def GlobalAvgPool(keepdims: bool = False) -> Layer:
    """Mean over every spatial axis per channel: (batch, ..., C) -> (batch, C) (or
    (batch, 1, ..., 1, C) with ``keepdims=True``)."""
    return _global("avg", keepdims)


def GlobalMaxPool(keepdims: bool = False) -> Layer:
    """Max over every spatial axis per channel: (batch, ..., C) -> (batch, C) (or
    (batch, 1, ..., 1, C) with ``keepdims=True``)."""
    return _global("max", keepdims)


__all__ = ["AvgPool1D", "AvgPool2D", "GlobalAvgPool", "GlobalMaxPool", "LOWERINGS", "MaxPool1D",
           "MaxPool2D", "MinPool1D", "MinPool2D", "SCATTER_MAX_SIZE", "window_cells",
           "window_reduce"]
