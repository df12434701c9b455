"""Early stopping: where the validation loss turns up, where the rule stops, what it keeps.

A large MLP without any regularization (default: 784-512-512-10 ReLU, plain SGD) is trained on a
small MNIST training set (3,000 digits), long enough that it memorizes them and the validation
loss turns up. It is trained twice from the same initialization and keys:

* with the config's early-stopping rule, ``fnn.EarlyStopping(monitor, patience, min_delta,
  restore_best)``: ``fit`` stops once the validation loss has not fallen by more than the
  tolerance ``min_delta`` for ``patience`` epochs, and returns the parameters of the best epoch;
* without it, to the full budget of ``train.epochs`` epochs: the last epoch's parameters.

Both runs see the same batches, so the first is a prefix of the second (checked). The study
reports the best and the stopping epoch, and the test loss and accuracy of the restored model
against the last epoch's. The config is an ordinary `fnn run` config (`fnn.config.Config`) that
must have an ``[early_stopping]`` table.

Run it from the repository root (about 75 s on 2 heavily shared CPU cores, 30 s of CPU time;
``--quick`` is a smoke run)::

    python experiments/early_stopping.py configs/early_stopping.toml [--out DIR] [--quick] [--no-progress]

The run folder (``runs/early_stopping-<date>-<time>/`` unless ``--out``) holds ``config.toml``,
``results.json`` (every number, the config and the date) and ``curves.png``.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Dict, Tuple

import jax
import numpy as np

from fnn.config import Config, ConfigError, load as load_toml, to_dict
from fnn.experiment import (build, check as check_run_config, experiment_main, load_data,
                            steps_per_epoch, write_json)
from fnn.plots import available as plots_available, figure, save
from fnn.train import EarlyStopping, FitResult, evaluate, fit


QUICK = {"data": {"train_size": 500, "validation_size": 1000}, "train": {"epochs": 15}}


# ----------------------------------------------------------------------------- config

def load_config(path, quick: bool = False) -> Config:
    """Read and check a TOML config; ``quick`` shrinks the data and the budget for a smoke run."""
    cfg = load_toml(path, Config, overrides=QUICK if quick else None)
    check(cfg)
    return cfg


def check(cfg: Config):
    """`fnn.experiment.check`, plus the early-stopping rule this study needs, naming the key."""
    parts = check_run_config(cfg)
    es = cfg.early_stopping
    if es is None:
        raise ConfigError("config key `early_stopping` is missing: this study needs an "
                          "[early_stopping] table (monitor, patience, min_delta, restore_best).")
    if es.patience < 1:
        raise ConfigError(f"config key `early_stopping.patience` must be >= 1; got {es.patience}.")
    if es.min_delta < 0:
        raise ConfigError(f"config key `early_stopping.min_delta` must be >= 0; "
                          f"got {es.min_delta}.")
    if not es.restore_best:
        raise ConfigError("config key `early_stopping.restore_best` must be true: the study "
                          "compares the best epoch's model with the last epoch's.")
    if es.mode not in ("min", "max"):
        raise ConfigError(f"config key `early_stopping.mode` must be 'min' or 'max'; "
                          f"got {es.mode!r}.")
    if es.monitor.startswith("val_") and not cfg.data.validation_size:
        raise ConfigError(f"config key `data.validation_size` must be positive: early stopping "
                          f"monitors {es.monitor!r}.")


# ----------------------------------------------------------------------------- the study
    return parts


def run_keys(cfg: Config):
    """``(data_key, init_key, fit_key)`` from the config's seed, as `fnn run` splits them."""
    return jax.random.split(jax.random.PRNGKey(cfg.seed), 3)


