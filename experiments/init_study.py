"""Initialization study: why a 30-layer MLP trains with one initializer and not with another.

A deep tanh MLP and a deep ReLU MLP (default: 30 hidden layers of 256 units, on MNIST) are
initialized with zeros, a constant, uniform ±2/√n_in, Glorot and He. For each pair
(activation, initializer) the study measures

* at initialization, on one batch: the variance of the activations ``a^l`` of every hidden layer
  (forward), and the variance of the gradients ``∂L/∂W^l`` and of the deltas ``δ^l = ∂L/∂z^l``
  of every dense layer (backward), with ``L`` the batch's mean cross-entropy;
* whether it trains: plain SGD with a fixed learning rate on a subset of the training images,
  the loss of every step, and the accuracy on the full test set afterwards.

Run it from the repository root (about 4 minutes on 2 busy CPU cores; ``--quick``, a smoke run,
takes well under a minute)::

    python experiments/init_study.py configs/init_study.toml [--out DIR] [--quick] [--no-progress]
    python experiments/init_study.py --replot RUN_FOLDER   # redraw the PNGs from results.json

The run folder (``runs/init_study-<date>-<time>/`` unless ``--out``) holds ``config.toml``,
``results.json`` (every number, the config and the date), ``activation_variance.png``,
``gradient_variance.png`` and ``training_loss.png``.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import activations, init, losses
from fnn.config import ConfigError, load as load_toml
from fnn.experiment import experiment_main, jsonable, read_results, write_json
from fnn.plots import available as plots_available, figure, save
from fnn.models import mlp
from fnn.optim import sgd
from fnn.data import batches
from fnn.train import Batch, evaluate, make_train_step, progress_bar


LOSS = "softmax_cross_entropy"
LABELS = {  # how the plots and the README name each initializer
    "zeros": "zeros",
    "constant": "constant",
    "uniform_2_over_sqrt_fan_in": "uniform ±2/√n_in",
    "glorot_normal": "Glorot normal",
    "glorot_uniform": "Glorot uniform",
    "he_normal": "He normal",
    "he_uniform": "He uniform",
    "lecun_normal": "LeCun normal",
}


# ----------------------------------------------------------------------------- config

@dataclass(frozen=True)
class ModelSpec:
    depth: int = 30  # hidden layers
    width: int = 256  # units per hidden layer
    activations: List[str] = field(default_factory=lambda: ["tanh", "relu"])
    inits: List[str] = field(default_factory=lambda: [
        "zeros", "constant", "uniform_2_over_sqrt_fan_in", "glorot_normal", "he_normal"])
    constant: float = 0.1  # the value of the "constant" initializer
    # Every weight matrix (hidden and output) uses the initializer; every bias starts at 0.


@dataclass(frozen=True)
class ProbeSpec:
    batch_size: int = 512  # training images the variances at initialization are measured on


@dataclass(frozen=True)
class TrainSpec:
    train_size: int = 20000  # training images used (a random subset of the 60,000)
    epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 0.01  # plain SGD, the same for every run
    smooth: int = 25  # moving-average window (steps) of the plotted loss curves


@dataclass(frozen=True)
class InitStudyConfig:
    name: str = "init_study"
    seed: int = 0
    model: ModelSpec = field(default_factory=ModelSpec)
    probe: ProbeSpec = field(default_factory=ProbeSpec)
    train: TrainSpec = field(default_factory=TrainSpec)


QUICK = {"probe": {"batch_size": 128}, "train": {"train_size": 1024, "epochs": 1}}


def load_config(path, quick: bool = False) -> InitStudyConfig:
    """Read and check a TOML config; ``quick`` shrinks the data for a smoke run."""
    cfg = load_toml(path, InitStudyConfig, overrides=QUICK if quick else None)
    check(cfg)
    return cfg


def check(cfg: InitStudyConfig) -> None:
    """Reject values the schema's types cannot catch, naming the key."""
    positive = {"model.depth": cfg.model.depth, "model.width": cfg.model.width,
                "probe.batch_size": cfg.probe.batch_size, "train.train_size": cfg.train.train_size,
                "train.epochs": cfg.train.epochs, "train.batch_size": cfg.train.batch_size,
                "train.smooth": cfg.train.smooth}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config key `{key}` must be positive; got {value}.")
    if not cfg.train.learning_rate > 0:
        raise ConfigError(f"config key `train.learning_rate` must be positive; "
                          f"got {cfg.train.learning_rate}.")
    for i, name in enumerate(cfg.model.activations):
        try:
            activations.get(name)
        except ValueError as error:
            raise ConfigError(f"config key `model.activations[{i}]`: {error}") from None
    for i, name in enumerate(cfg.model.inits):
        try:
            initializer(name, cfg.model.constant)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"config key `model.inits[{i}]`: {error}") from None
    for key in ("activations", "inits"):
        names = getattr(cfg.model, key)
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"config key `model.{key}` must list distinct names; got {names}.")


