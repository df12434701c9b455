"""The TensorFlow-Playground study: how learning rate, activation, batch size, width and depth,
noise, input features and the train/test split change what a small MLP learns on 2-D data.

The four Playground data sets (`fnn.data.synthetic`: circles, xor, gaussians, spiral) are fed to
small MLPs through the Playground's input features (x1, x2, x1², x2², x1·x2, sin x1, sin x2) and
trained with plain SGD by `fnn.fit`. Each course question is one sweep: ONE factor takes a list
of values while everything else stays at a shared base setting (one factor at a time, not the
Cartesian product), on a few data sets, with several seeds per cell. Seed s gives its own data
sample and its own initial weights; the cells of one sweep share them (common random numbers),
so a difference between two cells is the factor's doing.

Speed: all runs that differ only in their data (data set, noise, seed) train as ONE `fit` of
independent copies of the network side by side (`side_by_side`: parameters stacked on a copy
axis, the forward pass vmapped over it), so the train step compiles once per architecture and
training setting instead of once per run.

Run it from the repository root (1.5 to 5.5 minutes on 2 shared CPU cores, depending on their
load; ``--quick``, a smoke run, about 30 s)::

    python experiments/playground.py configs/playground.toml [--out DIR] [--quick] [--no-progress]
    python experiments/playground.py --replot RUN_FOLDER   # redraw the PNGs and results.md

The run folder (``runs/playground-<date>-<time>/`` unless ``--out``) holds ``config.toml``,
``results.json`` (every cell: test and train accuracy and loss per seed, mean ± std, the mean
training-loss curve; the config and the date), ``results.md`` (one table per question),
``boundaries.npz`` (what the plots are drawn from), ``accuracy.png`` (test accuracy against each
factor) and, per sweep, ``boundaries_<sweep>.png`` (decision regions of seed 0, data sets in
rows, values in columns) and ``curves_<sweep>.png`` (mean training loss per epoch).
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import textwrap
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import jax
import numpy as np

from fnn import activations, losses
from fnn.config import ConfigError, load as load_toml
from fnn.core import Layer
from fnn.data import scaling, synthetic
from fnn.experiment import experiment_main, read_results, write_json
from fnn.models import mlp
from fnn.optim import sgd
from fnn.plots import available as plots_available, figure, save
from fnn.train import fit, progress_bar


LOSS = "softmax_cross_entropy"
DATASETS = tuple(synthetic.DATASETS)  # a data set's position here seeds its points


# ----------------------------------------------------------------------------- input features

FEATURES = {  # the Playground's input columns, as functions of the two coordinates
    "x1": lambda x1, x2: x1,
    "x2": lambda x1, x2: x2,
    "x1^2": lambda x1, x2: x1 ** 2,
    "x2^2": lambda x1, x2: x2 ** 2,
    "x1*x2": lambda x1, x2: x1 * x2,
    "sin(x1)": lambda x1, x2: np.sin(x1),
    "sin(x2)": lambda x1, x2: np.sin(x2),
}


def input_features(points, names: Sequence[str], scale: float = 1.0) -> np.ndarray:
    """The named Playground features of 2-D points ``(..., 2)`` as columns ``(..., len(names))``,
    in the order named, computed on the coordinates multiplied by ``scale``."""
    points = scale * np.asarray(points, np.float64)
    x1, x2 = points[..., 0], points[..., 1]
    return np.stack([FEATURES[name](x1, x2) for name in names], axis=-1).astype(np.float32)


# ----------------------------------------------------------------------------- config

@dataclass(frozen=True)
class Setting:
    """Everything one cell of the grid trains with, but the data set."""

    samples: int = 500  # points generated per run (train + test)
    noise: float = 0.05  # std of the Gaussian noise on each coordinate
    train_fraction: float = 0.5  # share of the points used for training, the rest for the test
    features: List[str] = field(default_factory=lambda: ["x1", "x2"])
    hidden: List[int] = field(default_factory=lambda: [8, 8])  # [] : no hidden layer
    activation: str = "relu"
    learning_rate: float = 0.1  # plain SGD
    batch_size: int = 10  # 0: full batch
    epochs: int = 200


def _each_field_of(schema, name: str, wrap=lambda tp: tp):
    """A frozen dataclass with every field of ``schema``, typed ``Optional[wrap(type)]``, None by
    default: the tables that name some of a `Setting`'s keys and leave the others alone."""
    hints = typing.get_type_hints(schema)
    table = dataclasses.make_dataclass(
        name, [(f.name, Optional[wrap(hints[f.name])], None) for f in dataclasses.fields(schema)],
        frozen=True)
    table.__module__ = __name__  # where typing.get_type_hints looks names up
    return table


