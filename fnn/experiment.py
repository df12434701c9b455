"""Run an experiment from a config: data, model, training, test metrics and a run folder.

The run folder holds ``config.toml`` (a copy), ``metrics.jsonl`` (one line per epoch),
``checkpoint.npz`` (the latest epoch, for ``--resume``), ``results.json`` (test metrics),
``curves.png`` (learning curves) and, for 2-D inputs, ``boundary.png`` (decision regions).
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import jax
import numpy as np

from fnn import activations, init, losses, metrics, optim, plots
from fnn.config import (AugmentConfig, Config, ConfigError, DataConfig, OptimizerConfig,
                        TrainConfig, to_dict)
from fnn.data import augment, load_mnist, scaling, synthetic
from fnn.validation import CrossValidation, cross_validate, kfold
from fnn.core import Layer
from fnn.models import mlp
from fnn.train import EarlyStopping, FitResult, evaluate, fit, predict

Split = Tuple[np.ndarray, np.ndarray]
SYNTHETIC = ("spiral", "circles", "xor", "gaussians")


def _checked(key: str, resolve, value):
    """Resolve a named component, re-raising an unknown name as a `ConfigError` naming the key."""
    try:
        return resolve(value)
    except ValueError as error:
        raise ConfigError(f"config key `{key}`: {error}") from None


def load_splits(cfg: DataConfig, key) -> Dict[str, Split]:
    """The raw train / validation / test splits a config describes (validation only when
    ``validation_size`` > 0)."""
    if cfg.dataset == "mnist":
        (x, y), test = load_mnist("train"), load_mnist("test")
    elif cfg.dataset in SYNTHETIC:
        x, y = getattr(synthetic, cfg.dataset)(jax.random.fold_in(key, 0), cfg.samples, cfg.noise)
        n_test = int(round(cfg.test_fraction * cfg.samples))
        x, y, test = x[n_test:], y[n_test:], (x[:n_test], y[:n_test])
    else:
        raise ConfigError(f"config key `data.dataset`: unknown data set {cfg.dataset!r}.")
    order = np.asarray(jax.random.permutation(jax.random.fold_in(key, 1), len(x)))
    if cfg.train_size:
        order = order[: cfg.validation_size + cfg.train_size]
    if cfg.validation_size >= len(order):
        raise ConfigError(f"config key `data.validation_size` = {cfg.validation_size} leaves no "
                          f"training examples out of {len(order)}.")
    n_val = cfg.validation_size
    splits = {"train": (x[order[n_val:]], y[order[n_val:]]), "test": test}
    if n_val:
        splits["validation"] = (x[order[:n_val]], y[order[:n_val]])
    return splits


def scale_splits(cfg: DataConfig, splits: Dict[str, Split]) -> Dict[str, Split]:
    """Every split as float32 inputs and int32 labels, scaled with statistics fitted on the
    ``"train"`` split only."""
    scaler = _checked("data.scaling", scaling.get, cfg.scaling)
    stats = scaler.fit(splits["train"][0], axis=0 if cfg.per_feature else None)
    return {name: (np.asarray(scaler.transform(xs, stats), np.float32), np.asarray(ys, np.int32))
            for name, (xs, ys) in splits.items()}


def load_data(cfg: DataConfig, key) -> Dict[str, Split]:
    """`load_splits`, then `scale_splits`."""
    return scale_splits(cfg, load_splits(cfg, key))


def _check_range(key: str, value, low, high=None, *, low_open=False):
    """Raise a `ConfigError` naming ``key`` unless ``low <= value`` (or ``<``) and ``value < high``."""
    ok = (value > low if low_open else value >= low) and (high is None or value < high)
    if not ok:
        bound = f"{'>' if low_open else '>='} {low}" + ("" if high is None else f" and < {high}")
        raise ConfigError(f"config key `{key}` must be {bound}; got {value}.")


class Parts(NamedTuple):
    """What a checked config builds, once: its loss, optimizer and batch augmentation."""

    loss: Callable
    optimizer: optim.Optimizer
    augment: Optional[Callable]


def check(config: Config) -> Parts:
    """Reject names and values the schema's types cannot catch, before any data is loaded; return
    the loss, optimizer and augmentation the config names (each built once, here)."""
    m, d, t = config.model, config.data, config.train
    if m.kind != "mlp":
        raise ConfigError(f"config key `model.kind`: unknown model {m.kind!r}; expected 'mlp'.")
    if d.dataset not in ("mnist", *SYNTHETIC):
        raise ConfigError(f"config key `data.dataset`: unknown data set {d.dataset!r}; "
                          f"expected one of {['mnist', *SYNTHETIC]}.")
    if any(h < 1 for h in m.hidden):
        raise ConfigError(f"config key `model.hidden` must list positive sizes; got {m.hidden}.")
    _check_range("train.epochs", t.epochs, 0, low_open=True)
    if t.batch_size != "full" and not (isinstance(t.batch_size, int) and t.batch_size >= 1):
        raise ConfigError(f"config key `train.batch_size` must be an integer >= 1 or \"full\" "
                          f"(one batch of every example); got {t.batch_size!r}.")
    for key, value in {"train.l1": t.l1, "train.l2": t.l2,
                       "data.validation_size": d.validation_size,
                       "data.train_size": d.train_size}.items():
        _check_range(key, value, 0)
    for key, value in {"model.dropout": m.dropout, "model.input_dropout": m.input_dropout}.items():
        _check_range(key, value, 0, 1)
    if config.early_stopping is not None and d.validation_size == 0:
        raise ConfigError("config key `early_stopping` needs validation data: set "
                          "`data.validation_size` > 0.")
    _checked("model.activation", activations.get, m.activation)
    _checked("model.w_init", init.get, m.w_init)
    _checked("data.scaling", scaling.get, d.scaling)
    return Parts(_checked("train.loss", losses.get, t.loss), make_optimizer(config.optimizer),
                 make_augment(config.augment))


def _same_kind(value, default) -> bool:
    """A config value fits an argument whose default is ``default`` (an int fits a float)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def make_optimizer(cfg: OptimizerConfig):
    """The optimizer ``[optimizer]`` names, its other keys checked against the factory's arguments."""
    factory = _checked("optimizer.name", optim.get, cfg.name)
    arguments = inspect.signature(factory).parameters
    options = [a for a in arguments if a != "learning_rate"]
    for key, value in cfg.options.items():
        if key not in options:
            raise ConfigError(f"unknown config key `optimizer.{key}`: {cfg.name} takes "
                              f"{', '.join(options) or 'no options'}.")
        default = arguments[key].default
        if default is not inspect.Parameter.empty and not _same_kind(value, default):
            raise ConfigError(f"config key `optimizer.{key}` must be {type(default).__name__} "
                              f"like its default {default!r}; got {value!r}.")
    return _checked("optimizer", lambda c: factory(c.learning_rate, **c.options), cfg)


