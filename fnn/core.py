"""The layer protocol: a layer is a pair of pure functions over parameter pytrees.

    init(key, input_shape)                              -> (output_shape, params, state)
    apply(params, state, x, *, key=None, train=False)   -> (y, new_state)

Shapes include the leading batch axis, which may be ``None`` (unknown): ``(None, 784)``.
``params`` and ``state`` are nested dicts of arrays with readable names (``w``, ``b``, ...);
stateless layers return ``{}`` for both. ``train`` is a static Python bool; in eval mode a
layer never needs a key and never changes its state.
"""
from __future__ import annotations

import contextlib
import math
import re
from typing import Any, Callable, NamedTuple, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp

Shape = Tuple[Optional[int], ...]
Params = Any  # a nested dict of arrays
State = Any  # a nested dict of arrays


class Layer(NamedTuple):
    """A layer: two pure functions plus a display name.

    ``name`` is a short description ("Dense(300)") used in error messages, in ``summary``
    and to name the layer's parameters inside a combinator (``dense_0``). ``layers`` holds the
    named children that ``serial`` applies in order (``summary`` reads it); it is empty for
    every other layer.
    """

    init: Callable[..., Tuple[Shape, Params, State]]
    apply: Callable[..., Tuple[Any, State]]
    name: str = "layer"
    layers: Tuple[Tuple[str, "Layer"], ...] = ()


class LayerError(ValueError):
    """An input that does not fit a layer.

    The message names the layer, where it sits in the model (its parameter path), what it got
    and what it expects: "Dense(300) in `dense_1` expects inputs of shape (batch, 100); got
    (32, 784)."
    """

    def __init__(self, layer: str, problem: str, path: Sequence[str] = ()):
        self.layer, self.problem, self.path = layer, problem, tuple(path)
        where = f" in `{'/'.join(self.path)}`" if self.path else ""
        super().__init__(f"{layer}{where} {problem}")

    def within(self, name: str) -> "LayerError":
        """The same error, one level deeper: its path now starts with ``name``."""
        return LayerError(self.layer, self.problem, (name, *self.path))


@contextlib.contextmanager
def located(name: str):
    """Prefix the path of any `LayerError` raised inside with the child's name."""
    try:
        yield
    except LayerError as error:
        raise error.within(name) from None


def format_shape(shape: Shape) -> str:
    """``(None, 784)`` -> ``"(batch, 784)"``, the form used in messages and summaries."""
    if is_shape(shape):
        dims = ["batch" if d is None else str(d) for d in shape]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
    return "(" + ", ".join(format_shape(s) for s in shape) + ")"


def is_shape(shape) -> bool:
    """True for one shape (a tuple of ints/None), False for a tuple of shapes."""
    return isinstance(shape, (tuple, list)) and all(d is None or isinstance(d, int) for d in shape)


def check_rank(layer: str, shape, min_rank: int, expected: str, hint: str = ""):
    """Raise a `LayerError` unless ``shape`` is one shape of rank >= ``min_rank``."""
    if not is_shape(shape) or len(shape) < min_rank:
        got = format_shape(shape) if isinstance(shape, (tuple, list)) else repr(shape)
        raise LayerError(layer, f"expects inputs of shape {expected}; got {got}.{hint}")


def size(shape: Shape) -> int:
    """Number of elements in a (per-example) shape."""
    return math.prod(shape)


_DUMMY_BATCH = 3  # an unusual size, so a function that moves the batch axis shows it


def infer_output_shape(fn: Callable, input_shape, dtype=jnp.float32):
    """The output shape of ``fn`` on an input of ``input_shape``, found with `jax.eval_shape`.

    A ``None`` batch axis is traced with a dummy size and reported as ``None`` again.
    """
    def concrete(shape):
        return tuple(_DUMMY_BATCH if d is None else d for d in shape)

    def spec(shape):
        if is_shape(shape):
            return jax.ShapeDtypeStruct(concrete(shape), dtype)
        return tuple(spec(s) for s in shape)

    batch_unknown = any(s[0] is None for s in _leaf_shapes(input_shape) if s)
    out = jax.eval_shape(fn, spec(input_shape))

    def shape_of(struct):
        shape = tuple(struct.shape)
        if batch_unknown and shape and shape[0] == _DUMMY_BATCH:
            shape = (None,) + shape[1:]
        return shape

    return jax.tree_util.tree_map(shape_of, out)


def _leaf_shapes(shape):
    if is_shape(shape):
        return [tuple(shape)]
    return [s for sub in shape for s in _leaf_shapes(sub)]


def init_shapes(layer: Layer, input_shape, key=None):
    """``(output_shape, params, state)`` with arrays replaced by `jax.ShapeDtypeStruct`.

    Nothing is computed: this is `jax.eval_shape` over ``layer.init``.
    """
    out_shape = []

    def params_and_state(k):
        shape, params, state = layer.init(k, input_shape)
        out_shape.append(shape)
        return params, state

    key = jax.random.PRNGKey(0) if key is None else key
    params, state = jax.eval_shape(params_and_state, key)
    return out_shape[0], params, state


def count_params(tree) -> int:
    """Total number of array elements in a pytree (of arrays or shape structs)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


def child_key(key, index: int):
    """The key a combinator gives its child ``index``: ``fold_in(key, index)`` (or None)."""
    return None if key is None else jax.random.fold_in(key, index)


def snake_case(layer_name: str) -> str:
    """``"LeakyReLU(0.1)"`` -> ``"leaky_relu"``: the base of a child's auto-generated name."""
    base = layer_name.split("(")[0]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", base).lower()


LayerLike = Union[Layer, Tuple[str, Layer]]