Fixed = _each_field_of(Setting, "Fixed")  # [sweeps.NAME.fixed]: this sweep's changes to [base]
Vary = _each_field_of(Setting, "Vary", lambda tp: List[tp])  # [sweeps.NAME.vary]: one factor


@dataclass(frozen=True)
class Sweep:
    """One question: ``vary`` names one `Setting` key and its values, ``fixed`` changes [base]."""

    question: str = ""
    datasets: List[str] = field(default_factory=lambda: list(DATASETS))
    vary: Vary = field(default_factory=Vary)
    fixed: Fixed = field(default_factory=Fixed)


@dataclass(frozen=True)
class DataSpec:
    scale: float = 5.0  # coordinates × scale before the features (the Playground's view is ±6)
    scaling: str = "standardize"  # each feature column, with statistics of the training split


@dataclass(frozen=True)
class PlotSpec:
    extent: float = 1.6  # decision regions are drawn on [−extent, extent]²
    resolution: int = 90  # grid points per side


@dataclass(frozen=True)
class PlaygroundConfig:
    name: str = "playground"
    seed: int = 0
    seeds: int = 3  # runs per cell
    data: DataSpec = field(default_factory=DataSpec)
    plot: PlotSpec = field(default_factory=PlotSpec)
    base: Setting = field(default_factory=Setting)
    sweeps: Dict[str, Sweep] = field(default_factory=dict)


QUICK = {"seeds": 2, "base": {"epochs": 10, "samples": 200}}


def load_config(path, quick: bool = False) -> PlaygroundConfig:
    """Read and check a TOML config; ``quick`` shrinks every run for a smoke test."""
    cfg = load_toml(path, PlaygroundConfig, overrides=QUICK if quick else None)
    check(cfg)
    return cfg


RULES = {  # Setting key -> (test of a value, what the message says it must be)
    "samples": (lambda v: v >= 4, "at least 4"),
    "noise": (lambda v: v >= 0, ">= 0"),
    "train_fraction": (lambda v: 0 < v < 1, "in (0, 1)"),
    "features": (lambda v: bool(v) and set(v) <= set(FEATURES) and len(set(v)) == len(v),
                 f"a non-empty list of distinct names out of {list(FEATURES)}"),
    "hidden": (lambda v: all(units >= 1 for units in v),
               "a list of positive layer widths ([] for no hidden layer)"),
    "activation": (lambda v: _is_activation(v), "an activation name of fnn.activations"),
    "learning_rate": (lambda v: v > 0, "> 0"),
    "batch_size": (lambda v: v >= 0, ">= 0 (0: full batch)"),
    "epochs": (lambda v: v >= 1, "at least 1"),
}


def _is_activation(name: str) -> bool:
    try:
        activations.get(name)
    except ValueError:
        return False
    return True


def _check_value(name: str, value, key: str) -> None:
    test, must_be = RULES[name]
    if not test(value):
        raise ConfigError(f"config key `{key}` must be {must_be}; got {value!r}.")


def check(cfg: PlaygroundConfig) -> None:
    """Reject values the schema's types cannot catch, naming the key."""
    if cfg.seeds < 1:
        raise ConfigError(f"config key `seeds` must be at least 1; got {cfg.seeds}.")
    if not cfg.data.scale > 0:
        raise ConfigError(f"config key `data.scale` must be > 0; got {cfg.data.scale}.")
    try:
        scaling.get(cfg.data.scaling)
    except ValueError as error:
        raise ConfigError(f"config key `data.scaling`: {error}") from None
    if cfg.plot.resolution < 2:
        raise ConfigError(f"config key `plot.resolution` must be at least 2; "
                          f"got {cfg.plot.resolution}.")
    if not cfg.plot.extent > 0:
        raise ConfigError(f"config key `plot.extent` must be > 0; got {cfg.plot.extent}.")
    for name in RULES:
        _check_value(name, getattr(cfg.base, name), f"base.{name}")
    if not cfg.sweeps:
        raise ConfigError("config key `sweeps` must hold at least one [sweeps.NAME] table.")
    for sweep_name, sweep in cfg.sweeps.items():
        _check_sweep(sweep_name, sweep)
    for cell in expand(cfg):
        _check_split(cell)


