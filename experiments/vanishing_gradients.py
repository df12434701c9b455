"""Vanishing gradients through time: how much of the loss's gradient reaches early inputs.

For each cell (Elman RNN, LSTM, GRU; lecture 8) and each sequence length T, a freshly
initialized `RNN(cell)` reads a random sequence x (batch, T, d); the loss is the last hidden
state's projection on a fixed random direction, L = mean_b h_T · v. Backpropagation through
time (`jax.grad` of the scanned layer) gives ∂L/∂x_t for every t; the study reports
g_t = sqrt(mean_b ‖∂L/∂x_t‖²), averaged over ``seeds`` initializations, and the ratio g_1 / g_T:
how much weaker the gradient is at the first step than at the last.

    python experiments/vanishing_gradients.py configs/vanishing_gradients.toml [--out DIR] [--quick] [--no-progress]

The run folder holds ``config.toml``, ``results.json`` (g_t for every cell and length, the
ratios, the date) and ``gradients.png`` (left: g_t against the distance T − t for the longest
sequence; right: g_1 / g_T against T; both on log scales).
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

from fnn.config import ConfigError, load as load_toml, to_dict
from fnn.experiment import experiment_main, write_json
from fnn.layers import RNN, ElmanCell, GRUCell, LSTMCell
from fnn.train import progress_bar

CELLS = {"elman": ElmanCell, "lstm": LSTMCell, "gru": GRUCell}
QUICK = {"lengths": [4, 8], "seeds": 1, "batch": 4}


@dataclass(frozen=True)
class VanishingConfig:
    name: str = "vanishing_gradients"
    seed: int = 0
    cells: List[str] = field(default_factory=lambda: ["elman", "lstm", "gru"])
    units: int = 32
    features: int = 8
    lengths: List[int] = field(default_factory=lambda: [5, 10, 20, 50, 100])
    batch: int = 32
    seeds: int = 3


def load_config(path, quick: bool = False) -> VanishingConfig:
    cfg = load_toml(path, VanishingConfig, overrides=QUICK if quick else None)
    unknown = [c for c in cfg.cells if c not in CELLS]
    if unknown or not cfg.cells:
        raise ConfigError(f"config key `cells` must list some of {sorted(CELLS)}; got {cfg.cells}.")
    for key in ("units", "features", "batch", "seeds"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"config key `{key}` must be >= 1; got {getattr(cfg, key)}.")
    if not cfg.lengths or min(cfg.lengths) < 2:
        raise ConfigError(f"config key `lengths` must list sequence lengths >= 2; got {cfg.lengths}.")
    return cfg


def input_gradient_norms(cell_name: str, cfg: VanishingConfig, length: int, keys) -> np.ndarray:
    """g_t, t = 1..T, one row per initialization key (a key also draws x and v): (seeds, T).
    The layers are initialized one by one; one compiled gradient per cell and length is mapped
    over them."""
    layer = RNN(CELLS[cell_name](cfg.units), return_sequences=False)
    params, xs, vs = [], [], []
    for key in keys:
        k_init, k_x, k_v = jax.random.split(key, 3)
        params.append(layer.init(k_init, (None, length, cfg.features))[1])
        xs.append(jax.random.normal(k_x, (cfg.batch, length, cfg.features)))
        v = jax.random.normal(k_v, (cfg.units,))
        vs.append(v / jnp.linalg.norm(v))

    def norms(params, x, v):
        def loss(x):
            h, _ = layer.apply(params, {}, x)
            return jnp.mean(h @ v)

        grads = jax.grad(loss)(x) * cfg.batch  # per example: ∂(h_T · v)/∂x_t
        return jnp.sqrt(jnp.mean(jnp.sum(grads ** 2, axis=-1), axis=0))

    # stacked on the host (NumPy): no eager stack program per leaf and shape
    stack = lambda trees: jax.tree_util.tree_map(lambda *a: np.stack(a), *trees)  # noqa: E731
    return np.asarray(jax.jit(jax.vmap(norms))(stack(params), np.stack(xs), np.stack(vs)))


def run(cfg: VanishingConfig, out: Path, *, progress: bool = True) -> dict:
    started = time.perf_counter()
    bar = progress_bar(len(cfg.cells) * len(cfg.lengths), "cells × lengths", progress)
    norms = {}
    for cell in cfg.cells:
        norms[cell] = {}
        for length in cfg.lengths:
            keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(cfg.seed), length),
                                    cfg.seeds)
            norms[cell][length] = input_gradient_norms(cell, cfg, length, keys).mean(axis=0)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    ratios = {cell: {T: float(g[0] / g[-1]) for T, g in per.items()} for cell, per in norms.items()}
    results = {"name": cfg.name, "date": time.strftime("%Y-%m-%d"),
               "seconds": round(time.perf_counter() - started, 1),
               "first_over_last": {c: {str(T): r for T, r in per.items()} for c, per in ratios.items()},
               "gradient_norms": {c: {str(T): g.tolist() for T, g in per.items()}
                                  for c, per in norms.items()},
               "config": to_dict(cfg)}
    write_json(out / "results.json", results)
    plot(norms, ratios, out / "gradients.png", cfg)
    longest = max(cfg.lengths)
    for cell in cfg.cells:
        print(f"{cell:6s} g_1/g_T: " + ", ".join(f"T={T}: {r:.2e}" for T, r in ratios[cell].items())
              + f"  (T={longest}: g_T = {norms[cell][longest][-1]:.3f})")
    return results


def plot(norms, ratios, path, cfg) -> None:
    from fnn import plots

    if not plots.available():
        print("no plot: matplotlib is missing (pip install 'fnn[viz]')")
        return
    fig = plots.figure("vanishing_gradients", figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    longest = max(cfg.lengths)
    for cell, per in norms.items():
        g = per[longest]
        left.semilogy(np.arange(len(g))[::-1], g, label=cell)
        right.loglog(list(ratios[cell]), list(ratios[cell].values()), "o-", label=cell)
    left.set(xlabel="steps before the last, T − t", ylabel="‖∂L/∂x_t‖ (rms over the batch)",
             title=f"gradient reaching x_t, T = {longest}")
    right.set(xlabel="sequence length T", ylabel="‖∂L/∂x_1‖ / ‖∂L/∂x_T‖",
              title="first step against last")
    for ax in (left, right):
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{cfg.units} units, random init, mean of {cfg.seeds} seed(s)")
    fig.tight_layout()
    plots.save(fig, path)


def main(argv=None) -> int:
    return experiment_main(sys.argv[1:] if argv is None else argv, name="vanishing_gradients",
                           description=__doc__.splitlines()[0], load_config=load_config,
                           run=lambda cfg, out, progress: run(cfg, Path(out), progress=progress),
                           quick="lengths 4 and 8, one seed, batch 4")


if __name__ == "__main__":
    sys.exit(main())
