"""Combinators: layers made of layers. A model built from them is itself a `Layer`.

Children are named: either explicitly, ``serial(("encoder", enc), ("decoder", dec))``, or
automatically from their ``kind``, ``serial(Dense(300), ReLU(), Dense(10))`` giving params
``{"dense_0": {"w", "b"}, "relu_0": {}, "dense_1": {"w", "b"}}``. Child ``i`` gets the key
``fold_in(key, i)`` at init and at apply, and the batch's ``context`` unchanged. Every
combinator lists its children in ``Layer.layers``, so `fnn.summary` and `fnn.monitor` see
inside it.
"""
from __future__ import annotations

import collections
from typing import Callable, Sequence, Tuple

import jax
import jax.numpy as jnp

from fnn.core import (
    Layer,
    LayerError,
    LayerLike,
    apply_child,
    check_children,
    child_key,
    format_shape,
    infer_output_shape,
    init_child,
    is_shape,
)


def name_children(layers: Sequence[LayerLike], combinator: str) -> Tuple[Tuple[str, Layer], ...]:
    """Pair each child with a unique name: its own, or ``kind_i`` counted per kind."""
    explicit = [c[0] for c in layers if isinstance(c, tuple) and not isinstance(c, Layer)]
    duplicates = [n for n, k in collections.Counter(explicit).items() if k > 1]
    if duplicates:
        raise ValueError(f"{combinator}: child names must be unique; {duplicates} repeat.")
    counters = collections.Counter()
    named = []
    for child in layers:
        if isinstance(child, Layer):
            base = child.kind
            while f"{base}_{counters[base]}" in explicit:
                counters[base] += 1
            name = f"{base}_{counters[base]}"
            counters[base] += 1
        elif (isinstance(child, tuple) and len(child) == 2 and isinstance(child[0], str)
              and isinstance(child[1], Layer)):
            name, child = child
        else:
            raise TypeError(
                f"{combinator}: each child must be a Layer or a (name, Layer) pair; "
                f"got {type(child).__name__}: {child!r:.80}")
        named.append((name, child))
    return tuple(named)


def _init_children(key, named, input_shapes):
    """Initialize each child on its own input shape; returns (shapes, params, state)."""
    shapes, params, state = [], {}, {}
    for i, ((name, layer), shape) in enumerate(zip(named, input_shapes)):
        out, params[name], state[name] = init_child(name, layer, child_key(key, i), shape)
        shapes.append(out)
    return tuple(shapes), params, state


def _apply_children(combinator, named, params, state, inputs, key, train, context):
    """Apply each child to its own input; returns (outputs, new_state)."""
    names = [name for name, _ in named]
    check_children(combinator, "params", params, names)
    check_children(combinator, "state", state, names)
    outputs, new_state = [], {}
    for i, ((name, layer), x) in enumerate(zip(named, inputs)):
        y, new_state[name] = apply_child(name, layer, params[name], state[name], x,
                                         key=child_key(key, i), train=train, context=context)
        outputs.append(y)
    return tuple(outputs), new_state


def serial(*layers: LayerLike, name: str = "serial") -> Layer:
    """Compose layers in order: ``y = f_n(... f_2(f_1(x)))``."""
    named = name_children(layers, name)
    names = [n for n, _ in named]

    def init(key, input_shape):
        shape, params, state = input_shape, {}, {}
        for i, (child_name, layer) in enumerate(named):
            shape, params[child_name], state[child_name] = init_child(
                child_name, layer, child_key(key, i), shape)
        return shape, params, state

    def apply(params, state, x, *, key=None, train=False, context=None):
        check_children(name, "params", params, names)
        check_children(name, "state", state, names)
        new_state = {}
        for i, (child_name, layer) in enumerate(named):
            x, new_state[child_name] = apply_child(
                child_name, layer, params[child_name], state[child_name], x,
                key=child_key(key, i), train=train, context=context)
        return x, new_state

    return Layer(init, apply, name, "serial", named)


def _split_inputs(combinator: str, named, inputs, *, shapes: bool):
    """The inputs of `parallel`'s children, in order: from a tuple/list of ``n`` or a dict keyed
    by the children's names; and a function that packs their outputs the same way."""
    names = [n for n, _ in named]
    if isinstance(inputs, dict):
        if set(inputs) != set(names):
            raise LayerError(combinator, f"expects a dict of inputs with keys {sorted(names)}; "
                                         f"got keys {sorted(inputs)}.")
        return [inputs[n] for n in names], lambda outs: dict(zip(names, outs))
    if isinstance(inputs, (tuple, list)) and not (shapes and is_shape(inputs)) \
            and len(inputs) == len(named):
        return list(inputs), tuple
    if shapes:
        got = format_shape(inputs) if isinstance(inputs, (tuple, list)) else repr(inputs)
    elif isinstance(inputs, (tuple, list)):
        got = f"a tuple of {len(inputs)}"
    else:
        got = f"one array of shape {format_shape(tuple(getattr(inputs, 'shape', ())))}"
    raise LayerError(combinator, f"expects a tuple of {len(named)} inputs (or a dict keyed by "
                                 f"{names}); got {got}.")