def _check_sweep(name: str, sweep: Sweep) -> None:
    where = f"sweeps.{name}"
    if not sweep.datasets or len(set(sweep.datasets)) != len(sweep.datasets):
        raise ConfigError(f"config key `{where}.datasets` must list distinct data sets; "
                          f"got {sweep.datasets}.")
    for i, dataset in enumerate(sweep.datasets):
        if dataset not in DATASETS:
            raise ConfigError(f"config key `{where}.datasets[{i}]`: unknown data set "
                              f"{dataset!r}; expected one of {list(DATASETS)}.")
    varied = _named(sweep.vary)
    if len(varied) != 1:
        raise ConfigError(f"config key `{where}.vary` must name exactly one of {list(RULES)}; "
                          f"got {sorted(varied) or 'none'}.")
    ((factor, values),) = varied.items()
    if not values:
        raise ConfigError(f"config key `{where}.vary.{factor}` must list at least one value.")
    for i, value in enumerate(values):
        _check_value(factor, value, f"{where}.vary.{factor}[{i}]")
    for key, value in _named(sweep.fixed).items():
        if key == factor:
            raise ConfigError(f"config key `{where}.fixed.{key}` is the factor the sweep varies.")
        _check_value(key, value, f"{where}.fixed.{key}")


def _check_split(cell: "Cell") -> None:
    s = cell.setting
    n_train = train_size(s)
    if not 1 <= n_train < s.samples:
        raise ConfigError(f"config key `sweeps.{cell.sweep}`: train_fraction {s.train_fraction} "
                          f"of {s.samples} samples leaves no training or no test points.")


def _named(table) -> Dict[str, Any]:
    """The keys a `Fixed` or `Vary` table sets (the others are None)."""
    return {f.name: getattr(table, f.name) for f in dataclasses.fields(table)
            if getattr(table, f.name) is not None}


# ----------------------------------------------------------------------------- the grid

class Cell(NamedTuple):
    """One cell of a sweep's table: a data set and the setting with the factor at ``value``."""

    sweep: str
    dataset: str
    factor: str
    value: Any
    setting: Setting


def expand(cfg: PlaygroundConfig) -> List[Cell]:
    """Every cell of every sweep, one factor at a time around [base] (+ the sweep's ``fixed``):
    sweeps in config order, then data sets, then values."""
    cells = []
    for name, sweep in cfg.sweeps.items():
        ((factor, values),) = _named(sweep.vary).items()
        base = dataclasses.replace(cfg.base, **_named(sweep.fixed))
        cells += [Cell(name, dataset, factor, value, dataclasses.replace(base, **{factor: value}))
                  for dataset in sweep.datasets for value in values]
    return cells


def train_size(setting: Setting) -> int:
    return int(round(setting.train_fraction * setting.samples))


def run_id(dataset: str, setting: Setting) -> str:
    """Cells with equal ids (e.g. the base setting, in every sweep) are trained once."""
    return dataset + " " + json.dumps(dataclasses.asdict(setting), sort_keys=True)


def training_id(setting: Setting) -> str:
    """Runs with equal ids differ only in their data, so they train together in one `fit`."""
    return json.dumps({**dataclasses.asdict(setting), "noise": None}, sort_keys=True)


class Group(NamedTuple):
    """Runs that train side by side: ``runs`` are (dataset, setting) pairs of one training id."""

    setting: Setting  # the first run's (its noise is not shared by the others)
    runs: List[Tuple[str, Setting]]

    def steps_per_epoch(self) -> int:
        n = train_size(self.setting)
        return 1 if self.setting.batch_size == 0 else math.ceil(n / min(self.setting.batch_size, n))


def group_runs(cells: Sequence[Cell]) -> List[Group]:
    """The distinct runs of ``cells``, grouped by everything but their data."""
    groups: Dict[str, Group] = {}
    seen = set()
    for cell in cells:
        rid = run_id(cell.dataset, cell.setting)
        if rid in seen:
            continue
        seen.add(rid)
        group = groups.setdefault(training_id(cell.setting), Group(cell.setting, []))
        group.runs.append((cell.dataset, cell.setting))
    return list(groups.values())


# ----------------------------------------------------------------------------- data

class Members(NamedTuple):
    """The data of the networks trained side by side, on a member axis 1: inputs ``(N, M, F)``
    scaled with each member's own training statistics, labels ``(N, M)``; ``points`` are the raw
    2-D points ``(N, M, 2)`` and ``stats`` the scaler statistics (for the decision regions)."""

    train: Tuple[np.ndarray, np.ndarray]
    test: Tuple[np.ndarray, np.ndarray]
    train_points: np.ndarray
    test_points: np.ndarray
    stats: Any


def sample(dataset: str, noise: float, samples: int, seed: int, key):
    """The points and labels of one run. Every noise level of a (dataset, seed) shares the clean
    points and the noise draws, so only the size of the noise changes between them."""
    run_key = jax.random.fold_in(jax.random.fold_in(key, DATASETS.index(dataset)), seed)
    return synthetic.get(dataset)(run_key, samples, noise)