def train_both(model, params, state, data, *, rule: EarlyStopping, **fit_options
               ) -> Tuple[FitResult, FitResult]:
    """``(stopped, full)``: `fit` from the same start and keys with the early-stopping ``rule``,
    and without it, to the full budget (``fit_options`` holds the budget, keys and optimizer)."""
    stopped = fit(model, params, state, data["train"], early_stopping=rule,
                  validation_data=data.get("validation"), **fit_options)
    full = fit(model, params, state, data["train"], validation_data=data.get("validation"),
               **fit_options)
    return stopped, full


def same_trajectory(short: Dict, long: Dict) -> bool:
    """True when every metric of history ``short`` equals the start of history ``long``."""
    return all(np.array_equal(values, long[name][: len(values)]) for name, values in short.items())


def scores(model, result: FitResult, data, loss) -> Dict[str, float]:
    """Validation and test loss and accuracy of the parameters a fit returned, plus the
    training loss of the epoch they come from."""
    numbers = {}
    for split in ("validation", "test"):
        measured = evaluate(model, result.params, result.state, data[split], loss=loss)
        prefix = "val" if split == "validation" else split
        numbers.update({f"{prefix}_{name}": value for name, value in measured.items()})
    return numbers


def summarize(cfg: Config, stopped: FitResult, full: FitResult, restored: Dict,
              last: Dict) -> Dict:
    """The study's numbers (epochs counted from 1); ``restored`` and ``last`` are the `scores`
    of the early-stopped model and of the last epoch's."""
    monitor, best = cfg.early_stopping.monitor, stopped.best_epoch
    curve = full.history[monitor]
    best_of_full = (np.argmin if cfg.early_stopping.mode == "min" else np.argmax)(curve)
    return {
        "best_epoch": best,
        "stop_epoch": len(stopped.history["loss"]),
        "stopped_early": stopped.stopped_early,
        "budget_epochs": len(full.history["loss"]),
        "monitor": monitor,
        "monitored_at_best": stopped.history[monitor][best - 1],
        "monitored_at_stop": stopped.history[monitor][-1],
        "monitored_at_last": curve[-1],
        "best_epoch_of_full_run": int(best_of_full) + 1,
        "monitored_best_of_full_run": float(curve[best_of_full]),
        "same_trajectory": same_trajectory(stopped.history, full.history),
        "restored": {"train_loss": stopped.history["loss"][best - 1], **restored},
        "last": {"train_loss": full.history["loss"][-1], **last},
    }


def run(cfg: Config, out, *, data=None, progress: bool = True, log=print) -> Dict:
    """Train with and without early stopping, test both models; write the run folder.

    ``data`` (``{"train", "validation", "test"}: (x, y)`` pairs, integer labels) replaces MNIST,
    e.g. in tests. Returns the results that ``results.json`` holds.
    """
    parts = check(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_key, init_key, fit_key = run_keys(cfg)
    data = load_data(cfg.data, data_key) if data is None else data
    log(f"{cfg.name}: {len(data['train'][0])} training, {len(data['validation'][0])} validation, "
        f"{len(data['test'][0])} test examples, at most {cfg.train.epochs} epochs -> {out}")
    started = time.perf_counter()
    num_classes = int(max(int(y.max()) for _, y in data.values())) + 1
    model = build(cfg, num_classes)
    loss = parts.loss
    optimizer = parts.optimizer_for(steps_per_epoch(cfg, len(data["train"][0])))
    _, params, state = model.init(init_key, (None, *data["train"][0].shape[1:]))
    stopped, full = train_both(
        model, params, state, data, rule=EarlyStopping(**dataclasses.asdict(cfg.early_stopping)),
        loss=loss, optimizer=optimizer, key=fit_key, epochs=cfg.train.epochs,
        batch_size=cfg.train.batch_size, progress=progress, log=log)
    if stopped.best_epoch is None:
        raise RuntimeError(f"{cfg.name}: early stopping never recorded a best epoch: is "
                           f"{cfg.early_stopping.monitor} finite?")
    numbers = summarize(cfg, stopped, full, scores(model, stopped, data, loss),
                        scores(model, full, data, loss))
    report = {
        "name": cfg.name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.perf_counter() - started, 1),
        "config": to_dict(cfg),
        "data": {split: len(x) for split, (x, _) in data.items()},
        "notes": ("Epochs are counted from 1. 'restored' is the model early stopping returns "
                  "(parameters of best_epoch; its val_loss, measured again, equals the history's "
                  "at best_epoch); 'last' is the model after budget_epochs without early "
                  "stopping. same_trajectory: the early-stopped run's history equals the first "
                  "stop_epoch epochs of the full run."),
        **numbers,
        "history": full.history,
    }
    write_json(out / "results.json", report)
    if plots_available():
        plot_curves(report, out / "curves.png")
    log(format_summary(report))
    return report


