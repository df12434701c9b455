"""Noise layers: input corruption for denoising autoencoders and the VAE's Gaussian sampling.

Each layer draws its random numbers from the ``key`` given to ``apply`` in train mode and from
nothing else (the same key gives the same noise), and is deterministic and keyless in eval mode,
as `Dropout` is. None has parameters or state.

- ``GaussianNoise(std)``: train ``x̃ = x + std·ε``, ε ~ N(0, I); eval ``x̃ = x``.
- ``MaskingNoise(rate)``: train ``x̃ = x ⊙ m``, m_i ~ Bernoulli(1 − rate), i.e. each entry is set
  to 0 with probability ``rate`` (Vincent et al., 2008) and the others are left as they are (no
  1/(1 − rate) rescaling: the corruption destroys information, it does not regularize an
  expectation as inverted dropout does); eval ``x̃ = x``.
- ``GaussianSample()``: the VAE's reparameterization. Input a pair ``(μ, log σ²)``, each
  (batch, latent); train ``z = μ + σ ⊙ ε`` with ``σ = exp(½ log σ²)``, ε ~ N(0, I) from the key;
  eval ``z = μ`` (the posterior mean, no key).
"""
from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from fnn.core import Layer, LayerError, check_rank, format_shape, is_shape


def _require_key(layer: str, key):
    if key is None:
        raise LayerError(layer, "draws its noise from a key in train mode: pass `key=` to apply "
                                "(fit does this); eval mode (train=False) needs none.")


def _check_number(layer: str, argument: str, value, low: float, high: float = float("inf"),
                  high_open: bool = False) -> float:
    bad_type = isinstance(value, bool) or not isinstance(value, numbers.Real)
    if bad_type or not (low <= value and (value < high if high_open else value <= high)):
        bound = f"in [{low}, {high})" if high_open else f">= {low}"
        raise ValueError(f"{layer}: `{argument}` must be a number {bound}; got {value!r}.")
    return float(value)


def GaussianNoise(std: float) -> Layer:
    """Additive Gaussian corruption: train ``x̃ = x + std·ε`` with ε ~ N(0, I) drawn from ``key``
    for every entry; eval ``x̃ = x``. ``std = 0`` is the identity in both modes (no key needed).
    Shapes: x (batch, ...) -> x̃ of the same shape and dtype.
    """
    name = f"GaussianNoise({std})"
    std = _check_number("GaussianNoise", "std", std, 0.0)

    def init(key, input_shape):
        check_rank(name, input_shape, 1, "(batch, ...)")
        return input_shape, {}, {}

    def apply(params, state, x, *, key=None, train=False, context=None):
        if not train or std == 0:
            return x, state
        _require_key(name, key)
        return x + std * jax.random.normal(key, x.shape, x.dtype), state

    return Layer(init, apply, name, "gaussian_noise")


def MaskingNoise(rate: float) -> Layer:
    """Masking corruption: in train mode every entry is set to 0 with probability ``rate``,
    independently (mask m_i ~ Bernoulli(1 − rate) from ``key``), ``x̃ = x ⊙ m``, unscaled;
    eval ``x̃ = x``. ``rate = 0`` is the identity in both modes. Shapes: x (batch, ...) -> x̃ of
    the same shape and dtype.
    """
    name = f"MaskingNoise({rate})"
    rate = _check_number("MaskingNoise", "rate", rate, 0.0, 1.0, high_open=True)

    def init(key, input_shape):
        check_rank(name, input_shape, 1, "(batch, ...)")
        return input_shape, {}, {}

    def apply(params, state, x, *, key=None, train=False, context=None):
        if not train or rate == 0:
            return x, state
        _require_key(name, key)
        keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
        return jnp.where(keep, x, jnp.zeros_like(x)), state

    return Layer(init, apply, name, "masking_noise")


def reparameterize(mean, logvar, eps):
    """``z = μ + σ ⊙ ε`` with ``σ = exp(½ log σ²)``: a sample of N(μ, diag σ²) that is a
    differentiable function of μ and log σ² for a fixed ε ~ N(0, I). All of one shape."""
    return mean + jnp.exp(0.5 * logvar) * eps


def GaussianSample() -> Layer:
    """Sample ``z ~ N(μ, diag σ²)`` by the reparameterization trick (Kingma & Welling, 2014).

    Input: the pair ``(μ, log σ²)``, two arrays of shape (batch, latent). Train mode:
    ``z = μ + exp(½ log σ²) ⊙ ε`` with ε ~ N(0, I) drawn from ``key``, so gradients reach μ and
    log σ² through z. Eval mode: ``z = μ``, without a key. Output: z (batch, latent).
    """
    name = "GaussianSample()"

    def init(key, input_shape):
        if is_shape(input_shape) or len(input_shape) != 2 or not all(map(is_shape, input_shape)):
            got = format_shape(input_shape) if isinstance(input_shape, (tuple, list)) else input_shape
            raise LayerError(name, f"expects a pair (mean, logvar) of shapes (batch, latent); "
                                   f"got {got}.")
        mean_shape, logvar_shape = (tuple(s) for s in input_shape)
        if mean_shape != logvar_shape:
            raise LayerError(name, f"expects mean and logvar of one shape; got mean "
                                   f"{format_shape(mean_shape)} and logvar "
                                   f"{format_shape(logvar_shape)}.")
        return mean_shape, {}, {}

    def apply(params, state, x, *, key=None, train=False, context=None):
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise LayerError(name, "expects a pair (mean, logvar) of arrays; got "
                                   f"{type(x).__name__}.")
        mean, logvar = x
        if not train:
            return mean, state
        _require_key(name, key)
        return reparameterize(mean, logvar, jax.random.normal(key, mean.shape, mean.dtype)), state

    return Layer(init, apply, name, "gaussian_sample")


__all__ = ["GaussianNoise", "MaskingNoise", "GaussianSample", "reparameterize"]