def member_data(runs: Sequence[Tuple[str, Setting]], seeds: int, data: DataSpec, key) -> Members:
    """Generate, split (the first ``train_fraction`` of the points for training), featurize and
    scale the data of every (run, seed) member, stacked on axis 1 in that order."""
    setting = runs[0][1]
    n_train = train_size(setting)
    points, labels = zip(*[sample(dataset, s.noise, s.samples, seed, key)
                           for dataset, s in runs for seed in range(seeds)])
    points, labels = np.stack(points, 1), np.stack(labels, 1)
    features = input_features(points, setting.features, data.scale)
    scaler = scaling.get(data.scaling)
    stats = scaler.fit(features[:n_train], axis=0)
    scaled = np.asarray(scaler.transform(features, stats), np.float32)
    return Members(train=(scaled[:n_train], labels[:n_train]),
                   test=(scaled[n_train:], labels[n_train:]),
                   train_points=points[:n_train], test_points=points[n_train:], stats=stats)


# ----------------------------------------------------------------------------- models

def build_model(setting: Setting) -> Layer:
    """An MLP on the feature vector: ``hidden`` layers of ``activation``, two logits."""
    return mlp([*setting.hidden, 2], activation=setting.activation, flatten=False)


def side_by_side(model: Layer, copies: int) -> Layer:
    """``copies`` independent copies of ``model`` applied to inputs ``(batch, copies, ...)``:
    parameters and state are stacked on a leading copy axis and the forward pass is vmapped over
    it, giving outputs ``(batch, copies, ...)``. A loss that sums over the copy axis (as
    ``softmax_cross_entropy`` does with axes between batch and classes) gives each copy the
    gradient of its own mean loss, so one optimizer step trains every copy independently."""

    def init(key, input_shape):
        keys = jax.random.split(key, copies)
        return init_copies(model, keys, (input_shape[0], *input_shape[2:]))

    def apply(params, state, x, *, key=None, train=False):
        keys = None if key is None else jax.random.split(key, copies)

        def one(p, s, xi, k):
            return model.apply(p, s, xi, key=k, train=train)

        return jax.vmap(one, in_axes=(0, 0, 1, None if keys is None else 0),
                        out_axes=(1, 0))(params, state, x, keys)

    return Layer(init, apply, f"SideBySide({copies} x {model.name})")


def init_copies(model: Layer, keys, input_shape):
    """Initialize one copy of ``model`` per key; params and state stacked on a copy axis."""
    inits = [model.init(k, input_shape) for k in keys]
    stack = lambda trees: jax.tree.map(lambda *leaves: np.stack(leaves), *trees)
    out_shape = inits[0][0]
    return ((out_shape[0], len(inits), *out_shape[1:]),
            stack([p for _, p, _ in inits]), stack([s for _, _, s in inits]))


def member_metrics(model: Layer):
    """``(params, state, x, y) -> (loss, accuracy)``, each ``(members,)``, jitted."""

    def metrics(params, state, x, y):
        logits, _ = model.apply(params, state, x)
        loss = jax.vmap(losses.softmax_cross_entropy, in_axes=(1, 1), out_axes=1)(logits, y)
        return loss.mean(0), (logits.argmax(-1) == y).mean(0)

    return jax.jit(metrics)


def class_one_probability(model: Layer):
    """``(params, state, x) -> P(class 1)`` of every member, ``(N, members)``, jitted."""

    def probability(params, state, x):
        logits, _ = model.apply(params, state, x)
        return jax.nn.softmax(logits)[..., 1]

    return jax.jit(probability)


def probability_on_grid(model: Layer, params, state, members: Members, names, data: DataSpec,
                        grid) -> np.ndarray:
    """P(class 1) of every member at the 2-D ``grid`` points ``(G, 2)``: ``(G, members)``."""
    features = input_features(grid, names, data.scale)[:, None, :]
    scaled = scaling.get(data.scaling).transform(features, members.stats)
    return np.asarray(class_one_probability(model)(params, state, scaled))


# ----------------------------------------------------------------------------- training

