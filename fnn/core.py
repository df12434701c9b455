"""The layer protocol: a layer is a pair of pure functions over parameter pytrees.

    init(key, input_shape)                                      -> (output_shape, params, state)
    apply(params, state, x, *, key=None, train=False, context=None) -> (y, new_state)

Shapes include the leading batch axis, which may be ``None`` (unknown): ``(None, 784)``.
``params`` and ``state`` are nested dicts of arrays with readable names (``w``, ``b``, ...);
stateless layers return ``{}`` for both. ``train`` is a static Python bool; in eval mode a
layer never needs a key and never changes its state. Inputs may be any pytree of arrays with
a common leading batch axis (a tuple for `parallel`, a dict, ...).

Per-batch context
-----------------
``context`` is a `Context` (or None): what a batch knows besides its inputs, the same object for
every layer of a model. Combinators pass it on unchanged to each child, so a mask given at the
top reaches a layer ten levels down; a layer that needs no context simply does not declare the
keyword (its ``apply(params, state, x, *, key=None, train=False)`` is wrapped once, when the
`Layer` is built, to accept and ignore it). Its fields (all optional, None means "all real"):

- ``mask`` (batch,): 1 for real examples, 0 for padding rows (`fit` pads its last batch by
  repeating examples). Layers that compute batch statistics (BatchNorm) must ignore the rows
  with mask 0; layers that act per example need not look at it.
- ``seq_mask`` (batch, time): 1 for real time steps of the model's sequence input, 0 for
  padding; or a dict of such masks named by input (``{"source": ..., "target": ...}``) for a
  model with several sequence inputs, a sequence layer then being told which one it reads.
  `sequence_mask(lengths, time)` builds one from per-example lengths.

Children
--------
A combinator lists its named children in ``layers`` and initializes and applies them through
`init_child` and `apply_child`, which give errors the child's path and let `walk` (shapes of
every sublayer, used by `fnn.summary`) and `capture_outputs` (every sublayer's output, used by
`fnn.monitor`) see a model to any depth. Child names come from each layer's ``kind`` (a stable
identifier such as ``"dense"``, never its display name): ``dense_0``, ``relu_0``, ...
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import math
import re
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

Shape = Tuple[Optional[int], ...]
Params = Any  # a nested dict of arrays
State = Any  # a nested dict of arrays


class Context(NamedTuple):
    """Per-batch facts that reach every layer unchanged (see the module docstring).

    ``mask`` (batch,): 1 for real examples, 0 for padding rows. ``seq_mask`` (batch, time):
    1 for real time steps; or a dict of such masks, one per named sequence input.
    """

    mask: Any = None
    seq_mask: Any = None


def row_mask(context: Optional[Context]):
    """The context's example mask (batch,), or None when every row is real."""
    return None if context is None else context.mask


def sequence_mask(lengths, time: int, dtype=jnp.float32):
    """``m[b, t] = 1 if t < lengths[b] else 0``: a (batch, time) mask from lengths (batch,).
    Concrete lengths are turned into the mask by NumPy (no program compiled per shape)."""
    if isinstance(lengths, jax.core.Tracer):
        return (jnp.arange(time)[None, :] < lengths[:, None]).astype(dtype)
    mask = np.arange(time)[None, :] < np.asarray(lengths)[:, None]
    return jax.device_put(mask.astype(jax.dtypes.canonicalize_dtype(dtype)))


