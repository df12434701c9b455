"""Optimizer comparison: the course's MNIST MLP trained with every optimizer at a tuned step size.

The 784-300-100-10 ReLU MLP (He-normal weights, zero biases) is trained on MNIST (55,000 training
images; 5,000 more held out for validation; tested on the 10,000 test images) with each optimizer
the config lists (by default SGD, SGD + momentum 0.9, Nesterov, Adagrad, Adadelta, RMSprop, Adam,
AdamW, Adamax, Nadam, Rprop and sign-SGD). For each optimizer

1. a learning-rate sweep: a short run (``sweep.epochs`` on ``sweep.train_size`` training images) at
   every point of a log grid ``centre × sweep.factors`` around the method's usual default, scored
   by validation accuracy (ties broken by validation loss);
2. the chosen learning rate trained for the full budget (``train.epochs``), from the same initial
   parameters and with the same batch order as every other optimizer, recording the training loss
   and accuracy (means over the epoch's mini-batches) and the validation loss and accuracy after
   every epoch; then tested once.

Rprop is a full-batch method: its steps adapt to sign changes of the gradient, which mini-batch
noise flips at random. A single full batch would give it one step per epoch, so the default config
runs it on large batches (5,500 images, 10 steps per epoch) instead.

Run it from the repository root (7 minutes of CPU time: about 13 minutes on 2 busy CPU cores;
``--quick``, a smoke run, takes 1.5 minutes of CPU time)::

    python experiments/optimizer_comparison.py configs/optimizer_comparison.toml \
        [--out DIR] [--quick] [--no-progress]
    python experiments/optimizer_comparison.py --replot RUN_FOLDER   # redraw the PNGs

The run folder (``runs/optimizer_comparison-<date>-<time>/`` unless ``--out``) holds
``config.toml``, ``results.json`` (every number, the config and the date), ``table.md`` (the
results table), ``learning_curves.png`` and ``lr_sweep.png``.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import jax
import numpy as np

from fnn import activations, init
from fnn.config import ConfigError, DataConfig, OptimizerConfig, Scalar, load as load_toml
from fnn.experiment import (experiment_main, jsonable, load_data, make_optimizer, read_results,
                            write_json)
from fnn.models import mlp
from fnn.plots import available as plots_available, figure, save
from fnn.train import evaluate, fit, progress_bar


LOSS = "softmax_cross_entropy"
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")  # what fit logs per epoch


# ----------------------------------------------------------------------------- config

@dataclass(frozen=True)
class DataSpec:
    validation_size: int = 5000  # held out of the 60,000 MNIST training images
    train_size: int = 0  # training images used (0: all the rest, 55,000)


@dataclass(frozen=True)
class ModelSpec:
    hidden: List[int] = field(default_factory=lambda: [300, 100])
    activation: str = "relu"
    w_init: str = "he_normal"


@dataclass(frozen=True)
class TrainSpec:
    epochs: int = 15
    batch_size: int = 64  # every optimizer's batch size unless its entry sets one
    target_accuracy: float = 0.97  # the table reports the first epoch reaching this val accuracy


@dataclass(frozen=True)
class SweepSpec:
    train_size: int = 10000  # training images of each sweep run (the first of a fixed shuffle)
    epochs: int = 2
    factors: List[float] = field(default_factory=lambda: [0.1, 0.316, 1.0, 3.16, 10.0])


@dataclass(frozen=True)
class OptimizerRun:
    """One ``[[optimizers]]`` entry: an `fnn.optim` alias, the centre of its learning-rate grid
    and its batch size; every other key is passed to the alias (e.g. ``momentum = 0.9``)."""

    name: str
    learning_rate: float  # centre of the sweep grid: the method's usual default
    label: str = ""  # how plots and tables name it (default: name)
    batch_size: int = 0  # 0: train.batch_size
    options: Dict[str, Scalar] = field(default_factory=dict)
    EXTRA_KEYS = "options"  # where from_dict puts the keys this schema does not name

    @property
    def title(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class OptimizerComparisonConfig:
    name: str = "optimizer_comparison"
    seed: int = 0
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    sweep: SweepSpec = field(default_factory=SweepSpec)
    optimizers: List[OptimizerRun] = field(default_factory=list)


QUICK = {"data": {"train_size": 5000}, "train": {"epochs": 2},
         "sweep": {"train_size": 1000, "epochs": 1}}


def load_config(path, quick: bool = False) -> OptimizerComparisonConfig:
    """Read and check a TOML config; ``quick`` shrinks the data and epochs for a smoke run."""
    cfg = load_toml(path, OptimizerComparisonConfig, overrides=QUICK if quick else None)
    check(cfg)
    return cfg


def _require(ok: bool, key: str, must: str, value) -> None:
    if not ok:
        raise ConfigError(f"config key `{key}` must {must}; got {value}.")


def check(cfg: OptimizerComparisonConfig) -> None:
    """Reject values the schema's types cannot catch, naming the key."""
    positive = {"data.validation_size": cfg.data.validation_size, "train.epochs": cfg.train.epochs,
                "train.batch_size": cfg.train.batch_size, "sweep.train_size": cfg.sweep.train_size,
                "sweep.epochs": cfg.sweep.epochs}
    for key, value in positive.items():
        _require(value >= 1, key, "be positive", value)
    _require(cfg.data.train_size >= 0, "data.train_size", "be >= 0 (0: all)", cfg.data.train_size)
    _require(all(h >= 1 for h in cfg.model.hidden), "model.hidden", "list positive sizes",
             cfg.model.hidden)
    _require(0 < cfg.train.target_accuracy <= 1, "train.target_accuracy", "be in (0, 1]",
             cfg.train.target_accuracy)
    factors = cfg.sweep.factors
    _require(bool(factors) and all(f > 0 for f in factors) and len(set(factors)) == len(factors),
             "sweep.factors", "list distinct positive numbers", factors)
    for key, resolve, value in (("model.activation", activations.get, cfg.model.activation),
                                ("model.w_init", init.get, cfg.model.w_init)):
        try:
            resolve(value)
        except ValueError as error:
            raise ConfigError(f"config key `{key}`: {error}") from None
    _require(bool(cfg.optimizers), "optimizers", "list at least one [[optimizers]] entry", "none")
    titles = [run.title for run in cfg.optimizers]
    _require(len(set(titles)) == len(titles), "optimizers", "have distinct labels", titles)
    for i, run in enumerate(cfg.optimizers):
        _require(run.batch_size >= 0, f"optimizers[{i}].batch_size",
                 "be >= 0 (0: train.batch_size)", run.batch_size)
        for factor in factors:
            build_optimizer(run, run.learning_rate * factor, f"optimizers[{i}]")