def train_group(group: Group, cfg: PlaygroundConfig, grid, on_epoch=None) -> Dict[str, Dict]:
    """Train every (run, seed) of ``group`` side by side with plain SGD. Returns, per `run_id`:
    the train and test loss and accuracy of every seed, the training-loss curve of every seed,
    the SGD steps, and seed 0's P(class 1) on ``grid`` with its training and test points.
    ``on_epoch()`` is called after every epoch."""
    root = jax.random.PRNGKey(cfg.seed)
    data_key, init_key, shuffle_key = (jax.random.fold_in(root, i) for i in range(3))
    s = group.setting
    members = member_data(group.runs, cfg.seeds, cfg.data, data_key)
    one = build_model(s)
    model = side_by_side(one, len(group.runs) * cfg.seeds)
    # seed k starts from the same weights in every run of its architecture (common random numbers)
    keys = [jax.random.fold_in(init_key, seed) for _ in group.runs for seed in range(cfg.seeds)]
    _, params, state = init_copies(one, keys, (None, len(s.features)))
    metrics = member_metrics(model)
    curve = []

    def record(epoch, logs, train_state):
        curve.append(metrics(train_state.params, train_state.state, *members.train)[0])
        if on_epoch is not None:
            on_epoch()

    result = fit(model, params, state, members.train, loss=LOSS, optimizer=sgd(s.learning_rate),
                 key=shuffle_key, epochs=s.epochs, batch_size=s.batch_size or "full",
                 hooks=[record], progress=False)
    final = {f"{split}_{name}": np.asarray(value)
             for split, data in (("train", members.train), ("test", members.test))
             for name, value in zip(("loss", "accuracy"),
                                    metrics(result.params, result.state, *data))}
    curve = np.stack([np.asarray(epoch_loss) for epoch_loss in curve])  # (epochs, members)
    probability = probability_on_grid(model, result.params, result.state, members, s.features,
                                      cfg.data, grid)

    def of_run(r: int) -> Dict:
        seeds, seed0 = slice(r * cfg.seeds, (r + 1) * cfg.seeds), r * cfg.seeds
        return {"runs": {name: values[seeds] for name, values in final.items()},
                "curve": curve[:, seeds],
                "steps": s.epochs * group.steps_per_epoch(),
                "probability": probability[:, seed0],
                "train_points": (members.train_points[:, seed0], members.train[1][:, seed0]),
                "test_points": (members.test_points[:, seed0], members.test[1][:, seed0])}

    return {run_id(dataset, setting): of_run(r) for r, (dataset, setting) in enumerate(group.runs)}


def _number(value) -> Optional[float]:
    """A float for JSON; None for inf or NaN (a diverged run)."""
    value = float(value)
    return value if math.isfinite(value) else None


def summarize(values) -> Dict[str, Any]:
    """Mean and std (ddof 1; 0 for one value) over the seeds of the finite values (None if
    there are none), and every value."""
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    if not finite.size:
        mean = std = None
    else:
        mean, std = _number(finite.mean()), _number(finite.std(ddof=1)) if finite.size > 1 else 0.0
    return {"mean": mean, "std": std, "runs": [_number(v) for v in values]}


def cell_record(cell: Cell, trained: Dict) -> Dict[str, Any]:
    """What results.json keeps of one cell (seed statistics, loss curve, the full setting). A
    seed whose training loss is not finite counts as diverged: all its numbers become null."""
    diverged = ~np.isfinite(trained["runs"]["train_loss"])
    runs = {name: np.where(diverged, np.nan, values) for name, values in trained["runs"].items()}
    curve = trained["curve"]
    with np.errstate(invalid="ignore"):
        mean_curve = np.where(np.isfinite(curve).all(1), curve.mean(1), np.nan)
    return {
        "sweep": cell.sweep, "dataset": cell.dataset, "factor": cell.factor, "value": cell.value,
        **{name: summarize(values) for name, values in runs.items()},
        "diverged": int(diverged.sum()),
        "steps": trained["steps"],
        "train_loss_curve": [_number(v) for v in mean_curve],
        "setting": dataclasses.asdict(cell.setting),
    }


def plot_grid(extent: float, resolution: int) -> np.ndarray:
    """The ``(resolution², 2)`` points the decision regions are evaluated at."""
    axis = np.linspace(-extent, extent, resolution, dtype=np.float32)
    gx, gy = np.meshgrid(axis, axis)
    return np.stack([gx.ravel(), gy.ravel()], 1)


