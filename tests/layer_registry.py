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
      indices); None means floats drawn by `make_inputs`.
    """
    name: str
    build: Callable[[Sizes], Tuple[Layer, object]]
    kinks: bool = False
    zero_grad: bool = False
    inputs: Optional[Callable] = None


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
    mode only. State: ``mean`` (features,) float32 and ``steps`` () int32."""
    def init(key, input_shape):
        state = {"mean": jnp.zeros(input_shape[-1:], jnp.float32),
                 "steps": jnp.zeros((), jnp.int32)}
        return input_shape, {}, state

    def apply(params, state, x, *, key=None, train=False):
        if train:
            batch_mean = x.mean(axis=tuple(range(x.ndim - 1)))
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
    Case("RunningMean", lambda s: (RunningMean(), (s.batch, s.features))),
    Case("serial_stateful", lambda s: (serial(Dense(s.units), RunningMean(), Tanh()),
                                       (s.batch, s.features))),
    # --- models ------------------------------------------------------------------------------
    Case("mlp_images", lambda s: (mlp([s.units, 2], activation="sigmoid"),
                                  (s.batch, s.features, 3))),
    Case("mlp_softmax", lambda s: (mlp([s.units, s.units, 2], activation="tanh",
                                       output_activation="softmax", flatten=False),
                                   (s.batch, s.features))),
]

_names = [c.name for c in CASES]
assert len(set(_names)) == len(_names), "registry case names must be unique"


def is_shape(s):
    """True for one shape: a tuple of ints (or None for an unknown batch axis)."""
    return isinstance(s, tuple) and all(d is None or isinstance(d, int) for d in s)


def leaf_shapes(tree_of_shapes):
    """The shapes in a shape or in a (nested) tuple of shapes, as a flat list."""
    if is_shape(tree_of_shapes):
        return [tree_of_shapes]
    return [s for sub in tree_of_shapes for s in leaf_shapes(sub)]


def map_shapes(fn, tree_of_shapes):
    """Apply ``fn`` to every shape in a shape or tuple of shapes, keeping the nesting."""
    if is_shape(tree_of_shapes):
        return fn(tree_of_shapes)
    return tuple(map_shapes(fn, s) for s in tree_of_shapes)


def make_inputs(case: Case, input_shape, seed: int = 0, dtype=jnp.float32):
    """Deterministic test inputs of ``input_shape`` (an array or a tuple of arrays).

    Cases with kinks get values of magnitude in [0.25, 1.5] with random signs, away from 0.
    """
    rng = np.random.default_rng(seed)

    def one(shape):
        if case.inputs is not None:
            return case.inputs(jax.random.PRNGKey(seed), shape, dtype)
        if case.kinks:
            x = rng.uniform(0.25, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
        else:
            x = rng.normal(size=shape)
        return jnp.asarray(np.asarray(x, dtype))  # converted by NumPy: no XLA compilation

    return map_shapes(one, input_shape)


def cast_floats(tree, dtype):
    """Cast the floating leaves of a pytree to ``dtype`` (integer leaves are left alone)."""
    return jax.tree_util.tree_map(
        lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def with_batch(shape_tree, batch):
    """Replace a ``None`` batch axis by ``batch`` in a shape or tuple of shapes."""
    return map_shapes(lambda s: tuple(batch if d is None else d for d in s), shape_tree)
