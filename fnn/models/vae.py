"""The variational autoencoder (course lecture 9; Kingma & Welling, "Auto-Encoding Variational
Bayes", 2014).

A Gaussian encoder q(z|x) = N(μ(x), diag σ²(x)) gives the mean μ and the log-variance log σ²
(batch, latent); z is sampled by the reparameterization ``z = μ + σ ⊙ ε``, ε ~ N(0, I) drawn
from the layer's key in train mode (`fnn.layers.GaussianSample`; eval mode uses z = μ and no
key); the decoder p(x|z) is Bernoulli (it outputs logits) or Gaussian with a fixed σ_x (it outputs
the mean). The prior is p(z) = N(0, I). Training minimizes the negative evidence lower bound

    −ELBO(x) = E_q[−log p(x|z)] + KL(q(z|x) ‖ p(z)),

the first term estimated with one sample z, the second in closed form (`kl_divergence`).

The model (`vae`) has the children ``encoder`` (x -> (μ, log σ²)), ``sample`` and ``decoder``
(z -> x̂), params ``{"encoder": ..., "sample": {}, "decoder": ...}``; its output is a
`VAEOutput(reconstruction, mean, logvar)`.
Train it with ``fit(model, params, state, (x, x), loss=elbo_loss("bernoulli"),
metrics=vae_metrics("bernoulli"), ...)``. `fnn.models.autoencoders.encode` gives (μ, log σ²),
`decode` decodes latent vectors, `sample_prior` decodes draws from p(z).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp

from fnn import losses
from fnn.core import (
    Layer, LayerError, apply_child, check_children, child_key, format_shape, init_child)
from fnn.layers import Dense, GaussianSample, branch, serial
from fnn.models.autoencoders import ShapeLike, decode, dense_decoder, dense_encoder
from fnn.train import masked_mean

LIKELIHOODS = ("bernoulli", "gaussian")


class VAEOutput(NamedTuple):
    """What a VAE model returns: the decoder's output for the sampled z (Bernoulli logits or
    Gaussian means, (batch, *input_shape)) and the encoder's mean and log-variance (batch, latent)."""

    reconstruction: Any
    mean: Any
    logvar: Any


def gaussian_encoder(hidden: Sequence[int], latent_size: int, *, activation="relu",
                     w_init="glorot_uniform", flatten: bool = True, name: str = "encoder"
                     ) -> Layer:
    """x (batch, ...) -> (μ, log σ²), each (batch, latent_size): the dense trunk of
    `dense_encoder` (Flatten, Dense(hidden[i]) + ``activation``) ending in two linear heads,
    ``gaussian/mean`` and ``gaussian/logvar``. ``hidden`` must list at least one size."""
    hidden = tuple(hidden)
    if not hidden:
        raise ValueError("gaussian_encoder: `hidden` must list at least one size; the last one "
                         "is the trunk both heads read.")
    trunk = dense_encoder(hidden[:-1], hidden[-1], activation=activation,
                          code_activation=activation, w_init=w_init, flatten=flatten)
    heads = branch(("mean", Dense(latent_size, w_init=w_init)),
                   ("logvar", Dense(latent_size, w_init=w_init)), name="gaussian")
    return serial(*trunk.layers, ("gaussian", heads), name=name)


def vae(encoder: Layer, decoder: Layer, *, input_shape: Optional[ShapeLike] = None,
        name: str = "vae") -> Layer:
    """The VAE from its parts: x -> `VAEOutput(decoder(z), μ, log σ²)`.

    ``encoder`` maps x (batch, ...) to the pair (μ, log σ²), each (batch, latent) (e.g.
    `gaussian_encoder`); z = `GaussianSample` of it (child ``sample``: z = μ + σ ⊙ ε with ε from
    the model's key in train mode, z = μ in eval mode); ``decoder`` maps z to the likelihood's
    parameters, (batch, *input_shape) (e.g. `dense_decoder` without an output activation).
    Children ``encoder``, ``sample``, ``decoder``, each getting ``fold_in(key, i)``; params
    ``{"encoder": ..., "sample": {}, "decoder": ...}``. ``input_shape`` (one example, no batch
    axis), when given, is checked at init: the inputs and the reconstructions must have it.
    """
    named = (("encoder", encoder), ("sample", GaussianSample()), ("decoder", decoder))
    names = [n for n, _ in named]
    expected = None
    if input_shape is not None:
        expected = tuple([input_shape] if isinstance(input_shape, int) else input_shape)

    def init(key, shape):
        if expected is not None and tuple(shape[1:]) != expected:
            raise LayerError(name, f"expects inputs of shape {format_shape((None, *expected))}; "
                                   f"got {format_shape(shape)}.")
        params, state, out = {}, {}, shape
        for i, (child, layer) in enumerate(named):
            out, params[child], state[child] = init_child(child, layer, child_key(key, i), out)
            if child == "encoder":
                moments = out
        if expected is not None and tuple(out[1:]) != expected:
            raise LayerError(name, f"must give back its input shape "
                                   f"{format_shape((None, *expected))}; its decoder gives "
                                   f"{format_shape(out)}.")
        return VAEOutput(out, *moments), params, state

    def apply(params, state, x, *, key=None, train=False, context=None):
        check_children(name, "params", params, names)
        check_children(name, "state", state, names)
        new_state, y, moments = {}, x, None
        for i, (child, layer) in enumerate(named):
            y, new_state[child] = apply_child(child, layer, params[child], state[child], y,
                                              key=child_key(key, i), train=train,
                                              context=context)
            if child == "encoder":
                moments = y
        return VAEOutput(y, *moments), new_state

    return Layer(init, apply, name, "vae", named)