def make_augment(cfg: Optional[AugmentConfig]):
    """The batch augmentation ``[augment]`` describes (None when it is absent or all zero)."""
    if cfg is None:
        return None
    _check_range("augment.max_shift", cfg.max_shift, 0)
    _check_range("augment.max_degrees", cfg.max_degrees, 0)
    _check_range("augment.noise_std", cfg.noise_std, 0)
    steps = [fn(value) for fn, value in ((augment.random_shift, cfg.max_shift),
                                         (augment.random_rotation, cfg.max_degrees),
                                         (augment.gaussian_noise, cfg.noise_std)) if value]
    return augment.compose(*steps) if steps else None


def make_penalty(cfg: TrainConfig, num_examples: int):
    """The course's weight penalty ``λ2/(2P) Σ w² + λ1/P Σ |w|`` over the weights (biases and
    normalization parameters skipped), P the number of training examples; None when both are 0."""
    if not (cfg.l1 or cfg.l2):
        return None
    return lambda params: (cfg.l2 * losses.l2_penalty(params)
                           + cfg.l1 * losses.l1_penalty(params)) / num_examples


def build(config: Config, classes: int) -> Layer:
    """The model a checked config describes, with ``classes`` outputs."""
    m = config.model
    return mlp([*m.hidden, classes], activation=m.activation, w_init=m.w_init,
               dropout=m.dropout, input_dropout=m.input_dropout)


