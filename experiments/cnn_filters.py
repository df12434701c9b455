"""Lab 3: what a small CNN's first layer learns, the feature maps of one digit, and an edge filter.

A CNN from the registry (default: LeNet-5, ``[model] kind = "lenet5"``) is trained briefly on
MNIST with the ordinary `fnn run` machinery (`fnn.experiment.train_config`). Then:

* ``filters.png``: the learned first-layer kernels (K×K×1 each, one panel per filter; a shared
  colour scale centred on 0, red positive, blue negative);
* ``feature_maps.png``: one test digit and the outputs of the children ``[plot] maps_after``
  of the network (by default the activations after C1 and C3): ``a = f(w ⋆ x + b)`` for each
  filter, computed by running the network's children in order up to that one;
* ``edge.png``: the course's edge-detection kernel ``K = −1`` everywhere but ``8`` in the
  centre (3×3, its entries sum to 0: flat regions give 0, strokes' borders give large ±
  responses) applied to the same digit as a fixed `fnn.layers.Conv2D` (padding "SAME", no bias);
  K is symmetric, so correlation and true convolution (kernel rotated 180°) agree.

Run it from the repository root (a few minutes on 2 shared CPU cores; ``--quick`` is a smoke
run)::

    python experiments/cnn_filters.py configs/cnn_filters.toml [--out DIR] [--quick] [--no-progress]

The run folder holds ``config.toml``, ``results.json`` (test accuracy, kernels, edge-response
statistics, the date) and the three PNGs.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import jax
import jax.numpy as jnp
import numpy as np

from fnn.config import (Config, ConfigError, DataConfig, ModelConfig, OptimizerConfig,
                        TrainConfig, load as load_toml, to_dict)
from fnn.experiment import (build, check as check_run_config, experiment_main, load_data,
                            num_classes, run_keys, train_config, write_json)
from fnn.layers import Conv2D
from fnn.plots import available as plots_available, figure, save
from fnn.train import evaluate

EDGE_KERNEL = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], np.float32)

QUICK = {"data": {"train_size": 300, "validation_size": 0}, "train": {"epochs": 1}}


@dataclass(frozen=True)
class PlotConfig:
    digit: int = 0  # index of the test image shown
    maps_after: List[str] = field(default_factory=lambda: ["c1_act", "c3_act"])


@dataclass(frozen=True)
class FiltersConfig:
    name: str = "cnn_filters"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(kind="lenet5"))
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    plot: PlotConfig = field(default_factory=PlotConfig)

    def run_config(self) -> Config:
        """The `fnn run` config of the training part."""
        return Config(name=self.name, seed=self.seed, data=self.data, model=self.model,
                      optimizer=self.optimizer, train=self.train)


def load_config(path, quick: bool = False) -> FiltersConfig:
    cfg = load_toml(path, FiltersConfig, overrides=QUICK if quick else None)
    check(cfg)
    return cfg


def check(cfg: FiltersConfig):
    parts = check_run_config(cfg.run_config())
    if cfg.model.kind in ("mlp", "layers"):
        raise ConfigError(f"config key `model.kind` must name a CNN of fnn.models.registry "
                          f"(e.g. 'lenet5'); got {cfg.model.kind!r}.")
    if cfg.plot.digit < 0:
        raise ConfigError(f"config key `plot.digit` must be >= 0; got {cfg.plot.digit}.")
    return parts


def network(model):
    """``(input_layer, net)``: the registry's ``ImageInput`` and the network proper."""
    children = dict(model.layers)
    return children["input"], children["model"]


def first_kernel(net, params) -> np.ndarray:
    """The first child convolution's kernel (K, K', C, F), in the order of ``net.layers``."""
    for name, child in net.layers:
        if child.kind == "conv2d":
            return np.asarray(params[name]["w"])
    raise ValueError(f"{net.name} has no Conv2D child: no first-layer filters to draw.")


