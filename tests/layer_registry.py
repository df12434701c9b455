"""Every layer of fnn with example inputs: the table the conformance suite (test_layers.py) runs over.

A `Case` builds a layer and its input shape from a few sizes, so the same entry serves the fixed
examples (`DEFAULT_SIZES`) and the hypothesis sweep over random sizes. To cover a new layer
(convolutions, recurrent layers, ...), add a `Case` to `CASES` below, in its own section; a layer
with needs of its own (integer inputs, non-differentiable inputs) says so with the optional
fields. Names must be unique: they become test ids.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import activations as act
from fnn.core import Layer
from fnn.layers import (
    ELU, Activation, Add, Arctan, BinaryStep, Concatenate, Dense, Flatten, Identity, Lambda,
    LeakyReLU, LogSoftmax, Maxout, PReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh, branch,
    parallel, residual, serial)
from fnn.layers import DropConnect, Dropout
from fnn.layers import Bidirectional, GRUCell, JordanCell, LSTMCell, StackedRNN, TimeDistributed
from fnn.layers import (
    AvgPool2D, BatchNorm, Conv1D, Conv2D, Conv2DTranspose, Conv3D, GlobalAvgPool, GlobalMaxPool,
    LayerNorm, MaxPool2D, MinPool1D, SeparableConv2D)
from fnn.models import mlp


class Sizes(NamedTuple):
    """The sizes a case is built from: batch, input features, and units of inner layers."""
    batch: int = 2
    features: int = 5
    units: int = 3


DEFAULT_SIZES = Sizes()


class Case(NamedTuple):
    """One registry entry.

    build(sizes) -> (layer, input_shape); input_shape includes the batch axis and may be a tuple
    of shapes for layers that take several inputs.
    kinks: the layer is not differentiable at 0 (ReLU family, maxout), so test inputs keep
      away from 0. Layers behind a Dense still see random pre-activations; with the fixed seeds
      used here none falls within the finite-difference step of a kink.
    zero_grad: the gradient is zero almost everywhere (binary step); finite differences are
      skipped and the gradient is checked to be exactly zero instead.
    inputs: make(key, shape, dtype) -> array, for layers that need special inputs (e.g. integer
      indices); None means floats drawn by `fnn.testing.make_inputs` (away from 0 for kinks).
    batch_stats: the layer computes statistics over the batch in train mode (BatchNorm), so
      its train-mode output is not per example (`fnn.testing.check_layer(batch_stats=True)`).
    """
    name: str
    build: Callable[[Sizes], Tuple[Layer, object]]
    kinks: bool = False
    zero_grad: bool = False
    inputs: Optional[Callable] = None
    batch_stats: bool = False


def _same(layer_fn, kinks=False, zero_grad=False, name=None):
    """A shape-preserving layer on (batch, features) inputs."""
    layer = layer_fn()
    return Case(name or layer.name, lambda s: (layer_fn(), (s.batch, s.features)), kinks,
                zero_grad)


def _square(x):
    return x * x


def RunningMean(decay: float = 0.9) -> Layer:
    """A minimal stateful layer, defined here so the state tests bite before fnn has one:
    y = x − m, where m, the running mean of the features, moves towards the batch mean in train
    mode only; the batch mean leaves out the rows with ``context.mask`` 0 (padding). State:
    ``mean`` (features,) float32 and ``steps`` () int32."""
    def init(key, input_shape):
        state = {"mean": jnp.zeros(input_shape[-1:], jnp.float32),
                 "steps": jnp.zeros((), jnp.int32)}
        return input_shape, {}, state

    def apply(params, state, x, *, key=None, train=False, context=None):
        if train:
            m = jnp.ones(x.shape[:1], x.dtype) if context is None or context.mask is None \
                else context.mask.astype(x.dtype)
            w = jnp.broadcast_to(jnp.expand_dims(m, tuple(range(1, x.ndim))), x.shape)
            axes = tuple(range(x.ndim - 1))
            batch_mean = (w * x).sum(axis=axes) / w.sum(axis=axes)
            mean = decay * state["mean"] + (1 - decay) * batch_mean
            state = {"mean": mean.astype(state["mean"].dtype), "steps": state["steps"] + 1}
        mean = jnp.expand_dims(state["mean"], tuple(range(x.ndim - 1))).astype(x.dtype)
        return x - mean, state

    return Layer(init, apply, "RunningMean()")


CASES = [
    # --- dense -----------------------------------------------------------------------------
    Case("Dense", lambda s: (Dense(s.units), (s.batch, s.features))),
    Case("Dense_no_bias", lambda s: (Dense(s.units, use_bias=False), (s.batch, s.features))),
    Case("Dense_on_sequences", lambda s: (Dense(s.units), (s.batch, 4, s.features))),
    Case("Flatten", lambda s: (Flatten(), (s.batch, s.features, 3, 2))),
    Case("Maxout", lambda s: (Maxout(s.units), (s.batch, s.features)), kinks=True),
    # --- dropout (train mode draws masks from the suite's APPLY_KEY) --------------------------
    Case("Dropout", lambda s: (Dropout(0.5), (s.batch, s.features))),
    Case("Dropout_classic", lambda s: (Dropout(0.3, mode="classic"), (s.batch, s.features))),
    Case("Dropout_shared_over_time", lambda s: (Dropout(0.5, broadcast_axes=(1,)),
                                                (s.batch, 4, s.features))),
    Case("DropConnect", lambda s: (DropConnect(s.units, 0.5), (s.batch, s.features))),
    Case("DropConnect_per_example", lambda s: (DropConnect(s.units, 0.5, per_example=True),
                                               (s.batch, 4, s.features))),
    Case("serial_Dropout", lambda s: (serial(Dense(s.units), Tanh(), Dropout(0.5), Dense(2)),
                                      (s.batch, s.features))),
    # --- activation layers -------------------------------------------------------------------
    _same(Identity),
    _same(lambda: BinaryStep(), kinks=True, zero_grad=True),
    _same(lambda: BinaryStep(bipolar=True), kinks=True, zero_grad=True),
    _same(lambda: Sigmoid()),  # β ≠ 1 and α ≠ 1 are tested in test_activations.py
    _same(lambda: Tanh()),
    _same(Arctan),
    _same(ReLU, kinks=True),
    _same(lambda: LeakyReLU(0.1), kinks=True),
    _same(lambda: ELU()),
    _same(Softplus),
    _same(lambda: Softmax()),
    _same(lambda: LogSoftmax()),
    _same(lambda: PReLU(), kinks=True),
    _same(lambda: Activation("tanh"), name="Activation_by_name"),
    _same(lambda: Activation(_square), name="Activation_custom_fn"),
    Case("Softmax_axis1", lambda s: (Softmax(axis=1), (s.batch, s.features, 2))),
    Case("PReLU_on_sequences", lambda s: (PReLU(), (s.batch, 3, s.features)), kinks=True),
    # --- Lambda ------------------------------------------------------------------------------
    Case("Lambda", lambda s: (Lambda(lambda x: jnp.sin(x) * 2.0), (s.batch, s.features))),
    Case("Lambda_maxout_fn", lambda s: (Lambda(lambda x: act.maxout(x, 2), "maxout(2)"),
                                        (s.batch, 2 * s.features)), kinks=True),
    Case("Lambda_reshape", lambda s: (Lambda(lambda x: x.reshape(x.shape[0], -1, 2)),
                                      (s.batch, 2 * s.features))),
    # --- combinators -------------------------------------------------------------------------
    Case("serial", lambda s: (serial(Dense(s.units), ReLU(), Dense(2)), (s.batch, s.features)),
         kinks=True),
    Case("serial_nested", lambda s: (
        serial(("encoder", serial(Dense(s.units), Tanh())), Dense(s.units), Sigmoid(),
               ("head", serial(Dense(2), LogSoftmax()))),
        (s.batch, s.features))),
    Case("serial_empty", lambda s: (serial(), (s.batch, s.features))),
    Case("parallel", lambda s: (parallel(Dense(s.units), Tanh()),
                                ((s.batch, s.features), (s.batch, 2)))),
    Case("branch", lambda s: (branch(Dense(s.units), Sigmoid(), Identity()),
                              (s.batch, s.features))),
    Case("branch_Concatenate", lambda s: (
        serial(branch(Dense(s.units), Tanh()), Concatenate()), (s.batch, s.features))),
    Case("branch_Add", lambda s: (
        serial(branch(Dense(s.units), Dense(s.units)), Add()), (s.batch, s.features))),
    Case("Concatenate", lambda s: (Concatenate(), ((s.batch, s.features), (s.batch, 2)))),
    Case("Add", lambda s: (Add(), ((s.batch, s.features),) * 3)),
    Case("residual", lambda s: (residual(Dense(s.units), ReLU(), Dense(s.features)),
                                (s.batch, s.features)), kinks=True),
    Case("residual_projection", lambda s: (
        residual(Dense(s.units), Tanh(), shortcut=Dense(s.units)), (s.batch, s.features))),
    Case("serial_Maxout_PReLU", lambda s: (serial(Maxout(s.units), PReLU(), Dense(2)),
                                           (s.batch, s.features)), kinks=True),
    Case("serial_BinaryStep", lambda s: (serial(Dense(s.units), BinaryStep()),
                                         (s.batch, s.features)), kinks=True, zero_grad=True),
    # --- state (a test layer until fnn has stateful layers) --------------------------------
    Case("RunningMean", lambda s: (RunningMean(), (s.batch, s.features)), batch_stats=True),
    Case("serial_stateful", lambda s: (serial(Dense(s.units), RunningMean(), Tanh()),
                                       (s.batch, s.features)), batch_stats=True),
    # --- convolution, pooling, normalization (images NHWC; spatial sizes from `features`);
    # composed where possible, so that every layer is covered by few (costly) cases ----------
    Case("serial_Conv1D_MinPool1D", lambda s: (
        serial(Conv1D(s.units, 2, dilation=2, padding="SAME"), MinPool1D(2, 1)),
        (s.batch, s.features + 1, 3))),
    Case("serial_Conv3D_GlobalMaxPool", lambda s: (
        serial(Conv3D(s.units, 2, padding=(1, 0, 1)), GlobalMaxPool(keepdims=True)),
        (s.batch, 3, 2, s.features + 1, 2))),
    Case("serial_Conv2DTranspose_SeparableConv2D_LayerNorm", lambda s: (
        serial(Conv2DTranspose(s.units, 3, strides=2, padding="SAME", output_padding=1),
               SeparableConv2D(s.units, 2, depth_multiplier=2), LayerNorm()),
        (s.batch, s.features, 3, 2))),
    Case("serial_cnn", lambda s: (
        serial(Conv2D(2 * s.units, (3, 2), strides=2, padding=1, groups=2, flip_kernel=True),
               BatchNorm(pytorch_momentum=0.1, running_variance="unbiased"), ReLU(),
               MaxPool2D(2), AvgPool2D(3, 1, "SAME"), GlobalAvgPool(), Dense(2)),
        (s.batch, 2 * s.features + 2, 2 * s.features + 1, 4)), kinks=True, batch_stats=True),
    # --- recurrent (sequences (batch, time, features); masks are tested in test_recurrent.py;
    # composed, since every scanned case is costly) ---------------------------------------------
    Case("Bidirectional_LSTM_peepholes", lambda s: (
        Bidirectional(LSTMCell(s.units, peepholes=True), merge="sum"), (s.batch, 3, s.features))),
    Case("StackedRNN_GRU_Jordan_learned_carry", lambda s: (
        StackedRNN(GRUCell(s.units, reset_after=True), JordanCell(s.units, 2), dropout=0.5,
                   initial_carry="learned", return_sequences=False), (s.batch, 3, s.features))),
    Case("TimeDistributed_Maxout", lambda s: (TimeDistributed(Maxout(s.units)),
                                              (s.batch, 3, s.features)), kinks=True),
    # --- models ------------------------------------------------------------------------------
    Case("mlp_images", lambda s: (mlp([s.units, 2], activation="sigmoid"),
                                  (s.batch, s.features, 3))),
    Case("mlp_softmax", lambda s: (mlp([s.units, s.units, 2], activation="tanh",
                                       output_activation="softmax", flatten=False),
                                   (s.batch, s.features))),
]

_names = [c.name for c in CASES]
assert len(set(_names)) == len(_names), "registry case names must be unique"

