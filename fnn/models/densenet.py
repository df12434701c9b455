"""DenseNet (Huang et al. 2017): every layer of a dense block sees the concatenation of all
earlier outputs of the block, ``x_l = [x_{l−1}, H_l(x_{l−1})]``."""
from __future__ import annotations

from typing import Sequence

from fnn.checks import check_int
from fnn.core import Layer
from fnn.layers import (
    AvgPool2D, BatchNorm, Concatenate, Conv2D, Dense, GlobalAvgPool, Identity, MaxPool2D, ReLU,
    branch, serial)
from fnn.models.conv_blocks import block, conv_bn


def dense_connection(*layers) -> Layer:
    """``x -> concat([x, F(x)], channels)`` with ``F = serial(*layers)``: DenseNet's
    concatenating skip connection (a `branch` of the identity and F, then `Concatenate`)."""
    return block("dense_connection", serial(
        branch(Identity(), block("dense_layer", serial(*layers))), Concatenate(),
        name="dense_connection"))


def _bn_relu_conv(features: int, kernel_size: int) -> Layer:
    # DenseNet's pre-activation order: BN → ReLU → convolution (no bias)
    return block("bn_relu_conv", serial(
        BatchNorm(), ReLU(),
        Conv2D(features, kernel_size, padding="SAME", use_bias=False, w_init="he_normal")))


def dense_block(num_layers: int, growth_rate: int, bn_size: int = 4) -> Layer:
    """``num_layers`` dense connections, each adding ``growth_rate`` channels with
    BN → ReLU → 1×1 conv (bn_size·k) → BN → ReLU → 3×3 conv (k)."""
    return block("dense_block", serial(*[
        dense_connection(_bn_relu_conv(bn_size * growth_rate, 1), _bn_relu_conv(growth_rate, 3))
        for _ in range(num_layers)]))


def densenet(blocks: Sequence[int] = (6, 12, 24, 16), num_classes: int = 1000, *,
             growth_rate: int = 32, init_features: int = 64, bn_size: int = 4,
             compression: float = 0.5, name: str = "densenet") -> Layer:
    """DenseNet-BC: a 7×7 convolution (stride 2) with BN and ReLU, 3×3 max pooling (stride 2),
    dense blocks of ``blocks`` layers separated by transitions (BN → ReLU → 1×1 convolution to
    ``compression``·C channels → 2×2 average pooling), a final BN and ReLU, global average
    pooling and Dense(num_classes). DenseNet-121 is ``blocks=(6, 12, 24, 16)``, k = 32:
    7,978,856 parameters for 1000 classes (torchvision; Keras' 8,062,504 adds 83,648 running
    statistics).
    """
    check_int(name, "num_classes", num_classes)
    check_int(name, "growth_rate", growth_rate)
    layers = [("stem", serial(conv_bn(init_features, 7, strides=2, padding=3),
                              MaxPool2D(3, 2, padding=1), name="stem"))]
    channels = init_features
    for i, n in enumerate(blocks):
        layers.append((f"block{i + 1}", dense_block(n, growth_rate, bn_size)))
        channels += n * growth_rate
        if i < len(blocks) - 1:
            channels = int(channels * compression)
            layers.append((f"transition{i + 1}", block("transition", serial(
                _bn_relu_conv(channels, 1), AvgPool2D(2)))))
    layers += [("norm", BatchNorm()), ("relu", ReLU()), ("pool", GlobalAvgPool()),
               ("classifier", Dense(num_classes))]
    return serial(*layers, name=name)


def densenet121(num_classes: int = 1000, **kwargs) -> Layer:
    """DenseNet-121: `densenet` with blocks (6, 12, 24, 16) and growth rate 32."""
    return densenet((6, 12, 24, 16), num_classes, name=kwargs.pop("name", "densenet121"),
                    **kwargs)


__all__ = ["dense_block", "dense_connection", "densenet", "densenet121"]
