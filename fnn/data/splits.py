"""Random splits (train/validation/test) and mini-batch iteration over host (NumPy) data.

Data is any pytree of arrays sharing a leading example axis, e.g. ``(images, labels)`` or
``{"x": x, "y": y}``; results keep that structure. Randomness comes only from explicit JAX PRNG
keys, so the same key always gives the same split or batch order.
"""
from __future__ import annotations

import numbers
from typing import Any, Iterator, Sequence, Tuple

import jax
import numpy as np

from fnn.checks import check_int


# one compiled program per n (eagerly, the range and the shuffle would compile one each)
_permute = jax.jit(jax.random.permutation, static_argnums=1)


def _permutation(key, n: int) -> np.ndarray:
    return np.asarray(_permute(key, n), dtype=np.int64)


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    array = np.asarray(fractions, dtype=np.float64)
    if array.ndim != 1 or array.size == 0 or (array < 0).any() or abs(array.sum() - 1) > 1e-6:
        raise ValueError(f"split: `fractions` must be non-negative numbers that sum to 1, such as "
                         f"(0.8, 0.1, 0.1); got {tuple(fractions)!r}.")
    return array


def split_indices(key, n: int, fractions: Sequence[float], *, stratify=None):
    """Partition ``range(n)`` at random into ``len(fractions)`` index arrays (int64, shuffled).

    Part i gets ``round(F_i · n) − round(F_{i−1} · n)`` indices, F the cumulative fractions, so
    the parts cover every index exactly once. With ``stratify`` (labels of shape (n,)) the
    fractions are applied within each class, so every part keeps the class proportions (sizes
    can then differ by rounding from the unstratified ones).
    """
    n = check_int("split_indices", "n", n, minimum=0)
    cumulative = np.cumsum(_check_fractions(fractions))[:-1]
    labels = np.zeros(n, np.int64) if stratify is None else np.asarray(stratify)
    if labels.shape != (n,):
        raise ValueError(f"split_indices: `stratify` must hold one label per example, shape "
                         f"({n},); got shape {labels.shape}.")
    order = _permutation(key, n)
    # Rank of each shuffled example within its class, and its class size.
    _, class_of, class_size = np.unique(labels[order], return_inverse=True, return_counts=True)
    by_class = np.argsort(class_of, kind="stable")
    class_start = np.cumsum(class_size) - class_size
    rank = np.empty(n, np.int64)
    rank[by_class] = np.arange(n) - class_start[class_of[by_class]]
    # Part of each example: how many of its class's cut points it has passed.
    cuts = np.round(class_size[class_of][:, None] * cumulative[None, :])
    part = (rank[:, None] >= cuts).sum(axis=1)
    return tuple(order[part == i] for i in range(len(cumulative) + 1))


def split(key, data, fractions: Sequence[float], *, stratify=None) -> tuple:
    """Split a pytree of arrays into ``len(fractions)`` random parts of the same structure.

    ``(x_train, y_train), (x_test, y_test) = split(key, (x, y), (0.8, 0.2))``; see
    `split_indices` for the sizes and ``stratify``.
    """
    leaves, treedef = _leaves(data, "split")
    parts = split_indices(key, len(leaves[0]), fractions, stratify=stratify)
    return tuple(treedef.unflatten([leaf[index] for leaf in leaves]) for index in parts)


