"""Segmentation: a small fully convolutional network labels every pixel of MNIST digits pasted
on larger canvases (lab 3).

Data (`fnn.data.canvas.digit_canvases`): ``canvas.train_count`` canvases of size × size pixels
made from the MNIST training digits and ``canvas.test_count`` from the test digits, each with 1
to ``max_digits`` digits at random places; the per-pixel mask is 0 for background and d + 1 for
a stroke pixel of digit d (11 classes). The model is `fnn.models.fcn` from the registry
(``[model] kind = "fcn"``: 3×3 convolutions with BatchNorm and ReLU, 2×2 max pooling per
stage, a 1×1 convolution to the 11 class scores and one transposed convolution back to the
canvas size), trained with `fnn.fit` on the per-pixel softmax cross-entropy (summed over the
pixels of a canvas).

Reported on the test canvases: pixel accuracy, the intersection over union per class
``IoU_c = TP/(TP + FP + FN)`` and its mean, and the same for foreground vs background (digit
classes merged). ``predictions.png`` draws test canvases, their true masks and the predicted
ones; ``curves.png`` the training curves.

    python experiments/segmentation.py configs/segmentation.toml [--out DIR] [--quick] [--no-progress]
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict

import jax
import numpy as np

from fnn import metrics, plots
from fnn.config import (Config, ConfigError, ModelConfig, OptimizerConfig, TrainConfig,
                        load as load_toml, to_dict)
from fnn.data import load_mnist
from fnn.data.canvas import digit_canvases, segmentation_scores
from fnn.experiment import (build, check as check_run_config, experiment_main, train_config,
                            write_json)
from fnn.train import evaluate, predict

QUICK = {"canvas": {"train_count": 64, "test_count": 16, "size": 32},
         "model": {"options": {"widths": [4, 4]}},  # two stages (stride 4) compile faster
         "train": {"epochs": 1, "batch_size": 32}, "plot": {"examples": 3}}


@dataclass(frozen=True)
class CanvasConfig:
    size: int = 40  # pixels per side; a multiple of the FCN's total stride 2^len(widths)
    train_count: int = 3000  # canvases made from the MNIST training digits
    test_count: int = 500  # canvases made from the MNIST test digits
    min_digits: int = 1
    max_digits: int = 2
    threshold: float = 0.5  # a digit pixel above it is labelled with the digit's class


@dataclass(frozen=True)
class PlotConfig:
    examples: int = 6  # test canvases drawn


@dataclass(frozen=True)
class SegmentationConfig:
    name: str = "segmentation"
    seed: int = 0
    canvas: CanvasConfig = field(default_factory=CanvasConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(kind="fcn"))
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    plot: PlotConfig = field(default_factory=PlotConfig)

    def run_config(self) -> Config:
        return Config(name=self.name, seed=self.seed, model=self.model, optimizer=self.optimizer,
                      train=self.train)


CLASSES = 11  # background + ten digits


def load_config(path, quick: bool = False) -> SegmentationConfig:
    cfg = load_toml(path, SegmentationConfig, overrides=QUICK if quick else None)
    check(cfg)
    return cfg


def check(cfg: SegmentationConfig):
    parts = check_run_config(cfg.run_config())
    if cfg.model.kind not in ("fcn", "deconvnet"):
        raise ConfigError(f"config key `model.kind` must be 'fcn' or 'deconvnet' (a per-pixel "
                          f"network); got {cfg.model.kind!r}.")
    c = cfg.canvas
    for key, value in {"canvas.train_count": c.train_count, "canvas.test_count": c.test_count,
                       "plot.examples": cfg.plot.examples}.items():
        if value < 1:
            raise ConfigError(f"config key `{key}` must be >= 1; got {value}.")
    stride = 2 ** len(cfg.model.options.get("widths", (16, 32)))
    if c.size < 28 or c.size % stride:
        raise ConfigError(f"config key `canvas.size` must be >= 28 and a multiple of the "
                          f"network's stride {stride}; got {c.size}.")
    return parts


def make_data(cfg: SegmentationConfig, digits=None) -> Dict:
    """``{"train": (canvases, masks), "test": ...}`` from ``digits`` (``{"train": (x, y),
    "test": (x, y)}``, grey digits in [0, 255] or [0, 1]) or MNIST."""
    if digits is None:
        digits = {split: load_mnist(split) for split in ("train", "test")}
    c, out = cfg.canvas, {}
    for i, split in enumerate(("train", "test")):
        x, y = digits[split]
        x = np.asarray(x, np.float32)
        x = x / 255.0 if x.max() > 1.0 else x
        out[split] = digit_canvases(x, y, count=getattr(c, f"{split}_count"), size=c.size,
                                    min_digits=c.min_digits, max_digits=c.max_digits,
                                    threshold=c.threshold, seed=cfg.seed * 2 + i)
    return out


def foreground_scores(confusion) -> dict:
    """`segmentation_scores` of the 2×2 confusion matrix background vs any digit."""
    cm = np.asarray(confusion, np.float64)
    merged = np.array([[cm[0, 0], cm[0, 1:].sum()], [cm[1:, 0].sum(), cm[1:, 1:].sum()]])
    return segmentation_scores(merged)


def run(cfg: SegmentationConfig, out, *, digits=None, progress: bool = True, log=print) -> Dict:
    parts = check(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = make_data(cfg, digits)
    run_cfg = cfg.run_config()
    model = build(run_cfg, CLASSES)
    log(f"{cfg.name}: {cfg.model.kind} on {len(data['train'][0])} canvases of "
        f"{cfg.canvas.size}×{cfg.canvas.size}, {cfg.train.epochs} epochs -> {out}")
    result = train_config(run_cfg, model, parts, data["train"], progress=progress, log=log)
    x_test, m_test = data["test"]
    test = evaluate(model, result.params, result.state, data["test"], loss=parts.loss)
    predicted = np.asarray(predict(model, result.params, result.state, x_test)).argmax(-1)
    # jitted: one compiled program for the integer counts instead of one per eager op
    cm = np.asarray(jax.jit(metrics.confusion_matrix, static_argnums=2)(
        m_test.ravel(), predicted.ravel(), CLASSES))
    scores = segmentation_scores(cm)
    report = {
        "name": cfg.name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.perf_counter() - started, 1),
        "config": to_dict(cfg),
        "classes": ["background", *[f"digit {d}" for d in range(10)]],
        "test_loss_per_canvas": test["loss"],
        **scores,
        "foreground": foreground_scores(cm),
        "background_share": float((m_test == 0).mean()),
        "confusion_matrix": cm,
        "history": result.history,
    }
    write_json(out / "results.json", report)
    if plots.available():
        plots.plot_history(result.history, out / "curves.png", title=f"{cfg.name}: training")
        plot_predictions(x_test, m_test, predicted, cfg.plot.examples, out / "predictions.png",
                         f"{cfg.model.kind} on test canvases: pixel accuracy "
                         f"{scores['pixel_accuracy']:.1%}, mean IoU {scores['mean_iou']:.2f} "
                         f"(foreground IoU {report['foreground']['iou'][1]:.2f})")
    log(f"pixel accuracy {scores['pixel_accuracy']:.4f}, mean IoU {scores['mean_iou']:.4f}, "
        f"foreground IoU {report['foreground']['iou'][1]:.4f}")
    return report


def plot_predictions(canvases, masks, predicted, examples: int, path, title: str) -> Path:
    from matplotlib.colors import ListedColormap

    n = min(examples, len(canvases))
    colors = ["#ffffff", *[plots_color(i) for i in range(10)]]
    cmap = ListedColormap(colors)
    fig = plots.figure("plot_predictions", figsize=(2.1 * n, 6.6), layout="constrained")
    axes = fig.subplots(3, n, squeeze=False)
    for j in range(n):
        axes[0, j].imshow(canvases[j], cmap="gray_r")
        axes[1, j].imshow(masks[j], cmap=cmap, vmin=-0.5, vmax=10.5, interpolation="nearest")
        im = axes[2, j].imshow(predicted[j], cmap=cmap, vmin=-0.5, vmax=10.5,
                               interpolation="nearest")
        for i, row in enumerate(("canvas", "true mask", "predicted")):
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if j == 0:
                axes[i, j].set_ylabel(row)
    bar = fig.colorbar(im, ax=list(axes[1:].ravel()), ticks=range(11), shrink=0.9)
    bar.ax.set_yticklabels(["bg", *map(str, range(10))])
    fig.suptitle(title, fontsize=9)
    return plots.save(fig, path)


def plots_color(i: int) -> str:
    from matplotlib import colormaps

    r, g, b, _ = colormaps["tab10"](i)
    return "#{:02x}{:02x}{:02x}".format(int(255 * r), int(255 * g), int(255 * b))


def main(argv=None) -> int:
    return experiment_main(argv, name="segmentation", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run,
                           quick="64 canvases of 32×32, a two-stage FCN of width 4, 1 epoch")


if __name__ == "__main__":
    sys.exit(main())
