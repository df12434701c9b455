"""Data augmentation: does it narrow the gap between training and validation accuracy?

The same MLP (default: 784-512-512-10 ReLU, plain SGD, no other regularization) is trained on a
small MNIST training set (1,000 digits) for the same number of epochs twice: on the images as
they are, and on randomly shifted and rotated copies drawn afresh for every batch
(`fnn.data.augment`, passed to ``fit(augment=...)``; optional Gaussian noise). Every epoch the
study measures the accuracy on the clean training images (not the augmented batches the
optimizer saw) and on held-out validation images; the gap between the two is the overfitting
augmentation should reduce. Each setting is trained ``repeats`` times (different initialization
and batch order, the same pair of keys for both settings); the data subset is drawn once.

Run it from the repository root (4 runs of 80 epochs: about 6 minutes on 2 heavily shared CPU
cores, 2.5 minutes of CPU time; ``--quick`` is a smoke run)::

    python experiments/augmentation.py configs/augmentation.toml [--out DIR] [--quick] [--no-progress]

The run folder (``runs/augmentation-<date>-<time>/`` unless ``--out``) holds ``config.toml``,
``results.json`` (every number, the config and the date), ``accuracy_curves.png`` (train and
validation accuracy per epoch, and their gap) and ``augmented_examples.png`` (digits as they
are and as the augmentation draws them).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import jax
import numpy as np

from fnn.config import Config, ConfigError, load as load_toml, to_dict
from fnn.experiment import (build, check as check_run_config, experiment_main, load_data,
                            steps_per_epoch, write_json)
from fnn.plots import available as plots_available, figure, save
from fnn.train import evaluate, fit


SETTINGS = ("plain", "augmented")


# ----------------------------------------------------------------------------- config

@dataclass(frozen=True)
class GridSpec:
    examples: int = 10  # digits shown (one per class while the classes last)
    variants: int = 4  # augmented copies drawn of each


@dataclass(frozen=True)
class AugmentationConfig(Config):
    """An `fnn run` config (its ``[augment]`` table required) plus the study's own keys."""

    repeats: int = 2  # runs per setting; run r's keys come from fold_in(runs key, r)
    grid: GridSpec = field(default_factory=GridSpec)


QUICK = {"data": {"train_size": 300, "validation_size": 1000}, "train": {"epochs": 5},
         "repeats": 1}


def load_config(path, quick: bool = False) -> AugmentationConfig:
    """Read and check a TOML config; ``quick`` shrinks the data and epochs for a smoke run."""
    cfg = load_toml(path, AugmentationConfig, overrides=QUICK if quick else None)
    check(cfg)
    return cfg


def check(cfg: AugmentationConfig):
    """`fnn.experiment.check`, plus what this study needs, naming the key."""
    parts = check_run_config(cfg)
    if parts.augment is None:
        raise ConfigError("config key `augment` must turn on at least one augmentation "
                          "(max_shift, max_degrees or noise_std).")
    if cfg.early_stopping is not None:
        raise ConfigError("config key `early_stopping` is not used here: both settings train "
                          "for train.epochs epochs; remove the table.")
    if not cfg.data.validation_size:
        raise ConfigError("config key `data.validation_size` must be positive: the gap is "
                          "measured on validation images.")
    for key, value in {"repeats": cfg.repeats, "grid.examples": cfg.grid.examples,
                       "grid.variants": cfg.grid.variants}.items():
        if value < 1:
            raise ConfigError(f"config key `{key}` must be positive; got {value}.")
    return parts


def describe(augment_cfg) -> str:
    """The augmentation in words, e.g. "shifts ±2 px, rotations ±10°"."""
    parts = [f"shifts ±{augment_cfg.max_shift} px" if augment_cfg.max_shift else "",
             f"rotations ±{augment_cfg.max_degrees:g}°" if augment_cfg.max_degrees else "",
             f"noise σ = {augment_cfg.noise_std:g}" if augment_cfg.noise_std else ""]
    return ", ".join(p for p in parts if p)


# ----------------------------------------------------------------------------- the study

