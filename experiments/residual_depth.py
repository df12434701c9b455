"""ResNet against a plain CNN of the same depth: the degradation problem (He et al. 2015).

Two families of small CNNs on MNIST digits, built from ``[[model.layers]]`` lists through
`fnn.models.registry` (the same path as ``fnn run`` with ``kind = "layers"``), for every depth
D in ``depths`` (D weight layers: a stem, 2·B convolutions, a dense output, B = (D − 2)/2):

* plain:    conv_bn(w, 3×3, stride 2) → max pool 2 → [conv_bn(w, 3×3) → conv_bn(w, 3×3)] × B
            → global average pool → Dense(10)
* residual: the same, each pair of convolutions a `basic_block` with an identity shortcut,
            ``y = ReLU(BN(conv(ReLU(BN(conv(x))))) + x)``

(conv_bn = 3×3 convolution without bias → BatchNorm → ReLU). Both see the same batches from
the same seed. ``curves.png`` plots the training loss per epoch of every run (log scale) and the
last epoch's training loss against depth: the plain network's loss rises with depth, the
residual one keeps training.

    python experiments/residual_depth.py configs/residual_depth.toml [--out DIR] [--quick] [--no-progress]
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import numpy as np

from fnn import plots
from fnn.config import (Config, ConfigError, DataConfig, ModelConfig, OptimizerConfig,
                        TrainConfig, load as load_toml, to_dict)
from fnn.experiment import (build, check as check_run_config, experiment_main, load_data,
                            num_classes, run_keys, train_config, write_json)
from fnn.train import evaluate

QUICK = {"data": {"train_size": 128}, "depths": [4], "width": 4, "train": {"epochs": 2}}


@dataclass(frozen=True)
class DepthConfig:
    name: str = "residual_depth"
    seed: int = 0
    depths: List[int] = field(default_factory=lambda: [6, 18, 34])  # weight layers, even, >= 4
    width: int = 8  # filters of every convolution
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load_config(path, quick: bool = False) -> DepthConfig:
    cfg = load_toml(path, DepthConfig, overrides=QUICK if quick else None)
    check(cfg)
    return cfg


def layer_specs(kind: str, depth: int, width: int) -> List[Dict]:
    """The ``[[model.layers]]`` tables of the ``kind`` ("plain" or "residual") network with
    ``depth`` weight layers."""
    blocks = (depth - 2) // 2
    if kind == "plain":
        body = [{"type": "conv_bn", "features": width, "kernel_size": 3}
                for _ in range(2 * blocks)]
    else:
        body = [{"type": "basic_block", "features": width} for _ in range(blocks)]
    return [{"type": "conv_bn", "name": "stem", "features": width, "kernel_size": 3,
             "strides": 2},
            {"type": "max_pool2d", "name": "pool", "window": 2},
            *body,
            {"type": "global_avg_pool", "name": "gap"},
            {"type": "dense", "name": "output", "units": 10}]


def run_config(cfg: DepthConfig, kind: str, depth: int) -> Config:
    return Config(name=f"{kind}{depth}", seed=cfg.seed, data=cfg.data,
                  model=ModelConfig(kind="layers", layers=layer_specs(kind, depth, cfg.width)),
                  optimizer=cfg.optimizer, train=cfg.train)


def check(cfg: DepthConfig):
    bad = [d for d in cfg.depths if d < 4 or d % 2]
    if bad or not cfg.depths:
        raise ConfigError(f"config key `depths` must list even depths >= 4; got {cfg.depths}.")
    if cfg.width < 1:
        raise ConfigError(f"config key `width` must be >= 1; got {cfg.width}.")
    return check_run_config(run_config(cfg, "residual", cfg.depths[0]))


def run(cfg: DepthConfig, out, *, data=None, progress: bool = True, log=print) -> Dict:
    parts = check(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = load_data(cfg.data, run_keys(cfg.seed)[0]) if data is None else data
    classes = num_classes(data)
    runs = {}
    for depth in cfg.depths:
        for kind in ("plain", "residual"):
            rc = run_config(cfg, kind, depth)
            model = build(rc, classes)
            log(f"{kind} CNN, {depth} weight layers, on {len(data['train'][0])} digits")
            result = train_config(rc, model, parts, data["train"], progress=progress, log=log)
            test = evaluate(model, result.params, result.state, data["test"], loss=parts.loss)
            runs[f"{kind}{depth}"] = {
                "kind": kind, "depth": depth, "train_loss": result.history["loss"],
                "train_accuracy": result.history.get("accuracy"),
                "final_train_loss": result.history["loss"][-1],
                "test_loss": test["loss"], "test_accuracy": test["accuracy"]}
    report = {"name": cfg.name, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "seconds": round(time.perf_counter() - started, 1), "config": to_dict(cfg),
              "train_examples": len(data["train"][0]), "runs": runs}
    write_json(out / "results.json", report)
    if plots.available():
        plot_curves(report, out / "curves.png")
    for name, r in runs.items():
        log(f"{name:>12}: final training loss {r['final_train_loss']:.4f}, "
            f"test accuracy {r['test_accuracy']:.4f}")
    return report


def plot_curves(report: Dict, path) -> Path:
    runs, depths = report["runs"], report["config"]["depths"]
    fig = plots.figure("residual_depth", figsize=(15, 4.4), layout="constrained")
    ax_plain, ax_res, ax_depth = fig.subplots(1, 3)
    colors = {d: f"C{i}" for i, d in enumerate(depths)}
    for ax, kind in ((ax_plain, "plain"), (ax_res, "residual")):
        for d in depths:
            loss = runs[f"{kind}{d}"]["train_loss"]
            ax.plot(np.arange(1, len(loss) + 1), loss, color=colors[d], marker="o", ms=3,
                    label=f"{d} layers")
        ax.set(yscale="log", xlabel="epoch", ylabel="training loss",
               title=f"{kind} CNN")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    lo = min(min(ax.get_ylim()[0] for ax in (ax_plain, ax_res)), 1)
    hi = max(ax.get_ylim()[1] for ax in (ax_plain, ax_res))
    for ax in (ax_plain, ax_res):
        ax.set_ylim(lo, hi)
    for kind, marker in (("plain", "s"), ("residual", "o")):
        ax_depth.plot(depths, [runs[f"{kind}{d}"]["final_train_loss"] for d in depths],
                      marker=marker, label=kind)
    ax_depth.set(yscale="log", xlabel="depth (weight layers)",
                 ylabel="training loss, last epoch", title="loss against depth")
    ax_depth.grid(alpha=0.3, which="both")
    ax_depth.legend()
    cfg = report["config"]
    fig.suptitle(f"plain vs residual CNNs of width {cfg['width']} on {report['train_examples']} "
                 f"MNIST digits, {cfg['optimizer']['name']} η = "
                 f"{cfg['optimizer']['learning_rate']:g}, batch {cfg['train']['batch_size']}",
                 fontsize=10)
    return plots.save(fig, path)


def main(argv=None) -> int:
    return experiment_main(argv, name="residual_depth", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run,
                           quick="128 digits, depth 4, width 4, 2 epochs")


if __name__ == "__main__":
    sys.exit(main())
