"""Run an experiment from a config: data, model, training, test metrics and a run folder.

The run folder holds ``config.toml`` (a copy), ``metrics.jsonl`` (one line per epoch),
``checkpoint.npz`` (the latest epoch, for ``--resume``), ``results.json`` (test metrics) and
``curves.png`` (learning curves).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import jax
import numpy as np

from fnn import activations, init, losses, metrics, optim
from fnn.config import Config, ConfigError, DataConfig, to_dict
from fnn.data import load_mnist, scaling, synthetic
from fnn.models import mlp
from fnn.train import EarlyStopping, evaluate, fit, predict

Split = Tuple[np.ndarray, np.ndarray]
SYNTHETIC = ("spiral", "circles", "xor", "gaussians")


def _checked(key: str, resolve, value):
    """Resolve a named component, re-raising an unknown name as a `ConfigError` naming the key."""
    try:
        return resolve(value)
    except ValueError as error:
        raise ConfigError(f"config key `{key}`: {error}") from None


def load_data(cfg: DataConfig, key) -> Dict[str, Split]:
    """Train / validation / test splits as float32 inputs and int32 labels, scaled with
    statistics fitted on the training split only."""
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

    scaler = _checked("data.scaling", scaling.get, cfg.scaling)
    stats = scaler.fit(splits["train"][0], axis=0 if cfg.per_feature else None)
    return {name: (np.asarray(scaler.transform(xs, stats), np.float32), np.asarray(ys, np.int32))
            for name, (xs, ys) in splits.items()}


def check(config: Config) -> None:
    """Reject names and values the schema's types cannot catch, before any data is loaded."""
    m, d = config.model, config.data
    if m.kind != "mlp":
        raise ConfigError(f"config key `model.kind`: unknown model {m.kind!r}; expected 'mlp'.")
    if d.dataset not in ("mnist", *SYNTHETIC):
        raise ConfigError(f"config key `data.dataset`: unknown data set {d.dataset!r}; "
                          f"expected one of {['mnist', *SYNTHETIC]}.")
    if any(h < 1 for h in m.hidden):
        raise ConfigError(f"config key `model.hidden` must list positive sizes; got {m.hidden}.")
    for key, value in {"train.epochs": config.train.epochs,
                       "train.batch_size": config.train.batch_size,
                       "data.validation_size": d.validation_size,
                       "data.train_size": d.train_size}.items():
        if value < (1 if key == "train.epochs" else 0):
            raise ConfigError(f"config key `{key}` must be "
                              f"{'positive' if key == 'train.epochs' else 'non-negative'}; got {value}.")
    _checked("model.activation", activations.get, m.activation)
    _checked("model.w_init", init.get, m.w_init)
    _checked("data.scaling", scaling.get, d.scaling)
    _checked("train.loss", losses.get, config.train.loss)
    _checked("optimizer.name", optim.get, config.optimizer.name)


def build(config: Config, num_classes: int):
    """The model, loss and optimizer a config names."""
    check(config)
    m = config.model
    model = mlp([*m.hidden, num_classes], activation=m.activation, w_init=m.w_init)
    loss = _checked("train.loss", losses.get, config.train.loss)
    make_optimizer = _checked("optimizer.name", optim.get, config.optimizer.name)
    return model, loss, make_optimizer(config.optimizer.learning_rate)


