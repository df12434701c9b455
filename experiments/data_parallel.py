"""Data-parallel training on several processes: a worked example of `fnn.parallel` on one machine.

The launcher starts ``processes`` copies of this script, each with ``devices_per_process`` CPU
devices (``XLA_FLAGS=--xla_force_host_platform_device_count``). Each copy joins the job with
``fnn.parallel.initialize`` (``jax.distributed`` over gloo, the coordinator on localhost), builds
the same ``fnn.parallel.mesh()`` over every process's devices, takes its own shard of the
training set (``fnn.parallel.process_shard``) and calls ``fnn.fit(..., mesh=mesh)``: every step
joins the processes' batches into one global batch split over all the devices. The launcher then
trains the same model on all the shards in one process with one device, and compares.

With ``train.batch_size = "full"`` both runs take the same gradient steps, so their parameters
agree to float32 rounding (the sums over the batch are reduced in another order): the check the
test makes. Rounding differences grow where training is chaotic (a learning rate at the edge of
stability, where the loss goes up and down), so the config keeps a rate at which the loss falls
at every epoch; ``results.json`` gives the largest difference of the losses, epoch by epoch. With mini-batches each process shuffles its own shard, so the batches, and the
parameters, differ from the single process's, while the accuracy should not.

    python experiments/data_parallel.py configs/data_parallel.toml [--out DIR] [--quick] [--no-progress]

The run folder holds ``config.toml``, ``results.json`` (both runs' losses and accuracies, the
largest parameter difference, the date) and ``curves.png``.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fnn.config import ConfigError, load as load_toml, to_dict
from fnn.experiment import experiment_main, write_json

QUICK = {"train": {"epochs": 3}, "data": {"samples": 240}}


@dataclass(frozen=True)
class JobConfig:
    processes: int = 2
    devices_per_process: int = 2


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "circles"
    samples: int = 800
    noise: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    hidden: list = field(default_factory=lambda: [64, 64])
    epochs: int = 300
    batch_size: object = "full"
    learning_rate: float = 0.1
    momentum: float = 0.9


@dataclass(frozen=True)
class DataParallelConfig:
    name: str = "data_parallel"
    seed: int = 0
    job: JobConfig = field(default_factory=JobConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load_config(path, quick: bool = False) -> DataParallelConfig:
    cfg = load_toml(path, DataParallelConfig, overrides=QUICK if quick else None)
    if cfg.job.processes < 1 or cfg.job.devices_per_process < 1:
        raise ConfigError("config keys `job.processes` and `job.devices_per_process` must be >= 1; "
                          f"got {cfg.job.processes} and {cfg.job.devices_per_process}.")
    if cfg.data.samples < 2 * cfg.job.processes:
        raise ConfigError(f"config key `data.samples` = {cfg.data.samples} is too few for "
                          f"{cfg.job.processes} processes.")
    return cfg


def train(cfg: DataParallelConfig, *, mesh=None, shard=slice(None)):
    """Train the config's MLP on ``shard`` of the data (all of it by default) with SGD and
    momentum (Adam would turn the rounding noise of near-zero gradient components into steps of
    the full learning rate, so two reduction orders would drift apart by more than rounding)."""
    import jax
    import fnn

    x, y = getattr(fnn.data, cfg.data.dataset)(jax.random.PRNGKey(cfg.seed), cfg.data.samples,
                                              cfg.data.noise)
    x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
    used = fnn.parallel.process_shard(len(x), 0, cfg.job.processes)  # equal shards, remainder out
    x, y = x[: used.stop * cfg.job.processes], y[: used.stop * cfg.job.processes]
    model = fnn.models.mlp([*cfg.train.hidden, int(y.max()) + 1])
    _, params, state = model.init(jax.random.PRNGKey(cfg.seed + 1), (None, x.shape[1]))
    batch_size = len(x) if cfg.train.batch_size == "full" else cfg.train.batch_size
    result = fnn.fit(model, params, state, (x[shard], y[shard]), loss="softmax_cross_entropy",
                     optimizer=fnn.optim.sgd(cfg.train.learning_rate, cfg.train.momentum),
                     key=jax.random.PRNGKey(cfg.seed + 2), epochs=cfg.train.epochs,
                     batch_size=batch_size, mesh=mesh, progress=False)
    return result


def worker(config_path: str, quick: bool, process_id: int, address: str, out: str) -> None:
    """One process of the job: join, train on its shard over the global mesh, and (process 0)
    write what it learned."""
    cfg = load_config(config_path, quick)
    import fnn.parallel

    fnn.parallel.initialize(address, cfg.job.processes, process_id)
    import jax

    mesh = fnn.parallel.mesh()
    started = time.perf_counter()
    shard = fnn.parallel.process_shard(cfg.data.samples - cfg.data.samples % cfg.job.processes)
    result = train(cfg, mesh=mesh, shard=shard)
    seconds = time.perf_counter() - started
    if process_id == 0:
        leaves = [np.asarray(a) for a in jax.tree_util.tree_leaves(result.params)]
        np.savez(Path(out) / "parallel_params.npz", *leaves)
        (Path(out) / "parallel.json").write_text(json.dumps(
            {"history": result.history, "seconds": seconds, "devices": len(jax.devices()),
             "local_devices": len(jax.local_devices())}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run(cfg: DataParallelConfig, out: Path, *, progress: bool = True, config_path=None,
        quick=False) -> dict:
    address = f"localhost:{_free_port()}"
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={cfg.job.devices_per_process}"}
    print(f"{cfg.name}: {cfg.job.processes} processes × {cfg.job.devices_per_process} CPU devices, "
          f"coordinator {address}", flush=True)
    started = time.perf_counter()
    jobs = [subprocess.Popen([sys.executable, __file__, "--worker", str(config_path), str(int(quick)),
                              str(i), address, str(out)], env=env)
            for i in range(cfg.job.processes)]
    codes = [job.wait(timeout=900) for job in jobs]
    if any(codes):
        raise RuntimeError(f"{cfg.name}: a worker process failed (exit codes {codes}).")
    parallel = json.loads((out / "parallel.json").read_text())
    print(f"job done in {time.perf_counter() - started:.1f}s; now one process, one device", flush=True)

    import jax

    single = train(cfg)
    mine = [np.asarray(a) for a in jax.tree_util.tree_leaves(single.params)]
    theirs = list(np.load(out / "parallel_params.npz").values())
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(mine, theirs))
    results = {
        "name": cfg.name, "processes": cfg.job.processes, "devices": parallel["devices"],
        "batch_size": cfg.train.batch_size, "epochs": cfg.train.epochs,
        "parallel": {"final_loss": parallel["history"]["loss"][-1],
                     "final_accuracy": parallel["history"]["accuracy"][-1],
                     "seconds": round(parallel["seconds"], 1)},
        "single": {"final_loss": single.history["loss"][-1],
                   "final_accuracy": single.history["accuracy"][-1]},
        "max_parameter_difference": difference,
        "max_loss_difference": float(np.max(np.abs(np.asarray(single.history["loss"])
                                                    - np.asarray(parallel["history"]["loss"])))),
        "date": time.strftime("%Y-%m-%d"), "config": to_dict(cfg),
    }
    write_json(out / "results.json", results)
    from fnn import plots

    if plots.available():
        fig = plots.figure("data_parallel", figsize=(6, 4))
        ax = fig.add_subplot()
        ax.plot(range(1, cfg.train.epochs + 1), single.history["loss"], label="1 process, 1 device")
        ax.plot(range(1, cfg.train.epochs + 1), parallel["history"]["loss"], "--",
                label=f"{cfg.job.processes} processes, {parallel['devices']} devices")
        ax.set(xlabel="epoch", ylabel="training loss", title=f"{cfg.name}: the same training")
        ax.legend()
        plots.save(fig, out / "curves.png")
    print(f"largest parameter difference {difference:.2e}; final loss "
          f"{results['single']['final_loss']:.4f} (1 process) vs "
          f"{results['parallel']['final_loss']:.4f} ({cfg.job.processes} processes)")
    return results


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        worker(argv[1], bool(int(argv[2])), int(argv[3]), argv[4], argv[5])
        return 0
    state = {}

    def load(path, quick=False):
        state.update(path=path, quick=quick)
        return load_config(path, quick)

    return experiment_main(
        argv, name="data_parallel", description=__doc__.splitlines()[0], load_config=load,
        run=lambda cfg, out, progress: run(cfg, Path(out), progress=progress,
                                           config_path=state["path"], quick=state["quick"]),
        quick="3 epochs on 240 points")


if __name__ == "__main__":
    sys.exit(main())