def format_summary(report: Dict) -> str:
    restored, last = report["restored"], report["last"]
    return (f"best epoch {report['best_epoch']}, stopped after epoch {report['stop_epoch']} "
            f"(budget {report['budget_epochs']}); {report['monitor']} "
            f"{report['monitored_at_best']:.4f} at best, {report['monitored_at_last']:.4f} at "
            f"the last epoch\n"
            f"restored model:   test accuracy {restored['test_accuracy']:.4f}  test loss "
            f"{restored['test_loss']:.4f}\n"
            f"last-epoch model: test accuracy {last['test_accuracy']:.4f}  test loss "
            f"{last['test_loss']:.4f}")


# ----------------------------------------------------------------------------- plot

def _architecture(report: Dict) -> str:
    model = report["config"]["model"]
    return "-".join(str(n) for n in ["in", *model["hidden"], "out"])


def _test_score(model_numbers: Dict, name: str) -> str:
    value = model_numbers[f"test_{name}"]
    return f"test {name} {value:.2%}" if name == "accuracy" else f"test {name} {value:.3f}"


def plot_curves(report: Dict, path) -> Path:
    """Train and validation loss (log scale) and accuracy over the full budget, with the epoch
    early stopping restored, the epoch it stopped and the patience window between them."""
    history, best, stop = report["history"], report["best_epoch"], report["stop_epoch"]
    panels = [name for name in ("loss", "accuracy") if f"val_{name}" in history]
    fig = figure("early_stopping", figsize=(6.0 * len(panels), 4.4), layout="constrained")
    for ax, name in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], label="train", color="C0")
        ax.plot(epochs, history[f"val_{name}"], label="validation", color="C1")
        ax.axvspan(best, stop, color="gray", alpha=0.12, label="patience window")
        ax.axvline(best, color="C2", linestyle="--",
                   label=f"restored: epoch {best} ({_test_score(report['restored'], name)})")
        ax.axvline(stop, color="C3", linestyle=":", label=f"stopped after epoch {stop}")
        ax.plot([best], [history[f"val_{name}"][best - 1]], "o", color="C2")
        ax.plot([epochs[-1]], [history[f"val_{name}"][-1]], "s", color="C1",
                label=f"last epoch ({_test_score(report['last'], name)})")
        if name == "loss":
            ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel=name, title=f"{name} per epoch")
        ax.grid(alpha=0.3, which="both" if name == "loss" else "major")
        ax.legend(fontsize=8)
    es, opt = report["config"]["early_stopping"], report["config"]["optimizer"]
    fig.suptitle(f"{_architecture(report)} MLP on {report['data']['train']} images, "
                 f"{opt['name']} η = {opt['learning_rate']:g}; early stopping on "
                 f"{es['monitor']}, patience {es['patience']}, tolerance {es['min_delta']:g}",
                 fontsize=10)
    return save(fig, path)


# ----------------------------------------------------------------------------- command line

def main(argv=None) -> int:
    return experiment_main(argv, name="early_stopping", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run, quick="500 training and 1,000 validation images, 15 epochs")


if __name__ == "__main__":
    sys.exit(main())
