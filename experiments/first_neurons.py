"""First neurons (course lecture 1): the perceptron learns AND and OR but not XOR; a 2-2-1 MLP
learns XOR; the perceptron and Adaline separate jockeys from basketball players.

* Logic gates: a unipolar perceptron (``Δw = α x (y_d − y)``, zero start, patterns in the order
  00, 01, 10, 11) trained until an epoch has no error or ``max_epochs``; its decision line drawn
  after every epoch. AND and OR converge; XOR never does (reported with its error count).
* XOR by a 2-2-1 MLP (``fnn.layers``: Dense(2)-tanh-Dense(1)-sigmoid, mean squared error, full-
  batch gradient descent with ``jax.grad``) from several seeds: how many solve it, and the
  hidden units' two lines.
* "Jockey vs basketball player": heights (cm) and weights (kg) drawn with the config's key
  (Gaussians per class), standardized with the training statistics. A bipolar perceptron
  converges (lines per epoch); Adaline (LMS, ``w ← w + 2μ ε x``) gives its error curve, compared
  with the least-squares MSE (``numpy.linalg.lstsq``). Adaline on bipolar AND too.

Run it from the repository root (a few seconds)::

    python experiments/first_neurons.py configs/first_neurons.toml [--out DIR] [--quick] \
        [--no-progress]

The run folder holds ``config.toml``, ``results.json``, ``gates.png`` (perceptron lines per
epoch on AND, OR, XOR, and errors per epoch), ``xor_mlp.png``, ``jockeys.png`` and
``adaline_error.png``.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict

import jax
import jax.numpy as jnp
import numpy as np

from fnn import classic, optim
from fnn.config import ConfigError, load as load_toml, to_dict
from fnn.experiment import experiment_main, write_json
from fnn.layers import Activation, Dense, serial
from fnn.plots import available as plots_available, figure, save
from fnn.train import progress_bar

GATE_INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
GATES = {"AND": [0, 0, 0, 1], "OR": [0, 1, 1, 1], "XOR": [0, 1, 1, 0]}


# ----------------------------------------------------------------------------- config

@dataclass(frozen=True)
class PerceptronConfig:
    alpha: float = 0.5        # learning rate α of Δw = α x (y_d − y)
    max_epochs: int = 20      # epoch limit (XOR reaches it)


@dataclass(frozen=True)
class MLPConfig:
    hidden: int = 2
    learning_rate: float = 0.5
    epochs: int = 3000        # full-batch gradient-descent steps on the 4 patterns
    seeds: int = 10           # independent initializations


@dataclass(frozen=True)
class PlayerClass:
    height_mean: float = 160.0
    height_std: float = 5.0
    weight_mean: float = 52.0
    weight_std: float = 4.0


@dataclass(frozen=True)
class JockeyConfig:
    per_class: int = 30
    jockey: PlayerClass = field(default_factory=PlayerClass)
    basketball: PlayerClass = field(default_factory=lambda: PlayerClass(200.0, 8.0, 98.0, 9.0))
    alpha: float = 0.1
    max_epochs: int = 50
    start_scale: float = 0.0  # the perceptron starts from weights uniform in ±start_scale


@dataclass(frozen=True)
class AdalineConfig:
    mu: float = 0.005         # μ of w ← w + 2μ ε x
    epochs: int = 60


@dataclass(frozen=True)
class FirstNeuronsConfig:
    name: str = "first_neurons"
    seed: int = 0
    perceptron: PerceptronConfig = field(default_factory=PerceptronConfig)
    mlp: MLPConfig = field(default_factory=MLPConfig)
    jockeys: JockeyConfig = field(default_factory=JockeyConfig)
    adaline: AdalineConfig = field(default_factory=AdalineConfig)


QUICK = {"mlp": {"epochs": 300, "seeds": 2}, "adaline": {"epochs": 10}}


def load_config(path, quick: bool = False) -> FirstNeuronsConfig:
    """Read and check the TOML config; ``quick`` shortens the MLP and Adaline runs."""
    cfg = load_toml(path, FirstNeuronsConfig, overrides=QUICK if quick else None)
    rates = {"perceptron.alpha": cfg.perceptron.alpha, "jockeys.alpha": cfg.jockeys.alpha,
             "adaline.mu": cfg.adaline.mu, "mlp.learning_rate": cfg.mlp.learning_rate}
    for key, value in rates.items():
        if not value > 0:
            raise ConfigError(f"config key `{key}` must be > 0; got {value}.")
    for key, value in {"perceptron.max_epochs": cfg.perceptron.max_epochs,
                       "jockeys.max_epochs": cfg.jockeys.max_epochs,
                       "jockeys.per_class": cfg.jockeys.per_class, "mlp.hidden": cfg.mlp.hidden,
                       "mlp.epochs": cfg.mlp.epochs, "mlp.seeds": cfg.mlp.seeds,
                       "adaline.epochs": cfg.adaline.epochs}.items():
        if value < 1:
            raise ConfigError(f"config key `{key}` must be >= 1; got {value}.")
    return cfg


# ----------------------------------------------------------------------------- the parts

def gates(cfg: PerceptronConfig) -> Dict[str, dict]:
    """A unipolar perceptron from zero weights on each gate: its history and verdict."""
    out = {}
    for name, targets in GATES.items():
        params, history = classic.train_perceptron(
            classic.init_neuron(2), GATE_INPUTS, np.array(targets, np.float32), alpha=cfg.alpha,
            max_epochs=cfg.max_epochs)
        answers = np.asarray(classic.perceptron_output(params, GATE_INPUTS))
        out[name] = {"learned": bool(history.converged), "epochs": history.epochs,
                     "errors_per_epoch": history.errors.astype(int).tolist(),
                     "w": np.asarray(params["w"]).tolist(), "b": float(params["b"]),
                     "answers": answers.astype(int).tolist(),
                     "history": history}
    return out


def xor_mlp(cfg: MLPConfig, key) -> dict:
    """A 2-h-1 tanh/sigmoid MLP on XOR by full-batch gradient descent on the MSE, per seed."""
    model = serial(Dense(cfg.hidden), Activation("tanh"), Dense(1), Activation("sigmoid"),
                   name="xor_mlp")
    x, y = jnp.asarray(GATE_INPUTS), jnp.asarray(GATES["XOR"], jnp.float32)[:, None]
    optimizer = optim.sgd(cfg.learning_rate)

    _, _, state = model.init(key, (None, 2))  # stateless layers: the structure only

    def loss(params):
        out, _ = model.apply(params, state, x)
        return jnp.mean((out - y) ** 2)

    @jax.jit
    def train(key):
        _, params, _ = model.init(key, (None, 2))

        def step(carry, _):
            params, opt_state = carry
            value, grads = jax.value_and_grad(loss)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optim.apply_updates(params, updates), opt_state), value

        (params, _), curve = jax.lax.scan(step, (params, optimizer.init(params)), None,
                                          length=cfg.epochs)
        return params, curve, model.apply(params, state, x)[0][:, 0]

    runs = []
    for seed in range(cfg.seeds):
        params, curve, outputs = train(jax.random.fold_in(key, seed))
        outputs = np.asarray(outputs)
        runs.append({"seed": seed, "solved": bool(np.all((outputs > 0.5) == (y[:, 0] > 0.5))),
                     "final_mse": float(curve[-1]), "outputs": outputs.round(4).tolist(),
                     "curve": np.asarray(curve), "params": params})
    return {"model": model, "state": state, "hidden": cfg.hidden, "runs": runs,
            "solved": sum(r["solved"] for r in runs), "seeds": cfg.seeds}


def jockey_data(cfg: JockeyConfig, key):
    """Heights (cm) and weights (kg) of ``per_class`` jockeys (label −1) and basketball players
    (+1), each feature Gaussian per class, shuffled with ``key``."""
    parts, labels = [], []
    for i, (cls, label) in enumerate(((cfg.jockey, -1.0), (cfg.basketball, 1.0))):
        z = jax.random.normal(jax.random.fold_in(key, i), (cfg.per_class, 2))
        parts.append(np.asarray(z) * [cls.height_std, cls.weight_std]
                     + [cls.height_mean, cls.weight_mean])
        labels.append(np.full(cfg.per_class, label))
    x, y = np.concatenate(parts), np.concatenate(labels)
    order = np.asarray(jax.random.permutation(jax.random.fold_in(key, 2), len(x)))
    return x[order].astype(np.float32), y[order].astype(np.float32)


def standardize(x):
    mean, std = x.mean(0), x.std(0)
    return (x - mean) / std, mean, std


def raw_line(w, b, mean, std):
    """A line ``w·((x − m)/s) + b = 0`` in standardized units as ``(w', b')`` in raw units."""
    w = np.asarray(w, np.float64)
    return w / std, float(b) - float(np.sum(w * mean / std))


def jockeys(cfg: JockeyConfig, ada: AdalineConfig, key) -> dict:
    x_raw, y = jockey_data(cfg, key)
    x, mean, std = standardize(x_raw)
    start = classic.init_neuron(2, key=jax.random.fold_in(key, 3), scale=cfg.start_scale)
    p_params, p_hist = classic.train_perceptron(start, x, y, alpha=cfg.alpha, bipolar=True,
                                                max_epochs=cfg.max_epochs)
    a_params, a_hist = classic.train_adaline(classic.init_neuron(2), x, y, mu=ada.mu,
                                             epochs=ada.epochs)
    xa = np.c_[np.ones(len(x)), x].astype(np.float64)
    w_ls = np.linalg.lstsq(xa, y.astype(np.float64), rcond=None)[0]
    mse_ls = float(np.mean((y - xa @ w_ls) ** 2))
    a_answers = np.asarray(classic.adaline_output(a_params, x))
    return {
        "data": (x_raw, y, mean, std),
        "perceptron": {"learned": bool(p_hist.converged), "epochs": p_hist.epochs,
                       "errors_per_epoch": p_hist.errors.astype(int).tolist(),
                       "line_raw_units": _line_dict(*raw_line(p_params["w"], p_params["b"],
                                                              mean, std)),
                       "history": p_hist},
        "adaline": {"final_mse": float(a_hist.mse[-1]), "least_squares_mse": mse_ls,
                    "w": np.asarray(a_params["w"]).tolist(), "b": float(a_params["b"]),
                    "w_least_squares": w_ls[1:].tolist(), "b_least_squares": float(w_ls[0]),
                    "training_accuracy": float(np.mean(a_answers == y)),
                    "mse_per_epoch": a_hist.mse.tolist(),
                    "line_raw_units": _line_dict(*raw_line(a_params["w"], a_params["b"],
                                                           mean, std)),
                    "history": a_hist},
    }


def _line_dict(w, b):
    return {"w_height": float(w[0]), "w_weight": float(w[1]), "b": float(b)}


def adaline_and(ada: AdalineConfig) -> dict:
    """Adaline on bipolar AND: LMS settles near the least-squares line, which classifies AND."""
    d = 2 * np.array(GATES["AND"], np.float32) - 1
    params, hist = classic.train_adaline(classic.init_neuron(2), GATE_INPUTS, d,
                                         mu=max(ada.mu, 0.05), epochs=ada.epochs)
    xa = np.c_[np.ones(4), GATE_INPUTS].astype(np.float64)
    w_ls = np.linalg.lstsq(xa, d.astype(np.float64), rcond=None)[0]
    return {"mu": max(ada.mu, 0.05), "final_mse": float(hist.mse[-1]),
            "least_squares_mse": float(np.mean((d - xa @ w_ls) ** 2)),
            "w": np.asarray(params["w"]).tolist(), "b": float(params["b"]),
            "w_least_squares": w_ls[1:].tolist(), "b_least_squares": float(w_ls[0]),
            "answers": np.asarray(classic.adaline_output(params, GATE_INPUTS)).astype(int).tolist(),
            "mse_per_epoch": hist.mse.tolist(), "history": hist}


# ----------------------------------------------------------------------------- plots

def _draw_line(ax, w, b, xlim, **style):
    """The line ``w0 x + w1 y + b = 0`` across ``xlim`` (vertical when w1 = 0)."""
    w0, w1 = float(w[0]), float(w[1])
    if abs(w1) > 1e-9:
        xs = np.array(xlim)
        ax.plot(xs, -(w0 * xs + b) / w1, **style)
    elif abs(w0) > 1e-9:
        ax.axvline(-b / w0, **style)


def plot_gates(report_gates: Dict[str, dict], path) -> Path:
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator
    fig = figure("plot_gates", figsize=(12, 6.5), layout="constrained")
    axes = fig.subplots(2, 3)
    for col, (name, g) in enumerate(report_gates.items()):
        ax, hist = axes[0, col], g["history"]
        targets = np.array(GATES[name])
        for t, marker in ((0, "o"), (1, "s")):
            sel = targets == t
            ax.scatter(GATE_INPUTS[sel, 0], GATE_INPUTS[sel, 1], s=120, marker=marker,
                       c="white" if t == 0 else "black", edgecolors="black", zorder=3,
                       label=f"y_d = {t}")
        cmap = colormaps["viridis"]
        for e in range(hist.epochs):
            last = e == hist.epochs - 1
            _draw_line(ax, hist.w[e], hist.b[e], (-0.5, 1.5),
                       color=cmap(e / max(hist.epochs - 1, 1)),
                       lw=2.5 if last else 1, alpha=1 if last else 0.6,
                       label=f"epoch {e + 1}" if (last or e == 0) else None)
        ax.set(xlim=(-0.5, 1.5), ylim=(-0.5, 1.5), xlabel="x₁", ylabel="x₂", aspect="equal",
               title=f"{name}: " + (f"learned in {g['epochs']} epochs" if g["learned"]
                                    else f"NOT learned in {g['epochs']} epochs"))
        ax.legend(fontsize=7, loc="upper left")
        ax2 = axes[1, col]
        ax2.bar(np.arange(1, hist.epochs + 1), hist.errors,
                color="C0" if g["learned"] else "C3")
        ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax2.set(xlabel="epoch", ylabel="patterns wrong during the epoch",
                title=f"{name}: errors per epoch")
    fig.suptitle("Unipolar perceptron, Δw = α x (y_d − y), zero start; line after each epoch "
                 "(dark → light)", fontsize=11)
    return save(fig, path)


def plot_xor_mlp(result: dict, path) -> Path:
    fig = figure("plot_xor_mlp", figsize=(12, 4.2), layout="constrained")
    ax_region, ax_hidden, ax_curve = fig.subplots(1, 3)
    runs = result["runs"]
    best = min(runs, key=lambda r: r["final_mse"])
    model = result["model"]
    g = np.linspace(-0.5, 1.5, 200)
    gx, gy = np.meshgrid(g, g)
    grid_points = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
    out = np.asarray(model.apply(best["params"], result["state"], grid_points)[0])
    out = out.reshape(gx.shape)
    targets = np.array(GATES["XOR"])
    for ax in (ax_region, ax_hidden):
        if ax is ax_region:
            im = ax.contourf(gx, gy, out, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.7)
            fig.colorbar(im, ax=ax, label="network output")
        for t, marker in ((0, "o"), (1, "s")):
            sel = targets == t
            ax.scatter(GATE_INPUTS[sel, 0], GATE_INPUTS[sel, 1], s=120, marker=marker,
                       c="white" if t == 0 else "black", edgecolors="black", zorder=3)
        ax.set(xlim=(-0.5, 1.5), ylim=(-0.5, 1.5), xlabel="x₁", ylabel="x₂", aspect="equal")
    ax_region.set_title(f"2-{result['hidden']}-1 MLP on XOR (seed {best['seed']}): output")
    first = next(p for p in best["params"].values() if "w" in p)  # the hidden Dense layer
    for j in range(first["w"].shape[1]):
        _draw_line(ax_hidden, np.asarray(first["w"][:, j]), float(first["b"][j]), (-0.5, 1.5),
                   color=f"C{j}", lw=2, label=f"hidden unit {j + 1}: z = 0")
    ax_hidden.legend(fontsize=8)
    ax_hidden.set_title("the hidden units' lines")
    for r in runs:
        ax_curve.plot(r["curve"], color="C0" if r["solved"] else "C3", alpha=0.7)
    ax_curve.set(yscale="log", xlabel="gradient-descent step", ylabel="MSE",
                 title=f"{result['solved']}/{result['seeds']} seeds solve XOR (red: stuck)")
    return save(fig, path)


def plot_jockeys(result: dict, path) -> Path:
    x, y, mean, std = result["data"]
    fig = figure("plot_jockeys", figsize=(11, 5), layout="constrained")
    ax, ax_err = fig.subplots(1, 2)
    for label, name, marker in ((-1, "jockeys", "o"), (1, "basketball players", "s")):
        sel = y == label
        ax.scatter(x[sel, 0], x[sel, 1], marker=marker, label=name, alpha=0.8)
    xlim = (x[:, 0].min() - 5, x[:, 0].max() + 5)
    hist = result["perceptron"]["history"]
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator
    cmap = colormaps["viridis"]
    for e in range(hist.epochs):
        w, b = raw_line(hist.w[e], hist.b[e], mean, std)
        last = e == hist.epochs - 1
        _draw_line(ax, w, b, xlim, color=cmap(e / max(hist.epochs - 1, 1)), lw=2 if last else 1,
                   alpha=1 if last else 0.5,
                   label=f"perceptron, epoch {e + 1}" if (last or e == 0) else None)
    ada = result["adaline"]
    w, b = raw_line(ada["w"], ada["b"], mean, std)
    _draw_line(ax, w, b, xlim, color="C3", lw=2, ls="--", label="Adaline (LMS), last epoch")
    ax.set(xlim=xlim, ylim=(x[:, 1].min() - 10, x[:, 1].max() + 10), xlabel="height (cm)",
           ylabel="weight (kg)", title="jockey or basketball player?")
    ax.legend(fontsize=8)
    ax_err.bar(np.arange(1, hist.epochs + 1), hist.errors)
    ax_err.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_err.set(xlabel="epoch", ylabel="patterns wrong during the epoch",
               title=f"bipolar perceptron: learned in {hist.epochs} epochs"
               if result["perceptron"]["learned"] else "bipolar perceptron: not learned")
    return save(fig, path)


def plot_adaline(jockey_result: dict, and_result: dict, path) -> Path:
    fig = figure("plot_adaline", figsize=(11, 4.2), layout="constrained")
    for ax, (title, r) in zip(fig.subplots(1, 2), (("jockeys vs basketball players (standardized)",
                                                     jockey_result["adaline"]),
                                                    ("bipolar AND", and_result))):
        epochs = np.arange(1, len(r["mse_per_epoch"]) + 1)
        ax.plot(epochs, r["mse_per_epoch"], label="LMS, after each epoch")
        ax.axhline(r["least_squares_mse"], color="k", ls="--",
                   label=f"least squares (lstsq): {r['least_squares_mse']:.4f}")
        ax.set(yscale="log", xlabel="epoch", ylabel="mean (d − wᵀx)²", title=f"Adaline: {title}")
        ax.legend(fontsize=8)
    return save(fig, path)


# ----------------------------------------------------------------------------- run

def strip(value):
    """A result without the objects that are not numbers (histories, params, model)."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items()
                if k not in ("history", "params", "model", "state", "curve", "data")}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def run(cfg: FirstNeuronsConfig, out_dir, *, progress: bool = True, log=print) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    key = jax.random.PRNGKey(cfg.seed)
    bar = progress_bar(4, "first neurons", progress, unit="part")
    parts = {}
    for name, fn in (("gates", lambda: gates(cfg.perceptron)),
                     ("xor_mlp", lambda: xor_mlp(cfg.mlp, jax.random.fold_in(key, 1))),
                     ("jockeys", lambda: jockeys(cfg.jockeys, cfg.adaline,
                                                 jax.random.fold_in(key, 2))),
                     ("adaline_and", lambda: adaline_and(cfg.adaline))):
        parts[name] = fn()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    report = {"name": cfg.name, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "seconds": round(time.perf_counter() - started, 1), "config": to_dict(cfg),
              **strip(parts)}
    write_json(out / "results.json", report)
    if plots_available():
        plot_gates(parts["gates"], out / "gates.png")
        plot_xor_mlp(parts["xor_mlp"], out / "xor_mlp.png")
        plot_jockeys(parts["jockeys"], out / "jockeys.png")
        plot_adaline(parts["jockeys"], parts["adaline_and"], out / "adaline_error.png")
    for name, g in report["gates"].items():
        log(f"perceptron {name}: " + (f"learned in {g['epochs']} epochs" if g["learned"] else
                                      f"NOT learned: {g['epochs']} epochs, errors per epoch "
                                      f"{g['errors_per_epoch']}"))
    m = report["xor_mlp"]
    log(f"2-{cfg.mlp.hidden}-1 MLP on XOR: {m['solved']}/{m['seeds']} seeds solve it")
    j = report["jockeys"]
    log(f"jockeys: perceptron learned={j['perceptron']['learned']} in {j['perceptron']['epochs']} "
        f"epochs; Adaline MSE {j['adaline']['final_mse']:.4f} (least squares "
        f"{j['adaline']['least_squares_mse']:.4f}), accuracy "
        f"{j['adaline']['training_accuracy']:.3f}")
    return report


def main(argv=None) -> int:
    return experiment_main(argv, name="first_neurons", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run,
                           quick="300 MLP steps from 2 seeds, 10 Adaline epochs")


if __name__ == "__main__":
    sys.exit(main())
