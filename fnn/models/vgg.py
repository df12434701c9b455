"""VGG (Simonyan & Zisserman 2014), configurations A (VGG-11) and D (VGG-16), as torchvision."""
from __future__ import annotations

from fnn.checks import check_choice, check_int, check_in_range
from fnn.core import Layer
from fnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, serial

# filters of each 3×3 convolution, "M" a 2×2 max pooling
CONFIGS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"),
}


def vgg(depth: int = 16, num_classes: int = 1000, *, hidden: int = 4096, drop_rate: float = 0.5,
        name: str | None = None) -> Layer:
    """VGG-``depth`` (11, 13, 16 or 19 weight layers): 3×3 convolutions (padding 1, ReLU) in five
    stages, each ended by a 2×2 max pooling, then Flatten → Dense(hidden) → ReLU → Dropout →
    Dense(hidden) → ReLU → Dropout → Dense(num_classes) (logits).

    On 224×224×3 the last stage gives 7×7×512 = 25,088 features (torchvision's adaptive pooling
    to 7×7 is then the identity); VGG-11 has 132,863,336 parameters and VGG-16 138,357,544. Smaller
    inputs (a multiple of 32) give a smaller first dense layer.
    """
    check_choice("vgg", "depth", depth, tuple(CONFIGS))
    check_int("vgg", "num_classes", num_classes)
    check_in_range("vgg", "drop_rate", drop_rate, 0, 1, closed="left")
    layers = []
    for item in CONFIGS[depth]:
        if item == "M":
            layers.append(MaxPool2D(2))
        else:
            layers += [Conv2D(item, 3, padding=1, w_init="he_normal"), ReLU()]
    features = serial(*layers, name="features")
    classifier = serial(Flatten(), Dense(hidden), ReLU(), Dropout(drop_rate), Dense(hidden),
                        ReLU(), Dropout(drop_rate), Dense(num_classes), name="classifier")
    return serial(("features", features), ("classifier", classifier),
                  name=name or f"vgg{depth}")


def vgg11(num_classes: int = 1000, **kwargs) -> Layer:
    """VGG-11 (configuration A): `vgg` with depth 11."""
    return vgg(11, num_classes, **kwargs)


def vgg16(num_classes: int = 1000, **kwargs) -> Layer:
    """VGG-16 (configuration D): `vgg` with depth 16."""
    return vgg(16, num_classes, **kwargs)


__all__ = ["vgg", "vgg11", "vgg16"]
