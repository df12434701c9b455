"""Kohonen's self-organizing map (course lecture 9) on 2-D uniform data and on MNIST digits.

* Uniform data in the unit square: a rows×cols map (prototypes started at random points of the
  square) trained online with Kohonen's rule ``w_j ← w_j + α(t) h_cj(σ(t)) (x − w_j)``, Gaussian
  neighbourhood, α and σ decaying exponentially from their start to their end value over the
  run (`fnn.classic.kohonen_decay`). Frames of the map (prototypes joined to their grid
  neighbours) show it unfold; quantization and topographic errors per epoch; the batch rule on
  the same data for comparison; U-matrix and component planes of the final map.
* MNIST: a map on training digits (pixels in [0, 1]); its prototypes drawn as images, each unit
  labelled by the majority of the training digits it wins; that labelling used as a classifier
  on the test digits (the label of the winning unit). Skipped with a message when the MNIST files
  are absent.

Run it from the repository root (about a minute with MNIST; ``--quick`` a few seconds)::

    python experiments/som.py configs/som.toml [--out DIR] [--quick] [--no-progress]

The run folder holds ``config.toml``, ``results.json``, ``unfolding.png``, ``errors.png``,
``uniform_planes.png`` and, with MNIST, ``mnist_prototypes.png`` and ``mnist_umatrix.png``.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import jax
import numpy as np

from fnn import classic
from fnn.config import ConfigError, load as load_toml, to_dict
from fnn.data import load_mnist
from fnn.data.mnist import as_float
from fnn.experiment import experiment_main, write_json
from fnn.plots import available as plots_available, figure, save
from fnn.train import progress_bar


# ----------------------------------------------------------------------------- config

@dataclass(frozen=True)
class MapConfig:
    rows: int = 10
    cols: int = 10
    hexagonal: bool = False
    neighbourhood: str = "gaussian"   # gaussian | bubble
    epochs: int = 20
    lr_start: float = 0.5
    lr_end: float = 0.01
    radius_start: float = 5.0
    radius_end: float = 0.5


@dataclass(frozen=True)
class UniformConfig:
    samples: int = 1000
    map: MapConfig = field(default_factory=MapConfig)
    frames: List[int] = field(default_factory=lambda: [0, 1, 2, 5, 20])  # epochs drawn


@dataclass(frozen=True)
class MnistConfig:
    enabled: bool = True
    train_size: int = 10000
    map: MapConfig = field(default_factory=lambda: MapConfig(12, 12, epochs=10, radius_start=6.0))


@dataclass(frozen=True)
class SOMConfig:
    name: str = "som"
    seed: int = 0
    uniform: UniformConfig = field(default_factory=UniformConfig)
    mnist: MnistConfig = field(default_factory=MnistConfig)


QUICK = {"uniform": {"samples": 200, "map": {"rows": 5, "cols": 5, "epochs": 3},
                     "frames": [0, 1, 3]},
         "mnist": {"train_size": 300, "map": {"rows": 4, "cols": 4, "epochs": 1}}}


def check_map(key: str, m: MapConfig) -> None:
    for name in ("rows", "cols", "epochs"):
        if getattr(m, name) < 1:
            raise ConfigError(f"config key `{key}.{name}` must be >= 1; got {getattr(m, name)}.")
    for name in ("lr_start", "lr_end", "radius_start", "radius_end"):
        if not getattr(m, name) > 0:
            raise ConfigError(f"config key `{key}.{name}` must be > 0; got {getattr(m, name)}.")
    if m.neighbourhood not in classic.som.NEIGHBOURHOODS:
        raise ConfigError(f"config key `{key}.neighbourhood` must be one of "
                          f"{list(classic.som.NEIGHBOURHOODS)}; got {m.neighbourhood!r}.")


def load_config(path, quick: bool = False) -> SOMConfig:
    """Read and check the TOML config; ``quick`` shrinks the maps, the data and the epochs."""
    cfg = load_toml(path, SOMConfig, overrides=QUICK if quick else None)
    check_map("uniform.map", cfg.uniform.map)
    check_map("mnist.map", cfg.mnist.map)
    if cfg.uniform.samples < 2 or cfg.mnist.train_size < 2:
        raise ConfigError("config keys `uniform.samples` and `mnist.train_size` must be >= 2.")
    return cfg


# ----------------------------------------------------------------------------- training

def train_map(m: MapConfig, data, key, *, batch: bool = False, frames=()):
    """A map of ``m`` trained on data (N, d): ``(params, history, positions)``."""
    positions = classic.grid(m.rows, m.cols, m.hexagonal)
    init_key, train_key = jax.random.split(key)
    params = classic.init_som(init_key, m.rows * m.cols, data=data)
    steps = m.epochs if batch else m.epochs * len(data)  # the schedules run in updates
    params, history = classic.train_som(
        params, data, positions=positions, key=train_key, epochs=m.epochs,
        learning_rate=classic.kohonen_decay(m.lr_start, m.lr_end, steps),
        radius=classic.kohonen_decay(m.radius_start, m.radius_end, steps),
        kind=m.neighbourhood, batch=batch, snapshot_epochs=frames)
    return params, history, positions


def summary(history) -> dict:
    return {"quantization_error": history.quantization_error.tolist(),
            "topographic_error": history.topographic_error.tolist(),
            "final_quantization_error": float(history.quantization_error[-1]),
            "final_topographic_error": float(history.topographic_error[-1])}


def uniform_part(cfg: UniformConfig, key) -> dict:
    data = np.asarray(jax.random.uniform(jax.random.fold_in(key, 0), (cfg.samples, 2)))
    online = train_map(cfg.map, data, jax.random.fold_in(key, 1), frames=cfg.frames)
    batch = train_map(cfg.map, data, jax.random.fold_in(key, 1), batch=True)
    return {"data": data, "online": online, "batch": batch,
            "numbers": {"online": summary(online[1]), "batch": summary(batch[1])}}


def mnist_part(cfg: MnistConfig, key, log) -> dict:
    try:
        (x_train, y_train), (x_test, y_test) = (load_mnist(s, download=False)
                                                for s in ("train", "test"))
    except FileNotFoundError as error:
        log(f"som: MNIST skipped, its files are absent ({str(error).splitlines()[0]})")
        return {"skipped": "MNIST files not found; set FNN_DATA (see fnn.data.load_mnist)"}
    order = np.asarray(jax.random.permutation(jax.random.fold_in(key, 0), len(x_train)))
    pick = order[: cfg.train_size]
    x, y = as_float(x_train[pick], flatten=True), np.asarray(y_train[pick])
    params, history, positions = train_map(cfg.map, x, jax.random.fold_in(key, 1))
    labels, hits = classic.label_units(params, x, y, 10)
    won = np.asarray(classic.winner(params, as_float(x_test, flatten=True)))
    predicted = labels[won]
    return {"params": params, "positions": positions, "labels": labels, "hits": hits,
            "numbers": {**summary(history), "train_size": int(cfg.train_size),
                        "test_accuracy_by_unit_majority": float(np.mean(predicted == y_test)),
                        "units_never_winning": int(np.sum(hits == 0)),
                        "unit_labels": labels.tolist()}}


# ----------------------------------------------------------------------------- plots

def _draw_map(ax, w, positions, **style):
    """Prototypes as points, each joined to its grid neighbours."""
    near = classic.grid_distances(positions) <= 1 + 1e-6
    i, j = np.nonzero(np.triu(near, 1))
    for a, b in zip(i, j):
        ax.plot([w[a, 0], w[b, 0]], [w[a, 1], w[b, 1]], color="C0", lw=0.8, **style)
    ax.plot(w[:, 0], w[:, 1], ".", color="C3", ms=3)


def plot_unfolding(part: dict, m: MapConfig, path) -> Path:
    _, history, positions = part["online"]
    frames = history.snapshot_epochs
    fig = figure("plot_unfolding", figsize=(3.2 * len(frames), 3.6), layout="constrained")
    for ax, epoch, w in zip(fig.subplots(1, len(frames), squeeze=False)[0], frames,
                            history.snapshots):
        ax.scatter(part["data"][:, 0], part["data"][:, 1], s=2, color="0.8")
        _draw_map(ax, w, positions)
        title = "start" if epoch == 0 else f"after epoch {epoch}"
        if epoch:
            title += (f"\nα = {history.learning_rate[epoch - 1]:.3f}, "
                      f"σ = {history.radius[epoch - 1]:.2f}")
        ax.set(xlim=(-0.05, 1.05), ylim=(-0.05, 1.05), aspect="equal", title=title)
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"{m.rows}×{m.cols} {'hexagonal' if m.hexagonal else 'rectangular'} SOM on "
                 f"uniform 2-D data, online rule, {m.neighbourhood} neighbourhood", fontsize=11)
    return save(fig, path)


def plot_errors(numbers: dict, path) -> Path:
    fig = figure("plot_errors", figsize=(10, 3.8), layout="constrained")
    for ax, name in zip(fig.subplots(1, 2), ("quantization_error", "topographic_error")):
        for label, series in numbers.items():
            ax.plot(np.arange(1, len(series[name]) + 1), series[name], marker=".", label=label)
        ax.set(xlabel="epoch", ylabel=name.replace("_", " "), title=name.replace("_", " "))
        ax.legend(fontsize=8)
    return save(fig, path)


def plot_planes(part: dict, m: MapConfig, path) -> Path:
    params, _, positions = part["online"]
    w = np.asarray(params["w"])
    planes = {"U-matrix (mean distance to grid neighbours)": classic.u_matrix(params, positions),
              "component plane x₁": w[:, 0], "component plane x₂": w[:, 1]}
    fig = figure("plot_planes", figsize=(13, 4.0), layout="constrained")
    for ax, (title, values) in zip(fig.subplots(1, 3), planes.items()):
        im = ax.imshow(values.reshape(m.rows, m.cols), cmap="viridis", origin="lower")
        fig.colorbar(im, ax=ax)
        ax.set_title(title, fontsize=9)
        ax.set(xlabel="map column", ylabel="map row")
    return save(fig, path)


def plot_prototypes(part: dict, m: MapConfig, path) -> Path:
    w = np.asarray(part["params"]["w"]).reshape(m.rows, m.cols, 28, 28)
    fig = figure("plot_prototypes", figsize=(0.9 * m.cols, 0.95 * m.rows + 0.6),
                 layout="constrained")
    axes = fig.subplots(m.rows, m.cols, squeeze=False)
    for r in range(m.rows):
        for c in range(m.cols):
            ax = axes[r, c]
            ax.imshow(w[r, c], cmap="gray_r", vmin=0, vmax=1)
            label = part["labels"][r * m.cols + c]
            ax.set_title(str(label) if label >= 0 else "–", fontsize=8, pad=1)
            ax.axis("off")
    n = part["numbers"]
    fig.suptitle(f"SOM prototypes on {n['train_size']} MNIST digits (label: majority of the "
                 f"digits each unit wins); test accuracy by unit label "
                 f"{n['test_accuracy_by_unit_majority']:.1%}", fontsize=10)
    return save(fig, path)


def plot_mnist_umatrix(part: dict, m: MapConfig, path) -> Path:
    u = classic.u_matrix(part["params"], part["positions"]).reshape(m.rows, m.cols)
    fig = figure("plot_mnist_umatrix", figsize=(6, 5), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(u, cmap="viridis")
    fig.colorbar(im, ax=ax, label="mean distance to grid neighbours")
    for r in range(m.rows):
        for c in range(m.cols):
            label = part["labels"][r * m.cols + c]
            ax.text(c, r, str(label) if label >= 0 else "", ha="center", va="center",
                    color="white", fontsize=8)
    ax.set(title="U-matrix of the MNIST map (bright: borders between clusters)",
           xlabel="map column", ylabel="map row")
    return save(fig, path)


# ----------------------------------------------------------------------------- run

def run(cfg: SOMConfig, out_dir, *, progress: bool = True, log=print) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    key = jax.random.PRNGKey(cfg.seed)
    bar = progress_bar(2, "som", progress, unit="part")
    uniform = uniform_part(cfg.uniform, jax.random.fold_in(key, 0))
    if bar is not None:
        bar.update(1)
    mnist = (mnist_part(cfg.mnist, jax.random.fold_in(key, 1), log) if cfg.mnist.enabled
             else {"skipped": "mnist.enabled = false"})
    if bar is not None:
        bar.update(1)
        bar.close()
    report = {"name": cfg.name, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "seconds": round(time.perf_counter() - started, 1), "config": to_dict(cfg),
              "uniform": uniform["numbers"],
              "mnist": mnist.get("numbers", {"skipped": mnist.get("skipped")})}
    write_json(out / "results.json", report)
    if plots_available():
        plot_unfolding(uniform, cfg.uniform.map, out / "unfolding.png")
        plot_errors(uniform["numbers"], out / "errors.png")
        plot_planes(uniform, cfg.uniform.map, out / "uniform_planes.png")
        if "numbers" in mnist:
            plot_prototypes(mnist, cfg.mnist.map, out / "mnist_prototypes.png")
            plot_mnist_umatrix(mnist, cfg.mnist.map, out / "mnist_umatrix.png")
    u = report["uniform"]
    log(f"uniform: online QE {u['online']['final_quantization_error']:.4f} TE "
        f"{u['online']['final_topographic_error']:.3f}; batch QE "
        f"{u['batch']['final_quantization_error']:.4f} TE "
        f"{u['batch']['final_topographic_error']:.3f}")
    if "numbers" in mnist:
        n = mnist["numbers"]
        log(f"mnist: QE {n['final_quantization_error']:.3f} TE {n['final_topographic_error']:.3f}"
            f", test accuracy by unit majority {n['test_accuracy_by_unit_majority']:.4f}")
    return report


def main(argv=None) -> int:
    return experiment_main(argv, name="som", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run,
                           quick="5×5 map on 200 points for 3 epochs, 4×4 map on 300 digits")


if __name__ == "__main__":
    sys.exit(main())
