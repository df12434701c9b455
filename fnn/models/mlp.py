"""The multi-layer perceptron of the course: ``a^l = f(W^l a^{l−1} + b^l)``."""
from __future__ import annotations

from typing import Sequence

from fnn.layers import Activation, Dense, Flatten, serial


def mlp(sizes: Sequence[int], *, activation="relu", output_activation=None,
        w_init="glorot_uniform", flatten: bool = True, name: str = "mlp"):
    """Dense layers of ``sizes`` (hidden..., output) with ``activation`` between them.

    The output layer has ``output_activation`` (None: logits, to pair with a from-logits loss).
    ``flatten`` puts a `Flatten` first so images (batch, 28, 28) go straight in.
    Example: ``mlp([300, 100, 10])`` is the course's 784-300-100-10 network.
    """
    if not sizes:
        raise ValueError("mlp: `sizes` must list at least the output size; got [].")
    layers = [Flatten()] if flatten else []
    for i, units in enumerate(sizes):
        layers.append(Dense(units, w_init=w_init))
        fn = activation if i < len(sizes) - 1 else output_activation
        if fn is not None:
            layers.append(Activation(fn))
    return serial(*layers, name=name)