def run_keys(seed: int):
    """``(data_key, init_key, fit_key)``: how every config-driven run splits its seed."""
    return jax.random.split(jax.random.PRNGKey(seed), 3)


def num_classes(data: Dict[str, Split]) -> int:
    """The number of classes: one more than the largest label in any split."""
    return int(max(int(y.max()) for _, y in data.values())) + 1


def train_config(config: Config, model, parts: Parts, train_data: Split,
                 validation_data: Optional[Split] = None, **fit_options) -> FitResult:
    """`fnn.fit` as the config says: its keys, epochs, batch size, early stopping (when there is
    validation data), penalty, and the loss, optimizer and augmentation of ``parts`` (from
    `check`); ``fit_options`` go to `fit` (hooks, progress, ...)."""
    _, init_key, fit_key = run_keys(config.seed)
    x_train = train_data[0]
    _, params, state = model.init(init_key, (None, *x_train.shape[1:]))
    es = config.early_stopping
    use_es = es is not None and validation_data is not None
    return fit(model, params, state, train_data, loss=parts.loss, optimizer=parts.optimizer,
               key=fit_key, epochs=config.train.epochs, batch_size=config.train.batch_size,
               validation_data=validation_data,
               early_stopping=EarlyStopping(**dataclasses.asdict(es)) if use_es else None,
               penalty=make_penalty(config.train, len(x_train)), augment=parts.augment,
               **fit_options)