def initializer(name: str, constant: float = 0.1):
    """The `fnn.init` initializer a config names; "constant" takes ``model.constant``."""
    return init.constant(constant) if name == "constant" else init.get(name)


def label(name: str, constant: float = 0.1) -> str:
    return f"constant {constant:g}" if name == "constant" else LABELS.get(name, name)


def build_model(activation: str, init_name: str, depth: int, width: int, num_classes: int,
                constant: float = 0.1):
    """``depth`` hidden Dense(width)+activation layers and a Dense(num_classes) logit layer."""
    return mlp([width] * depth + [num_classes], activation=activation,
               w_init=initializer(init_name, constant))


# ----------------------------------------------------------------------------- measurements

def _variance(x) -> float:
    """Variance over every entry (batch and units), computed in float64."""
    with np.errstate(invalid="ignore", over="ignore"):  # inf after an overflow gives NaN
        return float(np.var(np.asarray(x, np.float64)))


def _unit_spread(w) -> float:
    """max_i std_j W[i, j]: 0 exactly when every unit of the layer has the same weights."""
    return float(np.max(np.std(np.asarray(w, np.float64), axis=1)))


def dense_and_activation_names(model) -> List[Tuple[str, Optional[str]]]:
    """``(dense child, activation child after it or None)`` for each Dense of a serial MLP."""
    children = list(model.layers)
    pairs = []
    for i, (name, layer) in enumerate(children):
        if layer.name.startswith("Dense("):
            after = children[i + 1][0] if i + 1 < len(children) else None
            pairs.append((name, after))
    return pairs


def probe(model, params, state, x, y) -> Dict[str, list]:
    """Per-layer statistics of the model at ``params`` on one batch ``(x, y)``.

    The model's children are applied one at a time; a zero ``ε`` is added to every child's
    output so that ``∂L/∂ε`` is the gradient of the mean loss with respect to that output
    (``δ^l = ∂L/∂z^l`` after a Dense, ``∂L/∂a^l`` after an activation). Returns lists indexed by
    layer: ``activation_variance`` / ``activation_grad_variance`` (hidden layers 1..depth),
    ``grad_w_variance`` / ``delta_variance`` / ``preactivation_variance`` (dense layers
    1..depth+1, the last being the output layer), plus ``loss`` and ``input_variance``.
    """
    loss_fn = losses.get(LOSS)
    children = list(model.layers)

    def forward(params, eps):
        h, outputs = x, {}
        for name, layer in children:
            h, _ = layer.apply(params[name], state[name], h)
            if name in eps:
                h = h + eps[name]
            outputs[name] = h
        return jnp.mean(loss_fn(h, y)), outputs

    @jax.jit  # one compiled program per probe instead of one per eager op
    def measure(params):
        _, outputs = forward(params, {})
        eps = {name: jnp.zeros_like(out) for name, out in outputs.items()}
        return jax.value_and_grad(forward, argnums=(0, 1), has_aux=True)(params, eps)

    (loss, outputs), (g_params, g_eps) = measure(params)

    pairs = dense_and_activation_names(model)
    hidden = [(d, a) for d, a in pairs if a is not None]
    return {
        "loss": float(loss),
        "input_variance": _variance(x),
        "activation_variance": [_variance(outputs[a]) for _, a in hidden],
        "activation_grad_variance": [_variance(g_eps[a]) for _, a in hidden],
        "preactivation_variance": [_variance(outputs[d]) for d, _ in pairs],
        "delta_variance": [_variance(g_eps[d]) for d, _ in pairs],
        "grad_w_variance": [_variance(g_params[d]["w"]) for d, _ in pairs],
        "unit_spread": [_unit_spread(params[d]["w"]) for d, _ in hidden],
    }


