"""Kohonen's self-organizing map (lecture 9) as pure functions over ``{"w": (units, d)}``.

The map is a grid of ``units = rows · cols`` units, unit ``j`` with a fixed position ``r_j`` in
the plane (`grid`: rectangular, or hexagonal with odd rows shifted by ½ and rows √3/2 apart, so
that every neighbour is at distance 1) and a prototype ``w_j`` in input space. For an input x:

* the winner (best-matching unit) is ``c = argmin_j ‖x − w_j‖``;
* the neighbourhood of the winner is ``h_cj(σ) = exp(−‖r_c − r_j‖² / (2σ²))`` (Gaussian) or
  ``1 if ‖r_c − r_j‖ ≤ σ else 0`` (bubble), σ the radius;
* online rule (one input at step t): ``w_j ← w_j + α(t) h_cj(σ(t)) (x − w_j)`` for every j;
* batch rule (one epoch): ``w_j ← Σ_i h_{c(x_i) j} x_i / Σ_i h_{c(x_i) j}``, the winners found
  with the prototypes before the update (units no input reaches keep their prototype).

The learning rate and the radius decay over training; Kohonen's usual exponential decay from a
start to an end value over T steps is ``a(t) = a_0 (a_T / a_0)^(t/T)`` (`kohonen_decay`, the same
as ``fnn.optim.exponential_decay(a_0, a_T / a_0, T)``); any ``fnn.optim`` schedule works.

Measures: the quantization error ``mean_i ‖x_i − w_c(x_i)‖``; the topographic error, the share of
inputs whose best and second-best units are not grid neighbours (distance > 1); the U-matrix,
each unit's mean prototype distance to its grid neighbours.
"""
from __future__ import annotations

import math
from typing import Dict, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn.checks import check_in_range, check_int
from fnn.classic.checks import check_patterns
from fnn.optim.base import value_at
from fnn.optim.schedules import exponential_decay

Params = Dict[str, jax.Array]
NEIGHBOURHOODS = ("gaussian", "bubble")
NEIGHBOUR_DISTANCE = 1.0 + 1e-6  # grid neighbours are at distance 1 on both grids


def grid(rows: int, cols: int, hexagonal: bool = False) -> np.ndarray:
    """Unit positions (rows·cols, 2) as (x, y), unit ``j = row·cols + col``.

    Rectangular: ``(col, row)``. Hexagonal: ``(col + ½ (row mod 2), row·√3/2)``: six neighbours
    at distance 1 (odd rows shifted right)."""
    check_int("grid", "rows", rows)
    check_int("grid", "cols", cols)
    row, col = np.divmod(np.arange(rows * cols), cols)
    if hexagonal:
        return np.stack([col + 0.5 * (row % 2), row * math.sqrt(3) / 2], 1)
    return np.stack([col, row], 1).astype(np.float64)


def grid_distances(positions) -> np.ndarray:
    """Squared distances ``‖r_i − r_j‖²`` between all units: (units, units)."""
    positions = np.asarray(positions, np.float64)
    return ((positions[:, None, :] - positions[None, :, :]) ** 2).sum(-1)


def neighbourhood(squared_distance, radius, kind: str = "gaussian") -> jax.Array:
    """``h(d², σ)``: ``exp(−d²/(2σ²))`` (``"gaussian"``) or ``1[d ≤ σ]`` (``"bubble"``);
    any shape."""
    if kind == "gaussian":
        return jnp.exp(-squared_distance / (2 * radius ** 2))
    if kind == "bubble":
        return (squared_distance <= radius ** 2).astype(jnp.result_type(squared_distance, float))
    raise ValueError(f"neighbourhood: `kind` must be one of {NEIGHBOURHOODS}; got {kind!r}.")


def kohonen_decay(start: float, end: float, steps: int):
    """The schedule ``a(t) = a_0 (a_T / a_0)^(t/T)``: ``start`` at t = 0, ``end`` at T = steps."""
    check_in_range("kohonen_decay", "start", start, 0, closed="neither")
    check_in_range("kohonen_decay", "end", end, 0, closed="neither")
    return exponential_decay(start, end / start, steps)


