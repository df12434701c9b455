"""MNIST as sequences: each digit read row by row (28 steps of 28 pixels) by an RNN, an LSTM, a
GRU and a bidirectional LSTM, compared in one table with their learning curves (lecture 8).

Each model is ``RNN(cell) -> Dense(10)`` on the output at the last step (for the bidirectional
LSTM: the forward output at the last row concatenated with the backward output at the first),
trained by `fnn.fit` with Adam on the same training digits, validated on held-out ones, and
tested on MNIST's test set. Rows are scaled to [0, 1].

    python experiments/mnist_rows.py configs/mnist_rows.toml [--out DIR] [--quick] [--no-progress]

The run folder holds ``config.toml``, ``results.json`` (each model's parameter count, curves,
test accuracy and seconds, the date) and ``curves.png`` (validation accuracy and training loss
per epoch for the four models). MNIST comes from ``$FNN_DATA`` (see the README); without it the
run stops with the loader's message.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import jax
import numpy as np

import fnn
from fnn.config import ConfigError, load as load_toml, to_dict
from fnn.data import as_float, load_mnist
from fnn.experiment import experiment_main, write_json
from fnn.layers import RNN, Bidirectional, Dense, ElmanCell, GRUCell, LSTMCell, serial
from fnn.optim import adam

MODELS = {
    "rnn": lambda n: RNN(ElmanCell(n), return_sequences=False),
    "lstm": lambda n: RNN(LSTMCell(n), return_sequences=False),
    "gru": lambda n: RNN(GRUCell(n), return_sequences=False),
    "bilstm": lambda n: Bidirectional(LSTMCell(n), return_sequences=False),
}
QUICK = {"train_size": 512, "validation_size": 256, "test_size": 256, "epochs": 2, "units": 16}


@dataclass(frozen=True)
class RowsConfig:
    name: str = "mnist_rows"
    seed: int = 0
    models: List[str] = field(default_factory=lambda: ["rnn", "lstm", "gru", "bilstm"])
    units: int = 128
    train_size: int = 20000
    validation_size: int = 5000
    test_size: int = 10000
    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = 0.001
    clip_norm: float = 1.0


def load_config(path, quick: bool = False) -> RowsConfig:
    cfg = load_toml(path, RowsConfig, overrides=QUICK if quick else None)
    unknown = [m for m in cfg.models if m not in MODELS]
    if unknown or not cfg.models:
        raise ConfigError(f"config key `models` must list some of {sorted(MODELS)}; got {cfg.models}.")
    for key in ("units", "train_size", "validation_size", "test_size", "epochs", "batch_size"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"config key `{key}` must be >= 1; got {getattr(cfg, key)}.")
    if cfg.train_size + cfg.validation_size > 60000 or cfg.test_size > 10000:
        raise ConfigError("config keys `train_size` + `validation_size` must be <= 60000 and "
                          "`test_size` <= 10000 (MNIST's splits).")
    return cfg


def data(cfg: RowsConfig):
    """Training, validation and test digits as (N, 28 rows, 28 pixels) float32 and int32 labels."""
    (x, y), (xt, yt) = load_mnist("train"), load_mnist("test")
    order = np.asarray(jax.random.permutation(jax.random.PRNGKey(cfg.seed), len(x)))
    x, y = as_float(x)[order], np.asarray(y, np.int32)[order]
    n, v = cfg.train_size, cfg.validation_size
    return ((x[:n], y[:n]), (x[n:n + v], y[n:n + v]),
            (as_float(xt)[: cfg.test_size], np.asarray(yt, np.int32)[: cfg.test_size]))


def train_one(kind: str, cfg: RowsConfig, splits, progress) -> dict:
    train, validation, test = splits
    model = serial(MODELS[kind](cfg.units), Dense(10))
    _, params, state = model.init(jax.random.PRNGKey(cfg.seed + 1), (None, 28, 28))
    optimizer = fnn.optim.chain(fnn.optim.clip_by_global_norm(cfg.clip_norm),
                                adam(cfg.learning_rate))
    started = time.perf_counter()
    result = fnn.fit(model, params, state, train, loss="softmax_cross_entropy",
                     optimizer=optimizer, key=jax.random.PRNGKey(cfg.seed + 2),
                     epochs=cfg.epochs, batch_size=cfg.batch_size, validation_data=validation,
                     progress=progress, log=lambda line: print(f"  {kind}: {line}", flush=True))
    seconds = time.perf_counter() - started
    scores = fnn.evaluate(model, result.params, result.state, test, loss="softmax_cross_entropy")
    return {"parameters": fnn.count_params(result.params), "history": result.history,
            "test_accuracy": scores["accuracy"], "test_loss": scores["loss"],
            "seconds": round(seconds, 1)}


def run(cfg: RowsConfig, out: Path, *, progress: bool = True) -> dict:
    splits = data(cfg)
    print(f"{cfg.name}: {len(splits[0][0])} training, {len(splits[1][0])} validation, "
          f"{len(splits[2][0])} test digits as 28 rows of 28 pixels", flush=True)
    models = {kind: train_one(kind, cfg, splits, "lines" if progress else False)
              for kind in cfg.models}
    results = {"name": cfg.name, "date": time.strftime("%Y-%m-%d"), "models": models,
               "config": to_dict(cfg)}
    write_json(out / "results.json", results)
    plot(models, out / "curves.png", cfg)
    print("\n| model | parameters | test accuracy | seconds |\n|---|---|---|---|")
    for kind, r in models.items():
        print(f"| {kind} | {r['parameters']:,} | {100 * r['test_accuracy']:.2f} % | {r['seconds']:.0f} |")
    return results


def plot(models, path, cfg) -> None:
    from fnn import plots

    if not plots.available():
        print("no plot: matplotlib is missing (pip install 'fnn[viz]')")
        return
    fig = plots.figure("mnist_rows", figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    for kind, r in models.items():
        epochs = np.arange(1, len(r["history"]["loss"]) + 1)
        left.plot(epochs, r["history"]["val_accuracy"], "o-", label=kind)
        right.semilogy(epochs, r["history"]["loss"], "o-", label=kind)
    left.set(xlabel="epoch", ylabel="validation accuracy", title="MNIST read row by row")
    right.set(xlabel="epoch", ylabel="training loss", title=f"{cfg.units} units, Adam")
    for ax in (left, right):
        ax.legend()
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    plots.save(fig, path)


def main(argv=None) -> int:
    return experiment_main(sys.argv[1:] if argv is None else argv, name="mnist_rows",
                           description=__doc__.splitlines()[0], load_config=load_config,
                           run=lambda cfg, out, progress: run(cfg, Path(out), progress=progress),
                           quick="512 training digits, 16 units, 2 epochs")


if __name__ == "__main__":
    sys.exit(main())
