"""The multi-layer perceptron of the course: ``a^l = f(W^l a^{l−1} + b^l)``."""
from __future__ import annotations

from typing import Sequence

from fnn.layers import Activation, Dense, Dropout, Flatten, serial


def mlp(sizes: Sequence[int], *, activation="relu", output_activation=None,
        w_init="glorot_uniform", dropout: float = 0.0, input_dropout: float = 0.0,
        flatten: bool = True, name: str = "mlp"):
    """Dense layers of ``sizes`` (hidden..., output) with ``activation`` between them.

    The output layer has ``output_activation`` (None: logits, to pair with a from-logits loss).
    ``dropout`` drops hidden units after each hidden activation, ``input_dropout`` drops inputs
    (both are drop probabilities; 0 adds no layer). ``flatten`` puts a `Flatten` first so images
    (batch, 28, 28) go straight in. ``mlp([300, 100, 10])`` is the course's 784-300-100-10 network.
    """
    if not sizes:
        raise ValueError("mlp: `sizes` must list at least the output size; got [].")
    layers = [Flatten()] if flatten else []
    if input_dropout:
        layers.append(Dropout(input_dropout))
    for i, units in enumerate(sizes):
        layers.append(Dense(units, w_init=w_init))
        hidden = i < len(sizes) - 1
        fn = activation if hidden else output_activation
        if fn is not None:
            layers.append(Activation(fn))
        if hidden and dropout:
            layers.append(Dropout(dropout))
    return serial(*layers, name=name)
