"""Networks of depthwise separable convolutions (a 3×3 depthwise convolution, one filter per
channel, then a 1×1 pointwise one): MobileNet v1 (Howard et al. 2017) and v2 (Sandler et al.
2018) with BatchNorm and ReLU6, and Xception (Chollet 2017) with residual connections."""
from __future__ import annotations

from fnn.checks import check_in_range, check_int
from fnn.core import Layer
from fnn.layers import (
    BatchNorm, Dense, DepthwiseConv2D, Dropout, GlobalAvgPool, MaxPool2D, ReLU, SeparableConv2D,
    residual, serial)
from fnn.models.conv_blocks import ReLU6, block, conv_bn

# (pointwise filters, stride of the depthwise convolution) of MobileNet v1's 13 blocks
V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
             (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
# (expansion t, output channels c, repeats n, first stride s) of MobileNet v2's bottlenecks
V2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1))


def _depthwise_bn(strides: int, decay: float, epsilon: float) -> Layer:
    return block("depthwise_bn", serial(
        DepthwiseConv2D(3, strides=strides, padding="SAME", use_bias=False, w_init="he_normal"),
        BatchNorm(decay=decay, epsilon=epsilon), ReLU6(), name="depthwise_bn"))


def _width(channels: int, alpha: float, divisor: int = 8) -> int:
    """``alpha · channels`` rounded to a multiple of ``divisor`` (never down by more than 10 %)."""
    scaled = channels * alpha
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def mobilenet_v1(num_classes: int = 1000, *, alpha: float = 1.0, drop_rate: float = 1e-3,
                 name: str = "mobilenet_v1") -> Layer:
    """MobileNet v1 as Keras Applications builds it: a 3×3 convolution (32·α filters, stride
    2) with BN and ReLU6, 13 depthwise separable blocks (depthwise 3×3 → BN → ReLU6 → 1×1
    convolution → BN → ReLU6; filters and strides in `V1_BLOCKS`, × α), global average pooling,
    Dropout and a 1×1 convolution with bias to the classes (here `Dense`, the same map).

    224×224×3 → 7×7×1024 → 1000 classes: 4,231,976 parameters (Keras' "trainable params";
    its total, 4,253,864, adds the 21,888 BatchNorm running statistics, here in the state).
    BatchNorm as Keras: decay 0.99, ε 1e-3.
    """
    check_int(name, "num_classes", num_classes)
    check_in_range(name, "alpha", alpha, 0, closed="neither")
    bn = dict(decay=0.99, epsilon=1e-3)
    layers = [("stem", conv_bn(int(32 * alpha), 3, strides=2, activation="relu6", **bn))]
    for i, (filters, strides) in enumerate(V1_BLOCKS):
        layers.append((f"block{i + 1}", serial(
            _depthwise_bn(strides, **bn),
            conv_bn(int(filters * alpha), 1, activation="relu6", **bn), name=f"block{i + 1}")))
    layers += [("pool", GlobalAvgPool()), ("dropout", Dropout(drop_rate)),
               ("classifier", Dense(num_classes))]
    return serial(*layers, name=name)


def inverted_residual(channels_in: int, channels_out: int, *, expansion: int, strides: int,
                      decay: float = 0.9, epsilon: float = 1e-5) -> Layer:
    """MobileNet v2's block: 1×1 expansion to t·C_in (if t > 1) → BN → ReLU6 → 3×3 depthwise
    (stride s) → BN → ReLU6 → 1×1 linear projection to C_out → BN; a `residual` (identity
    shortcut) when s = 1 and C_in = C_out."""
    hidden = channels_in * expansion
    layers = []
    if expansion != 1:
        layers.append(conv_bn(hidden, 1, activation="relu6", decay=decay, epsilon=epsilon))
    layers += [_depthwise_bn(strides, decay, epsilon),
               conv_bn(channels_out, 1, activation=None, decay=decay, epsilon=epsilon)]
    if strides == 1 and channels_in == channels_out:
        return block("inverted_residual", residual(*layers, name="inverted_residual"))
    return block("inverted_residual", serial(*layers, name="inverted_residual"))


