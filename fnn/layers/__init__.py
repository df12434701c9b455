"""Layers: each a `Layer(init, apply)` pair of pure functions; combinators build models from them."""
from fnn.layers.activations import (
    ELU, Activation, Arctan, BinaryStep, Identity, LeakyReLU, LogSoftmax, PReLU, ReLU, Sigmoid,
    Softmax, Softplus, Tanh)
from fnn.layers.combinators import (
    Add, Concatenate, Lambda, branch, parallel, remat, residual, serial)
from fnn.layers.dense import Dense, Flatten, Maxout
from fnn.layers.dropout import DropConnect, Dropout
from fnn.layers.embedding import Embedding, OneHot
from fnn.layers.noise import GaussianNoise, GaussianSample, MaskingNoise, reparameterize
from fnn.layers.conv import (
    Conv1D, Conv2D, Conv2DTranspose, Conv3D, DepthwiseConv2D, SeparableConv2D)
from fnn.layers.pooling import (
    AvgPool1D, AvgPool2D, GlobalAvgPool, GlobalMaxPool, MaxPool1D, MaxPool2D, MinPool1D, MinPool2D)
from fnn.layers.normalization import BatchNorm, LayerNorm
from fnn.layers.recurrent import (
    RNN, Bidirectional, BidirectionalState, Cell, ElmanCell, GRUCell, JordanCell, JordanState,
    LSTMCell, LSTMState, RNNState, StackedRNN, TimeDistributed)

__all__ = [
    "Activation", "Add", "Arctan", "BinaryStep", "Concatenate", "Dense", "DropConnect", "Dropout",
    "ELU", "Flatten", "Identity", "Lambda", "LeakyReLU", "LogSoftmax", "Maxout", "PReLU", "ReLU",
    "Sigmoid", "Softmax", "Softplus", "Tanh", "branch", "parallel", "remat", "residual", "serial",
]
__all__ += ["GaussianNoise", "GaussianSample", "MaskingNoise", "reparameterize"]
__all__ += ["Conv1D", "Conv2D", "Conv2DTranspose", "Conv3D", "DepthwiseConv2D", "SeparableConv2D",
            "AvgPool1D", "AvgPool2D", "GlobalAvgPool", "GlobalMaxPool", "MaxPool1D", "MaxPool2D",
            "MinPool1D", "MinPool2D", "BatchNorm", "LayerNorm"]
__all__ += ["Bidirectional", "BidirectionalState", "Cell", "ElmanCell", "Embedding", "GRUCell",
            "JordanCell", "JordanState", "LSTMCell", "LSTMState", "OneHot", "RNN", "RNNState",
            "StackedRNN", "TimeDistributed"]