def run(cfg: PlaygroundConfig, out, *, progress: bool = True, log=print) -> Dict:
    """Train every cell of every sweep, write results.json, results.md, boundaries.npz and the
    plots to ``out``; returns the report results.json holds."""
    check(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells = expand(cfg)
    groups = group_runs(cells)
    grid = plot_grid(cfg.plot.extent, cfg.plot.resolution)
    total = sum(g.setting.epochs * g.steps_per_epoch() for g in groups)
    bar = progress_bar(total, enabled=progress, unit="step")
    log(f"{cfg.name}: {len(cfg.sweeps)} sweeps, {len(cells)} cells, "
        f"{sum(len(g.runs) for g in groups)} distinct runs x {cfg.seeds} seeds "
        f"in {len(groups)} side-by-side fits -> {out}")
    started = time.perf_counter()
    trained: Dict[str, Dict] = {}
    for i, group in enumerate(groups):
        if bar is not None:
            s = group.setting
            bar.set_description(f"fit {i + 1}/{len(groups)}: {len(group.runs) * cfg.seeds} nets "
                                f"{[len(s.features), *s.hidden, 2]} {s.activation}")
        step = group.steps_per_epoch()
        trained.update(train_group(group, cfg, grid,
                                   on_epoch=None if bar is None else lambda: bar.update(step)))
    if bar is not None:
        bar.close()

    records = [cell_record(c, trained[run_id(c.dataset, c.setting)]) for c in cells]
    report = {
        "name": cfg.name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.perf_counter() - started, 1),
        "config": dataclasses.asdict(cfg),
        "notes": ("One record per (sweep, dataset, value). test_/train_ accuracy and loss: "
                  "mean, std (ddof 1) and the value of every seed (null: diverged; mean and std "
                  "are over the other seeds). diverged: seeds whose final training loss is not "
                  "finite. steps: SGD updates per run. train_loss_curve: the mean over seeds of "
                  "the full training-set loss after every epoch."),
        "sweeps": {name: {"question": sw.question, "factor": next(iter(_named(sw.vary))),
                          "values": next(iter(_named(sw.vary).values())),
                          "datasets": sw.datasets, "fixed": _named(sw.fixed)}
                   for name, sw in cfg.sweeps.items()},
        "cells": records,
    }
    write_json(out / "results.json", report)
    save_boundaries(out / "boundaries.npz", cells, trained, grid)
    write_outputs(report, out)
    log(f"done in {report['seconds']:.0f} s")
    return report


def cell_key(record_or_cell) -> str:
    """``sweep/dataset/value as JSON``: the prefix of a cell's arrays in boundaries.npz."""
    if isinstance(record_or_cell, Cell):
        sweep, dataset, value = record_or_cell.sweep, record_or_cell.dataset, record_or_cell.value
    else:
        sweep, dataset, value = (record_or_cell[k] for k in ("sweep", "dataset", "value"))
    return f"{sweep}/{dataset}/{json.dumps(value)}"


def save_boundaries(path, cells: Sequence[Cell], trained: Dict, grid) -> None:
    """Seed 0's P(class 1) on the grid and its points, per cell, for the plots."""
    arrays = {"grid": grid}
    for cell in cells:
        t, k = trained[run_id(cell.dataset, cell.setting)], cell_key(cell)
        arrays[f"{k}/probability"] = t["probability"].astype(np.float16)
        for split in ("train", "test"):
            arrays[f"{k}/{split}_x"], arrays[f"{k}/{split}_y"] = t[f"{split}_points"]
    np.savez_compressed(path, **arrays)


# ----------------------------------------------------------------------------- report

PRETTY = {"x1^2": "x1²", "x2^2": "x2²", "x1*x2": "x1x2", "sin(x1)": "sin x1", "sin(x2)": "sin x2"}
ORDERED = {"samples", "noise", "train_fraction", "learning_rate", "batch_size", "epochs"}  # the
# factors whose values lie on a scale (plotted as lines); the others are categories


def format_value(factor: str, value, width: Optional[int] = None) -> str:
    """How tables and plots name a factor's value (wrapped to ``width`` characters if given)."""
    if factor == "hidden":
        text = "-".join(map(str, value)) if value else "no hidden layer"
    elif factor == "features":
        text = ", ".join(PRETTY.get(name, name) for name in value)
    elif factor == "batch_size":
        text = "full" if value == 0 else str(value)
    elif factor == "train_fraction":
        text = f"{100 * value:g} %"
    else:
        text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if width is None else textwrap.fill(text, width)


def _percent(stat: Dict) -> str:
    if stat["mean"] is None:
        return "diverged"
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def _cell_text(record: Dict) -> str:
    loss = record["test_loss"]["mean"]
    text = (f"{_percent(record['test_accuracy'])} "
            f"(train {100 * (record['train_accuracy']['mean'] or 0):.0f}, "
            f"loss {'–' if loss is None else f'{loss:.2f}'})")
    if record["diverged"]:
        text += f" † {record['diverged']}/{len(record['test_loss']['runs'])}"
    return text


def sweep_records(report: Dict, sweep: str) -> Dict[str, List[Dict]]:
    """A sweep's records by data set, in value order."""
    by_dataset: Dict[str, List[Dict]] = {}
    for record in report["cells"]:
        if record["sweep"] == sweep:
            by_dataset.setdefault(record["dataset"], []).append(record)
    return by_dataset


