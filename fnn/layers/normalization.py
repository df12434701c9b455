"""Normalization layers: BatchNorm (statistics over the batch) and LayerNorm (over the features).

Both normalize with ``ε`` and then scale and shift by learned ``γ`` (``gamma``, init 1) and
``β`` (``beta``, init 0), one per feature (the last axis: the units of a dense layer, the
channels of an NHWC image).
"""
from __future__ import annotations

import math
from typing import Optional

import jax.numpy as jnp

from fnn.checks import check_choice, check_in_range
from fnn.core import Layer, LayerError, check_rank, format_shape, row_mask

RUNNING_VARIANCES = ("biased", "unbiased")


def _per_feature(v, ndim: int):
    """(F,) -> (1, ..., 1, F), ready to meet an input of rank ``ndim`` (no rank promotion)."""
    return v.reshape((1,) * (ndim - 1) + (-1,))


def _check_input(name: str, input_shape, what: str) -> None:
    check_rank(name, input_shape, 2, what)
    if any(d is None for d in input_shape[1:]):
        raise LayerError(name, f"expects inputs with known sizes after the batch axis; got "
                               f"{format_shape(tuple(input_shape))}.")


def _check_features(name: str, x, features: int) -> None:
    if x.ndim < 2 or x.shape[-1] != features:
        raise LayerError(name, f"expects inputs of shape (batch, ..., {features}); got "
                               f"{format_shape(tuple(x.shape))}.")


def _affine(y, params, use_scale, use_bias):
    if use_scale:
        y = y * _per_feature(params["gamma"], y.ndim).astype(y.dtype)
    if use_bias:
        y = y + _per_feature(params["beta"], y.ndim).astype(y.dtype)
    return y


def _scale_and_shift(features, use_scale, use_bias, dtype):
    params = {}
    if use_scale:
        params["gamma"] = jnp.ones((features,), dtype)
    if use_bias:
        params["beta"] = jnp.zeros((features,), dtype)
    return params


def masked_moments(x, mask):
    """``(mean, variance, n)`` per feature (last axis) over every other axis, counting only
    the rows (examples) with ``mask`` 1: with ``w_b`` the mask and ``n = Σ_b w_b · (cells per
    example)``, ``μ = Σ w_b x / n`` and ``σ² = Σ w_b (x − μ)² / n`` (the biased variance). Rows
    with mask 0 may hold anything (even NaN): they are replaced by 0 before summing.
    ``mask=None`` means every row is real. ``n`` is a scalar array."""
    axes = tuple(range(x.ndim - 1))
    cells = math.prod(x.shape[1:-1])
    if mask is None:
        mean = x.mean(axis=axes)
        var = jnp.square(x - _per_feature(mean, x.ndim)).mean(axis=axes)
        return mean, var, jnp.asarray(x.shape[0] * cells, x.dtype)
    real = jnp.reshape(jnp.asarray(mask) > 0, (x.shape[0],) + (1,) * (x.ndim - 1))
    n = jnp.sum(real) * cells
    denominator = jnp.maximum(n, 1).astype(x.dtype)
    mean = jnp.where(real, x, 0).sum(axis=axes) / denominator
    centred = jnp.where(real, x - _per_feature(mean, x.ndim), 0)
    var = jnp.square(centred).sum(axis=axes) / denominator
    return mean, var, n.astype(x.dtype)