def init_som(key, units: int, data=None, dim: int = None, dtype=jnp.float32) -> Params:
    """``{"w": (units, d)}``: prototypes drawn at random from the rows of ``data`` (N, d), or,
    without data, uniform in [0, 1)^dim."""
    if data is not None:
        data = jnp.asarray(data)
        pick = jax.random.choice(key, data.shape[0], (units,), replace=units > data.shape[0])
        return {"w": data[pick].astype(dtype)}
    if dim is None:
        raise ValueError("init_som: give `data` or `dim`.")
    return {"w": jax.random.uniform(key, (units, dim), dtype)}


def squared_distances(params: Params, x) -> jax.Array:
    """``‖x − w_j‖²``: x (..., d) -> (..., units) (by ``‖x‖² − 2 x·w + ‖w‖²``, clipped at 0)."""
    w = params["w"]
    cross = x @ w.T
    xx = jnp.sum(x * x, -1, keepdims=True)
    ww = jnp.expand_dims(jnp.sum(w * w, -1), tuple(range(cross.ndim - 1)))
    return jnp.maximum(xx - 2 * cross + ww, 0.0)


def winner(params: Params, x) -> jax.Array:
    """The best-matching unit ``argmin_j ‖x − w_j‖``: x (..., d) -> int (...)."""
    return jnp.argmin(squared_distances(params, x), -1)


def som_update(params: Params, x, *, positions, learning_rate, radius,
               kind: str = "gaussian") -> Params:
    """Kohonen's online rule on one input x (d,): ``w_j ← w_j + α h_cj(σ) (x − w_j)``.

    ``positions`` (units, 2) from `grid`; ``learning_rate`` α and ``radius`` σ are the values at
    this step (scalars, traced or not)."""
    positions = jnp.asarray(positions, params["w"].dtype)
    c = winner(params, x)
    d2 = jnp.sum((positions - positions[c][None, :]) ** 2, -1)
    h = neighbourhood(d2, radius, kind)
    w = params["w"]
    return {"w": w + learning_rate * h[:, None] * (x[None, :] - w)}


def som_batch_update(params: Params, data, *, positions, radius,
                     kind: str = "gaussian") -> Params:
    """The batch rule over data (N, d): ``w_j ← Σ_i h_{c_i j} x_i / Σ_i h_{c_i j}``."""
    positions = jnp.asarray(positions, params["w"].dtype)
    c = winner(params, data)
    d2 = jnp.sum((positions[c][:, None, :] - positions[None, :, :]) ** 2, -1)  # (N, units)
    h = neighbourhood(d2, radius, kind)
    total = h.sum(0)
    weighted = h.T @ data
    w = params["w"]
    return {"w": jnp.where(total[:, None] > 0, weighted / jnp.maximum(total, 1e-12)[:, None], w)}


def quantization_error(params: Params, data) -> jax.Array:
    """``mean_i ‖x_i − w_c(x_i)‖`` over data (N, d)."""
    return jnp.mean(jnp.sqrt(jnp.min(squared_distances(params, data), -1)))


def topographic_error(params: Params, data, positions) -> jax.Array:
    """The share of inputs of data (N, d) whose best and second-best units are not grid
    neighbours (grid distance > 1)."""
    positions = jnp.asarray(positions, params["w"].dtype)
    _, best_two = jax.lax.top_k(-squared_distances(params, data), 2)
    gap = jnp.sum((positions[best_two[:, 0]] - positions[best_two[:, 1]]) ** 2, -1)
    return jnp.mean((gap > NEIGHBOUR_DISTANCE ** 2).astype(params["w"].dtype))


def u_matrix(params: Params, positions) -> np.ndarray:
    """Each unit's mean distance ``‖w_j − w_k‖`` to its grid neighbours k: (units,)."""
    w = np.asarray(params["w"], np.float64)
    near = (grid_distances(positions) <= NEIGHBOUR_DISTANCE ** 2) & ~np.eye(len(w), dtype=bool)
    gaps = np.sqrt(((w[:, None, :] - w[None, :, :]) ** 2).sum(-1))
    return (gaps * near).sum(1) / near.sum(1)