def train_setting(model, params, state, data, *, loss, optimizer, key, epochs: int,
                  batch_size, augment=None, progress: bool = True, log=print) -> Dict:
    """One run: per-epoch accuracy and loss on the clean training images and on the validation
    images, the accuracy on the (possibly augmented) batches, and the final test scores."""
    clean: List[Dict[str, float]] = []

    def score_clean_training_set(epoch, logs, train_state):
        clean.append(evaluate(model, train_state.params, train_state.state, data["train"],
                              loss=loss))

    result = fit(model, params, state, data["train"], loss=loss, optimizer=optimizer, key=key,
                 epochs=epochs, batch_size=batch_size, validation_data=data["validation"],
                 augment=augment, hooks=[score_clean_training_set], progress=progress, log=log)
    test = evaluate(model, result.params, result.state, data["test"], loss=loss)
    return {
        "train_accuracy": [c["accuracy"] for c in clean],
        "train_loss": [c["loss"] for c in clean],
        "val_accuracy": result.history["val_accuracy"],
        "val_loss": result.history["val_loss"],
        "batch_accuracy": result.history["accuracy"],
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
    }


def final_numbers(run: Dict) -> Dict[str, float]:
    """The last epoch's train and validation accuracy, their gap, and the test accuracy."""
    train, val = run["train_accuracy"][-1], run["val_accuracy"][-1]
    return {"train_accuracy": train, "val_accuracy": val, "gap": train - val,
            "test_accuracy": run["test_accuracy"]}


def result_row(setting: str, runs: List[Dict]) -> Dict:
    """One row of the results table: the mean over repeats of `final_numbers`, with the
    per-repeat values."""
    finals = [final_numbers(run) for run in runs]
    row = {"setting": setting, "repeats": len(runs)}
    for name in finals[0]:
        values = [f[name] for f in finals]
        row[name] = float(np.mean(values))
        row[f"{name}_per_repeat"] = values
    return row


def run(cfg: AugmentationConfig, out, *, data=None, progress: bool = True, log=print) -> Dict:
    """Train both settings ``repeats`` times, draw the example grid; write the run folder.

    ``data`` (``{"train", "validation", "test"}: (x, y)`` pairs, images (N, H, W), integer
    labels) replaces MNIST, e.g. in tests. Returns the results that ``results.json`` holds.
    """
    parts = check(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_key, grid_key, runs_key = jax.random.split(jax.random.PRNGKey(cfg.seed), 3)
    data = load_data(cfg.data, data_key) if data is None else data
    num_classes = int(max(int(y.max()) for _, y in data.values())) + 1
    model = build(cfg, num_classes)
    loss, augment = parts.loss, parts.augment
    optimizer = parts.optimizer_for(steps_per_epoch(cfg, len(data["train"][0])))
    log(f"{cfg.name}: {len(data['train'][0])} training, {len(data['validation'][0])} "
        f"validation, {len(data['test'][0])} test images; {cfg.train.epochs} epochs, "
        f"{cfg.repeats} run(s) per setting; augmentation: {describe(cfg.augment)} -> {out}")
    started = time.perf_counter()
    runs: Dict[str, List[Dict]] = {setting: [] for setting in SETTINGS}
    for repeat in range(cfg.repeats):
        init_key, fit_key = jax.random.split(jax.random.fold_in(runs_key, repeat))
        _, params, state = model.init(init_key, (None, *data["train"][0].shape[1:]))
        for setting in SETTINGS:
            runs[setting].append(train_setting(
                model, params, state, data, loss=loss, optimizer=optimizer, key=fit_key,
                epochs=cfg.train.epochs, batch_size=cfg.train.batch_size,
                augment=augment if setting == "augmented" else None, progress=progress,
                log=log))
            log(f"repeat {repeat}, {setting}: " + "  ".join(
                f"{k} {v:.4f}" for k, v in final_numbers(runs[setting][-1]).items()))

    report = {
        "name": cfg.name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.perf_counter() - started, 1),
        "config": to_dict(cfg),
        "augmentation": describe(cfg.augment),
        "data": {split: len(x) for split, (x, _) in data.items()},
        "notes": ("train_accuracy is measured after each epoch on the clean (not augmented) "
                  "training images; batch_accuracy is fit's running accuracy on the batches "
                  "the optimizer saw (augmented in the 'augmented' setting). gap = "
                  "train_accuracy - val_accuracy after the last epoch; rows hold the mean over "
                  "repeats."),
        "rows": [result_row(setting, runs[setting]) for setting in SETTINGS],
        "runs": runs,
    }
    write_json(out / "results.json", report)
    if plots_available():
        plot_curves(report, out / "accuracy_curves.png")
        plot_examples(example_grid(data["train"], augment, grid_key, cfg.grid),
                      out / "augmented_examples.png", describe(cfg.augment))
    log(format_rows(report["rows"]))
    return report