def feature_maps(model, params, state, image, names) -> Dict[str, np.ndarray]:
    """``{name: (H, W, F) maps}``: the output for one ``image`` of each child ``names`` of the
    network, running its children in order (evaluation mode)."""
    input_layer, net = network(model)
    known = [name for name, _ in net.layers]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"feature_maps: {net.name} has no child {unknown[0]!r}; it has "
                         f"{', '.join(known)}.")
    @jax.jit  # one compiled program instead of one per eager op of every child
    def maps_of(params, state, image):
        x, _ = input_layer.apply({}, {}, image[None])
        maps = {}
        for name, child in net.layers:
            if len(maps) == len(names):
                break
            x, _ = child.apply(params["model"][name], state["model"][name], x)
            if name in names:
                maps[name] = x[0]
        return maps

    return {name: np.asarray(m) for name, m in maps_of(params, state, jnp.asarray(image)).items()}


def edge_response(image) -> np.ndarray:
    """The course's edge kernel (−1 around 8) applied to one (H, W) image by a fixed
    `fnn.layers.Conv2D` with "SAME" padding and no bias: (H, W)."""
    layer = Conv2D(1, 3, padding="SAME", use_bias=False)
    y, _ = jax.jit(layer.apply)(  # one compiled program instead of one per eager op
        {"w": np.asarray(EDGE_KERNEL, np.float32)[:, :, None, None]}, {},
        np.asarray(image, np.float32)[None, :, :, None])
    return np.asarray(y)[0, :, :, 0]  # indexed on the host: no program


def edge_statistics(image, edges) -> Dict[str, float]:
    """Range of the edge response, its mean |value| on flat regions (pixels whose 3×3
    neighbourhood is all background: exactly 0, the kernel's entries sum to 0), on stroke
    borders (the other pixels within one pixel of a stroke) and overall."""
    background = image == image.min()
    padded = np.pad(background, 1, constant_values=True)
    flat = np.lib.stride_tricks.sliding_window_view(padded, (3, 3)).all(axis=(-2, -1))
    magnitude = np.abs(edges)
    return {"min": float(edges.min()), "max": float(edges.max()),
            "mean_abs_on_flat_regions": float(magnitude[flat].mean()),
            "mean_abs_near_strokes": float(magnitude[~flat].mean()),
            "mean_abs_overall": float(magnitude.mean())}


def run(cfg: FiltersConfig, out, *, data=None, progress: bool = True, log=print) -> Dict:
    """Train, draw, write ``results.json``; ``data`` replaces MNIST (tests)."""
    parts = check(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run_cfg = cfg.run_config()
    data = load_data(cfg.data, run_keys(cfg.seed)[0]) if data is None else data
    model = build(run_cfg, num_classes(data))
    log(f"{cfg.name}: {cfg.model.kind} on {len(data['train'][0])} training images, "
        f"{cfg.train.epochs} epochs -> {out}")
    result = train_config(run_cfg, model, parts, data["train"], data.get("validation"),
                          progress=progress, log=log)
    test = evaluate(model, result.params, result.state, data["test"], loss=parts.loss)
    x_test, y_test = data["test"]
    if cfg.plot.digit >= len(x_test):
        raise ConfigError(f"config key `plot.digit` = {cfg.plot.digit} is past the "
                          f"{len(x_test)} test images.")
    image = np.asarray(x_test[cfg.plot.digit]).reshape(x_test.shape[1:3])
    _, net = network(model)
    kernels = first_kernel(net, result.params["model"])
    maps = feature_maps(model, result.params, result.state, x_test[cfg.plot.digit],
                        cfg.plot.maps_after)
    edges = edge_response(image)
    report = {
        "name": cfg.name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.perf_counter() - started, 1),
        "config": to_dict(cfg),
        "train_examples": len(data["train"][0]),
        "test_loss": test["loss"], "test_accuracy": test["accuracy"],
        "digit": {"index": cfg.plot.digit, "label": int(y_test[cfg.plot.digit])},
        "first_layer_kernels": kernels,  # (K, K', C, F)
        "feature_map_shapes": {name: list(m.shape) for name, m in maps.items()},
        "edge_kernel": EDGE_KERNEL,
        "edge_response": edge_statistics(image, edges),
        "history": result.history,
    }
    write_json(out / "results.json", report)
    if plots_available():
        label = f"test digit {cfg.plot.digit} (label {report['digit']['label']})"
        plot_filters(kernels, out / "filters.png",
                     f"{cfg.model.kind}: learned first-layer filters after {cfg.train.epochs} "
                     f"epoch(s) (test accuracy {test['accuracy']:.2%})")
        plot_feature_maps(image, maps, out / "feature_maps.png", f"{cfg.model.kind}, {label}")
        plot_edges(image, edges, out / "edge.png", label)
    log(f"test accuracy {test['accuracy']:.4f}; {kernels.shape[-1]} first-layer filters; "
        f"edge response in [{edges.min():.2f}, {edges.max():.2f}]")
    return report


