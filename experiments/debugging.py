"""Debugging a network with the course's checklist: the overfit check and the training monitor.

Two tools of `fnn.monitor`, each run on a healthy set-up and on broken ones (default: a
784-128×6-10 ReLU MLP with He initialization on MNIST, plain SGD):

1. ``overfit_check``: can the network memorize 50 training images in 200 full-batch steps? A
   sane learning rate passes; a learning rate of 1e-6, or hidden biases initialized at −10 (every
   ReLU unit dead from the start), fail.
2. ``Monitor`` as a ``fit`` hook: per layer, after every epoch, the gradient norm, the
   update-to-weight ratio ‖Δw‖/‖w‖, the fraction of dead ReLU units, and the weight and
   activation variance, on a fixed probe batch; then ``diagnose``'s warnings for every record.
   A sane learning rate keeps the ratio inside the band 1e-4..1e-2 (no warnings); a tiny one
   leaves it below, a too-large one above (and more units die).

Each case is a table of the config (name, learning rate, initial hidden bias), so new cases need
no code. Run it from the repository root (about 35 s on 2 heavily shared CPU cores, 16 s of CPU
time; ``--quick`` is a smoke run)::

    python experiments/debugging.py configs/debugging.toml [--out DIR] [--quick] [--no-progress]

The run folder (``runs/debugging-<date>-<time>/`` unless ``--out``) holds ``config.toml``,
``results.json`` (every number, the config and the date), ``warnings.txt`` (the monitor's
warnings, case by case and epoch by epoch), ``overfit_check.png``, ``update_ratio.png`` (the
ratio of every case side by side) and ``monitor_<case>.png`` (every statistic of one case).
"""
from __future__ import annotations

import dataclasses
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import jax
import jax.numpy as jnp
import numpy as np

from fnn import activations, init
from fnn.config import ConfigError, load as load_toml
from fnn.experiment import experiment_main, jsonable, write_json
from fnn.models import mlp
from fnn.monitor import Monitor, diagnose, overfit_check
from fnn.optim import sgd
from fnn.plots import HEALTHY_UPDATE_RATIO, available as plots_available, figure, plot_monitor, save
from fnn.train import fit


LOSS = "softmax_cross_entropy"


# ----------------------------------------------------------------------------- config

@dataclass(frozen=True)
class Case:
    """One set-up to check: plain SGD with ``learning_rate``; every hidden unit's bias starts at
    ``hidden_bias`` (a large negative value makes every ReLU output 0: dead units)."""

    name: str = ""  # required
    learning_rate: float = 0.0  # required
    hidden_bias: float = 0.0


@dataclass(frozen=True)
class ModelSpec:
    hidden: List[int] = field(default_factory=lambda: [128] * 6)
    activation: str = "relu"
    w_init: str = "he_normal"


@dataclass(frozen=True)
class OverfitSpec:
    examples: int = 50  # training images to memorize
    steps: int = 200  # full-batch steps
    cases: List[Case] = field(default_factory=lambda: [
        Case("sane", 0.1), Case("tiny learning rate", 1e-6), Case("dead ReLUs", 0.1, -10.0)])


@dataclass(frozen=True)
class MonitorSpec:
    train_size: int = 2000  # training images
    probe_size: int = 256  # other training images the statistics are measured on
    epochs: int = 10
    batch_size: int = 64
    cases: List[Case] = field(default_factory=lambda: [
        Case("sane", 0.01), Case("tiny learning rate", 1e-5), Case("too large", 0.5)])


@dataclass(frozen=True)
class DebuggingConfig:
    name: str = "debugging"
    seed: int = 0
    model: ModelSpec = field(default_factory=ModelSpec)
    overfit: OverfitSpec = field(default_factory=OverfitSpec)
    monitor: MonitorSpec = field(default_factory=MonitorSpec)


QUICK = {"overfit": {"steps": 50}, "monitor": {"train_size": 500, "epochs": 3}}