def build_optimizer(run: OptimizerRun, learning_rate: float, key: str = "optimizers"):
    """The optimizer of ``run`` at ``learning_rate``; a bad name or option raises a `ConfigError`
    naming ``key`` (e.g. ``optimizers[3].momentum``)."""
    try:
        return make_optimizer(OptimizerConfig(run.name, learning_rate, dict(run.options)))
    except ConfigError as error:
        raise ConfigError(str(error).replace("`optimizer", f"`{key}")) from None


def batch_size(run: OptimizerRun, train: TrainSpec) -> int:
    return run.batch_size or train.batch_size


def build_model(spec: ModelSpec, num_classes: int):
    return mlp([*spec.hidden, num_classes], activation=spec.activation, w_init=spec.w_init)


# ----------------------------------------------------------------------------- learning-rate sweep

def learning_rate_grid(centre: float, factors) -> List[float]:
    """``centre × factor`` for every factor, smallest first."""
    return sorted(centre * f for f in factors)


Score = Callable[[float], Dict[str, float]]  # learning rate -> {"val_accuracy", "val_loss"}


def sweep(learning_rates, score: Score) -> List[Dict[str, float]]:
    """``score`` every learning rate: ``[{"learning_rate", "val_accuracy", "val_loss"}, ...]``."""
    return [{"learning_rate": lr, **score(lr)} for lr in learning_rates]


