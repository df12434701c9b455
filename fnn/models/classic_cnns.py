"""The early convolutional networks: LeNet-5 (LeCun et al. 1998), AlexNet (Krizhevsky et al.
2012, in torchvision's single-tower form), and the course's small Keras-style CNN."""
from __future__ import annotations

from fnn.checks import check_choice, check_in_range, check_int
from fnn.core import Layer
from fnn.layers import (
    Activation, AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool, MaxPool2D,
    ReLU, serial)


def lenet5(num_classes: int = 10, *, activation="tanh", pool: str = "avg", padding: int = 0,
           name: str = "lenet5") -> Layer:
    """LeNet-5 with full C3 connections (the common variant), for 32×32×1 inputs:

        C1 Conv(6, 5×5) → S2 pool 2 → C3 Conv(16, 5×5) → S4 pool 2 → C5 Conv(120, 5×5)
        → Flatten → F6 Dense(84) → Dense(num_classes) (logits)

    with ``activation`` after every convolution and F6. Shapes 32×32×1 → 28×28×6 → 14×14×6 →
    10×10×16 → 5×5×16 → 1×1×120 → 84 → 10. Parameters 156 + 2,416 + 48,120 + 10,164 + 850 =
    61,706 for 10 classes. For 28×28 MNIST digits give ``padding=2`` (C1 pads by 2: the
    same shapes from C1 on, the same count). ``pool``: ``"avg"`` (the paper's subsampling,
    without its trainable coefficients) or ``"max"``.
    """
    check_int(name, "num_classes", num_classes)
    check_int(name, "padding", padding, minimum=0)
    check_choice(name, "pool", pool, ("avg", "max"))
    Pool = AvgPool2D if pool == "avg" else MaxPool2D
    return serial(
        ("c1", Conv2D(6, 5, padding=padding)), ("c1_act", Activation(activation)),
        ("s2", Pool(2)),
        ("c3", Conv2D(16, 5)), ("c3_act", Activation(activation)),
        ("s4", Pool(2)),
        ("c5", Conv2D(120, 5)), ("c5_act", Activation(activation)),
        ("flatten", Flatten()),
        ("f6", Dense(84)), ("f6_act", Activation(activation)),
        ("output", Dense(num_classes)),
        name=name)


def keras_cnn(num_classes: int = 10, *, name: str = "keras_cnn") -> Layer:
    """The course's Keras-style example network (lecture 7):

        Conv(64, 3×3, relu) → MaxPool 2 → BatchNorm → Conv(128, 3×3, relu) → GlobalAvgPool
        → BatchNorm → Dense(512, relu) → Dense(num_classes) (logits; softmax in the loss)

    Valid padding and Keras' BatchNorm defaults (decay 0.99, ε 1e-3). On 28×28×1: 26×26×64 →
    13×13×64 → 11×11×128 → 128 → 512 → 10, with 640 + 128 + 73,856 + 256 + 66,048 + 5,130 =
    146,058 parameters (and 384 running statistics in the state).
    """
    check_int(name, "num_classes", num_classes)
    return serial(
        Conv2D(64, 3, w_init="he_uniform"), ReLU(), MaxPool2D(2), BatchNorm(epsilon=1e-3),
        Conv2D(128, 3, w_init="he_uniform"), ReLU(), GlobalAvgPool(), BatchNorm(epsilon=1e-3),
        Dense(512, w_init="he_uniform"), ReLU(), Dense(num_classes),
        name=name)



def alexnet(num_classes: int = 1000, *, drop_rate: float = 0.5, name: str = "alexnet") -> Layer:
    """AlexNet as torchvision builds it (one tower, 64-192-384-256-256 filters, after
    Krizhevsky's "One weird trick" paper; no local response normalization):

        Conv(64, 11×11, stride 4, pad 2) → ReLU → MaxPool 3/2 → Conv(192, 5×5, pad 2) → ReLU →
        MaxPool 3/2 → Conv(384, 3×3, pad 1) → ReLU → Conv(256, 3×3) → ReLU → Conv(256, 3×3) →
        ReLU → MaxPool 3/2 → Flatten → Dropout → Dense(4096) → ReLU → Dropout → Dense(4096) →
        ReLU → Dense(num_classes)

    224×224×3 → 55 → 27 → 27 → 13 → 13 → 13 → 13 → 6×6×256 = 9,216 features; 61,100,840
    parameters for 1000 classes.
    """
    check_int(name, "num_classes", num_classes)
    check_in_range(name, "drop_rate", drop_rate, 0, 1, closed="left")
    features = serial(
        Conv2D(64, 11, strides=4, padding=2), ReLU(), MaxPool2D(3, 2),
        Conv2D(192, 5, padding=2), ReLU(), MaxPool2D(3, 2),
        Conv2D(384, 3, padding=1), ReLU(), Conv2D(256, 3, padding=1), ReLU(),
        Conv2D(256, 3, padding=1), ReLU(), MaxPool2D(3, 2), name="features")
    classifier = serial(Flatten(), Dropout(drop_rate), Dense(4096), ReLU(), Dropout(drop_rate),
                        Dense(4096), ReLU(), Dense(num_classes), name="classifier")
    return serial(("features", features), ("classifier", classifier), name=name)



__all__ = ["alexnet", "keras_cnn", "lenet5"]