def train(model, params, state, data, *, learning_rate: float, epochs: int, batch_size: int,
          key, on_step=None) -> Dict:
    """Plain SGD on ``data["train"]``: the loss of every step and the test loss and accuracy.

    Stops early (``diverged``) once the loss is no longer finite; ``on_step()`` is called after
    every step (and once for every step skipped), for a progress bar.
    """
    x, y = data["train"]
    size = min(batch_size, len(x))
    step = make_train_step(model, LOSS, sgd(learning_rate))
    opt_state = sgd(learning_rate).init(params)
    steps_per_epoch = math.ceil(len(x) / size)
    losses_, diverged_at = [], None
    started = time.perf_counter()
    for epoch in range(epochs):
        epoch_key = jax.random.fold_in(key, epoch)
        for i, ((xb, yb), mask) in enumerate(batches((x, y), size, key=epoch_key, pad=True)):
            params, state, opt_state, metrics = step(
                params, state, opt_state, Batch(xb, yb, mask),
                jax.random.fold_in(epoch_key, i))
            losses_.append(metrics["loss"])
            if on_step:
                on_step()
            if len(losses_) % 50 == 0 and not np.isfinite(float(losses_[-1])):
                break
        if losses_ and not np.isfinite(float(losses_[-1])):
            break
    loss_steps = [float(v) for v in losses_]
    finite = np.isfinite(loss_steps)
    if not finite.all():
        diverged_at = int(np.argmin(finite)) + 1
    if on_step:
        for _ in range(epochs * steps_per_epoch - len(loss_steps)):
            on_step()
    seconds = time.perf_counter() - started
    test = evaluate(model, params, state, data["test"], loss=LOSS)
    tail = loss_steps[-min(len(loss_steps), steps_per_epoch // 4 or 1):]
    return {
        "params": params,
        "loss_steps": loss_steps,
        "steps": len(loss_steps),
        "first_loss": loss_steps[0],
        "final_train_loss": float(np.mean(tail)),  # mean over the last quarter epoch
        "diverged_at_step": diverged_at,
        "test_loss": float(test["loss"]),
        "test_accuracy": float(test["accuracy"]),
        "train_seconds": round(seconds, 1),
    }


def weight_change(params_before, params_after, model) -> List[float]:
    """‖W^l_after − W^l_before‖_F for every dense layer: which layers learned at all."""
    return [float(np.linalg.norm(np.asarray(params_after[d]["w"], np.float64)
                                 - np.asarray(params_before[d]["w"], np.float64)))
            for d, _ in dense_and_activation_names(model)]


# ----------------------------------------------------------------------------- the study

def load_data(cfg: InitStudyConfig, key) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """A random subset of the MNIST training images (pixels / 255) and the whole test set."""
    from fnn.data import as_float, load_mnist

    images, labels = load_mnist("train")
    order = np.asarray(jax.random.permutation(key, len(images)))[: cfg.train.train_size]
    test_images, test_labels = load_mnist("test")
    return {"train": (as_float(images[order]), labels[order].astype(np.int32)),
            "test": (as_float(test_images), test_labels.astype(np.int32))}


def run(cfg: InitStudyConfig, out, *, data=None, progress: bool = True, log=print) -> Dict:
    """Measure and train every (activation, initializer) pair; write the run folder.

    ``data`` (``{"train": (x, y), "test": (x, y)}``, integer labels) replaces MNIST, e.g. in tests.
    Returns the results that ``results.json`` holds.
    """
    check(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    key = jax.random.PRNGKey(cfg.seed)
    data_key, probe_key, init_key, train_key = jax.random.split(key, 4)
    data = load_data(cfg, data_key) if data is None else data
    x_train, y_train = data["train"]
    num_classes = int(max(y_train.max(), data["test"][1].max())) + 1
    pick = np.asarray(jax.random.permutation(probe_key, len(x_train)))[: cfg.probe.batch_size]
    x_probe, y_probe = jnp.asarray(x_train[pick]), jnp.asarray(y_train[pick])

    m, t = cfg.model, cfg.train
    grid = [(a, i) for a in m.activations for i in m.inits]
    steps_per_run = t.epochs * math.ceil(len(x_train) / min(t.batch_size, len(x_train)))
    bar = progress_bar(len(grid) * steps_per_run, enabled=progress, unit="step")
    log(f"{cfg.name}: {len(grid)} runs of a {m.depth}x{m.width} MLP, {len(x_train)} training "
        f"images x {t.epochs} epochs, {len(data['test'][0])} test images -> {out}")
    started = time.perf_counter()
    results: Dict[str, Dict[str, Dict]] = {}
    for activation, init_name in grid:
        if bar is not None:
            bar.set_description(f"{activation}/{label(init_name, m.constant)}")
        model = build_model(activation, init_name, m.depth, m.width, num_classes, m.constant)
        _, params, state = model.init(init_key, (None, *x_train.shape[1:]))
        at_init = probe(model, params, state, x_probe, y_probe)
        trained = train(model, params, state, data, learning_rate=t.learning_rate,
                        epochs=t.epochs, batch_size=t.batch_size, key=train_key,
                        on_step=None if bar is None else lambda: bar.update(1))
        trained_params = trained.pop("params")
        trained["weight_change"] = weight_change(params, trained_params, model)
        trained["unit_spread"] = [_unit_spread(trained_params[d]["w"])
                                  for d, a in dense_and_activation_names(model) if a is not None]
        results.setdefault(activation, {})[init_name] = {"init": at_init, "train": trained}
        if bar is not None:
            bar.set_postfix(test_acc=f"{trained['test_accuracy']:.3f}")
        else:
            log(f"{activation:>5} {label(init_name, m.constant):>18}: test accuracy "
                f"{trained['test_accuracy']:.4f}")
    if bar is not None:
        bar.close()

    report = {
        "name": cfg.name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.perf_counter() - started, 1),
        "config": dataclasses.asdict(cfg),
        "data": {"train_examples": len(x_train), "test_examples": len(data["test"][0]),
                 "probe_examples": int(len(pick)),
                 "test_majority_class_share": float(np.bincount(data["test"][1]).max()
                                                    / len(data["test"][1]))},
        "notes": ("Hidden layers are numbered from 1. Variances are over every entry of a batch "
                  "(examples and units) or of a gradient; gradients are of the batch's mean "
                  "softmax cross-entropy. delta = dL/dz (after a Dense), activation_grad = dL/da "
                  "(after an activation). The dense-layer lists have depth + 1 entries, the last "
                  "being the output layer. unit_spread = max_i std_j W[i, j] per hidden layer "
                  "(0: every unit identical). null stands for inf or NaN (overflow)."),
        "summary": summary_rows(results, m.constant),
        "results": results,
    }
    report = jsonable(report)
    write_json(out / "results.json", report)
    plot_all(report, out)
    log(format_summary(report["summary"]))
    return report


def plot_all(report, out) -> None:
    """Draw the three PNGs of a run folder from its results (``--replot`` redraws them)."""
    plot_activation_variance(report, Path(out) / "activation_variance.png")
    plot_gradient_variance(report, Path(out) / "gradient_variance.png")
    plot_training_loss(report, Path(out) / "training_loss.png")


def _ratio(values) -> Optional[float]:
    """last / first of a list of variances (None if either is 0 or not finite)."""
    first, last = values[0], values[-1]
    if not (np.isfinite(first) and np.isfinite(last)) or first == 0:
        return None
    return last / first


def summary_rows(results, constant: float) -> List[Dict]:
    rows = []
    for activation, per_init in results.items():
        for init_name, r in per_init.items():
            act, grads = r["init"]["activation_variance"], r["init"]["grad_w_variance"]
            rows.append({
                "activation": activation, "init": init_name, "label": label(init_name, constant),
                "activation_variance_first": act[0], "activation_variance_last": act[-1],
                "activation_variance_ratio": _ratio(act),
                "grad_w_variance_first": grads[0], "grad_w_variance_last_hidden": grads[-2],
                "grad_w_variance_ratio_first_to_last_hidden": _ratio(grads[:-1][::-1]),
                "test_accuracy": r["train"]["test_accuracy"],
                "final_train_loss": r["train"]["final_train_loss"],
                "diverged_at_step": r["train"]["diverged_at_step"],
            })
    return rows


def format_summary(rows) -> str:
    def g(v):
        return "nan/inf" if v is None or not np.isfinite(v) else f"{v:.2e}"
    lines = [f"{'activation':<10} {'init':<18} {'Var a^1':>9} {'Var a^L':>9} "
             f"{'Var dW^1':>9} {'Var dW^L':>9} {'loss':>7} {'test acc':>8}"]
    for r in rows:
        loss = r["final_train_loss"]
        lines.append(f"{r['activation']:<10} {r['label']:<18} {g(r['activation_variance_first']):>9} "
                     f"{g(r['activation_variance_last']):>9} {g(r['grad_w_variance_first']):>9} "
                     f"{g(r['grad_w_variance_last_hidden']):>9} "
                     f"{'nan' if loss is None else f'{loss:.3f}':>7} {r['test_accuracy']:>8.4f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots

def _plot_series(ax, values, x0: int, text: str, floor: float, color, ceiling: float = np.inf):
    """One log-scale series: zeros drawn on the floor (hollow markers), inf/NaN cut off, values
    above ``ceiling`` left off the top of the plot (and said so in the label)."""
    v = np.array([np.nan if a is None else a for a in values], np.float64)
    layers = np.arange(x0, x0 + len(v))
    bad = ~np.isfinite(v)
    notes = []
    above = np.isfinite(v) & (v > ceiling)
    if above.any():
        notes.append(f"above {ceiling:.0e} from layer {layers[above][0]}")
    if (v[~bad] == 0).all() and (~bad).any():
        notes.append("all 0, drawn on the floor")
    elif (v[~bad] == 0).any():
        notes.append("0 on the floor")
    if bad.any():
        notes.append(f"inf/NaN from layer {layers[bad][0]}")
    shown = np.where(v > 0, v, floor)
    shown[bad] = np.nan
    if above.any():  # draw up to the first point above the ceiling, so the line leaves the top
        shown[layers > layers[above][0]] = np.nan
    ax.plot(layers, shown, "-", color=color, lw=1.6,
            label=text + (f" ({'; '.join(notes)})" if notes else ""))
    zero = np.isfinite(v) & (v == 0)
    ax.plot(layers[zero], np.full(zero.sum(), floor), "o", mfc="none", ms=4, color=color)


def _floor(report, key) -> float:
    finite = [a for per in report["results"].values() for r in per.values()
              for a in r["init"][key] if a is not None and a > 0]
    return min(finite, default=1.0) / 1e3


def _colors(names):
    import matplotlib
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    return {n: cycle[i % len(cycle)] for i, n in enumerate(names)}


CEILING = 1e20  # variance-plot top: an overflowing series would otherwise squash the others


def _variance_panels(report, path, rows, title):
    """A grid of log-scale variance-vs-layer panels: one row per (key, ylabel), one column per
    activation, one line per initializer."""
    if not plots_available():
        return False
    cfg = report["config"]["model"]
    acts = list(report["results"])
    colors = _colors(cfg["inits"])
    fig = figure("init_study", figsize=(6.2 * len(acts), 4.2 * len(rows)), layout="tight")
    axes = fig.subplots(len(rows), len(acts), squeeze=False)
    for r, (key, ylabel) in enumerate(rows):
        floor = _floor(report, key)
        for c, act in enumerate(acts):
            ax = axes[r][c]
            series = report["results"][act]
            top = max((a for res in series.values() for a in res["init"][key]
                       if a is not None), default=1.0)
            for init_name, res in series.items():
                _plot_series(ax, res["init"][key], 1, label(init_name, cfg["constant"]), floor,
                             colors[init_name], CEILING)
            ax.set_yscale("log")
            ax.axhline(floor, color="gray", lw=0.6, ls=":")
            if top > CEILING:
                ax.set_ylim(top=CEILING)
            if len(next(iter(series.values()))["init"][key]) > cfg["depth"]:
                ax.axvline(cfg["depth"] + 0.5, color="gray", lw=0.6, ls="--")
                ax.text(cfg["depth"] + 0.3, 0.97, "output layer →", fontsize=7, color="gray",
                        ha="right", va="top", transform=ax.get_xaxis_transform())
            ax.set(xlabel="layer l", ylabel=ylabel, title=f"{act}, {title}")
            ax.grid(alpha=0.3, which="major")
            ax.legend(fontsize=7.5, loc="best")
    fig.suptitle(f"{cfg['depth']} hidden layers of {cfg['width']} units, at initialization, "
                 f"{report['data']['probe_examples']} images", fontsize=10)
    save(fig, path)
    return True


def plot_activation_variance(report, path) -> bool:
    return _variance_panels(report, path, [("activation_variance", "Var(a^l)")],
                            "activation variance (forward)")


def plot_gradient_variance(report, path) -> bool:
    return _variance_panels(report, path, [("grad_w_variance", "Var(∂L/∂W^l)"),
                                           ("delta_variance", "Var(δ^l = ∂L/∂z^l)")],
                            "gradient variance (backward)")


def plot_training_loss(report, path) -> bool:
    if not plots_available():
        return False
    cfg, t = report["config"]["model"], report["config"]["train"]
    acts = list(report["results"])
    colors = _colors(cfg["inits"])
    fig = figure("init_study", figsize=(6.2 * len(acts), 4.2), layout="tight")
    axes = fig.subplots(1, len(acts), squeeze=False)
    for ax, act in zip(axes[0], acts):
        for init_name, res in report["results"][act].items():
            tr = res["train"]
            v = np.array([np.nan if a is None else a for a in tr["loss_steps"]], np.float64)
            window = max(1, min(t["smooth"], len(v) // 5))
            smooth = np.convolve(v, np.ones(window) / window, "valid")  # NaN stays NaN
            steps = np.arange(window, len(v) + 1)
            text = f"{label(init_name, cfg['constant'])}: test acc {tr['test_accuracy']:.3f}"
            if tr["diverged_at_step"]:
                text += f" (loss NaN from step {tr['diverged_at_step']})"
            ax.plot(steps, smooth, color=colors[init_name], lw=1.4, label=text)
        ax.axhline(math.log(10), color="gray", lw=0.8, ls=":", label="ln 10 (uniform guess)")
        ax.set(xlabel="SGD step", ylabel=f"training loss (mean of {t['smooth']} steps)",
               title=f"{act}, SGD η = {t['learning_rate']:g}, batch {t['batch_size']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5)
    fig.suptitle(f"{cfg['depth']}x{cfg['width']} MLP, {report['data']['train_examples']} "
                 f"training images x {t['epochs']} epochs", fontsize=10)
    save(fig, path)
    return True


# ----------------------------------------------------------------------------- command line

def _replot(folder: Path) -> None:
    report = read_results(folder)
    plot_all(report, folder)
    print(format_summary(report["summary"]))


def main(argv=None) -> int:
    return experiment_main(argv, name="init_study", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run, quick="1,024 training images, 1 epoch, a 128-image probe", replot=_replot)


if __name__ == "__main__":
    sys.exit(main())