def label_units(params: Params, data, labels, classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(label, hits)``: each unit's majority label among the inputs it wins (−1 when it wins
    none) and its number of wins, both (units,)."""
    won = np.asarray(winner(params, jnp.asarray(data)))
    counts = np.zeros((params["w"].shape[0], classes), np.int64)
    np.add.at(counts, (won, np.asarray(labels, np.int64)), 1)
    hits = counts.sum(1)
    return np.where(hits > 0, counts.argmax(1), -1), hits


class SOMHistory(NamedTuple):
    """Per epoch (index e = after epoch e + 1), NumPy arrays: ``quantization_error`` and
    ``topographic_error`` (E,) on the training data, ``learning_rate`` and ``radius`` (E,) at the
    epoch's last step, and ``snapshots`` (S, units, d): the prototypes at the start and after each
    epoch listed in ``snapshot_epochs`` (0 is the initial map)."""

    quantization_error: np.ndarray
    topographic_error: np.ndarray
    learning_rate: np.ndarray
    radius: np.ndarray
    snapshots: np.ndarray
    snapshot_epochs: Tuple[int, ...]


def train_som(params: Params, data, *, positions, key, epochs: int, learning_rate, radius,
              kind: str = "gaussian", batch: bool = False,
              snapshot_epochs: Sequence[int] = ()) -> Tuple[Params, SOMHistory]:
    """Train a SOM on data (N, d) for ``epochs`` epochs; returns ``(params, SOMHistory)``.

    Online (default): each epoch presents the inputs in the order ``permutation(fold_in(key, e))``,
    one `som_update` per input (a jitted ``lax.scan``), at global step ``t = e·N + i``;
    ``learning_rate`` and ``radius`` are constants or schedules of t (e.g. `kohonen_decay`).
    ``batch=True``: one `som_batch_update` per epoch, the radius a schedule of the epoch
    (the learning rate is unused; ``key`` too).
    """
    data = check_patterns("train_som", data)[0]
    check_int("train_som", "epochs", epochs)
    if kind not in NEIGHBOURHOODS:
        raise ValueError(f"train_som: `kind` must be one of {NEIGHBOURHOODS}; got {kind!r}.")
    positions = jnp.asarray(positions, data.dtype)
    if positions.shape != (params["w"].shape[0], 2):
        raise ValueError(f"train_som: `positions` must have shape ({params['w'].shape[0]}, 2), "
                         f"one per unit of params['w']; got {positions.shape}.")
    n = data.shape[0]

    # data and positions are arguments, not constants baked into the compiled programs
    @jax.jit
    def online_epoch(params, epoch, data, positions):
        order = jax.random.permutation(jax.random.fold_in(key, epoch), n)

        def body(p, i):
            t = epoch * n + i
            return som_update(p, data[order[i]], positions=positions,
                              learning_rate=value_at(learning_rate, t),
                              radius=value_at(radius, t), kind=kind), None

        params, _ = jax.lax.scan(body, params, jnp.arange(n))
        last = epoch * n + n - 1
        return params, value_at(learning_rate, last), value_at(radius, last)

    @jax.jit
    def batch_epoch(params, epoch, data, positions):
        sigma = value_at(radius, epoch)
        return som_batch_update(params, data, positions=positions, radius=sigma, kind=kind), \
            jnp.zeros(()), sigma

    scores = jax.jit(lambda p, data, positions: (quantization_error(p, data),
                                                 topographic_error(p, data, positions)))
    epoch_fn = batch_epoch if batch else online_epoch
    wanted = sorted({0, *[int(e) for e in snapshot_epochs if 0 <= e <= epochs]})
    snapshots = [np.asarray(params["w"])] if 0 in wanted else []
    records = []
    for epoch in range(epochs):
        params, alpha, sigma = epoch_fn(params, epoch, data, positions)
        qe, te = scores(params, data, positions)
        records.append((float(qe), float(te), float(alpha), float(sigma)))
        if epoch + 1 in wanted:
            snapshots.append(np.asarray(params["w"]))
    qe, te, alphas, sigmas = (np.array(r) for r in zip(*records))
    return params, SOMHistory(qe, te, alphas, sigmas, np.stack(snapshots), tuple(wanted))