def mobilenet_v2(num_classes: int = 1000, *, alpha: float = 1.0, drop_rate: float = 0.2,
                 name: str = "mobilenet_v2") -> Layer:
    """MobileNet v2 as torchvision builds it: a 3×3 convolution (32 filters, stride 2) with BN
    and ReLU6, the inverted residual blocks of `V2_BLOCKS` (channels × α, rounded to multiples
    of 8), a 1×1 convolution to 1280 channels with BN and ReLU6, global average pooling,
    Dropout and Dense(num_classes).

    224×224×3 → 7×7×1280 → 1000 classes: 3,504,872 parameters (torchvision; Keras
    Applications' total 3,538,984 adds 34,112 BatchNorm running statistics).
    """
    check_int(name, "num_classes", num_classes)
    check_in_range(name, "alpha", alpha, 0, closed="neither")
    channels = _width(32, alpha)
    layers = [("stem", conv_bn(channels, 3, strides=2, activation="relu6"))]
    index = 0
    for t, c, n, s in V2_BLOCKS:
        out = _width(c, alpha)
        for i in range(n):
            index += 1
            layers.append((f"block{index}", inverted_residual(
                channels, out, expansion=t, strides=s if i == 0 else 1)))
            channels = out
    last = _width(1280, max(alpha, 1.0))
    layers += [("head", conv_bn(last, 1, activation="relu6")), ("pool", GlobalAvgPool()),
               ("dropout", Dropout(drop_rate)), ("classifier", Dense(num_classes))]
    return serial(*layers, name=name)



# ----------------------------------------------------------------------------- Xception

_BN = dict(decay=0.99, epsilon=1e-3)  # Keras' BatchNorm defaults


def _sep_bn(features: int, relu_first: bool) -> list:
    layers = [ReLU()] if relu_first else []
    return layers + [SeparableConv2D(features, 3, padding="SAME", use_bias=False,
                                     w_init="glorot_uniform"), BatchNorm(**_BN)]


def xception_block(features_1: int, features_2: int, *, relu_first: bool = True) -> Layer:
    """Entry/exit flow block: [ReLU] → sep 3×3 (F1) → BN → ReLU → sep 3×3 (F2) → BN → 3×3/2 max
    pooling, plus a 1×1/2 convolution projection with BN as shortcut."""
    return block("xception_block", residual(
        *_sep_bn(features_1, relu_first), *_sep_bn(features_2, True), MaxPool2D(3, 2, "SAME"),
        shortcut=conv_bn(features_2, 1, strides=2, activation=None, **_BN),
        name="xception_block"))


def xception(num_classes: int = 1000, *, middle_blocks: int = 8, name: str = "xception") -> Layer:
    """Xception for 299×299×3 inputs: entry flow (3×3/2 conv 32 and 3×3 conv 64, "valid", each
    with BN and ReLU; blocks of 128, 256, 728 filters), ``middle_blocks`` middle-flow blocks
    (three ReLU → separable 3×3 (728) → BN, identity shortcut), exit flow (a 728/1024 block,
    separable 1536 and 2048 with BN and ReLU), global average pooling and Dense(num_classes).

    For 1000 classes: 22,855,952 parameters (Keras' "trainable params"; its total 22,910,480
    adds 54,528 BatchNorm running statistics, here in the state). 299×299 → 10×10×2048.
    """
    check_int(name, "num_classes", num_classes)
    check_int(name, "middle_blocks", middle_blocks, minimum=0)
    entry = serial(conv_bn(32, 3, strides=2, padding="VALID", **_BN),
                   conv_bn(64, 3, padding="VALID", **_BN),
                   xception_block(128, 128, relu_first=False), xception_block(256, 256),
                   xception_block(728, 728), name="entry")
    middle = serial(*[block("middle_block", residual(
        *_sep_bn(728, True), *_sep_bn(728, True), *_sep_bn(728, True), name="middle_block"))
        for _ in range(middle_blocks)], name="middle")
    exit_flow = serial(xception_block(728, 1024),
                       SeparableConv2D(1536, 3, padding="SAME", use_bias=False),
                       BatchNorm(**_BN), ReLU(),
                       SeparableConv2D(2048, 3, padding="SAME", use_bias=False),
                       BatchNorm(**_BN), ReLU(), name="exit")
    return serial(("entry", entry), ("middle", middle), ("exit", exit_flow),
                  ("pool", GlobalAvgPool()), ("classifier", Dense(num_classes)), name=name)



__all__ = ["inverted_residual", "mobilenet_v1", "mobilenet_v2", "xception", "xception_block"]
