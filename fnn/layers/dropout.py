"""Dropout and DropConnect: random masks in train mode, deterministic layers in eval mode.

``drop_rate`` p is the probability of DROPPING a unit (or a weight); q = 1 − p keeps it. Masks
are drawn from the ``key`` given to ``apply`` and from nothing else, so the same key gives the same
mask. Eval mode (``train=False``) needs no key and drops nothing. A rate of 0 is the identity (or
a plain Dense) in both modes and needs no key either.
"""
from __future__ import annotations

import contextlib
import numbers
from typing import Sequence

import jax
import jax.numpy as jnp

from fnn.core import Layer, LayerError, check_rank, format_shape
from fnn.layers.dense import Dense, _check_features, _check_units

MODES = ("inverted", "classic")


def _check_rate(layer: str, drop_rate) -> float:
    if (isinstance(drop_rate, bool) or not isinstance(drop_rate, numbers.Real)
            or not 0 <= drop_rate < 1):
        raise ValueError(f"{layer}: `drop_rate` is the probability of dropping and must be in "
                         f"[0, 1); got {drop_rate!r}.")
    return float(drop_rate)


def _require_key(layer: str, key):
    if key is None:
        raise LayerError(layer, "needs a key in train mode: pass `key=` to apply (fit does this); "
                                "eval mode (train=False) needs none.")


def _keep(key, drop_rate: float, shape):
    """The keep mask: True with probability 1 − p, independently for every entry of ``shape``."""
    return jax.random.bernoulli(key, 1.0 - drop_rate, shape)


def _drop(x, keep, drop_rate: float, scale: bool = True):
    """``x·m / (1 − p)`` (or ``x·m`` unscaled): dropped entries are exactly 0 and get 0 gradient."""
    kept = x * (1.0 / (1.0 - drop_rate)) if scale else x
    return jnp.where(keep, kept, jnp.zeros_like(x))


def _mask_shape(layer: str, shape, broadcast_axes: Sequence[int]):
    """``shape`` with the ``broadcast_axes`` set to 1 (one mask value shared along them)."""
    rank = len(shape)
    for axis in broadcast_axes:
        if not -rank <= axis < rank:
            raise LayerError(layer, f"shares its mask along axis {axis}, which inputs of shape "
                                    f"{format_shape(tuple(shape))} do not have.")
    shared = {axis % rank for axis in broadcast_axes}
    return tuple(1 if i in shared else d for i, d in enumerate(shape))


def Dropout(drop_rate: float, *, mode: str = "inverted", broadcast_axes: Sequence[int] = ()
            ) -> Layer:
    """Drop each input entry with probability p = ``drop_rate`` in train mode.

    With a mask m_i ~ Bernoulli(1 − p) drawn from ``key``:

    - ``mode="inverted"`` (default): train ``y = x·m / (1 − p)``, eval ``y = x``.
    - ``mode="classic"`` (the course's): train ``y = x·m``, eval ``y = (1 − p)·x``. The course
      says "multiply the outgoing weights by the keep probability at test time"; for the linear
      layer that follows, ``((1 − p)x) W = x ((1 − p)W)``, so scaling the output here is the same.

    Both give E[y_train] = y_eval. ``broadcast_axes`` share one mask value along the given axes,
    e.g. ``(1, 2)`` drops whole channels of NHWC images, ``(1,)`` the same features at every time
    step of (batch, time, features) sequences. Shapes: x (batch, ...) -> y of the same shape; no
    params, no state.
    """
    mode_text = "" if mode == "inverted" else f", mode={mode!r}"
    axes_text = f", broadcast_axes={tuple(broadcast_axes)}" if broadcast_axes else ""
    name = f"Dropout({drop_rate}{mode_text}{axes_text})"
    drop_rate = _check_rate("Dropout", drop_rate)
    if mode not in MODES:
        raise ValueError(f"Dropout: `mode` must be one of {MODES}; got {mode!r}.")
    broadcast_axes = tuple(broadcast_axes)
    if not all(isinstance(a, int) and not isinstance(a, bool) for a in broadcast_axes):
        raise ValueError(f"Dropout: `broadcast_axes` must be integers; got {broadcast_axes!r}.")
    classic = mode == "classic"

    def init(key, input_shape):
        check_rank(name, input_shape, 1, "(batch, ...)")
        _mask_shape(name, input_shape, broadcast_axes)
        return input_shape, {}, {}

    def apply(params, state, x, *, key=None, train=False):
        if drop_rate == 0:
            return x, state
        if not train:
            return (x * (1.0 - drop_rate) if classic else x), state
        _require_key(name, key)
        keep = _keep(key, drop_rate, _mask_shape(name, x.shape, broadcast_axes))
        return _drop(x, keep, drop_rate, scale=not classic), state

    return Layer(init, apply, name, "dropout")


@contextlib.contextmanager
def _as(layer: str):
    """Report a `LayerError` of the wrapped Dense under ``layer``'s name."""
    try:
        yield
    except LayerError as error:
        raise LayerError(layer, error.problem, error.path) from None


def DropConnect(units: int, drop_rate: float, *, per_example: bool = False, **dense_options
                ) -> Layer:
    """A `Dense` layer whose weights, not units, are dropped in train mode (Wan et al., 2013).

    Train: ``z = x (W ⊙ M) / (1 − p) + b`` with M_ij ~ Bernoulli(1 − p) drawn from ``key``;
    eval: ``z = x W + b``, the expected train output. Biases are never dropped. One mask serves
    the whole batch (one (n_in, units) draw and a single matmul); ``per_example=True`` draws a
    mask per example instead (batch·n_in·units draws and a batched matmul: costly for wide
    layers). Shapes and params as `Dense`: x (batch, ..., n_in) -> z (batch, ..., units), ``w``
    (n_in, units), ``b`` (units,); ``dense_options`` (``use_bias``, ``w_init``, ``b_init``,
    ``dtype``) go to `Dense`.
    """
    name = f"DropConnect({units}, {drop_rate})"
    _check_units(name, units=units)
    drop_rate = _check_rate("DropConnect", drop_rate)
    dense = Dense(units, **dense_options)

    def init(key, input_shape):
        with _as(name):
            return dense.init(key, input_shape)

    def apply(params, state, x, *, key=None, train=False):
        w = params["w"]
        _check_features(name, x, w.shape[0])
        if not train or drop_rate == 0:
            return dense.apply(params, state, x)
        _require_key(name, key)

        def dense_with(keep, x):  # Dense with the weights W ⊙ M / (1 − p)
            return dense.apply({**params, "w": _drop(w, keep, drop_rate)}, state, x)[0]

        if per_example:  # example i as a batch of one, with its own mask M_i
            masks = _keep(key, drop_rate, (x.shape[0],) + w.shape)
            return jax.vmap(lambda m, xi: dense_with(m, xi[None])[0])(masks, x), state
        return dense_with(_keep(key, drop_rate, w.shape), x), state

    return Layer(init, apply, name, "drop_connect")


__all__ = ["Dropout", "DropConnect"]
