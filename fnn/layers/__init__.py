"""Layers: each a `Layer(init, apply)` pair of pure functions; combinators build models from them."""
from fnn.layers.activations import (
    ELU, Activation, Arctan, BinaryStep, Identity, LeakyReLU, LogSoftmax, PReLU, ReLU, Sigmoid,
    Softmax, Softplus, Tanh)
from fnn.layers.combinators import Add, Concatenate, Lambda, branch, parallel, residual, serial
from fnn.layers.dense import Dense, Flatten, Maxout
from fnn.layers.dropout import DropConnect, Dropout

__all__ = [
    "Activation", "Add", "Arctan", "BinaryStep", "Concatenate", "Dense", "DropConnect", "Dropout",
    "ELU", "Flatten", "Identity", "Lambda", "LeakyReLU", "LogSoftmax", "Maxout", "PReLU", "ReLU",
    "Sigmoid", "Softmax", "Softplus", "Tanh", "branch", "parallel", "residual", "serial",
]