def _rank(point: Dict[str, float]):
    """Higher validation accuracy first, then lower validation loss; NaN ranks last."""
    accuracy, loss = point["val_accuracy"], point["val_loss"]
    return (accuracy if math.isfinite(accuracy) else -math.inf,
            -loss if math.isfinite(loss) else -math.inf)


def best_point(points: List[Dict[str, float]]) -> Dict[str, float]:
    """The sweep point with the best validation score (the smaller learning rate on a full tie)."""
    return max(points, key=_rank)  # max keeps the first of equal ranks


# ----------------------------------------------------------------------------- training

def epochs_to_reach(values, target: float) -> Optional[int]:
    """The first epoch (from 1) whose value is ``>= target``; None if none is."""
    return next((epoch for epoch, v in enumerate(values, 1) if v >= target), None)


def train_and_validate(model, params, state, train, validation, optimizer, *, epochs: int,
                       batch: int, key, on_epoch=None) -> Dict:
    """`fnn.train.fit` without a progress bar of its own: the final parameters, the metrics of
    every epoch and the seconds it took (compilation and validation included)."""
    def after_epoch(epoch, logs, train_state) -> None:  # returns None: never stops training
        on_epoch()

    hooks = [] if on_epoch is None else [after_epoch]
    started = time.perf_counter()
    result = fit(model, params, state, train, loss=LOSS, optimizer=optimizer, key=key,
                 epochs=epochs, batch_size=batch, validation_data=validation, hooks=hooks,
                 progress=False)
    return {"params": result.params, "state": result.state,
            "history": {k: result.history[k] for k in HISTORY_KEYS},
            "seconds": time.perf_counter() - started}


def sweep_score(model, params, state, data, run: OptimizerRun, cfg: OptimizerComparisonConfig,
                key, on_epoch=None) -> Score:
    """The sweep's score of ``run``: train on ``data["sweep"]`` for ``sweep.epochs`` epochs and
    return the validation accuracy and loss of the last epoch."""
    def score(learning_rate: float) -> Dict[str, float]:
        trained = train_and_validate(
            model, params, state, data["sweep"], data["validation"],
            build_optimizer(run, learning_rate), epochs=cfg.sweep.epochs,
            batch=batch_size(run, cfg.train), key=key, on_epoch=on_epoch)
        return {"val_accuracy": trained["history"]["val_accuracy"][-1],
                "val_loss": trained["history"]["val_loss"][-1]}

    return score


def tune_and_train(model, params, state, data, run: OptimizerRun, cfg: OptimizerComparisonConfig,
                   key, on_epoch=None, score: Optional[Score] = None) -> Dict:
    """Sweep ``run``'s learning rate, then train the best one for the full budget and test it.

    ``score`` replaces the sweep's short training runs (e.g. in tests)."""
    grid = learning_rate_grid(run.learning_rate, cfg.sweep.factors)
    score = score or sweep_score(model, params, state, data, run, cfg, key, on_epoch)
    points = sweep(grid, score)
    chosen = best_point(points)["learning_rate"]
    trained = train_and_validate(
        model, params, state, data["train"], data["validation"], build_optimizer(run, chosen),
        epochs=cfg.train.epochs, batch=batch_size(run, cfg.train), key=key, on_epoch=on_epoch)
    test = evaluate(model, trained["params"], trained["state"], data["test"], loss=LOSS)
    history = trained["history"]
    return {
        "label": run.title,
        "optimizer": run.name,
        "options": dict(run.options),
        "batch_size": batch_size(run, cfg.train),
        "sweep": points,
        "learning_rate": chosen,
        "chosen_at_grid_edge": chosen in (grid[0], grid[-1]),
        "history": history,
        "epochs_to_target": epochs_to_reach(history["val_accuracy"], cfg.train.target_accuracy),
        "best_val_accuracy": max(history["val_accuracy"]),
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "train_seconds": round(trained["seconds"], 1),
    }


