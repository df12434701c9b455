"""ResNet (He et al. 2015) with basic and bottleneck blocks, as torchvision builds them.

A block adds its input to the output of a few convolutions, ``y = ReLU(F(x) + S(x))``: the
shortcut ``S`` is the identity when the shapes agree, else a projection (1×1 convolution with
the block's stride, then BatchNorm). Blocks are `fnn.layers.residual` with children ``block``
and ``shortcut``.
"""
from __future__ import annotations

from typing import Sequence

from fnn.checks import check_choice, check_int
from fnn.core import Layer
from fnn.layers import Dense, GlobalAvgPool, MaxPool2D, ReLU, residual, serial
from fnn.models.conv_blocks import block, conv_bn

DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
          50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
          152: ("bottleneck", (3, 8, 36, 3))}


def basic_block(features: int, *, strides: int = 1, project: bool = False) -> Layer:
    """Two 3×3 convolutions: ``ReLU(BN(conv(ReLU(BN(conv_s(x))))) + S(x))``, F filters each;
    ``project``: ``S`` = 1×1 convolution (stride s) + BN, else the identity."""
    shortcut = conv_bn(features, 1, strides=strides, activation=None, name="projection") \
        if project else None
    return block("basic_block", serial(
        residual(conv_bn(features, 3, strides=strides), conv_bn(features, 3, activation=None),
                 shortcut=shortcut),
        ReLU(), name="basic_block"))


def bottleneck_block(features: int, *, strides: int = 1, project: bool = False,
                     expansion: int = 4) -> Layer:
    """1×1 (F) → 3×3 (F, stride s: torchvision's "v1.5") → 1×1 (expansion·F) convolutions, each
    with BN, ReLU after the first two and after the sum with the shortcut."""
    out = expansion * features
    shortcut = conv_bn(out, 1, strides=strides, activation=None, name="projection") \
        if project else None
    return block("bottleneck_block", serial(
        residual(conv_bn(features, 1), conv_bn(features, 3, strides=strides),
                 conv_bn(out, 1, activation=None), shortcut=shortcut),
        ReLU(), name="bottleneck_block"))


def resnet(depth: int = 50, num_classes: int = 1000, *, widths: Sequence[int] = (64, 128, 256, 512),
           stem: str = "imagenet", name: str | None = None) -> Layer:
    """ResNet-``depth`` (18, 34: basic blocks; 50, 101, 152: bottleneck blocks).

    Stem (``"imagenet"``): 7×7 convolution, 64 filters, stride 2, BN, ReLU, 3×3 max pooling
    stride 2; (``"small"``: one 3×3 convolution, stride 1, no pooling, for 28–32 pixel images).
    Then four stages of blocks with ``widths`` filters (×4 after a bottleneck), the first block
    of stages 2–4 with stride 2; the first block of a stage has a projection shortcut when its
    shape changes. Global average pooling and Dense(num_classes) (logits).

    Parameters for 1000 classes (torchvision): ResNet-18 11,689,512; ResNet-34 21,797,672;
    ResNet-50 25,557,032 (BatchNorm running statistics are state, not parameters).
    """
    check_choice("resnet", "depth", depth, tuple(DEPTHS))
    check_int("resnet", "num_classes", num_classes)
    check_choice("resnet", "stem", stem, ("imagenet", "small"))
    kind, counts = DEPTHS[depth]
    expansion = 1 if kind == "basic" else 4
    if stem == "imagenet":
        layers = [("stem", serial(conv_bn(widths[0], 7, strides=2, padding=3),
                                  MaxPool2D(3, 2, padding=1), name="stem"))]
    else:
        layers = [("stem", conv_bn(widths[0], 3))]
    channels = widths[0]
    for stage, (width, count) in enumerate(zip(widths, counts)):
        blocks = []
        for i in range(count):
            strides = 2 if (i == 0 and stage > 0) else 1
            project = strides != 1 or channels != width * expansion
            block = basic_block if kind == "basic" else bottleneck_block
            blocks.append(block(width, strides=strides, project=project))
            channels = width * expansion
        layers.append((f"stage{stage + 1}", serial(*blocks, name=f"stage{stage + 1}")))
    layers += [("pool", GlobalAvgPool()), ("fc", Dense(num_classes))]
    return serial(*layers, name=name or f"resnet{depth}")


def resnet18(num_classes: int = 1000, **kwargs) -> Layer:
    """ResNet-18: `resnet` with depth 18."""
    return resnet(18, num_classes, **kwargs)


def resnet34(num_classes: int = 1000, **kwargs) -> Layer:
    """ResNet-34: `resnet` with depth 34."""
    return resnet(34, num_classes, **kwargs)


def resnet50(num_classes: int = 1000, **kwargs) -> Layer:
    """ResNet-50: `resnet` with depth 50."""
    return resnet(50, num_classes, **kwargs)


__all__ = ["basic_block", "bottleneck_block", "resnet", "resnet18", "resnet34", "resnet50"]