def load_config(path, quick: bool = False) -> DebuggingConfig:
    """Read and check a TOML config; ``quick`` shortens the training for a smoke run."""
    cfg = load_toml(path, DebuggingConfig, overrides=QUICK if quick else None)
    check(cfg)
    return cfg


def check(cfg: DebuggingConfig) -> None:
    """Reject values the schema's types cannot catch, naming the key."""
    positive = {"overfit.examples": cfg.overfit.examples, "overfit.steps": cfg.overfit.steps,
                "monitor.train_size": cfg.monitor.train_size,
                "monitor.probe_size": cfg.monitor.probe_size,
                "monitor.epochs": cfg.monitor.epochs,
                "monitor.batch_size": cfg.monitor.batch_size}
    positive.update({f"model.hidden[{i}]": units for i, units in enumerate(cfg.model.hidden)})
    for table in ("overfit", "monitor"):
        cases = getattr(cfg, table).cases
        if not cases:
            raise ConfigError(f"config key `{table}.cases` must list at least one case.")
        for i, case in enumerate(cases):
            if not case.name:
                raise ConfigError(f"config key `{table}.cases[{i}].name` is required.")
        names = [case.name for case in cases]
        if len({slug(name) for name in names}) != len(names):  # slugs name the plots
            raise ConfigError(f"config key `{table}.cases` must have distinct names (ignoring "
                              f"case and punctuation); got {names}.")
        positive.update({f"{table}.cases[{i}].learning_rate": case.learning_rate
                         for i, case in enumerate(cases)})
    for key, value in positive.items():
        if not value > 0:
            raise ConfigError(f"config key `{key}` must be positive; got {value}.")
    for key, resolve in (("activation", activations.get), ("w_init", init.get)):
        try:
            resolve(getattr(cfg.model, key))
        except ValueError as error:
            raise ConfigError(f"config key `model.{key}`: {error}") from None


# ----------------------------------------------------------------------------- the checks

def build_model(spec: ModelSpec, num_classes: int):
    return mlp([*spec.hidden, num_classes], activation=spec.activation, w_init=spec.w_init)


def with_hidden_bias(model, params, value: float):
    """``params`` with the bias of every hidden Dense layer (not the output layer) set to
    ``value``; ``value = 0`` returns ``params`` unchanged."""
    if not value:
        return params
    dense = [name for name, layer in model.layers if layer.name.startswith("Dense(")]
    hidden = set(dense[:-1])
    return {name: {**p, "b": jnp.full_like(p["b"], value)} if name in hidden else p
            for name, p in params.items()}


def run_overfit_checks(model, params, state, train, spec: OverfitSpec, key) -> List[Dict]:
    """`overfit_check` for every case, on the same ``spec.examples`` images (same ``key``)."""
    rows = []
    for case in spec.cases:
        report = overfit_check(model, with_hidden_bias(model, params, case.hidden_bias), state,
                               train, loss=LOSS, optimizer=sgd(case.learning_rate), key=key,
                               n=spec.examples, steps=spec.steps)
        rows.append({**dataclasses.asdict(case), "examples": report.n, "passed": report.passed,
                     "initial_loss": report.initial_loss, "final_loss": report.final_loss,
                     "message": str(report), "losses": report.losses})
    return rows