def batches(data, batch_size, *, key=None, drop_last: bool = False, pad: bool = False,
            skip: int = 0) -> Iterator[Any]:
    """Iterate over mini-batches of a pytree of arrays, as NumPy arrays of the same structure.

    The one batching function of fnn: `fnn.fit`, `fnn.evaluate`, `fnn.predict` and
    cross-validation use it. ``data`` is any pytree of arrays sharing a leading example axis
    (``(x, y)``, ``((xa, xb), y)``, ``{"x": x, "y": y}``; ``None`` entries stay ``None``).
    ``batch_size`` is an integer >= 1 or ``"full"`` (one batch of every example).

    Yields ``ceil(n / batch_size)`` batches (``floor`` with ``drop_last``); each example appears
    once per pass. In order without ``key``; shuffled by ``jax.random.permutation(key, n)`` with
    it (pass a new key each epoch, e.g. ``fold_in(key, epoch)``). With ``pad`` every batch has
    exactly ``batch_size`` examples, so a jitted step compiles once: the last batch is completed
    by repeating its own examples, and each item is ``(batch, mask)`` with ``mask``
    (batch_size,) float32, 1 for real examples and 0 for the repeats. ``skip`` starts after the
    first ``skip`` batches of the pass (to resume mid-epoch). Arguments are checked here, not at
    the first ``next``.
    """
    leaves, treedef = _leaves(data, "batches")
    n = len(leaves[0])
    batch_size = resolve_batch_size("batches", batch_size, n)
    skip = check_int("batches", "skip", skip, minimum=0)
    if pad:
        index, mask = batch_indices(n, batch_size, key=key, skip=skip)
        if drop_last:
            index, mask = index[mask.all(axis=1)], mask[mask.all(axis=1)]
        return ((treedef.unflatten([leaf[rows] for leaf in leaves]), rows_mask)
                for rows, rows_mask in zip(index, mask))
    order = None if key is None else _permutation(key, n)
    stop = n - n % batch_size if drop_last else n

    def generate():
        for start in range(skip * batch_size, stop, batch_size):
            index = np.arange(start, min(start + batch_size, n))
            if order is not None:
                index = order[index]
            yield treedef.unflatten([leaf[index] for leaf in leaves])

    return generate()


def batch_indices(n: int, batch_size, *, key=None, skip: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """One pass over ``n`` examples in padded batches, as example indices: ``(index, mask)``,
    both of shape (S, B) with S = ceil(n / B) − ``skip`` and B = min(``batch_size``, n).

    Row s holds the examples ``order[s·B : (s+1)·B]`` (``order`` = ``jax.random.permutation(key,
    n)``, or ``arange(n)`` without a key); the last row is completed by repeating its own
    examples, with ``mask`` 0 for the repeats and 1 elsewhere. `batches` with ``pad=True``
    yields exactly these rows, and `fnn.fit` gathers them from data kept on the device.
    """
    batch_size = resolve_batch_size("batch_indices", batch_size, n)
    batch_size = max(min(batch_size, n), 1)  # a padded batch larger than the data holds only repeats
    skip = check_int("batch_indices", "skip", skip, minimum=0)
    starts = np.arange(skip * batch_size, n, batch_size, dtype=np.int64)
    real = np.minimum(batch_size, n - starts)
    columns = np.arange(batch_size, dtype=np.int64)
    index = starts[:, None] + columns[None, :] % np.maximum(real, 1)[:, None]
    mask = (columns[None, :] < real[:, None]).astype(np.float32)
    if key is not None:
        index = _permutation(key, n)[index]
    return index, mask


def resolve_batch_size(where: str, batch_size, n: int) -> int:
    """``batch_size`` as an int: an integer >= 1, or ``"full"`` for ``n`` (at least 1)."""
    if isinstance(batch_size, str) and batch_size == "full":
        return max(n, 1)
    try:
        return check_int(where, "batch_size", batch_size)
    except ValueError as error:
        raise ValueError(f"{error} For one batch of every example, say 'full'.") from None


def num_examples(data, where: str = "data") -> int:
    """The common length of the leading axis of every array in the pytree ``data``."""
    return len(_leaves(data, where)[0][0])


def take(data, index):
    """The examples ``index`` (an int array or slice) of every array in the pytree ``data``."""
    leaves, treedef = _leaves(data, "take")
    return treedef.unflatten([leaf[index] for leaf in leaves])


def _leaves(data, where: str):
    """``data``'s leaves as NumPy arrays, checked to share a leading length, and its treedef."""
    paths_and_leaves, treedef = jax.tree_util.tree_flatten_with_path(data)
    if not paths_and_leaves:
        raise ValueError(f"{where}: `data` must hold at least one array; got {data!r}.")
    paths = [jax.tree_util.keystr(path) or "data" for path, _ in paths_and_leaves]
    leaves = [np.asarray(leaf) for _, leaf in paths_and_leaves]
    for path, leaf in zip(paths, leaves):
        if leaf.ndim == 0:
            raise ValueError(f"{where}: every array needs a leading example axis; "
                             f"{path} is a scalar.")
    lengths = {len(leaf) for leaf in leaves}
    if len(lengths) > 1:
        listing = ", ".join(f"{path}: {len(leaf)}" for path, leaf in zip(paths, leaves))
        raise ValueError(f"{where}: every array needs the same number of examples (leading "
                         f"axis); got {listing}.")
    return leaves, treedef