# ----------------------------------------------------------------------------- the study

def prepare_data(cfg: OptimizerComparisonConfig, key) -> Dict:
    """MNIST as x / 255: the training split, the validation split, the test set."""
    return load_data(DataConfig(dataset="mnist", scaling="minmax", per_feature=False,
                                validation_size=cfg.data.validation_size,
                                train_size=cfg.data.train_size), key)


def with_sweep_subset(data: Dict, size: int, key) -> Dict:
    """``data`` plus ``"sweep"``: ``size`` training examples drawn without replacement."""
    x, y = data["train"]
    pick = np.asarray(jax.random.permutation(key, len(x)))[:size]
    return {**data, "sweep": (x[pick], y[pick])}


def run(cfg: OptimizerComparisonConfig, out, *, data=None, progress: bool = True,
        log=print) -> Dict:
    """Tune and train every optimizer of the config; write the run folder; return the results.

    ``data`` (``{"train", "validation", "test"}`` pairs of inputs and integer labels) replaces
    MNIST, e.g. in tests.
    """
    check(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_key, init_key, fit_key, sweep_key = jax.random.split(jax.random.PRNGKey(cfg.seed), 4)
    data = prepare_data(cfg, data_key) if data is None else data
    data = with_sweep_subset(data, min(cfg.sweep.train_size, len(data["train"][0])), sweep_key)
    num_classes = int(max(int(y.max()) for y in (data["train"][1], data["test"][1]))) + 1
    model = build_model(cfg.model, num_classes)
    _, params, state = model.init(init_key, (None, *data["train"][0].shape[1:]))

    grid_size = len(cfg.sweep.factors)
    epochs_per_optimizer = grid_size * cfg.sweep.epochs + cfg.train.epochs
    bar = progress_bar(len(cfg.optimizers) * epochs_per_optimizer, enabled=progress, unit="epoch")
    log(f"{cfg.name}: {len(cfg.optimizers)} optimizers x ({grid_size}-point sweep of "
        f"{cfg.sweep.epochs} epoch(s) on {len(data['sweep'][0])} images + {cfg.train.epochs} "
        f"epochs on {len(data['train'][0])}), {len(data['validation'][0])} validation and "
        f"{len(data['test'][0])} test images -> {out}")
    started = time.perf_counter()
    results: Dict[str, Dict] = {}
    for opt in cfg.optimizers:
        if bar is not None:
            bar.set_description(opt.title)
        results[opt.title] = tune_and_train(
            model, params, state, data, opt, cfg, fit_key,
            on_epoch=None if bar is None else lambda: bar.update(1))
        _report_progress(bar, results[opt.title], log)
    if bar is not None:
        bar.close()

    report = jsonable({
        "name": cfg.name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.perf_counter() - started, 1),
        "config": dataclasses.asdict(cfg),
        "data": {split: len(x) for split, (x, _) in data.items()},
        "notes": ("Every optimizer starts from the same initial parameters and sees the same "
                  "batch order (seed). history: per epoch, loss/accuracy are means over the "
                  "epoch's training mini-batches (while training), val_loss/val_accuracy are "
                  "measured on the validation split after the epoch. epochs_to_target: first "
                  "epoch with val_accuracy >= train.target_accuracy (null: never). "
                  "train_seconds: wall time of the full run, compilation and validation "
                  "included, on shared cores. null stands for NaN or inf."),
        "summary": summary_rows(results),
        "results": results,
    })
    write_json(out / "results.json", report)
    table = format_table(report)
    (out / "table.md").write_text(table + "\n")
    plot_all(report, out)
    log(table)
    return report


def _report_progress(bar, result: Dict, log) -> None:
    text = f"lr={result['learning_rate']:.3g} test_acc={result['test_accuracy']:.4f}"
    if bar is not None:
        bar.set_postfix_str(text)
    else:
        log(f"{result['label']:>22}: {text}")