def monitor_training(model, params, state, data, case: Case, spec: MonitorSpec, key, *,
                     progress: bool = True, log=print) -> Dict:
    """Train one case with a `Monitor` hook (and a record before training, epoch 0); the
    monitor's history, `diagnose`'s warnings for every record, and the training metrics."""
    params = with_hidden_bias(model, params, case.hidden_bias)
    optimizer = sgd(case.learning_rate)
    monitor = Monitor(model, LOSS, data["probe"], optimizer)
    monitor.record(params, state, optimizer.init(params), epoch=0)
    result = fit(model, params, state, data["train"], loss=LOSS, optimizer=optimizer, key=key,
                 epochs=spec.epochs, batch_size=spec.batch_size, hooks=[monitor],
                 progress=progress, log=log)
    warnings = {epoch: diagnose(record) for epoch, record in zip(monitor.epochs, monitor.records)}
    ratios = [v for per_layer in monitor.history["update_ratio"].values() for v in per_layer]
    return {
        **dataclasses.asdict(case),
        "final_train_loss": result.history["loss"][-1],
        "final_train_accuracy": result.history["accuracy"][-1],
        "update_ratio_range": [float(np.nanmin(ratios)), float(np.nanmax(ratios))],
        "flagged_epochs": [epoch for epoch, found in warnings.items() if found],
        "final_warnings": monitor.warnings(),
        "warnings_by_epoch": {str(epoch): found for epoch, found in warnings.items() if found},
        "history": monitor.history,
    }


# ----------------------------------------------------------------------------- the study

def load_data(cfg: DebuggingConfig, key) -> Dict:
    """``{"train": (x, y), "probe": (x, y)}``: two disjoint random sets of MNIST training
    images (pixels / 255)."""
    from fnn.data import as_float, load_mnist

    images, labels = load_mnist("train")
    size, probe = cfg.monitor.train_size, cfg.monitor.probe_size
    order = np.asarray(jax.random.permutation(key, len(images)))[: size + probe]
    x, y = as_float(images[order]), labels[order].astype(np.int32)
    return {"train": (x[:size], y[:size]), "probe": (x[size:], y[size:])}


def run(cfg: DebuggingConfig, out, *, data=None, progress: bool = True, log=print) -> Dict:
    """Run the overfit checks and the monitored trainings; write the run folder.

    ``data`` (``{"train": (x, y), "probe": (x, y)}``, integer labels) replaces MNIST, e.g. in
    tests. Returns the results that ``results.json`` holds.
    """
    check(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_key, init_key, overfit_key, fit_key = jax.random.split(jax.random.PRNGKey(cfg.seed), 4)
    data = load_data(cfg, data_key) if data is None else data
    num_classes = int(max(int(y.max()) for _, y in data.values())) + 1
    model = build_model(cfg.model, num_classes)
    _, params, state = model.init(init_key, (None, *data["train"][0].shape[1:]))
    started = time.perf_counter()

    log(f"{cfg.name}: overfit check on {cfg.overfit.examples} images, {cfg.overfit.steps} steps")
    overfit = run_overfit_checks(model, params, state, data["train"], cfg.overfit, overfit_key)
    for row in overfit:
        log(f"  {row['name']}: {row['message']}")

    log(f"{cfg.name}: monitored training, {len(data['train'][0])} images x {cfg.monitor.epochs} "
        f"epochs, statistics on {len(data['probe'][0])} probe images")
    monitored = []
    for case in cfg.monitor.cases:
        monitored.append(monitor_training(model, params, state, data, case, cfg.monitor,
                                          fit_key, progress=progress, log=log))
        log(format_case(monitored[-1]))

    report = jsonable({
        "name": cfg.name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.perf_counter() - started, 1),
        "config": dataclasses.asdict(cfg),
        "healthy_update_ratio": list(HEALTHY_UPDATE_RATIO),
        "notes": ("Epoch 0 is the record before training. update_ratio_range is the smallest and "
                  "largest update/weight ratio over every layer and record. warnings_by_epoch "
                  "holds fnn.monitor.diagnose's warnings of every record that had any; "
                  "final_warnings those of the last record. null stands for inf or NaN."),
        "overfit": overfit,
        "monitor": monitored,
    })
    write_json(out / "results.json", report)
    (out / "warnings.txt").write_text(warnings_text(report["monitor"]))
    if plots_available():
        plot_all(report, out)
    return report