def dense_vae(input_shape: ShapeLike, hidden: Sequence[int], latent_size: int, *,
              activation="relu", w_init="glorot_uniform", name: str = "vae") -> Layer:
    """A dense VAE for examples of ``input_shape`` (no batch axis, e.g. (28, 28)): encoder
    ``input -> hidden... -> (μ, log σ²)`` of size ``latent_size``, decoder ``z -> hidden
    reversed... -> input`` with linear outputs (Bernoulli logits or Gaussian means)."""
    input_shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    encoder = gaussian_encoder(hidden, latent_size, activation=activation, w_init=w_init,
                               flatten=len(input_shape) > 1)
    decoder = dense_decoder(tuple(hidden)[::-1], input_shape, activation=activation,
                            w_init=w_init)
    return vae(encoder, decoder, input_shape=input_shape, name=name)


# ----------------------------------------------------------------------------- the ELBO

def kl_divergence(mean, logvar):
    """KL(N(μ, diag σ²) ‖ N(0, I)) in closed form, per example:

        KL = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²)

    (Kingma & Welling 2014, appendix B). ``mean``, ``logvar`` (batch, latent) -> (batch,).
    """
    terms = 1.0 + logvar - jnp.square(mean) - jnp.exp(logvar)
    return -0.5 * jnp.sum(terms, axis=tuple(range(1, terms.ndim)))


def _check_likelihood(function: str, likelihood: str, sigma: float):
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"{function}: `likelihood` must be one of {LIKELIHOODS}; "
                         f"got {likelihood!r}.")
    if not sigma > 0:
        raise ValueError(f"{function}: `sigma` (the Gaussian decoder's standard deviation) must "
                         f"be positive; got {sigma!r}.")


def reconstruction_nll(reconstruction, x, likelihood: str = "bernoulli", sigma: float = 1.0):
    """−log p(x|z) per example, (batch, ...) -> (batch,):

    - ``"bernoulli"``: ``reconstruction`` are logits l, ``−Σ [x log s(l) + (1 − x) log(1 − s(l))]``
      (`fnn.losses.sigmoid_binary_cross_entropy`), x in [0, 1];
    - ``"gaussian"``: ``reconstruction`` is the mean μ_x, ``Σ (x − μ_x)² / (2σ²) + (D/2) log(2πσ²)``
      with D the number of entries of one example and σ = ``sigma`` fixed.
    """
    _check_likelihood("reconstruction_nll", likelihood, sigma)
    if likelihood == "bernoulli":
        return losses.sigmoid_binary_cross_entropy(reconstruction, x)
    entries = math.prod(jnp.shape(reconstruction)[1:])
    return (losses.half_squared_error(reconstruction, x) / sigma ** 2
            + 0.5 * entries * math.log(2 * math.pi * sigma ** 2))


def elbo_loss(likelihood: str = "bernoulli", sigma: float = 1.0):
    """The VAE's loss ``(outputs: VAEOutput, x) -> (batch,)``: the negative ELBO per example,
    ``reconstruction_nll(outputs.reconstruction, x) + kl_divergence(outputs.mean, outputs.logvar)``
    (in nats), with z the one sample the model drew."""
    _check_likelihood("elbo_loss", likelihood, sigma)

    def negative_elbo(outputs: VAEOutput, x):
        return (reconstruction_nll(outputs.reconstruction, x, likelihood, sigma)
                + kl_divergence(outputs.mean, outputs.logvar))

    return negative_elbo


def vae_metrics(likelihood: str = "bernoulli", sigma: float = 1.0):
    """Metrics for `fnn.fit`: ``(outputs, x, mask) -> {"reconstruction", "kl"}``, the masked
    batch means of the two terms of the negative ELBO (their sum is the loss)."""
    _check_likelihood("vae_metrics", likelihood, sigma)

    def metrics(outputs: VAEOutput, x, mask):
        nll = reconstruction_nll(outputs.reconstruction, x, likelihood, sigma)
        return {"reconstruction": masked_mean(nll, mask),
                "kl": masked_mean(kl_divergence(outputs.mean, outputs.logvar), mask)}

    return metrics


def mean_of(reconstruction, likelihood: str = "bernoulli"):
    """The mean of p(x|z) from the decoder's output: sigmoid of the logits (Bernoulli), or the
    output itself (Gaussian)."""
    _check_likelihood("mean_of", likelihood, 1.0)
    return jax.nn.sigmoid(reconstruction) if likelihood == "bernoulli" else reconstruction


def sample_prior(model: Layer, params, state, key, num: int, latent_size: int,
                 likelihood: str = "bernoulli"):
    """Decode ``num`` draws z ~ N(0, I) (from ``key``) in eval mode and return the means of
    p(x|z), (num, *input_shape): pixel probabilities for a Bernoulli decoder."""
    z = jax.random.normal(key, (num, latent_size))
    return mean_of(decode(model, params, state, z), likelihood)


__all__ = ["VAEOutput", "gaussian_encoder", "vae", "dense_vae",
           "kl_divergence", "reconstruction_nll", "elbo_loss", "vae_metrics", "mean_of",
           "sample_prior", "LIKELIHOODS"]
