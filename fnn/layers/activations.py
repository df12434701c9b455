"""Activation layers: each course activation as a `Layer` (the functions live in `fnn.activations`)."""
from __future__ import annotations

from functools import partial

import jax.numpy as jnp

from fnn import activations as act
from fnn.core import Layer, check_rank


def Activation(fn, name: str | None = None, kind: str | None = None) -> Layer:
    """Wrap an element-wise (shape-preserving) function ``fn(x)`` as a layer.

    ``kind`` names its parameters in a combinator (``relu_0``); by default the function's
    name in snake case ("relu"), or ``"activation"``.
    """
    fn = act.get(fn)
    if name is None:  # the function's name ("relu" -> child name "relu_0"), if it has a usable one
        name = getattr(fn, "__name__", "")
        name = name if name.isidentifier() else "Activation"

    def init(key, input_shape):
        return input_shape, {}, {}

    def apply(params, state, x, *, key=None, train=False):
        return fn(x), state

    return Layer(init, apply, name, kind)


def Identity() -> Layer:
    """f(z) = z."""
    return Activation(act.identity, "Identity()", "identity")


def BinaryStep(bipolar: bool = False) -> Layer:
    """f(z) = 1 if z > 0 else 0 (or −1 when bipolar)."""
    return Activation(partial(act.binary_step, bipolar=bipolar), f"BinaryStep(bipolar={bipolar})", "binary_step")


def Sigmoid(beta: float = 1.0) -> Layer:
    """f(z) = 1 / (1 + e^{−βz})."""
    return Activation(partial(act.sigmoid, beta=beta), f"Sigmoid(beta={beta})", "sigmoid")


def Tanh(beta: float = 1.0) -> Layer:
    """f(z) = tanh(βz)."""
    return Activation(partial(act.tanh, beta=beta), f"Tanh(beta={beta})", "tanh")


def Arctan() -> Layer:
    """f(z) = arctan(z)."""
    return Activation(act.arctan, "Arctan()", "arctan")


def ReLU() -> Layer:
    """f(z) = max(0, z)."""
    return Activation(act.relu, "ReLU()", "relu")


def LeakyReLU(alpha: float = 0.01) -> Layer:
    """f(z) = max(αz, z)."""
    return Activation(partial(act.leaky_relu, alpha=alpha), f"LeakyReLU({alpha})", "leaky_relu")


def ELU(alpha: float = 1.0) -> Layer:
    """f(z) = z if z > 0 else α(e^z − 1)."""
    return Activation(partial(act.elu, alpha=alpha), f"ELU({alpha})", "elu")


def Softplus() -> Layer:
    """f(z) = ln(1 + e^z)."""
    return Activation(act.softplus, "Softplus()", "softplus")


def Softmax(axis: int = -1) -> Layer:
    """S_j = e^{a_j} / Σ_k e^{a_k} along ``axis``."""
    return Activation(partial(act.softmax, axis=axis), f"Softmax(axis={axis})", "softmax")


def LogSoftmax(axis: int = -1) -> Layer:
    """log S_j along ``axis`` (pair it with a negative log-likelihood)."""
    return Activation(partial(act.log_softmax, axis=axis), f"LogSoftmax(axis={axis})", "log_softmax")


def PReLU(alpha_init: float = 0.25, dtype=jnp.float32) -> Layer:
    """Parametric ReLU with one learned slope per feature (last axis): params ``alpha`` (features,)."""
    name = "PReLU()"

    def init(key, input_shape):
        check_rank(name, input_shape, 2, "(batch, ..., features)")
        return input_shape, {"alpha": jnp.full((input_shape[-1],), alpha_init, dtype)}, {}

    def apply(params, state, x, *, key=None, train=False):
        return act.prelu(x, params["alpha"]), state

    return Layer(init, apply, name, "prelu")
