"""Segmentation networks: a small fully convolutional network (Long et al. 2015) and a
DeconvNet-style encoder–decoder (Noh et al. 2015). Both map (batch, H, W, C) images to
(batch, H, W, num_classes) per-pixel logits; H and W must be multiples of 2^len(widths)."""
from __future__ import annotations

from typing import Sequence

from fnn.checks import check_int
from fnn.core import Layer
from fnn.layers import Conv2D, Conv2DTranspose, MaxPool2D, serial
from fnn.models.conv_blocks import conv_bn


def _encoder(widths: Sequence[int], convs_per_stage: int) -> list:
    stages = []
    for i, width in enumerate(widths):
        stages.append((f"down{i + 1}", serial(*[conv_bn(width, 3) for _ in range(convs_per_stage)],
                                              MaxPool2D(2), name=f"down{i + 1}")))
    return stages


def fcn(num_classes: int, *, widths: Sequence[int] = (16, 32), convs_per_stage: int = 1,
        name: str = "fcn") -> Layer:
    """A small FCN-32s-style network: stages of 3×3 convolutions (BN, ReLU) each ended by a
    2×2 max pooling (``widths`` filters; total stride ``s = 2^len(widths)``), a 1×1 convolution
    to ``num_classes`` scores, and one transposed convolution (kernel 2s, stride s, "same"
    padding: output ``M·s``) back to the input size. No dense layer: any input size that is a
    multiple of ``s`` works. (batch, H, W, C) -> (batch, H, W, num_classes) logits.
    """
    check_int(name, "num_classes", num_classes)
    check_int(name, "convs_per_stage", convs_per_stage)
    stride = 2 ** len(widths)
    return serial(*_encoder(widths, convs_per_stage),
                  ("score", Conv2D(num_classes, 1)),
                  ("upsample", Conv2DTranspose(num_classes, 2 * stride, strides=stride,
                                               padding="SAME")),
                  name=name)


def deconvnet(num_classes: int, *, widths: Sequence[int] = (16, 32), convs_per_stage: int = 1,
              name: str = "deconvnet") -> Layer:
    """A DeconvNet-style encoder–decoder: the encoder of `fcn`, then a mirrored decoder whose
    stages each double the size with a 2×2 stride-2 transposed convolution (in place of
    DeconvNet's switch-based unpooling) followed by 3×3 convolutions with BN and ReLU, and a
    1×1 convolution to the class scores. (batch, H, W, C) -> (batch, H, W, num_classes).
    """
    check_int(name, "num_classes", num_classes)
    check_int(name, "convs_per_stage", convs_per_stage)
    decoder = []
    for i, width in enumerate(reversed(widths)):
        decoder.append((f"up{i + 1}", serial(
            Conv2DTranspose(width, 2, strides=2),
            *[conv_bn(width, 3) for _ in range(convs_per_stage)], name=f"up{i + 1}")))
    return serial(*_encoder(widths, convs_per_stage), *decoder,
                  ("score", Conv2D(num_classes, 1)), name=name)


__all__ = ["deconvnet", "fcn"]