def BatchNorm(*, decay: Optional[float] = None, pytorch_momentum: Optional[float] = None,
              epsilon: float = 1e-5, running_variance: str = "biased", use_scale: bool = True,
              use_bias: bool = True, dtype=jnp.float32) -> Layer:
    """Batch normalization for (batch, features) and (batch, H, W, C) inputs (any rank >= 2;
    statistics per feature of the last axis, over the batch and every spatial axis).

    Train mode (``train=True``): with ``μ_B``, ``σ²_B`` the mean and (biased) variance of the
    batch, ``y = γ (x − μ_B)/√(σ²_B + ε) + β``. Only the rows with ``context.mask`` 1 enter
    ``μ_B`` and ``σ²_B`` (`fit` pads its last batch with mask-0 rows; no mask: every row), and
    the new state holds the running averages

        mean ← decay · mean + (1 − decay) · μ_B
        var  ← decay · var  + (1 − decay) · σ²_B'

    where ``σ²_B'`` is the biased variance ``σ²_B`` (``running_variance="biased"``, the default,
    as Keras and Flax) or the unbiased ``σ²_B · n/(n − 1)`` over the ``n`` real values per
    feature (``"unbiased"``, as PyTorch). Eval mode: ``y = γ (x − mean)/√(var + ε) + β`` with
    the running averages, and the state is returned unchanged.

    The momentum convention, stated once: ``decay`` is the weight of the OLD running value
    (Keras' ``momentum``, Flax's ``momentum``), default 0.99. ``pytorch_momentum`` is the
    weight of the NEW batch value (PyTorch's ``momentum``, e.g. 0.1), i.e.
    ``decay = 1 − pytorch_momentum``; give one or the other. For PyTorch's layer use
    ``BatchNorm(pytorch_momentum=0.1, running_variance="unbiased")`` (its ε is 1e-5, Keras'
    1e-3).

    Params ``gamma`` (F,) (init 1) and ``beta`` (F,) (init 0), either dropped with
    ``use_scale=False`` / ``use_bias=False``; state ``mean`` (F,) (init 0) and ``var`` (F,)
    (init 1).
    """
    name = "BatchNorm"
    if decay is not None and pytorch_momentum is not None:
        raise ValueError("BatchNorm: give `decay` (weight of the old running value) or "
                         "`pytorch_momentum` (weight of the new batch value, = 1 − decay), not "
                         f"both; got decay={decay!r}, pytorch_momentum={pytorch_momentum!r}.")
    if pytorch_momentum is not None:
        decay = 1.0 - check_in_range(name, "pytorch_momentum", pytorch_momentum, 0, 1)
        shown = f"pytorch_momentum={pytorch_momentum}"
    else:
        decay = 0.99 if decay is None else check_in_range(name, "decay", decay, 0, 1)
        shown = f"decay={decay}"
    epsilon = check_in_range(name, "epsilon", epsilon, 0, closed="neither")
    check_choice(name, "running_variance", running_variance, RUNNING_VARIANCES)
    extra = ", running_variance='unbiased'" if running_variance == "unbiased" else ""
    name = f"BatchNorm({shown}{extra})"

    def init(key, input_shape):
        _check_input(name, input_shape, "(batch, features) or (batch, height, width, channels)")
        features = input_shape[-1]
        state = {"mean": jnp.zeros((features,), jnp.float32),
                 "var": jnp.ones((features,), jnp.float32)}
        return tuple(input_shape), _scale_and_shift(features, use_scale, use_bias, dtype), state

    def apply(params, state, x, *, key=None, train=False, context=None):
        _check_features(name, x, state["mean"].shape[0])
        stats_dtype = jnp.promote_types(x.dtype, jnp.float32)
        if train:
            mean, var, n = masked_moments(x.astype(stats_dtype), row_mask(context))
            running_var = var
            if running_variance == "unbiased":
                running_var = var * n / jnp.maximum(n - 1, 1)
            state = {
                "mean": (decay * state["mean"] + (1 - decay) * mean).astype(state["mean"].dtype),
                "var": (decay * state["var"] + (1 - decay) * running_var).astype(
                    state["var"].dtype)}
        else:
            mean, var = state["mean"].astype(stats_dtype), state["var"].astype(stats_dtype)
        inv = 1.0 / jnp.sqrt(var + epsilon)
        y = (x - _per_feature(mean, x.ndim).astype(x.dtype)) \
            * _per_feature(inv, x.ndim).astype(x.dtype)
        return _affine(y, params, use_scale, use_bias), state

    return Layer(init, apply, name, "batch_norm")


def LayerNorm(*, epsilon: float = 1e-5, use_scale: bool = True, use_bias: bool = True,
              dtype=jnp.float32) -> Layer:
    """Layer normalization: each example (each position of a sequence or image) normalized over
    its features (the last axis), ``y = γ (x − μ)/√(σ² + ε) + β`` with ``μ``, ``σ²`` the mean
    and biased variance of the last axis. Same in train and eval mode; no state.

    x (batch, ..., F) -> y of the same shape; params ``gamma`` (F,) (init 1) and ``beta`` (F,)
    (init 0). ε defaults to 1e-5 (PyTorch; Keras uses 1e-3).
    """
    epsilon = check_in_range("LayerNorm", "epsilon", epsilon, 0, closed="neither")
    name = "LayerNorm()"

    def init(key, input_shape):
        _check_input(name, input_shape, "(batch, ..., features)")
        return (tuple(input_shape), _scale_and_shift(input_shape[-1], use_scale, use_bias, dtype),
                {})

    def apply(params, state, x, *, key=None, train=False):
        if use_scale or use_bias:
            _check_features(name, x, (params.get("gamma") if use_scale else params["beta"]
                                      ).shape[0])
        mean = x.mean(axis=-1, keepdims=True)
        var = jnp.square(x - mean).mean(axis=-1, keepdims=True)
        return _affine((x - mean) / jnp.sqrt(var + epsilon), params, use_scale, use_bias), state

    return Layer(init, apply, name, "layer_norm")


__all__ = ["BatchNorm", "LayerNorm", "RUNNING_VARIANCES", "masked_moments"]
