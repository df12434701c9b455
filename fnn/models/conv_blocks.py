"""Building blocks shared by the convolutional architectures of `fnn.models`.

Images are NHWC, kernels HWIO. Normalized convolutions have no bias (the BatchNorm's β is the
bias), as in torchvision and Keras Applications.
"""
from __future__ import annotations

import jax.numpy as jnp

from fnn.core import Layer
from fnn.layers import Activation, BatchNorm, Conv2D, ReLU, serial


def block(kind: str, layer: Layer) -> Layer:
    """``layer`` (a `serial`, `residual`, ...) under its own ``kind``, so that a model's
    children get readable names (``basic_block_0``, ``conv_bn_1``) instead of ``serial_0``."""
    return layer._replace(name=kind if layer.name in ("serial", "residual") else layer.name,
                          kind=kind)


def relu6(x):
    """``min(max(x, 0), 6)``: MobileNet's bounded ReLU."""
    return jnp.clip(x, 0.0, 6.0)


def ReLU6() -> Layer:
    """The layer of `relu6`."""
    return Activation(relu6, "ReLU6", kind="relu6")


def conv_bn(features: int, kernel_size, *, strides=1, padding="SAME", activation="relu",
            epsilon: float = 1e-5, decay: float = 0.9, name: str = "conv_bn") -> Layer:
    """Conv2D (no bias) → BatchNorm → activation (``"relu"``, ``"relu6"`` or None):
    x (batch, M, M', C) -> (batch, Q, Q', features). Params ``K·K'·C·F + 2F``; state ``2F``.
    The BatchNorm's ``decay`` 0.9 and ε 1e-5 are torchvision's (momentum 0.1)."""
    layers = [Conv2D(features, kernel_size, strides=strides, padding=padding, use_bias=False,
                     w_init="he_normal"),
              BatchNorm(decay=decay, epsilon=epsilon)]
    if activation == "relu":
        layers.append(ReLU())
    elif activation == "relu6":
        layers.append(ReLU6())
    elif activation is not None:
        raise ValueError(f"{name}: `activation` must be 'relu', 'relu6' or None; "
                         f"got {activation!r}.")
    return block("conv_bn", serial(*layers, name=name))


__all__ = ["ReLU6", "block", "conv_bn", "relu6"]