def summary_rows(results: Dict[str, Dict]) -> List[Dict]:
    keys = ("learning_rate", "chosen_at_grid_edge", "batch_size", "test_accuracy", "test_loss",
            "epochs_to_target", "best_val_accuracy", "train_seconds")
    return [{"label": label, **{k: r[k] for k in keys}} for label, r in results.items()]


def format_table(report: Dict) -> str:
    """The results as a Markdown table, best test accuracy first."""
    train = report["config"]["train"]
    target, epochs = train["target_accuracy"], train["epochs"]
    rows = sorted(report["summary"], key=lambda r: -(r["test_accuracy"] or 0))
    lines = [f"| optimizer | learning rate | batch | test accuracy | epochs to {target:.0%} "
             f"validation accuracy |", "|---|---|---|---|---|"]
    for r in rows:
        reached = r["epochs_to_target"] or f"not in {epochs}"
        edge = " (grid edge)" if r["chosen_at_grid_edge"] else ""
        lines.append(f"| {r['label']} | {r['learning_rate']:.3g}{edge} | {r['batch_size']} | "
                     f"{100 * (r['test_accuracy'] or 0):.2f} % | {reached} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots

def plot_all(report: Dict, out) -> None:
    """Draw the PNGs of a run folder from its results (``--replot`` redraws them)."""
    if not plots_available():
        return
    plot_learning_curves(report, Path(out) / "learning_curves.png")
    plot_sweep(report, Path(out) / "lr_sweep.png")


def _styles(labels) -> Dict[str, Dict]:
    """A distinct colour (and, past ten, a dashed line) for each optimizer."""
    return {label: {"color": f"C{i % 10}", "linestyle": "-" if i < 10 else "--"}
            for i, label in enumerate(labels)}


def _series(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], np.float64)


def plot_learning_curves(report: Dict, path) -> Path:
    """Validation loss and validation accuracy against the epoch, one line per optimizer, on one
    figure; the legend (best test accuracy first) gives each optimizer's η and test accuracy."""
    from matplotlib.ticker import MaxNLocator

    results = report["results"]
    order = sorted(results, key=lambda k: -(results[k]["test_accuracy"] or 0))
    styles = _styles(list(results))
    target = report["config"]["train"]["target_accuracy"]
    default_batch = report["config"]["train"]["batch_size"]
    fig = figure("plot_learning_curves", figsize=(13, 5.2), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    for label in order:
        r = results[label]
        epochs = np.arange(1, len(r["history"]["val_loss"]) + 1)
        batch = "" if r["batch_size"] == default_batch else f", batch {r['batch_size']}"
        text = (f"{label}, η={r['learning_rate']:.2g}{batch}: "
                f"{100 * (r['test_accuracy'] or 0):.2f} %")
        for ax, key in ((loss_ax, "val_loss"), (acc_ax, "val_accuracy")):
            ax.plot(epochs, _series(r["history"][key]), marker="o", ms=2.5, lw=1.4,
                    label=text, **styles[label])
    acc_low, acc_high = _zoom(results, "val_accuracy", low_pct=5, high_pct=100)
    acc_ax.set_ylim(max(0.0, min(acc_low, target) - 0.005), min(1.0, max(acc_high, target) + 0.003))
    acc_ax.axhline(target, color="black", lw=0.9, ls=":", label=f"target {target:.0%}")
    loss_low, loss_high = _zoom(results, "val_loss", low_pct=0, high_pct=75)
    loss_ax.set_ylim(0.9 * loss_low, 3 * loss_high)
    for ax, key in ((loss_ax, "val_loss"), (acc_ax, "val_accuracy")):
        _note_off_scale(ax, results, key)
    loss_ax.set_yscale("log")
    loss_ax.set(xlabel="epoch", ylabel="validation loss (cross-entropy, log scale)",
                title="validation loss")
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = acc_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8.5,
               title="optimizer, η: test accuracy", title_fontsize=8.5)
    data, train = report["data"], report["config"]["train"]
    fig.suptitle(f"MNIST {'-'.join(map(str, [784, *report['config']['model']['hidden'], 10]))} "
                 f"MLP, {data['train']:,} training images, batch {train['batch_size']} unless the "
                 f"legend says otherwise, η tuned per optimizer", fontsize=10)
    return save(fig, path)


