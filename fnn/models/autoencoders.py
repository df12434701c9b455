"""Autoencoders (course lecture 6): a network trained to give back its input through a code.

    x (batch, *input_shape) --encoder--> h (batch, code_size) --decoder--> x̂ (batch, *input_shape)

A model is ``serial(("encoder", E), ("decoder", D))``, so its params are
``{"encoder": ..., "decoder": ...}`` and each half can be used alone (`encoder_of`, `encode`,
`decode`). Trained on the targets x (``fit(model, params, state, (x, x), ...)``) with, e.g.,
``sigmoid_binary_cross_entropy`` on logit outputs for inputs in [0, 1], or ``half_squared_error``.

- `dense_autoencoder`: Dense layers; the decoder mirrors the encoder's hidden sizes. The course's
  8-3-8 encoder problem is ``dense_autoencoder((8,), [], 3, code_activation="sigmoid")`` trained on
  the eight one-hot vectors (compression 8:3, the code of each pattern is its hidden vector).
- `denoising_autoencoder`: the same with a corruption layer first in the encoder
  (`fnn.layers.MaskingNoise` or `GaussianNoise`): in train mode the encoder sees a corrupted x̃
  and the model is trained to give back the clean x (Vincent et al., 2008); in eval mode the
  corruption is the identity, so `encode` codes clean inputs.

- `conv_autoencoder`: strided convolutions down to a dense code and transposed convolutions
  back up (images (H, W) or (H, W, C)).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp

from fnn.core import Layer, LayerError, format_shape
from fnn.layers import (
    Activation, Conv2D, Conv2DTranspose, Dense, Flatten, GaussianNoise, Lambda, MaskingNoise,
    serial)

ShapeLike = Union[int, Sequence[int]]
NOISES = ("masking", "gaussian")


def _per_example_shape(function: str, shape: ShapeLike) -> Tuple[int, ...]:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                            for d in shape):
        raise ValueError(f"{function}: `input_shape` is the shape of one example without the "
                         f"batch axis, e.g. (28, 28) or 784; got {shape!r}.")
    return shape


def _check_sizes(function: str, argument: str, sizes: Sequence[int]) -> Tuple[int, ...]:
    sizes = (sizes,) if isinstance(sizes, int) else tuple(sizes)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise ValueError(f"{function}: `{argument}` must be positive integers; got {sizes!r}.")
    return sizes


def _dense_stack(sizes: Sequence[int], activation, last_activation, w_init):
    """Dense(n) + activation for each size; the last layer gets ``last_activation`` (None: none)."""
    layers = []
    for i, units in enumerate(sizes):
        layers.append(Dense(units, w_init=w_init))
        fn = activation if i < len(sizes) - 1 else last_activation
        if fn is not None:
            layers.append(Activation(fn))
    return layers


def dense_encoder(hidden: Sequence[int], code_size: int, *, activation="relu",
                  code_activation=None, w_init="glorot_uniform", corruption: Optional[Layer] = None,
                  flatten: bool = True, name: str = "encoder") -> Layer:
    """x (batch, ...) -> code h (batch, code_size): [corruption], Flatten, Dense(hidden[i]) +
    ``activation`` for each hidden size, Dense(code_size) + ``code_activation`` (None: linear).

    ``corruption`` (a noise layer, child ``corruption``) acts on x before anything else.
    """
    hidden = _check_sizes("dense_encoder", "hidden", hidden)
    (code_size,) = _check_sizes("dense_encoder", "code_size", code_size)
    layers = [("corruption", corruption)] if corruption is not None else []
    layers += [Flatten()] if flatten else []
    layers += _dense_stack([*hidden, code_size], activation, code_activation, w_init)
    return serial(*layers, name=name)


def _reshape(shape: Sequence[int]) -> Layer:
    """(batch, prod(shape)) -> (batch, *shape)."""
    shape = tuple(shape)
    return Lambda(lambda y: y.reshape((y.shape[0], *shape)), name=f"Reshape({shape})", kind="reshape")


def dense_decoder(hidden: Sequence[int], output_shape: ShapeLike, *, activation="relu",
                  output_activation=None, w_init="glorot_uniform", name: str = "decoder") -> Layer:
    """code (batch, code_size) -> x̂ (batch, *output_shape): Dense(hidden[i]) + ``activation``
    for each hidden size, Dense(prod(output_shape)) + ``output_activation`` (None: logits or
    linear outputs), reshaped to ``output_shape`` when it has more than one axis."""
    hidden = _check_sizes("dense_decoder", "hidden", hidden)
    output_shape = _per_example_shape("dense_decoder", output_shape)
    layers = _dense_stack([*hidden, math.prod(output_shape)], activation, output_activation,
                          w_init)
    if len(output_shape) > 1:
        layers.append(_reshape(output_shape))
    return serial(*layers, name=name)


def autoencoder(encoder: Layer, decoder: Layer, *, input_shape: Optional[ShapeLike] = None,
                name: str = "autoencoder") -> Layer:
    """``serial(("encoder", encoder), ("decoder", decoder))``: params ``{"encoder", "decoder"}``.

    With ``input_shape`` (one example, no batch axis), init checks that the model is given inputs
    of that shape and gives back outputs of the same shape, and raises a `LayerError` otherwise.
    """
    model = serial(("encoder", encoder), ("decoder", decoder), name=name)
    if input_shape is None:
        return model
    expected = _per_example_shape("autoencoder", input_shape)

    def init(key, shape):
        if tuple(shape[1:]) != expected:
            raise LayerError(name, f"expects inputs of shape {format_shape((None, *expected))}; "
                                   f"got {format_shape(shape)}.")
        out, params, state = model.init(key, shape)
        if tuple(out[1:]) != expected:
            raise LayerError(name, f"must give back its input shape "
                                   f"{format_shape((None, *expected))}; its decoder gives "
                                   f"{format_shape(out)}.")
        return out, params, state

    return Layer(init, model.apply, name, "autoencoder", model.layers)


def dense_autoencoder(input_shape: ShapeLike, hidden: Sequence[int], code_size: int, *,
                      activation="relu", code_activation=None, output_activation=None,
                      w_init="glorot_uniform", corruption: Optional[Layer] = None,
                      name: str = "autoencoder") -> Layer:
    """A dense autoencoder for examples of ``input_shape`` (no batch axis, e.g. (28, 28)).

    Encoder: ``input -> hidden[0] -> ... -> hidden[-1] -> code_size`` (see `dense_encoder`);
    decoder: ``code_size -> hidden[-1] -> ... -> hidden[0] -> input`` (see `dense_decoder`), its
    output reshaped to ``input_shape``. ``output_activation=None`` gives logits, to pair with
    ``sigmoid_binary_cross_entropy`` for inputs in [0, 1]. ``hidden=[]`` is a single-layer
    encoder and decoder: ``dense_autoencoder((8,), [], 3, activation="sigmoid",
    code_activation="sigmoid")`` is the 8-3-8 network.
    """
    input_shape = _per_example_shape("dense_autoencoder", input_shape)
    hidden = _check_sizes("dense_autoencoder", "hidden", hidden)
    encoder = dense_encoder(hidden, code_size, activation=activation,
                            code_activation=code_activation, w_init=w_init,
                            corruption=corruption, flatten=len(input_shape) > 1)
    decoder = dense_decoder(hidden[::-1], input_shape, activation=activation,
                            output_activation=output_activation, w_init=w_init)
    return autoencoder(encoder, decoder, input_shape=input_shape, name=name)


def conv_autoencoder(input_shape: ShapeLike, filters: Sequence[int], code_size: int, *,
                     kernel_size: int = 3, activation="relu", code_activation=None,
                     output_activation=None, w_init="he_uniform",
                     corruption: Optional[Layer] = None, name: str = "conv_autoencoder") -> Layer:
    """A convolutional autoencoder for images of ``input_shape`` (H, W) or (H, W, C).

    Encoder: [corruption] → (H, W, C) → for each ``filters[i]`` = F_i, Conv2D(F_i, K, stride 2,
    "SAME") + ``activation`` (each halves the size: H/2^i × W/2^i × F_i) → Flatten →
    Dense(code_size) + ``code_activation`` (None: a linear code).
    Decoder: Dense(h·w·F_last) + ``activation`` with ``h = H/2^L``, ``w = W/2^L`` (L layers) →
    reshape (h, w, F_last) → Conv2DTranspose(F_i, K, stride 2, "SAME") + ``activation`` for
    the filters in reverse order after the last → Conv2DTranspose(C, K, stride 2, "SAME") +
    ``output_activation`` (None: logits) → (H, W[, C]). Each transposed convolution doubles
    the size (``O = M·S``). H and W must be divisible by 2^L; e.g. MNIST (28, 28) with
    ``filters=[16, 32]``: 28×28×1 → 14×14×16 → 7×7×32 → code → 7×7×32 → 14×14×16 → 28×28×1.
    """
    function = "conv_autoencoder"
    input_shape = _per_example_shape(function, input_shape)
    if len(input_shape) not in (2, 3):
        raise ValueError(f"{function}: `input_shape` must be (H, W) or (H, W, C); got "
                         f"{input_shape}.")
    filters = _check_sizes(function, "filters", filters)
    (code_size,) = _check_sizes(function, "code_size", code_size)
    if not filters:
        raise ValueError(f"{function}: `filters` must list at least one convolution.")
    scale = 2 ** len(filters)
    height, width = input_shape[:2]
    if height % scale or width % scale:
        raise ValueError(f"{function}: {len(filters)} stride-2 convolutions need H and W "
                         f"divisible by {scale}; got {height}×{width}.")
    channels = input_shape[2] if len(input_shape) == 3 else 1
    image = (height, width, channels)
    bottom = (height // scale, width // scale, filters[-1])

    def conv_stack(Layer_, sizes, last_activation):
        layers = []
        for i, f in enumerate(sizes):
            layers.append(Layer_(f, kernel_size, strides=2, padding="SAME", w_init=w_init))
            fn = activation if i < len(sizes) - 1 else last_activation
            if fn is not None:
                layers.append(Activation(fn))
        return layers

    encoder = [("corruption", corruption)] if corruption is not None else []
    if len(input_shape) == 2:
        encoder.append(_reshape(image))
    encoder += conv_stack(Conv2D, filters, activation) + [Flatten()]
    encoder += _dense_stack([code_size], activation, code_activation, w_init)
    decoder = _dense_stack([math.prod(bottom)], activation, activation, w_init)
    decoder.append(_reshape(bottom))
    decoder += conv_stack(Conv2DTranspose, [*filters[-2::-1], channels], output_activation)
    if len(input_shape) == 2:
        decoder.append(_reshape(input_shape))
    return autoencoder(serial(*encoder, name="encoder"), serial(*decoder, name="decoder"),
                       input_shape=input_shape, name=name)


def corruption_layer(noise: str, level: float) -> Layer:
    """``"masking"`` -> `MaskingNoise(level)` (``level`` the probability of zeroing an entry);
    ``"gaussian"`` -> `GaussianNoise(level)` (``level`` the standard deviation)."""
    if noise == "masking":
        return MaskingNoise(level)
    if noise == "gaussian":
        return GaussianNoise(level)
    raise ValueError(f"corruption_layer: `noise` must be one of {NOISES}; got {noise!r}.")


def denoising_autoencoder(input_shape: ShapeLike, hidden: Sequence[int], code_size: int, *,
                          noise: str = "masking", level: float = 0.3,
                          name: str = "denoising_autoencoder", **options) -> Layer:
    """`dense_autoencoder` whose encoder starts with ``corruption_layer(noise, level)``.

    Train it on clean targets, ``fit(model, ..., (x, x))``: in train mode it reconstructs x from
    a corrupted x̃ (the corruption drawn from the encoder's key), in eval mode from x itself.
    ``options`` go to `dense_autoencoder`.
    """
    return dense_autoencoder(input_shape, hidden, code_size,
                             corruption=corruption_layer(noise, level), name=name, **options)


def _child(function: str, model: Layer, name: str) -> Layer:
    children = dict(model.layers)
    if name not in children:
        raise ValueError(f"{function}: expects an autoencoder, a serial model with children "
                         f"'encoder' and 'decoder'; {model.name} has "
                         f"{sorted(children) or 'no children'}.")
    return children[name]


def encoder_of(model: Layer) -> Layer:
    """The model's ``encoder`` child; apply it to ``params["encoder"]``, ``state["encoder"]``."""
    return _child("encoder_of", model, "encoder")


def decoder_of(model: Layer) -> Layer:
    """The model's ``decoder`` child; apply it to ``params["decoder"]``, ``state["decoder"]``."""
    return _child("decoder_of", model, "decoder")


def encode(model: Layer, params, state, x):
    """The encoder's output for inputs x (batch, ...) in eval mode (no corruption, no key):
    the code (batch, code_size); for a VAE, the pair (mean, logvar)."""
    return encoder_of(model).apply(params["encoder"], state["encoder"], x, train=False)[0]


def decode(model: Layer, params, state, code):
    """The decoder's output for codes (batch, code_size) in eval mode: (batch, *input_shape)."""
    return decoder_of(model).apply(params["decoder"], state["decoder"], code, train=False)[0]


def code_binarity(codes) -> dict:
    """How close codes in [0, 1] are to a binary code, for the 8-3-8 problem.

    ``codes`` (patterns, bits). Returns ``max_distance`` and ``mean_distance``, the largest and
    mean distance ``min(h, 1 − h)`` of a code entry from {0, 1}; ``binary_codes`` the codes
    rounded to 0/1; ``distinct`` whether the rounded codes of all patterns differ.
    """
    codes = jnp.asarray(codes)
    distance = jnp.minimum(codes, 1 - codes)
    rounded = (codes > 0.5).astype(jnp.int32)
    distinct = len({tuple(row) for row in jax.device_get(rounded).tolist()}) == codes.shape[0]
    return {"max_distance": float(distance.max()), "mean_distance": float(distance.mean()),
            "binary_codes": jax.device_get(rounded).tolist(), "distinct": distinct}


__all__ = ["dense_encoder", "dense_decoder", "autoencoder", "dense_autoencoder", "conv_autoencoder",
           "corruption_layer", "denoising_autoencoder", "encoder_of", "decoder_of", "encode",
           "decode", "code_binarity"]
