"""A restricted Boltzmann machine (course lecture 9) on binarized MNIST, trained by contrastive
divergence; its filters, reconstructions, Gibbs samples, and its hidden features fed to a
logistic-regression classifier.

* Data: MNIST digits binarized by ``pixel/255 > 0.5`` (784 binary visible units); the last
  ``validation_size`` training digits are held out to watch the free-energy gap (mean F of held-out
  digits minus that of training digits: it grows when the RBM overfits).
* Training: `fnn.classic.train_rbm`, CD-k (or PCD-k), mini-batches, ``fnn.optim.sgd`` with
  momentum on the CD estimate; reconstruction error ``Σ_i (v_i − p(v_i|p(h|v)))²`` per epoch.
* Features: the hidden probabilities ``p(h = 1 | v)`` of every digit, and a logistic regression
  (``fnn.layers.Dense(10)``, softmax cross-entropy, ``fnn.fit``) trained on them, against the same
  classifier on the 784 raw binary pixels.

Run it from the repository root (a few minutes on 2 busy cores; ``--quick`` a few seconds)::

    python experiments/rbm.py configs/rbm.toml [--out DIR] [--quick] [--no-progress]

The run folder holds ``config.toml``, ``results.json``, ``filters.png`` (the weights of the first
hidden units as 28×28 images), ``reconstructions.png``, ``samples.png`` (Gibbs chains started at
test digits) and ``curves.png`` (reconstruction error and free-energy gap per epoch). Without the
MNIST files it stops with a message.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import jax
import jax.numpy as jnp
import numpy as np

from fnn import classic, losses, optim
from fnn.config import ConfigError, load as load_toml, to_dict
from fnn.data import load_mnist
from fnn.experiment import experiment_main, write_json
from fnn.layers import Dense
from fnn.plots import available as plots_available, figure, save
from fnn.train import evaluate, fit


# ----------------------------------------------------------------------------- config

@dataclass(frozen=True)
class DataSection:
    train_size: int = 50000       # training digits (0: all but the validation digits)
    validation_size: int = 10000  # held-out training digits for the free-energy gap
    threshold: float = 0.5        # binarization: pixel / 255 > threshold


@dataclass(frozen=True)
class RBMSection:
    hidden: int = 128
    epochs: int = 10
    batch_size: int = 100
    k: int = 1                    # Gibbs sweeps per update (CD-k)
    persistent: bool = False      # PCD: chains kept between updates
    learning_rate: float = 0.05
    momentum: float = 0.5
    init_std: float = 0.01


@dataclass(frozen=True)
class ClassifierSection:
    epochs: int = 10
    batch_size: int = 100
    learning_rate: float = 0.001  # Adam
    compare_pixels: bool = True   # also train it on the raw pixels, for comparison


@dataclass(frozen=True)
class PlotSection:
    filters: int = 100                  # hidden units drawn
    chains: int = 8                     # Gibbs chains drawn
    chain_steps: List[int] = field(default_factory=lambda: [0, 1, 10, 100, 1000])


@dataclass(frozen=True)
class RBMConfig:
    name: str = "rbm"
    seed: int = 0
    data: DataSection = field(default_factory=DataSection)
    rbm: RBMSection = field(default_factory=RBMSection)
    classifier: ClassifierSection = field(default_factory=ClassifierSection)
    plot: PlotSection = field(default_factory=PlotSection)


QUICK = {"data": {"train_size": 500, "validation_size": 200},
         "rbm": {"hidden": 16, "epochs": 2, "batch_size": 50},
         "classifier": {"epochs": 1},
         "plot": {"filters": 16, "chains": 2, "chain_steps": [0, 1, 10]}}


def load_config(path, quick: bool = False) -> RBMConfig:
    """Read and check the TOML config; ``quick`` shrinks the data, the RBM and the epochs."""
    cfg = load_toml(path, RBMConfig, overrides=QUICK if quick else None)
    positive = {"rbm.hidden": cfg.rbm.hidden, "rbm.epochs": cfg.rbm.epochs,
                "rbm.batch_size": cfg.rbm.batch_size, "rbm.k": cfg.rbm.k,
                "classifier.epochs": cfg.classifier.epochs,
                "classifier.batch_size": cfg.classifier.batch_size,
                "data.validation_size": cfg.data.validation_size, "plot.chains": cfg.plot.chains}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config key `{key}` must be >= 1; got {value}.")
    if not 0 < cfg.data.threshold < 1:
        raise ConfigError(f"config key `data.threshold` must be in (0, 1); "
                          f"got {cfg.data.threshold}.")
    if not (cfg.rbm.learning_rate > 0 and cfg.classifier.learning_rate > 0):
        raise ConfigError("config keys `rbm.learning_rate` and `classifier.learning_rate` must "
                          "be > 0.")
    if any(s < 0 for s in cfg.plot.chain_steps):
        raise ConfigError(f"config key `plot.chain_steps` must be >= 0; "
                          f"got {cfg.plot.chain_steps}.")
    return cfg


# ----------------------------------------------------------------------------- parts

def binarized_mnist(cfg: DataSection, key):
    """``{"train", "validation", "test"}`` as (binary float32 images (N, 784), int32 labels)."""
    (x, y), (x_test, y_test) = (load_mnist(s, download=False) for s in ("train", "test"))

    def binary(images):
        return (images.reshape(len(images), -1) / 255.0 > cfg.threshold).astype(np.float32)

    order = np.asarray(jax.random.permutation(key, len(x)))
    val, rest = order[: cfg.validation_size], order[cfg.validation_size:]
    train = rest[: cfg.train_size] if cfg.train_size else rest
    return {"train": (binary(x[train]), y[train].astype(np.int32)),
            "validation": (binary(x[val]), y[val].astype(np.int32)),
            "test": (binary(x_test), y_test.astype(np.int32))}


def hidden_features(params, x, batch: int = 5000) -> np.ndarray:
    f = jax.jit(classic.hidden_probabilities)
    return np.concatenate([np.asarray(f(params, x[i:i + batch])) for i in range(0, len(x), batch)])


def logistic_regression(cfg: ClassifierSection, train, test, key, progress: bool, log) -> dict:
    """Softmax regression (one Dense layer) trained with `fnn.fit`; its test loss and accuracy."""
    model = Dense(10)
    _, params, state = model.init(jax.random.fold_in(key, 0), (None, train[0].shape[1]))
    result = fit(model, params, state, train, loss=losses.softmax_cross_entropy,
                 optimizer=optim.adam(cfg.learning_rate), key=jax.random.fold_in(key, 1),
                 epochs=cfg.epochs, batch_size=cfg.batch_size, progress=progress, log=log)
    scores = evaluate(model, result.params, result.state, test, loss=losses.softmax_cross_entropy)
    return {"test_accuracy": float(scores["accuracy"]), "test_loss": float(scores["loss"]),
            "train_accuracy": float(result.history["accuracy"][-1])}


def gibbs_frames(params, start, steps: List[int], key) -> np.ndarray:
    """``p(v|h)`` of chains from ``start`` (C, 784) at each of ``steps`` (sorted; 0 is the
    start itself): (len(steps), C, 784)."""
    chain = jax.jit(classic.gibbs_chain, static_argnames="k")
    frames, v, done = [], jnp.asarray(start), 0
    for i, target in enumerate(sorted(steps)):
        if target == 0:
            frames.append(np.asarray(start))
            continue
        v, p_v = chain(jax.random.fold_in(key, i), params, v, k=target - done)
        done = target
        frames.append(np.asarray(p_v))
    return np.stack(frames)


# ----------------------------------------------------------------------------- plots

def _tiles(ax, images, cols, vmin=None, vmax=None, cmap="gray_r"):
    """Images (n, 784) tiled in a grid with ``cols`` columns, one pixel of gap."""
    n = len(images)
    rows = -(-n // cols)
    canvas = np.full((rows * 29 + 1, cols * 29 + 1), np.nan)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[1 + 29 * r: 29 * r + 29, 1 + 29 * c: 29 * c + 29] = img.reshape(28, 28)
    ax.imshow(canvas, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.axis("off")


def plot_filters(params, count: int, path) -> Path:
    w = np.asarray(params["w"]).T[:count]
    fig = figure("plot_filters", figsize=(8, 8.4), layout="constrained")
    limit = np.abs(w).max()
    _tiles(fig.subplots(), w, int(np.ceil(np.sqrt(count))), -limit, limit, "RdBu_r")
    fig.suptitle(f"weights of the first {count} hidden units (red +, blue −)", fontsize=11)
    return save(fig, path)


def plot_reconstructions(params, x, path) -> Path:
    recon = np.asarray(classic.reconstruct(params, jnp.asarray(x)))
    fig = figure("plot_reconstructions", figsize=(10, 2.6), layout="constrained")
    top, bottom = fig.subplots(2, 1)
    _tiles(top, x, len(x), 0, 1)
    top.set_title("binarized test digits", fontsize=10)
    _tiles(bottom, recon, len(x), 0, 1)
    bottom.set_title("mean-field reconstructions p(v | p(h|v))", fontsize=10)
    return save(fig, path)


def plot_samples(frames: np.ndarray, steps: List[int], path) -> Path:
    fig = figure("plot_samples", figsize=(1.0 * len(steps) + 1, 1.0 * frames.shape[1] + 0.8),
                 layout="constrained")
    ax = fig.subplots()
    # rows: chains, columns: Gibbs steps
    _tiles(ax, frames.transpose(1, 0, 2).reshape(-1, 784), len(steps), 0, 1)
    ax.set_title("Gibbs chains from test digits; p(v|h) after " +
                 ", ".join(str(s) for s in sorted(steps)) + " sweeps", fontsize=9)
    return save(fig, path)


def plot_curves(history, path) -> Path:
    fig = figure("plot_curves", figsize=(10, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    epochs = np.arange(1, len(history.reconstruction_error) + 1)
    ax1.plot(epochs, history.reconstruction_error, marker=".")
    ax1.set(xlabel="epoch", ylabel="Σ_i (v_i − p(v_i|h))² per digit",
            title="reconstruction error (training digits)")
    ax2.plot(epochs, history.free_energy_gap, marker=".", color="C1")
    ax2.set(xlabel="epoch", ylabel="mean F(held out) − mean F(train)", title="free-energy gap")
    return save(fig, path)


# ----------------------------------------------------------------------------- run

def run(cfg: RBMConfig, out_dir, *, progress: bool = True, log=print) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    key = jax.random.PRNGKey(cfg.seed)
    try:
        data = binarized_mnist(cfg.data, jax.random.fold_in(key, 0))
    except FileNotFoundError as error:
        log(f"rbm: nothing to do, the MNIST files are absent ({str(error).splitlines()[0]})")
        report = {"name": cfg.name, "skipped": "MNIST files not found; set FNN_DATA"}
        write_json(out / "results.json", report)
        return report
    x_train, x_val, x_test = data["train"][0], data["validation"][0], data["test"][0]
    r = cfg.rbm
    params = classic.init_rbm(jax.random.fold_in(key, 1), 784, r.hidden, std=r.init_std,
                              data_mean=x_train.mean(0))
    before = float(classic.reconstruction_error(params, jnp.asarray(x_test)))
    log(f"rbm: 784-{r.hidden} on {len(x_train)} binarized digits, "
        f"{'PCD' if r.persistent else 'CD'}-{r.k}, {r.epochs} epochs")
    t0 = time.perf_counter()
    params, history = classic.train_rbm(
        params, x_train, key=jax.random.fold_in(key, 2), epochs=r.epochs,
        batch_size=r.batch_size, k=r.k, persistent=r.persistent,
        optimizer=optim.sgd(r.learning_rate, momentum=r.momentum), monitor=x_val,
        progress=progress)
    train_seconds = time.perf_counter() - t0
    test_recon = float(classic.reconstruction_error(params, jnp.asarray(x_test)))

    feats = {name: (hidden_features(params, x), y) for name, (x, y) in data.items()}
    classifier_key = jax.random.fold_in(key, 3)
    on_features = logistic_regression(cfg.classifier, feats["train"], feats["test"],
                                      classifier_key, progress, log)
    on_pixels = (logistic_regression(cfg.classifier, data["train"], data["test"],
                                     classifier_key, progress, log)
                 if cfg.classifier.compare_pixels else None)
    report = {
        "name": cfg.name, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.perf_counter() - started, 1),
        "rbm_train_seconds": round(train_seconds, 1), "config": to_dict(cfg),
        "data": {k: len(v[0]) for k, v in data.items()},
        "reconstruction_error_per_epoch": history.reconstruction_error.tolist(),
        "free_energy_per_epoch": history.free_energy.tolist(),
        "free_energy_gap_per_epoch": history.free_energy_gap.tolist(),
        "test_reconstruction_error_before": before,
        "test_reconstruction_error": test_recon,
        "logistic_regression_on_hidden": on_features,
        "logistic_regression_on_pixels": on_pixels,
    }
    write_json(out / "results.json", report)
    if plots_available():
        p = cfg.plot
        plot_filters(params, min(p.filters, r.hidden), out / "filters.png")
        plot_reconstructions(params, x_test[:12], out / "reconstructions.png")
        frames = gibbs_frames(params, x_test[: p.chains], p.chain_steps, jax.random.fold_in(key, 4))
        plot_samples(frames, p.chain_steps, out / "samples.png")
        plot_curves(history, out / "curves.png")
    pixels = (f", {on_pixels['test_accuracy']:.4f} on the 784 pixels" if on_pixels else "")
    log(f"reconstruction error (test): {before:.2f} before, {test_recon:.2f} after training; "
        f"logistic regression: {on_features['test_accuracy']:.4f} on the {r.hidden} hidden "
        f"features{pixels}")
    return report


def main(argv=None) -> int:
    return experiment_main(argv, name="rbm", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run,
                           quick="784-16 RBM on 500 digits for 2 epochs, 1 classifier epoch")


if __name__ == "__main__":
    sys.exit(main())