def format_rows(rows: List[Dict]) -> str:
    lines = [f"{'setting':<10} {'train acc':>9} {'val acc':>8} {'gap':>7} {'test acc':>8}"]
    lines += [f"{r['setting']:<10} {r['train_accuracy']:>9.4f} {r['val_accuracy']:>8.4f} "
              f"{r['gap']:>7.4f} {r['test_accuracy']:>8.4f}" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots

def pick_examples(labels, count: int) -> np.ndarray:
    """Indices of ``count`` examples taking the classes in turn: the first example of each
    class, in class order, then the second of each, and so on."""
    labels = np.asarray(labels)
    rank = np.empty(len(labels), np.int64)  # position of each example within its class
    for c in np.unique(labels):
        members = labels == c
        rank[members] = np.arange(members.sum())
    return np.lexsort((labels, rank))[:count]  # by rank, then by class


def example_grid(train, augment, key, grid: GridSpec) -> np.ndarray:
    """``(1 + variants, examples, H, W)``: some training images, then augmented copies of them,
    each row drawn with its own key."""
    images = train[0][pick_examples(train[1], grid.examples)]
    rows = [images] + [np.asarray(augment(jax.random.fold_in(key, v), images))
                       for v in range(grid.variants)]
    return np.stack(rows)


def plot_examples(grid: np.ndarray, path, augmentation: str) -> Path:
    """The example grid: first row as the images are, the others as the augmentation drew them."""
    rows, columns = grid.shape[:2]
    fig = figure("augmentation", figsize=(0.95 * columns + 0.9, 0.95 * rows + 0.6),
                 layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for r in range(rows):
        for c in range(columns):
            ax = axes[r][c]
            ax.imshow(grid[r, c], cmap="gray_r", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel("original" if r == 0 else f"draw {r}", fontsize=8)
    fig.suptitle(f"training digits and augmented copies ({augmentation})", fontsize=10)
    return save(fig, path)


def plot_curves(report: Dict, path) -> Path:
    """Clean-training and validation accuracy per epoch for both settings (mean over repeats,
    each repeat faint), and their gap."""
    labels = {"plain": "no augmentation", "augmented": f"augmented ({report['augmentation']})"}
    fig = figure("augmentation", figsize=(12.0, 4.4), layout="constrained")
    acc_ax, gap_ax = fig.subplots(1, 2)
    for color, setting in zip(("C0", "C1"), SETTINGS):
        runs = report["runs"][setting]
        train = np.array([r["train_accuracy"] for r in runs])
        val = np.array([r["val_accuracy"] for r in runs])
        epochs = np.arange(1, train.shape[1] + 1)
        for t, v in zip(train, val):
            acc_ax.plot(epochs, t, color=color, alpha=0.2, linewidth=0.8)
            acc_ax.plot(epochs, v, color=color, alpha=0.2, linewidth=0.8, linestyle="--")
            gap_ax.plot(epochs, t - v, color=color, alpha=0.2, linewidth=0.8)
        acc_ax.plot(epochs, train.mean(0), color=color, label=f"{labels[setting]}: train")
        acc_ax.plot(epochs, val.mean(0), color=color, linestyle="--",
                    label=f"{labels[setting]}: validation")
        gap_ax.plot(epochs, (train - val).mean(0), color=color,
                    label=f"{labels[setting]}: final gap {(train - val).mean(0)[-1]:.1%}")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", ylim=(max(0.0, acc_ax.get_ylim()[0]), 1.005),
               title="accuracy on the clean training images and on validation images")
    gap_ax.axhline(0, color="gray", linewidth=0.8)
    gap_ax.set(xlabel="epoch", ylabel="train − validation accuracy",
               title="generalization gap")
    for ax in (acc_ax, gap_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    model, opt = report["config"]["model"], report["config"]["optimizer"]
    arch = "-".join(str(n) for n in ["in", *model["hidden"], "out"])
    fig.suptitle(f"{arch} MLP on {report['data']['train']} training images, {opt['name']} "
                 f"η = {opt['learning_rate']:g}; mean of {report['rows'][0]['repeats']} run(s) "
                 "(faint: each run)", fontsize=10)
    return save(fig, path)


# ----------------------------------------------------------------------------- command line

def main(argv=None) -> int:
    return experiment_main(argv, name="augmentation", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run, quick="300 training images, 5 epochs, one run per setting")


if __name__ == "__main__":
    sys.exit(main())