def cross_validate_config(config: Config, folds: int, *, log=print) -> CrossValidation:
    """Train and score the config's model on ``folds`` stratified folds of its training data
    (the training and validation splits together); the test split is never touched.

    Each fold scales with statistics of its own training part and trains for
    ``train.epochs`` epochs; early stopping is off (it would need a third split).
    """
    parts = check(config)
    data_key = run_keys(config.seed)[0]
    splits = load_splits(config.data, data_key)
    pool = tuple(np.concatenate([splits[name][i] for name in ("train", "validation")
                                 if name in splits]) for i in (0, 1))
    model = build(config, num_classes(splits))

    def train_and_score(train, test):
        scaled = scale_splits(config.data, {"train": train, "test": test})
        result = train_config(config, model, parts, scaled["train"], progress=False)
        scores = evaluate(model, result.params, result.state, scaled["test"], loss=parts.loss)
        log("fold: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        return scores

    stratify = np.asarray(pool[1])
    return cross_validate(train_and_score, pool,
                          kfold(jax.random.fold_in(data_key, 2), len(stratify), folds,
                                stratify=stratify))


def run(config: Config, out_dir, *, resume: bool = False, progress: bool = True,
        log=print, parts: Optional[Parts] = None) -> dict:
    """Train and test the config's model; write the run folder; return the results.

    ``parts`` is what `check` returned for ``config`` (checked here when not given)."""
    parts = check(config) if parts is None else parts
    loss = parts.loss
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(config.data, run_keys(config.seed)[0])
    x_train = data["train"][0]
    classes = num_classes(data)
    model = build(config, classes)
    metrics_log = (out / "metrics.jsonl").open("a" if resume else "w")

    def write_epoch(epoch, logs, train_state):
        metrics_log.write(json.dumps({"epoch": epoch + 1, **logs}) + "\n")
        metrics_log.flush()

    log(f"{config.name}: {len(x_train)} training, {len(data.get('validation', ([],))[0])} "
        f"validation, {len(data['test'][0])} test examples -> {out}")
    started = time.perf_counter()
    with metrics_log:
        result = train_config(config, model, parts, data["train"],
                              data.get("validation"), hooks=[write_epoch],
                              checkpoint_path=str(out / "checkpoint.npz"), resume=resume,
                              progress=progress, log=log)
    seconds = time.perf_counter() - started

    x_test, y_test = data["test"]
    test = evaluate(model, result.params, result.state, data["test"], loss=loss)
    predicted = np.asarray(predict(model, result.params, result.state, x_test).argmax(-1))
    cm = metrics.confusion_matrix(y_test, predicted, classes)
    results = {
        "name": config.name,
        "test_loss": test["loss"],
        "test_accuracy": float(metrics.accuracy(cm)),
        "test_macro_f1": float(metrics.f1(cm, average="macro")),
        "epochs_run": len(result.history["loss"]),
        "stopped_early": result.stopped_early,
        "best_epoch": result.best_epoch,
        "train_seconds": round(seconds, 1),
        "final": {k: v[-1] for k, v in result.history.items()},
        "confusion_matrix": np.asarray(cm).tolist(),
        "date": time.strftime("%Y-%m-%d"),
        "config": to_dict(config),
    }
    write_json(out / "results.json", results)
    if plots.available():
        plots.plot_history(result.history, out / "curves.png", title=config.name,
                           best_epoch=result.best_epoch)
        if x_test.shape[1:] == (2,):
            plots.plot_decision_boundary(
                lambda xs: predict(model, result.params, result.state, xs), data["test"],
                out / "boundary.png", title=f"{config.name} (test)")
    else:
        log("no plots: matplotlib is missing (pip install 'fnn[viz]')")
    log(f"test accuracy {results['test_accuracy']:.4f}  test loss {results['test_loss']:.4f}")
    log(metrics.classification_report(cm))
    return results


def copy_config(path, out_dir) -> None:
    shutil.copyfile(path, Path(out_dir) / "config.toml")


def run_folder(name: str, out=None) -> Path:
    """A new run folder, ``out`` or ``runs/<name>-<date>-<time>``, created if missing."""
    folder = Path(out or f"runs/{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def jsonable(value):
    """``value`` with NumPy/JAX arrays and scalars as lists and numbers, and every NaN or ±inf
    as None (JSON has no such numbers: a diverged run is written as null)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def write_json(path, obj) -> Path:
    """Write ``obj`` as indented, strict JSON (arrays as lists, NaN and ±inf as null)."""
    Path(path).write_text(json.dumps(jsonable(obj), indent=2, allow_nan=False))
    return Path(path)


def read_results(run_folder_path) -> dict:
    """The ``results.json`` of a finished run folder."""
    return json.loads((Path(run_folder_path) / "results.json").read_text())


def experiment_main(argv, *, name: str, description: str, load_config: Callable,
                    run: Callable, quick: str, replot: Optional[Callable] = None) -> int:
    """The command line every experiment shares; returns the exit code.

        python experiments/NAME.py [configs/NAME.toml] [--out DIR] [--quick] [--no-progress]
                                   [--replot RUN_FOLDER]

    ``load_config(path, quick=...)`` reads and checks the config (a `ConfigError` exits with 2
    and the message); ``run(config, out, progress=...)`` does the work in the run folder;
    ``replot(folder)``, when given, redraws a finished run's outputs without training.
    """
    parser = argparse.ArgumentParser(prog=f"experiments/{name}.py", description=description)
    parser.add_argument("config", nargs="?", default=f"configs/{name}.toml")
    parser.add_argument("--out", help="run folder (default: runs/<name>-<date>-<time>)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {quick}")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    if replot is not None:
        parser.add_argument("--replot", metavar="RUN_FOLDER",
                            help="only redraw the outputs of a finished run from its files")
    args = parser.parse_args(argv)
    if replot is not None and args.replot:
        replot(Path(args.replot))
        return 0
    try:
        config = load_config(args.config, quick=args.quick)
    except ConfigError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
    out = run_folder(config.name + ("-quick" if args.quick else ""), args.out)
    copy_config(args.config, out)
    run(config, out, progress=not args.no_progress)
    return 0