def _zoom(results: Dict, key: str, low_pct: float, high_pct: float):
    """Percentiles of every optimizer's ``history[key]`` pooled: a y range that one runaway
    curve does not squash."""
    values = np.concatenate([_series(r["history"][key]) for r in results.values()])
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    return float(np.percentile(values, low_pct)), float(np.percentile(values, high_pct))


def _note_off_scale(ax, results: Dict, key: str) -> None:
    """Name, inside the panel, the optimizers whose curve leaves its y range (or is NaN)."""
    low, high = ax.get_ylim()
    notes = []
    for label, r in results.items():
        values = _series(r["history"][key])
        if not np.isfinite(values).all():
            notes.append(f"{label}: NaN")
        elif values.max() > high:
            notes.append(f"{label}: up to {values.max():.3g}")
        elif values.min() < low:
            notes.append(f"{label}: down to {values.min():.3g}")
    if notes:  # bottom right under accuracy curves, top right over loss curves
        bottom = key.endswith("accuracy")
        ax.text(0.98, 0.02 if bottom else 0.98, "off scale: " + "; ".join(notes),
                transform=ax.transAxes, ha="right", va="bottom" if bottom else "top", fontsize=8,
                bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"})


def plot_sweep(report: Dict, path) -> Path:
    """Validation accuracy after the sweep's short runs against the learning rate, one panel per
    optimizer; the chosen η is starred, the grid centre (the usual default) dashed."""
    results = report["results"]
    columns = min(4, len(results))
    rows = math.ceil(len(results) / columns)
    fig = figure("plot_sweep", figsize=(3.4 * columns, 2.7 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    centres = {r.get("label") or r["name"]: r["learning_rate"]
               for r in report["config"]["optimizers"]}
    for ax, (label, r) in zip(axes, results.items()):
        lrs = [p["learning_rate"] for p in r["sweep"]]
        accuracy = _series([p["val_accuracy"] for p in r["sweep"]])
        ax.plot(lrs, accuracy, "o-", color="C0", ms=4)
        chosen = lrs.index(r["learning_rate"])
        ax.plot(lrs[chosen], accuracy[chosen], "*", color="C3", ms=13, label="chosen")
        if label in centres:
            ax.axvline(centres[label], color="gray", lw=0.8, ls="--", label="grid centre")
        for lr, acc in zip(lrs, accuracy):
            ax.annotate(f"{acc:.3f}", (lr, acc), textcoords="offset points", xytext=(0, 5),
                        ha="center", fontsize=6.5)
        ax.set_xscale("log")
        ax.margins(y=0.25)
        ax.set_title(f"{label} (batch {r['batch_size']})", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.tick_params(labelsize=7.5)
    for ax in axes[len(results):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.supxlabel("learning rate η (log scale)", fontsize=9)
    fig.supylabel("validation accuracy", fontsize=9)
    sweep, data = report["config"]["sweep"], report["data"]
    fig.suptitle(f"learning-rate sweep: {sweep['epochs']} epoch(s) on {data['sweep']:,} training "
                 f"images, scored on {data['validation']:,} validation images", fontsize=10)
    return save(fig, path)


# ----------------------------------------------------------------------------- command line

def _replot(folder: Path) -> None:
    report = read_results(folder)
    plot_all(report, folder)
    print(format_table(report))


def main(argv=None) -> int:
    return experiment_main(argv, name="optimizer_comparison", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run, quick="5,000 training images, 2 epochs, a 1-epoch sweep on 1,000", replot=_replot)


if __name__ == "__main__":
    sys.exit(main())