def _accepts_context(apply: Callable) -> bool:
    try:
        parameters = inspect.signature(apply).parameters.values()
    except (TypeError, ValueError):  # a builtin or C function: no keywords we can see
        return False
    return any(p.name == "context" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _with_context(apply: Callable) -> Callable:
    """``apply`` itself if it takes ``context=``, else a wrapper that accepts and ignores it."""
    if _accepts_context(apply):
        return apply

    @functools.wraps(apply)
    def apply_ignoring_context(params, state, x, *, key=None, train=False, context=None):
        return apply(params, state, x, key=key, train=train)

    return apply_ignoring_context


def snake_case(layer_name: str) -> str:
    """``"LeakyReLU(0.1)"`` -> ``"leaky_relu"``: the default ``kind`` of a layer built without one."""
    base = layer_name.split("(")[0]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", base).lower()


class _LayerFields(NamedTuple):
    init: Callable[..., Tuple[Shape, Params, State]]
    apply: Callable[..., Tuple[Any, State]]
    name: str
    kind: str
    layers: Tuple[Tuple[str, "Layer"], ...]


class Layer(_LayerFields):
    """A layer: two pure functions, a display name, a stable kind and its named children.

    ``name`` describes the layer in messages and summaries ("Dense(300)") and may change
    between versions; ``kind`` ("dense") names its parameters inside a combinator
    (``dense_0``) and so the keys of checkpoints: it defaults to ``snake_case(name)`` for
    layers written without one, and every layer of fnn states it. ``layers`` holds the
    ``(name, child)`` pairs of a combinator, in order; it is empty for a leaf layer.

    ``apply`` may or may not declare the ``context`` keyword: one that does not is wrapped
    here to accept and ignore it, so every ``Layer.apply`` takes ``context=``.
    """

    __slots__ = ()

    def __new__(cls, init, apply, name: str = "layer", kind: Optional[str] = None,
                layers: Sequence[Tuple[str, "Layer"]] = ()):
        if not callable(init) or not callable(apply):
            raise TypeError(f"Layer {name!r}: `init` and `apply` must be functions; got "
                            f"{type(init).__name__} and {type(apply).__name__}.")
        if kind is None:
            kind = re.sub(r"\W+", "_", snake_case(str(name))) or "layer"
        elif not isinstance(kind, str) or not kind.isidentifier():
            raise ValueError(f"Layer {name!r}: `kind` must be an identifier such as 'dense'; "
                             f"got {kind!r}.")
        return super().__new__(cls, init, _with_context(apply), name, kind, tuple(layers))

    @classmethod
    def _make(cls, iterable):  # `_replace` goes through `__new__` too
        return cls(*iterable)


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


# ----------------------------------------------------------------------------- children

class LayerInfo(NamedTuple):
    """One sublayer of a model as `walk` finds it: its path of child names from the top
    (``("residual_0", "block", "dense_0")``), the layer, and its input and output shapes."""

    path: Tuple[str, ...]
    layer: Layer
    input_shape: Any
    output_shape: Any


# While `walk` or `capture_outputs` runs, the path of the child being entered and what is
# recorded. Plain Python state read at trace time only: a jitted apply is unaffected.
_PATH: contextvars.ContextVar = contextvars.ContextVar("fnn_path", default=())
_WALK: contextvars.ContextVar = contextvars.ContextVar("fnn_walk", default=None)
_CAPTURE: contextvars.ContextVar = contextvars.ContextVar("fnn_capture", default=None)


@contextlib.contextmanager
def _entered(name: str):
    token = _PATH.set(_PATH.get() + (name,))
    try:
        with located(name):
            yield _PATH.get()
    finally:
        _PATH.reset(token)


def check_children(combinator: str, what: str, tree, names) -> None:
    """Raise a `LayerError` unless ``tree`` (params or state) is a dict keyed by ``names``."""
    if not isinstance(tree, dict) or set(tree) != set(names):
        got = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise LayerError(combinator, f"expects {what} with keys {sorted(names)}; got {got}.")


def init_child(name: str, layer: Layer, key, input_shape):
    """``layer.init(key, input_shape)`` for the child ``name`` of a combinator.

    Errors raised inside get the child's name in their path, and `walk` records the child.
    """
    records = _WALK.get()
    with _entered(name) as path:
        if records is None:
            return layer.init(key, input_shape)
        slot = len(records)
        records.append(None)  # keep the walk in pre-order: parents before their children
        out = layer.init(key, input_shape)
        records[slot] = LayerInfo(path, layer, input_shape, out[0])
        return out


def apply_child(name: str, layer: Layer, params, state, x, *, key=None, train=False,
                context=None):
    """``layer.apply(params[name], state[name], x, ...)`` for the child ``name``: the same
    context goes down unchanged; `capture_outputs` records the output."""
    captured = _CAPTURE.get()
    with _entered(name) as path:
        y, new_state = layer.apply(params, state, x, key=key, train=train, context=context)
        if captured is not None:
            captured[path] = y
    return y, new_state


def walk(model: Layer, input_shape, key=None) -> List[LayerInfo]:
    """Every sublayer of ``model`` (to any depth, parents before children) with its shapes.

    Found by running ``model.init`` under `jax.eval_shape` (nothing is computed), so it sees
    any combinator built with `init_child`.
    """
    records: List[Optional[LayerInfo]] = []
    token = _WALK.set(records)
    try:
        init_shapes(model, input_shape, key)
    finally:
        _WALK.reset(token)
    return [r for r in records if r is not None]


def capture_outputs(model: Layer, params, state, x, *, key=None, train=False, context=None
                    ) -> Tuple[Any, Dict[Tuple[str, ...], Any]]:
    """``(y, outputs)``: the model's output and the output of every sublayer, keyed by its
    path (parents included), from one call of ``model.apply``. The new state is dropped.

    Works inside `jax.jit` (the outputs are returned like any other value)."""
    captured: Dict[Tuple[str, ...], Any] = {}
    token = _CAPTURE.set(captured)
    try:
        y, _ = model.apply(params, state, x, key=key, train=train, context=context)
    finally:
        _CAPTURE.reset(token)
    return y, captured


def subtree(tree, path: Sequence[str]):
    """``tree[path[0]][path[1]]...``: a sublayer's params or state by its path."""
    for name in path:
        tree = tree[name]
    return tree


def child_key(key, index: int):
    """The key a combinator gives its child ``index``: ``fold_in(key, index)`` (or None)."""
    return None if key is None else jax.random.fold_in(key, index)


# ----------------------------------------------------------------------------- shapes

def format_shape(shape: Shape) -> str:
    """``(None, 784)`` -> ``"(batch, 784)"``, the form used in messages and summaries."""
    if is_shape(shape):
        dims = ["batch" if d is None else str(d) for d in shape]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{k}: {format_shape(s)}" for k, s in shape.items()) + "}"
    return "(" + ", ".join(format_shape(s) for s in shape) + ")"


