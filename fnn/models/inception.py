"""Inception modules and GoogLeNet (Szegedy et al. 2014)."""
from __future__ import annotations

from fnn.checks import check_int, check_in_range
from fnn.core import Layer
from fnn.layers import Concatenate, Dense, Dropout, GlobalAvgPool, MaxPool2D, branch, serial
from fnn.models.conv_blocks import block, conv_bn

# (1×1, 3×3 reduce, 3×3, 5×5 reduce, 5×5, pool projection) filters of GoogLeNet's modules
MODULES = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


def inception_module(c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, pool_proj: int,
                     *, large_kernel: int = 5) -> Layer:
    """Four branches on the same input, concatenated along the channels: a 1×1 convolution
    (c1); 1×1 (c3_reduce) → 3×3 (c3); 1×1 (c5_reduce) → ``large_kernel``² (c5); 3×3 max pooling
    (stride 1) → 1×1 (pool_proj). Every convolution has BN and ReLU; "same" padding keeps the
    spatial size. Output channels c1 + c3 + c5 + pool_proj."""
    return block("inception", serial(
        branch(("b1", conv_bn(c1, 1)),
               ("b3", serial(conv_bn(c3_reduce, 1), conv_bn(c3, 3), name="b3")),
               ("b5", serial(conv_bn(c5_reduce, 1), conv_bn(c5, large_kernel), name="b5")),
               ("pool", serial(MaxPool2D(3, 1, "SAME"), conv_bn(pool_proj, 1), name="pool")),
               name="inception_branches"),
        Concatenate()))


def googlenet(num_classes: int = 1000, *, large_kernel: int = 5, drop_rate: float = 0.2,
              name: str = "googlenet") -> Layer:
    """GoogLeNet (Inception v1) without its auxiliary classifiers, with BatchNorm after every
    convolution (ε 1e-3) as torchvision builds it: 7×7/2 convolution (64) → 3×3/2 max pooling
    → 1×1 (64) → 3×3 (192) → 3×3/2 max pooling → modules 3a, 3b → pooling → 4a–4e → 2×2/2
    pooling → 5a, 5b → global average pooling → Dropout → Dense(num_classes).

    ``large_kernel``: the paper's 5×5 branch. torchvision's implementation uses 3×3 there (a
    known quirk kept for its pretrained weights); with ``large_kernel=3`` the count is
    torchvision's 6,624,904 for 1000 classes (224×224×3 → 7×7×1024 → 1000).
    """
    check_int(name, "num_classes", num_classes)
    check_int(name, "large_kernel", large_kernel)
    check_in_range(name, "drop_rate", drop_rate, 0, 1, closed="left")
    bn = dict(epsilon=1e-3)
    layers = [("stem", serial(conv_bn(64, 7, strides=2, **bn), MaxPool2D(3, 2, "SAME"),
                              conv_bn(64, 1, **bn), conv_bn(192, 3, **bn),
                              MaxPool2D(3, 2, "SAME"), name="stem"))]
    for key in MODULES:
        layers.append((f"inception{key}", inception_module(*MODULES[key],
                                                           large_kernel=large_kernel)))
        if key == "3b":
            layers.append(("pool3", MaxPool2D(3, 2, "SAME")))
        elif key == "4e":
            layers.append(("pool4", MaxPool2D(2, 2, "SAME")))
    layers += [("pool", GlobalAvgPool()), ("dropout", Dropout(drop_rate)),
               ("classifier", Dense(num_classes))]
    return serial(*layers, name=name)


__all__ = ["MODULES", "googlenet", "inception_module"]
