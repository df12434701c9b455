"""Data-parallel (and optionally model-parallel) training on JAX's own sharding engine.

A `mesh` arranges the devices on two named axes, ``"data"`` and ``"model"``. `fnn.fit(...,
mesh=mesh)` then splits every batch over ``"data"`` (each device computes the gradient of its
share; XLA's partitioner adds the all-reduce), keeps the parameters, layer state and optimizer
state replicated (or, with ``shard_params=True``, splits large kernels over ``"model"``), and
pads a batch whose size is not a multiple of the ``"data"`` axis with masked rows, so no example
is dropped. Reductions over the batch (the loss, the metrics, BatchNorm's batch statistics) are
global: the result is the single-device result up to the order of floating-point sums.

No `pmap` and no per-device code: ``jax.jit`` compiles one program for the whole mesh from the
shardings of its inputs (``NamedSharding``) and the constraint on each batch
(`jax.lax.with_sharding_constraint`). On CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
(set before JAX is imported) gives eight devices to try it with.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fnn.checks import check_int

DATA, MODEL = "data", "model"


def mesh(data: Optional[int] = None, model: int = 1, *, devices: Optional[Sequence] = None) -> Mesh:
    """A device mesh of shape (data, model) over ``devices`` (default: every device of every
    process, `jax.devices()`); ``data`` defaults to all devices divided by ``model``."""
    devices = list(jax.devices() if devices is None else devices)
    model = check_int("mesh", "model", model)
    data = len(devices) // model if data is None else check_int("mesh", "data", data)
    if data * model != len(devices) or data < 1:
        raise ValueError(f"mesh: `data` × `model` must equal the number of devices "
                         f"({len(devices)}); got data={data}, model={model}.")
    return Mesh(np.asarray(devices).reshape(data, model), (DATA, MODEL))


def check_mesh(where: str, value) -> Mesh:
    """``value`` if it is a `Mesh` with a ``"data"`` axis, else a ValueError naming ``where``."""
    if not isinstance(value, Mesh) or DATA not in value.axis_names:
        raise ValueError(f"{where}: `mesh` must be a jax.sharding.Mesh with a {DATA!r} axis, such "
                         f"as fnn.parallel.mesh(); got {value!r:.80}.")
    return value


def data_size(mesh_: Mesh) -> int:
    """The number of devices along the ``"data"`` axis."""
    return int(mesh_.shape[DATA])


def padded_batch_size(batch_size: int, mesh_: Mesh) -> int:
    """The smallest multiple of the ``"data"`` axis that holds ``batch_size`` examples."""
    return math.ceil(batch_size / data_size(mesh_)) * data_size(mesh_)


def replicated(mesh_: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh_, PartitionSpec())


def batch_sharding(mesh_: Mesh, axis: int = 0) -> NamedSharding:
    """Axis ``axis`` (the examples) split over ``"data"``."""
    return NamedSharding(mesh_, PartitionSpec(*([None] * axis), DATA))


def param_sharding(params, mesh_: Mesh, *, shard_params: bool = False):
    """Shardings for a parameter pytree: replicated, or with ``shard_params`` each array of rank
    >= 2 whose last axis divides evenly over ``"model"`` split along that axis (a dense or
    convolution kernel's output features), the rest replicated."""
    parts = int(mesh_.shape.get(MODEL, 1))

    def one(leaf):
        shape = np.shape(leaf)
        if shard_params and parts > 1 and len(shape) >= 2 and shape[-1] % parts == 0:
            return NamedSharding(mesh_, PartitionSpec(*([None] * (len(shape) - 1)), MODEL))
        return replicated(mesh_)

    return jax.tree_util.tree_map(one, params)


def place(tree, shardings):
    """``tree``'s arrays put on the devices as ``shardings`` (a sharding or a matching tree)."""
    return jax.device_put(tree, shardings)


def constrain_batch(batch, mesh_: Mesh, axis: int = 0):
    """Inside a compiled function: split every array of ``batch`` over ``"data"`` along ``axis``."""
    return jax.tree_util.tree_map(
        lambda a: jax.lax.with_sharding_constraint(a, batch_sharding(mesh_, axis)), batch)


def initialize(coordinator_address: str, num_processes: int, process_id: int) -> None:
    """Join a multi-process (multi-host) run, before any other JAX call: `jax.distributed.
    initialize`, with CPU devices exchanging data over gloo. Every process then sees all the
    processes' devices in `jax.devices()`, builds the same `mesh`, and gives `fnn.fit` its own
    shard of the training data (`process_shard`)."""
    if jax.config.jax_platforms in (None, "", "cpu") or "cpu" in str(jax.config.jax_platforms):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes=num_processes,
                               process_id=process_id)


def process_shard(num_examples: int, process_id: Optional[int] = None,
                  num_processes: Optional[int] = None) -> slice:
    """The examples process ``process_id`` of ``num_processes`` trains on (default: this process
    of the running job): contiguous and of equal size, ``num_examples // num_processes`` each
    (the remainder is left out, so that every process runs the same number of steps)."""
    process_id = jax.process_index() if process_id is None else process_id
    num_processes = jax.process_count() if num_processes is None else num_processes
    per = num_examples // num_processes
    return slice(process_id * per, (process_id + 1) * per)


def gather_to_host(tree):
    """``tree``'s arrays as NumPy arrays in this process, whole: an array split over other
    processes' devices is gathered from them (`jax.experimental.multihost_utils.
    process_allgather`; every process must call it), a local one is copied to the host."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def global_steps(xs, mesh_: Mesh):
    """This process's part of K steps' batches, ``(rows (K, b, ...), mask (K, b), steps (K,))``,
    as global arrays: the batches (K, b·P, ...) split over ``"data"`` along axis 1, the step
    numbers replicated (every process passes the same)."""
    rows, mask, steps = xs
    split = batch_sharding(mesh_, axis=1)
    make = jax.make_array_from_process_local_data
    return (jax.tree_util.tree_map(lambda a: make(split, np.asarray(a)), rows),
            make(split, np.asarray(mask)), make(replicated(mesh_), np.asarray(steps)))