def format_case(case: Dict) -> str:
    low, high = case["update_ratio_range"]
    lines = [f"  {case['name']} (η = {case['learning_rate']:g}): train accuracy "
             f"{case['final_train_accuracy']:.4f}, update/weight ratio {low:.1e} .. {high:.1e}, "
             f"flagged after epochs {case['flagged_epochs'] or 'none'}"]
    lines += [f"    ! {warning}" for warning in case["final_warnings"]]
    return "\n".join(lines)


def warnings_text(cases: List[Dict]) -> str:
    """Every case's warnings, epoch by epoch, as plain text."""
    lines = []
    for case in cases:
        lines.append(f"== {case['name']} (learning rate {case['learning_rate']:g}, hidden bias "
                     f"{case['hidden_bias']:g}): {len(case['warnings_by_epoch'])} of "
                     f"{len(case['history']['epoch'])} records flagged")
        for epoch, found in case["warnings_by_epoch"].items():
            lines += [f"epoch {epoch}: {warning}" for warning in found]
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots

def slug(name: str) -> str:
    """A file-name form of a case name: "too large (η = 1)" -> "too_large_1"."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_").lower()


def plot_all(report: Dict, out) -> None:
    plot_overfit(report["overfit"], Path(out) / "overfit_check.png")
    plot_update_ratios(report["monitor"], Path(out) / "update_ratio.png")
    for case in report["monitor"]:
        plot_monitor(hidden_activations_only(case["history"]),
                     Path(out) / f"monitor_{slug(case['name'])}.png",
                     title=f"{case_label(case)}, plain SGD")


def hidden_activations_only(history: Dict) -> Dict:
    """A monitor history whose activation variance keeps the activation layers' outputs only
    (the layers with a dead fraction), not the Flatten and Dense outputs: one line per depth."""
    activation_layers = history.get("dead_fraction", {})
    act_var = {layer: v for layer, v in history.get("act_var", {}).items()
               if layer in activation_layers}
    return {**history, "act_var": act_var}


def case_label(case: Dict) -> str:
    """"name (η = …, hidden bias …)", the bias only when it is not 0."""
    bias = f", hidden bias {case['hidden_bias']:g}" if case["hidden_bias"] else ""
    return f"{case['name']} (η = {case['learning_rate']:g}{bias})"


def plot_overfit(rows: List[Dict], path) -> Path:
    """The full-batch loss of every overfit-check case against the step (log scale)."""
    fig = figure("debugging", figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    for row in rows:
        verdict = "passed" if row["passed"] else "FAILED"
        ax.plot(np.arange(len(row["losses"])), row["losses"],
                label=f"{case_label(row)}: {verdict}, {row['initial_loss']:.4g} → "
                      f"{row['final_loss']:.4g}")
    ax.set_yscale("log")
    ax.set(xlabel="full-batch SGD step", ylabel="mean loss on the examples",
           title=f"overfit check: memorize {rows[0]['examples']} training images")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_update_ratios(cases: List[Dict], path) -> Path:
    """The update/weight ratio of every layer over training, one panel per case, on one shared
    log scale with the healthy band shaded."""
    fig = figure("debugging", figsize=(4.6 * len(cases), 4.0), layout="constrained")
    axes = fig.subplots(1, len(cases), sharey=True, squeeze=False)[0]
    for ax, case in zip(axes, cases):
        history = case["history"]
        for i, (layer, values) in enumerate(history["update_ratio"].items()):
            shown = [np.nan if v is None else v for v in values]
            ax.plot(history["epoch"], shown, marker=".", color=f"C{i % 10}", label=layer)
        ax.axhspan(*HEALTHY_UPDATE_RATIO, color="green", alpha=0.08, label="unflagged band")
        ax.axhline(1e-3, color="green", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.set(xlabel="epoch", title=case_label(case))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("update / weight ratio ‖Δw‖/‖w‖")
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save(fig, path)


# ----------------------------------------------------------------------------- command line

def main(argv=None) -> int:
    return experiment_main(argv, name="debugging", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run, quick="50 overfit steps, 500 training images x 3 epochs")


if __name__ == "__main__":
    sys.exit(main())