def parallel(*layers: LayerLike, name: str = "parallel") -> Layer:
    """Apply child ``i`` to input ``i``: ``(x_1, ..., x_n) -> (f_1(x_1), ..., f_n(x_n))``.

    Inputs may also be a dict keyed by the children's names, ``{"image": x, "tokens": t}`` for
    ``parallel(("image", cnn), ("tokens", rnn))``; the outputs are then a dict too.
    """
    named = name_children(layers, name)

    def init(key, input_shape):
        inputs, pack = _split_inputs(name, named, input_shape, shapes=True)
        shapes, params, state = _init_children(key, named, inputs)
        return pack(shapes), params, state

    def apply(params, state, inputs, *, key=None, train=False, context=None):
        xs, pack = _split_inputs(name, named, inputs, shapes=False)
        outputs, new_state = _apply_children(name, named, params, state, xs, key, train, context)
        return pack(outputs), new_state

    return Layer(init, apply, name, "parallel", named)


def branch(*layers: LayerLike, name: str = "branch") -> Layer:
    """Apply every child to the same input: ``x -> (f_1(x), ..., f_n(x))``."""
    named = name_children(layers, name)

    def init(key, input_shape):
        return _init_children(key, named, [input_shape] * len(named))

    def apply(params, state, x, *, key=None, train=False, context=None):
        return _apply_children(name, named, params, state, [x] * len(named), key, train, context)

    return Layer(init, apply, name, "branch", named)


def Lambda(fn: Callable, name: str = "Lambda", kind: str | None = None) -> Layer:
    """Wrap a pure function ``fn(x) -> y`` as a layer without parameters or state.

    ``kind`` (default: ``name`` in snake case, ``"lambda"``) names it inside a combinator.
    The output shape is found by tracing ``fn`` with `jax.eval_shape`.
    """
    def init(key, input_shape):
        try:
            return infer_output_shape(fn, input_shape), {}, {}
        except (TypeError, ValueError) as error:
            if isinstance(error, LayerError):
                raise
            raise LayerError(name, f"cannot be applied to inputs of shape "
                                   f"{format_shape(input_shape)}: {error}") from error

    def apply(params, state, x, *, key=None, train=False):
        return fn(x), state

    return Layer(init, apply, name, kind)


def Concatenate(axis: int = -1) -> Layer:
    """Join a tuple of inputs along ``axis`` (the feature axis by default)."""
    name = f"Concatenate(axis={axis})"
    return Lambda(lambda xs: _checked_tuple(name, xs, lambda v: jnp.concatenate(v, axis)), name,
                  "concatenate")


def Add() -> Layer:
    """Sum a tuple of inputs of one shape: ``x_1 + ... + x_n``."""
    def check(shapes):
        if len(set(shapes)) > 1:
            raise LayerError("Add()", "expects inputs of one shape; got "
                             + ", ".join(format_shape(s) for s in shapes) + ".")

    def add(xs):
        check([tuple(x.shape) for x in xs])
        return sum(xs[1:], xs[0])

    summed = Lambda(lambda xs: _checked_tuple("Add()", xs, add), "Add()", "add")

    def init(key, input_shape):
        if not is_shape(input_shape):  # check the shapes as given, with `batch` for None
            check([tuple(s) for s in input_shape])
        return summed.init(key, input_shape)

    return Layer(init, summed.apply, "Add()", "add")


def _checked_tuple(name, xs, fn):
    if not isinstance(xs, (tuple, list)):
        raise LayerError(name, f"expects a tuple of inputs; got one array of shape {xs.shape}.")
    return fn(list(xs))


def residual(*layers: LayerLike, shortcut: Layer | None = None, name: str = "residual") -> Layer:
    """A skip connection: ``y = F(x) + S(x)``, where ``F = serial(*layers)`` and the shortcut
    ``S`` is the identity unless given (e.g. a projection ``Dense(n)`` when shapes differ).

    Params: ``{"block": params of F, "shortcut": params of S}`` (no ``shortcut`` entry for the
    identity); both are children in ``layers``.
    """
    named = [("block", serial(*layers, name=f"{name}.block"))]
    if shortcut is not None:
        named.append(("shortcut", shortcut))
    named = tuple(named)

    def init(key, input_shape):
        shapes, params, state = _init_children(key, named, [input_shape] * len(named))
        out = shapes[0]
        skip = shapes[1] if shortcut is not None else input_shape
        if tuple(out) != tuple(skip):
            raise LayerError(name, f"adds its block's output {format_shape(out)} to its "
                                   f"shortcut {format_shape(skip)}; they must match. "
                                   "Give a projection as `shortcut=`.")
        return out, params, state

    def apply(params, state, x, *, key=None, train=False, context=None):
        ys, new_state = _apply_children(name, named, params, state, [x] * len(named), key,
                                        train, context)
        return ys[0] + (ys[1] if shortcut is not None else x), new_state

    return Layer(init, apply, name, "residual", named)


def remat(layer: LayerLike, *, name: str | None = None) -> Layer:
    """``layer`` rematerialized in training: its activations are not kept for the backward
    pass but recomputed from its input (`jax.checkpoint`), trading compute for memory. Same
    parameters (the child's own, not nested), outputs and gradients as ``layer``; in eval mode
    it is ``layer`` itself. Child ``layer``.
    """
    (_, child), = name_children([layer], "remat")
    name = name or f"remat({child.name})"

    def init(key, input_shape):
        return init_child("layer", child, key, input_shape)

    def apply(params, state, x, *, key=None, train=False, context=None):
        def run(params, state, x, key, context):
            return apply_child("layer", child, params, state, x, key=key, train=train,
                               context=context)

        return (jax.checkpoint(run) if train else run)(params, state, x, key, context)

    return Layer(init, apply, name, "remat", (("layer", child),))


__all__ = ["serial", "parallel", "branch", "residual", "remat", "Lambda", "Concatenate", "Add",
           "name_children"]