def _extremes(factor: str, records: Sequence[Dict]) -> str:
    """``best VALUE (acc), worst VALUE (acc)`` by mean test accuracy, a diverged seed counting
    as 0."""
    score = [np.mean([v or 0.0 for v in r["test_accuracy"]["runs"]]) for r in records]
    best, worst = int(np.argmax(score)), int(np.argmin(score))
    name = lambda i: f"{format_value(factor, records[i]['value'])} ({100 * score[i]:.1f} %)"
    return f"best {name(best)}, worst {name(worst)}"


def markdown(report: Dict) -> str:
    """results.md: per question a table (values × data sets) and the best/worst value."""
    cfg = report["config"]
    lines = [f"# TensorFlow-Playground study ({report['date']})", "",
             f"Each cell: test accuracy in %, mean ± std over {cfg['seeds']} seeds (train "
             "accuracy %, mean test loss); † k/n: k of n seeds diverged (loss not finite). "
             f"Base setting: {_setting_text(cfg['base'])}; data scale {cfg['data']['scale']:g}, "
             f"features {cfg['data']['scaling']}d on the training split, plain SGD.", ""]
    for name, sweep in report["sweeps"].items():
        factor, by_dataset = sweep["factor"], sweep_records(report, name)
        fixed = "; ".join(f"{k} = {format_value(k, v)}" for k, v in sweep["fixed"].items())
        lines += [f"## {name}: {sweep['question']}", "",
                  f"Varied: `{factor}`" + (f"; fixed for this sweep: {fixed}." if fixed else "."),
                  "", "| " + factor + " | " + " | ".join(by_dataset) + " |",
                  "|---" * (len(by_dataset) + 1) + "|"]
        for i, value in enumerate(sweep["values"]):
            row = [_cell_text(records[i]) for records in by_dataset.values()]
            lines.append(f"| {format_value(factor, value)} | " + " | ".join(row) + " |")
        lines += [""] + [f"- {dataset}: {_extremes(factor, records)}"
                         for dataset, records in by_dataset.items()] + [""]
    return "\n".join(lines)


def _setting_text(setting: Dict) -> str:
    return ", ".join(f"{k} = {format_value(k, v)}" for k, v in setting.items())


def write_outputs(report: Dict, out) -> None:
    """results.md and every PNG, from results.json and boundaries.npz (``--replot`` reruns it)."""
    out = Path(out)
    (out / "results.md").write_text(markdown(report))
    if not plots_available():
        return
    with np.load(out / "boundaries.npz") as saved:
        boundaries = dict(saved)
    plot_accuracy(report, out / "accuracy.png")
    for name in report["sweeps"]:
        plot_boundaries(report, name, boundaries, out / f"boundaries_{name}.png")
        plot_curves(report, name, out / f"curves_{name}.png")


# ----------------------------------------------------------------------------- plots

CLASS_COLORS = ("#e8833a", "#2b7bba")  # the Playground's orange (class 0) and blue (class 1)


def _class_cmap():
    from matplotlib.colors import LinearSegmentedColormap
    return LinearSegmentedColormap.from_list("playground", [CLASS_COLORS[0], "#ffffff",
                                                            CLASS_COLORS[1]])


def draw_regions(ax, grid, probability, points, labels, extent: float) -> None:
    """P(class 1) as colour, the 0.5 contour as the decision boundary, the points on top."""
    side = int(round(math.sqrt(len(grid))))
    gx, gy = grid[:, 0].reshape(side, side), grid[:, 1].reshape(side, side)
    p = np.asarray(probability, np.float32).reshape(side, side)
    p = np.where(np.isfinite(p), p, 0.5)
    ax.contourf(gx, gy, p, levels=np.linspace(0, 1, 11), cmap=_class_cmap(), alpha=0.75)
    if p.min() < 0.5 < p.max():
        ax.contour(gx, gy, p, levels=[0.5], colors="k", linewidths=0.8)
    ax.scatter(points[:, 0], points[:, 1], c=[CLASS_COLORS[int(k)] for k in labels], s=7,
               edgecolors="white", linewidths=0.4)
    ax.set(xlim=(-extent, extent), ylim=(-extent, extent), xticks=[], yticks=[], aspect="equal")