# ----------------------------------------------------------------------------- plots

def _grid(n: int, columns: int):
    columns = min(columns, n)
    return -(-n // columns), columns


def plot_filters(kernels, path, title: str) -> Path:
    k = np.asarray(kernels)[:, :, 0, :]  # first input channel: (K, K', F)
    rows, cols = _grid(k.shape[-1], 8)
    fig = figure("plot_filters", figsize=(1.6 * cols + 0.8, 1.7 * rows + 0.6),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    bound = float(np.abs(k).max()) or 1.0
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i < k.shape[-1]:
            im = ax.imshow(k[:, :, i], cmap="RdBu_r", vmin=-bound, vmax=bound)
            ax.set_title(f"filter {i}", fontsize=8)
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="weight")
    fig.suptitle(title, fontsize=9)
    return save(fig, path)


def plot_feature_maps(image, maps: Dict[str, np.ndarray], path, title: str) -> Path:
    cols = max(m.shape[-1] for m in maps.values()) if maps else 1
    cols = min(cols, 8)
    rows_per = {name: _grid(m.shape[-1], cols)[0] for name, m in maps.items()}
    rows = 1 + sum(rows_per.values())
    fig = figure("plot_feature_maps", figsize=(1.4 * cols + 0.5, 1.5 * rows + 0.5),
                 layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    axes[0, 0].imshow(image, cmap="gray_r")
    axes[0, 0].set_title("input", fontsize=8)
    row = 1
    for name, m in maps.items():
        for f in range(m.shape[-1]):
            ax = axes[row + f // cols, f % cols]
            ax.imshow(m[:, :, f], cmap="viridis")
            ax.set_title(f"{name} {f}", fontsize=7)
        row += rows_per[name]
    fig.suptitle(f"feature maps: {title}", fontsize=9)
    return save(fig, path)


def plot_edges(image, edges, path, title: str) -> Path:
    fig = figure("plot_edges", figsize=(11, 3.4), layout="constrained")
    a0, a1, a2, a3 = fig.subplots(1, 4)
    a0.imshow(image, cmap="gray_r")
    a0.set_title(title, fontsize=9)
    a1.imshow(EDGE_KERNEL, cmap="RdBu_r", vmin=-8, vmax=8)
    for (r, c), v in np.ndenumerate(EDGE_KERNEL):
        a1.text(c, r, f"{v:g}", ha="center", va="center", fontsize=12,
                color="white" if v > 0 else "black")
    a1.set_title("edge kernel: −1 around 8", fontsize=9)
    bound = float(np.abs(edges).max()) or 1.0
    im = a2.imshow(edges, cmap="RdBu_r", vmin=-bound, vmax=bound)
    a2.set_title("K ⋆ x (SAME padding)", fontsize=9)
    fig.colorbar(im, ax=a2, shrink=0.8)
    a3.imshow(np.abs(edges), cmap="gray_r")
    a3.set_title("|K ⋆ x|: the edges", fontsize=9)
    for ax in (a0, a1, a2, a3):
        ax.set_axis_off()
    return save(fig, path)


def main(argv=None) -> int:
    return experiment_main(argv, name="cnn_filters", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run,
                           quick="300 training images, 1 epoch, no validation")


if __name__ == "__main__":
    sys.exit(main())