def is_shape(shape) -> bool:
    """True for one shape (a tuple of ints/None), False for a pytree of shapes."""
    return isinstance(shape, (tuple, list)) and all(d is None or isinstance(d, int) for d in shape)


def check_rank(layer: str, shape, min_rank: int, expected: str, hint: str = ""):
    """Raise a `LayerError` unless ``shape`` is one shape of rank >= ``min_rank``."""
    if not is_shape(shape) or len(shape) < min_rank:
        got = format_shape(shape) if isinstance(shape, (tuple, list, dict)) else repr(shape)
        raise LayerError(layer, f"expects inputs of shape {expected}; got {got}.{hint}")


def size(shape: Shape) -> int:
    """Number of elements in a (per-example) shape."""
    return math.prod(shape)


_DUMMY_BATCH = 3  # an unusual size, so a function that moves the batch axis shows it


def shape_leaves(shape) -> List[Shape]:
    """The single shapes in a pytree of shapes (tuples, lists and dicts of shapes)."""
    if is_shape(shape):
        return [tuple(shape)]
    values = shape.values() if isinstance(shape, dict) else shape
    return [s for sub in values for s in shape_leaves(sub)]


def infer_output_shape(fn: Callable, input_shape, dtype=jnp.float32):
    """The output shape of ``fn`` on an input of ``input_shape``, found with `jax.eval_shape`.

    ``input_shape`` may be a pytree of shapes (tuples, lists, dicts). A ``None`` batch axis is
    traced with a dummy size and reported as ``None`` again.
    """
    def spec(shape):
        if is_shape(shape):
            return jax.ShapeDtypeStruct(tuple(_DUMMY_BATCH if d is None else d for d in shape),
                                        dtype)
        if isinstance(shape, dict):
            return {k: spec(s) for k, s in shape.items()}
        return tuple(spec(s) for s in shape)

    batch_unknown = any(s[0] is None for s in shape_leaves(input_shape) if s)
    out = jax.eval_shape(fn, spec(input_shape))

    def shape_of(struct):
        shape = tuple(struct.shape)
        if batch_unknown and shape and shape[0] == _DUMMY_BATCH:
            shape = (None,) + shape[1:]
        return shape

    return jax.tree_util.tree_map(shape_of, out)


def init_shapes(layer: Layer, input_shape, key=None):
    """``(output_shape, params, state)`` with arrays replaced by `jax.ShapeDtypeStruct`.

    Nothing is computed: this is `jax.eval_shape` over ``layer.init``.
    """
    out_shape = []

    def params_and_state(k):
        shape, params, state = layer.init(k, input_shape)
        out_shape.append(shape)
        return params, state

    if key is None:  # the shape of a key, not a key: making one would compile a program
        key = jax.eval_shape(lambda: jax.random.PRNGKey(0))
    params, state = jax.eval_shape(params_and_state, key)
    return out_shape[0], params, state


def count_params(tree) -> int:
    """Total number of array elements in a pytree (of arrays or shape structs)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


LayerLike = Union[Layer, Tuple[str, Layer]]