def plot_boundaries(report: Dict, sweep: str, boundaries: Dict, path) -> Path:
    """Decision regions of seed 0: one row per data set, one column per value of the factor."""
    info, by_dataset = report["sweeps"][sweep], sweep_records(report, sweep)
    factor, extent = info["factor"], report["config"]["plot"]["extent"]
    rows, cols = len(by_dataset), len(info["values"])
    fig = figure("playground", figsize=(2.1 * cols + 0.6, 2.25 * rows + 0.7), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, (dataset, records) in enumerate(by_dataset.items()):
        for c, record in enumerate(records):
            k, ax = cell_key(record), axes[r][c]
            draw_regions(ax, boundaries["grid"], boundaries[f"{k}/probability"],
                         boundaries[f"{k}/train_x"], boundaries[f"{k}/train_y"], extent)
            ax.set_title(f"{format_value(factor, record['value'], 24)}\ntest "
                         f"{_percent(record['test_accuracy'])} %", fontsize=8)
            if c == 0:
                ax.set_ylabel(dataset, fontsize=10)
    fig.suptitle(textwrap.fill(f"{sweep}: {info['question']}", 20 * cols + 10)
                 + f"\n(seed 0, training points; title: test accuracy mean ± std over "
                 f"{report['config']['seeds']} seeds)", fontsize=9)
    return save(fig, path)


def plot_curves(report: Dict, sweep: str, path) -> Path:
    """Mean training loss per epoch: one panel per data set, one line per value."""
    info, by_dataset = report["sweeps"][sweep], sweep_records(report, sweep)
    fig = figure("playground", figsize=(3.6 * len(by_dataset) + 0.4, 3.3), layout="constrained")
    axes = fig.subplots(1, len(by_dataset), squeeze=False)[0]
    for ax, (dataset, records) in zip(axes, by_dataset.items()):
        for i, record in enumerate(records):
            curve = np.array([np.nan if v is None else v for v in record["train_loss_curve"]])
            ax.plot(np.arange(1, len(curve) + 1), curve, lw=1.3,
                    color=_value_color(i, len(records)),
                    label=format_value(info["factor"], record["value"], 24)
                    + (" (diverged)" if record["diverged"] else ""))
        ax.axhline(math.log(2), color="gray", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set(title=dataset, xlabel="epoch", ylabel="training loss")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6.5, title=info["factor"], title_fontsize=7)
    fig.suptitle(f"{sweep}: mean training loss over seeds\n(dotted: ln 2, a coin flip)",
                 fontsize=9)
    return save(fig, path)


def _value_color(i: int, n: int):
    import matplotlib
    return matplotlib.colormaps["viridis"](0.9 * i / max(n - 1, 1))


def plot_accuracy(report: Dict, path) -> Path:
    """Test accuracy (mean ± std) against each factor: one panel per sweep, one line per data
    set."""
    sweeps = report["sweeps"]
    cols = min(4, len(sweeps))
    rows = math.ceil(len(sweeps) / cols)
    fig = figure("playground", figsize=(4.0 * cols, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, info) in zip(axes, sweeps.items()):
        by_dataset = sweep_records(report, name)
        ordered = info["factor"] in ORDERED
        for d, (dataset, records) in enumerate(by_dataset.items()):
            mean = [100 * (r["test_accuracy"]["mean"] or np.nan) if not r["diverged"] else np.nan
                    for r in records]
            std = [100 * (r["test_accuracy"]["std"] or 0.0) for r in records]
            dodge = 0 if ordered else 0.08 * (d - (len(by_dataset) - 1) / 2)
            color = f"C{DATASETS.index(dataset)}"
            ax.errorbar(np.arange(len(records)) + dodge, mean, yerr=std, marker="o", ms=3.5,
                        capsize=2, lw=1.2 if ordered else 0, elinewidth=1, color=color,
                        label=dataset)
            if info["factor"] == "train_fraction":  # the question is the train/test gap
                train = [100 * (r["train_accuracy"]["mean"] or np.nan) for r in records]
                ax.plot(np.arange(len(records)), train, ls="--", lw=1, color=color,
                        label=f"{dataset}, train")
        labels = [format_value(info["factor"], v, 16) for v in info["values"]]
        slanted = len(labels) > 4 and max(map(len, labels)) > 3
        ax.set_xticks(np.arange(len(labels)), labels, rotation=30 if slanted else 0,
                      ha="right" if slanted else "center", fontsize=7)
        ax.set(title=name, xlabel=info["factor"], ylabel="test accuracy (%)", ylim=(40, 101))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(sweeps):]:
        ax.set_visible(False)
    fig.suptitle(f"test accuracy, mean ± std over {report['config']['seeds']} seeds "
                 "(a diverged cell is left out)", fontsize=10)
    return save(fig, path)


# ----------------------------------------------------------------------------- command line

def _replot(folder: Path) -> None:
    write_outputs(read_results(folder), folder)


def main(argv=None) -> int:
    return experiment_main(argv, name="playground", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run, quick="2 seeds, 10 epochs, 200 points per run", replot=_replot)


if __name__ == "__main__":
    sys.exit(main())
