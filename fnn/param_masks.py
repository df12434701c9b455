"""Masks over parameter trees: which leaves a penalty, a weight decay, ``freeze`` or the monitor
touches. One meaning everywhere (``fnn.losses.l2_penalty``, ``fnn.optim.add_decayed_weights``,
``fnn.optim.masked``, ``fnn.optim.freeze``, ``fnn.monitor``)::

    mask                               selects
    None                               the weights: every leaf whose name (last dict key or
                                       NamedTuple field) is not in NOT_WEIGHTS (biases, norm params)
    True / False                       every leaf / none
    {"dense_0": True}                  everything under params["dense_0"]: a prefix tree of bools;
                                       dict keys it leaves out mean False, keys params lacks raise
    {"dense_0": {"w": True}}           the same, deeper (a full tree of bools is a prefix too)
    {"dense_0", "dense_2"}             everything under these top-level keys (layer names): a set,
                                       or a list or tuple of strings
    lambda path, leaf: ...             the leaves for which the predicate returns True; ``path`` is
                                       the ``jax.tree_util`` key path, e.g. (DictKey('dense_0'),
                                       DictKey('w')); ``leaf_name(path)`` gives 'w'

Masks are static: they are resolved to Python bools when traced, from the structure (and names)
of the parameters, never from their values; a predicate must return a Python bool.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import jax
import numpy as np

__all__ = ["NOT_WEIGHTS", "flags", "leaf_name", "resolve", "selected_leaves", "weights"]

# Leaf names that are not weights: biases and normalisation shifts and scales.
NOT_WEIGHTS = ("b", "bias", "beta", "gamma", "scale", "offset")


def leaf_name(path) -> Any:
    """The dict key or NamedTuple field of a key path's last entry (None for a list position)."""
    if not path:
        return None
    last = path[-1]
    if isinstance(last, jax.tree_util.DictKey):
        return last.key
    if isinstance(last, jax.tree_util.GetAttrKey):
        return last.name
    return None


def weights(params, skip: Collection[str] = NOT_WEIGHTS):
    """The default mask, resolved: a tree of bools shaped like ``params``, True for leaves whose
    name is not in ``skip``. ``{"dense": {"w": .., "b": ..}}`` gives ``{"dense": {"w": True,
    "b": False}}``."""
    if isinstance(skip, str):
        raise TypeError(f"weights: `skip` must be a collection of names such as ('b', 'bias'); "
                        f"got the string {skip!r}.")
    skip = frozenset(skip)
    return jax.tree_util.tree_map_with_path(lambda path, _: leaf_name(path) not in skip, params)


def _is_flag(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def _is_names(mask) -> bool:
    """A set of strings, or a non-empty list or tuple of strings (a tree of bools holds none)."""
    if isinstance(mask, (set, frozenset)):
        return True
    return (isinstance(mask, (list, tuple)) and not hasattr(mask, "_fields") and len(mask) > 0
            and all(isinstance(name, str) for name in mask))


def _at(where_in_params: str) -> str:
    return f"params{where_in_params}"


def _expand(where: str, mask, tree, at: str):
    """A tree of Python bools with ``tree``'s structure from a prefix tree of bools."""
    if tree is None:  # an empty sub-tree: nothing to select
        return None
    if _is_flag(mask):
        return jax.tree_util.tree_map(lambda _: bool(mask), tree)
    if isinstance(mask, Mapping) and isinstance(tree, Mapping):
        unknown = [key for key in mask if key not in tree]
        if unknown:
            raise ValueError(f"{where}: mask{at} names {unknown}, which {_at(at)} does not have; its "
                             f"keys are {list(tree)}.")
        expanded = {key: _expand(where, mask.get(key, False), child, f"{at}[{key!r}]")
                    for key, child in tree.items()}
        return type(tree)(expanded) if isinstance(tree, dict) else expanded
    if (isinstance(mask, (list, tuple)) and isinstance(tree, (list, tuple))
            and type(mask) is type(tree) and len(mask) == len(tree)):
        children = [_expand(where, m, t, f"{at}[{i}]") for i, (m, t) in enumerate(zip(mask, tree))]
        return type(tree)(*children) if hasattr(tree, "_fields") else type(tree)(children)
    if not isinstance(mask, (Mapping, list, tuple)):
        raise TypeError(f"{where}: mask entries must be Python bools (masks are static); got "
                        f"{mask!r} of type {type(mask).__name__} at mask{at}.")
    raise ValueError(
        f"{where}: mask{at} must be a bool, "
        f"or a tree of bools shaped like {_at(at)} (dicts may leave keys out);\n"
        f"  mask:   {jax.tree_util.tree_structure(mask)}\n"
        f"  params: {jax.tree_util.tree_structure(tree)}")


def resolve(mask, params, *, where: str):
    """The leaves ``mask`` selects (see the module docstring): a tree of Python bools with the
    structure of ``params``. ``where`` names the caller in error messages."""
    if mask is None:
        return weights(params)
    if callable(mask):
        resolved = jax.tree_util.tree_map_with_path(mask, params)
    elif _is_names(mask):
        if not isinstance(params, Mapping):
            raise ValueError(f"{where}: a mask of layer names {sorted(mask)} needs params that "
                             f"are a dict of layers; got {jax.tree_util.tree_structure(params)}.")
        resolved = _expand(where, {name: True for name in mask}, params, "")
    else:
        resolved = _expand(where, mask, params, "")
    for flag in jax.tree_util.tree_leaves(resolved):
        if not _is_flag(flag):
            raise TypeError(f"{where}: mask entries must be Python bools (masks are static); got "
                            f"{flag!r} of type {type(flag).__name__}.")
    return jax.tree_util.tree_map(bool, resolved)


def flags(mask, params, *, where: str) -> list[bool]:
    """``resolve(mask, params)`` as one bool per leaf of ``params``, in ``tree_leaves`` order."""
    return jax.tree_util.tree_leaves(resolve(mask, params, where=where))


def selected_leaves(mask, params, *, where: str, tree=None) -> list:
    """The leaves of ``tree`` (default ``params``; another tree of the same structure, such as
    the gradients) where ``resolve(mask, params)`` is True, in ``tree_leaves`` order."""
    tree = params if tree is None else tree
    keep = flags(mask, params, where=where)
    return [leaf for leaf, k in zip(jax.tree_util.tree_leaves(tree), keep) if k]