def run(config: Config, out_dir, *, resume: bool = False, progress: bool = True,
        log=print) -> dict:
    """Train and test the config's model; write the run folder; return the results."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = jax.random.PRNGKey(config.seed)
    data_key, init_key, fit_key = jax.random.split(key, 3)
    data = load_data(config.data, data_key)
    x_train, y_train = data["train"]
    num_classes = int(max(int(y.max()) for _, y in data.values())) + 1
    model, loss, optimizer = build(config, num_classes)
    es = config.early_stopping
    early_stopping = None if es is None else EarlyStopping(**dataclasses.asdict(es))

    _, params, state = model.init(init_key, (None, *x_train.shape[1:]))
    metrics_log = (out / "metrics.jsonl").open("a" if resume else "w")

    def write_epoch(epoch, logs, train_state):
        metrics_log.write(json.dumps({"epoch": epoch + 1, **logs}) + "\n")
        metrics_log.flush()

    log(f"{config.name}: {len(x_train)} training, {len(data.get('validation', ([],))[0])} "
        f"validation, {len(data['test'][0])} test examples -> {out}")
    started = time.perf_counter()
    with metrics_log:
        result = fit(model, params, state, data["train"], loss=loss, optimizer=optimizer,
                     key=fit_key, epochs=config.train.epochs,
                     batch_size=config.train.batch_size or None,
                     validation_data=data.get("validation"), early_stopping=early_stopping,
                     hooks=[write_epoch], checkpoint_path=str(out / "checkpoint.npz"),
                     resume=resume, progress=progress, log=log)
    seconds = time.perf_counter() - started

    x_test, y_test = data["test"]
    test = evaluate(model, result.params, result.state, data["test"], loss=loss)
    predicted = np.asarray(predict(model, result.params, result.state, x_test).argmax(-1))
    cm = metrics.confusion_matrix(y_test, predicted, num_classes)
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
    plot_history(result.history, out / "curves.png", title=config.name,
                 best_epoch=result.best_epoch)
    if x_test.shape[1:] == (2,):
        plot_decision_boundary(lambda xs: predict(model, result.params, result.state, xs),
                               data["test"], out / "boundary.png", title=f"{config.name} (test)")
    log(f"test accuracy {results['test_accuracy']:.4f}  test loss {results['test_loss']:.4f}")
    log(metrics.classification_report(cm))
    return results


def _pyplot():
    """matplotlib's pyplot on a file-only backend, or None when the `viz` extra is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_decision_boundary(predict_fn, data: Split, path: Path, title: str = "") -> bool:
    """The predicted class over a grid around 2-D points, with the points on top, as a PNG."""
    plt = _pyplot()
    if plt is None:
        return False
    x, y = data
    (x0, y0), (x1, y1) = x.min(0) - 0.5, x.max(0) + 0.5
    gx, gy = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    classes = np.asarray(predict_fn(grid)).argmax(-1).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.contourf(gx, gy, classes, alpha=0.3, cmap="coolwarm")
    ax.scatter(x[:, 0], x[:, 1], c=y, s=8, cmap="coolwarm", edgecolors="k", linewidths=0.2)
    ax.set(title=title, xlabel="x1 (scaled)", ylabel="x2 (scaled)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_history(history: Dict[str, list], path: Path, title: str = "",
                 best_epoch: Optional[int] = None) -> bool:
    """Loss and accuracy curves per epoch (train and validation) as a PNG, with the epoch early
    stopping kept marked; returns False (and writes nothing) without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    panels = [m for m in ("loss", "accuracy") if m in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, name in zip(axes[0], panels):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label="validation")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="gray", linestyle=":", label=f"kept (epoch {best_epoch})")
        ax.set(xlabel="epoch", ylabel=name, title=f"{title} {name}".strip())
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def copy_config(path, out_dir) -> None:
    shutil.copyfile(path, Path(out_dir) / "config.toml")


def run_folder(name: str, out=None) -> Path:
    """A new run folder, ``out`` or ``runs/<name>-<date>-<time>``, created if missing."""
    folder = Path(out or f"runs/{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_json(path, obj) -> Path:
    """Write ``obj`` as indented JSON (NumPy/JAX scalars and arrays become plain numbers/lists)."""
    def plain(value):
        if hasattr(value, "tolist"):
            return value.tolist()
        raise TypeError(f"write_json: cannot write {type(value).__name__} to JSON.")

    Path(path).write_text(json.dumps(obj, indent=2, default=plain))
    return Path(path)
