"""Lab 2: the best hyper-parameters of an MLP on MNIST, by a search scored on a validation split.

The config's ``[space]`` lists the values to try for each hyper-parameter: hidden sizes,
activation, optimizer (each with its own learning rates and fixed options such as momentum),
batch size, dropout, input dropout and the L2 penalty λ. The search space is their Cartesian
product. ``method = "grid"`` trains every configuration of the product; ``method = "random"``
trains ``trials`` of them drawn without replacement from the config's seed. Every trial is an
ordinary `fnn run` config (``[base]`` filled in with the trial's values) trained for
``search.epochs`` epochs on the training split and scored by its accuracy on the validation
split (5,000 training images held out; the test set is never looked at). k-fold
cross-validation (`fnn.validation.kfold`) would score each trial k times over; on 2 shared CPU
cores that is too costly, so one validation split it is.

The best trial becomes ``best.toml``, a `fnn run` config for the full budget (``[final]``:
more epochs, early stopping, augmentation), and with ``final.run`` it is trained once and tested
once, exactly as ``fnn run best.toml`` would (same seed, same split, same code).

Run it from the repository root (about 15 minutes for the search and 10 for the final run on 2
busy CPU cores; ``--quick`` is a smoke run of well under a minute)::

    python experiments/lab2_search.py configs/lab2_search.toml [--out DIR] [--quick] [--no-progress]
    python experiments/lab2_search.py --replot RUN_FOLDER   # redraw the PNG from results.json

The run folder (``runs/lab2_search-<date>-<time>/`` unless ``--out``) holds ``config.toml``,
``results.json`` (every trial, the ranking, the best config, the final test numbers, the config
and the date), ``trials.md`` (the trials sorted by validation accuracy), ``search.png``
(validation accuracy against each hyper-parameter), ``best.toml`` and, with ``final.run``, the
`fnn run` folder of the final model in ``final/``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import jax
import numpy as np

from fnn import experiment
from fnn.config import (AugmentConfig, Config, ConfigError, EarlyStoppingConfig, OptimizerConfig,
                        Scalar, from_dict, merged, read as read_toml, to_dict, to_toml)
from fnn.experiment import experiment_main, jsonable, read_results
from fnn.plots import available as plots_available, figure, save
from fnn.train import progress_bar


Trial = Dict[str, Any]  # one value per hyper-parameter: hidden, activation, optimizer, ...
Data = Dict[str, tuple]  # "train", "validation" (and "test") -> (inputs, labels)


# ----------------------------------------------------------------------------- config

@dataclass(frozen=True)
class OptimizerChoice:
    """One optimizer of the space: its learning rates to try and its fixed options (every other
    key of the table, e.g. ``momentum = 0.9``, ``nesterov = true``, ``weight_decay = 0.01``)."""

    name: str = "adam"
    learning_rate: List[float] = field(default_factory=lambda: [0.001])
    options: Dict[str, Scalar] = field(default_factory=dict)
    EXTRA_KEYS = "options"


@dataclass(frozen=True)
class SearchSpace:
    """The values tried for each hyper-parameter; the space is their Cartesian product."""

    hidden: List[List[int]] = field(default_factory=lambda: [[300, 100], [1024, 1024]])
    activation: List[str] = field(default_factory=lambda: ["relu"])
    optimizer: List[OptimizerChoice] = field(default_factory=lambda: [OptimizerChoice()])
    batch_size: List[int] = field(default_factory=lambda: [128])
    dropout: List[float] = field(default_factory=lambda: [0.0])
    input_dropout: List[float] = field(default_factory=lambda: [0.0])
    l2: List[float] = field(default_factory=lambda: [0.0])  # the course's λ: + λ/(2P) Σ w²


@dataclass(frozen=True)
class SearchSpec:
    method: str = "random"  # random | grid
    trials: int = 24  # random search: configurations drawn (without replacement)
    epochs: int = 3  # training epochs of each trial


@dataclass(frozen=True)
class FinalSpec:
    """How the best trial is retrained: its `fnn run` config gets these instead of [base]'s."""

    name: str = "mnist_mlp_best"  # the name of the best config (and of its run)
    run: bool = True  # retrain the best trial here and test it once
    epochs: int = 40
    early_stopping: Optional[EarlyStoppingConfig] = None
    augment: Optional[AugmentConfig] = None


def _default_base() -> Config:
    return from_dict({"data": {"per_feature": False, "validation_size": 5000},
                      "model": {"w_init": "he_normal"}})


@dataclass(frozen=True)
class Lab2SearchConfig:
    name: str = "lab2_search"
    seed: int = 0  # draws the trials; also every trial's and the final run's `fnn run` seed
    base: Config = field(default_factory=_default_base)  # what every trial shares
    search: SearchSpec = field(default_factory=SearchSpec)
    space: SearchSpace = field(default_factory=SearchSpace)
    final: FinalSpec = field(default_factory=FinalSpec)


QUICK = {"base": {"data": {"train_size": 2000, "validation_size": 500}},
         "search": {"trials": 3, "epochs": 1}, "final": {"epochs": 1}}
SET_ELSEWHERE = {"name": "final.name", "seed": "the top-level `seed`"}  # keys [base] may not set


def parse(raw: Dict, quick: bool = False) -> Lab2SearchConfig:
    """Check a config dict (as read from TOML); ``quick`` shrinks it to a smoke run."""
    for key, owner in SET_ELSEWHERE.items():
        if key in raw.get("base", {}):
            raise ConfigError(f"config key `base.{key}` is not allowed: it is set by {owner}.")
    cfg = from_dict(merged(raw, QUICK) if quick else raw, Lab2SearchConfig)
    check(cfg)
    return cfg


def load_config(path, quick: bool = False) -> Lab2SearchConfig:
    """Read and check a TOML config; ``quick`` shrinks it to a smoke run."""
    return parse(read_toml(path), quick)


def check(cfg: Lab2SearchConfig) -> None:
    """Reject what the schema's types cannot catch, naming the key: every value of the space
    must make a valid `fnn run` config (checked by `fnn.experiment.check`, no data loaded)."""
    s = cfg.search
    if s.method not in ("random", "grid"):
        raise ConfigError(f"config key `search.method` must be 'random' or 'grid'; "
                          f"got {s.method!r}.")
    for key, value in {"search.trials": s.trials, "search.epochs": s.epochs,
                       "final.epochs": cfg.final.epochs}.items():
        if value < 1:
            raise ConfigError(f"config key `{key}` must be positive; got {value}.")
    if cfg.base.data.validation_size < 1:
        raise ConfigError("config key `base.data.validation_size` must be positive: the trials "
                          "are scored on the validation split.")
    try:
        experiment.check(cfg.base)
    except ConfigError as error:
        raise ConfigError(f"in [base]: {error}") from None
    for i, choice in enumerate(cfg.space.optimizer):
        if not choice.learning_rate:
            raise ConfigError(f"config key `space.optimizer[{i}].learning_rate` must list at "
                              "least one value.")
    axes = dimensions(cfg.space)
    for name, values in axes.items():
        if not values:
            raise ConfigError(f"config key `space.{name}` must list at least one value.")
    first = {k: v for values in axes.values() for k, v in values[0].items()}
    for name, values in axes.items():
        for i, value in enumerate(values):
            try:
                experiment.check(trial_config(cfg, {**first, **value}, epochs=1))
            except ConfigError as error:
                raise ConfigError(f"config key `space.{_origin(cfg.space, name, i)}`: "
                                  f"{error}") from None
    try:
        experiment.check(final_config(cfg, first))
    except ConfigError as error:
        raise ConfigError(f"in [final]: {error}") from None
    size = space_size(cfg.space)
    if s.method == "random" and s.trials > size:
        raise ConfigError(f"config key `search.trials` = {s.trials} exceeds the {size} "
                          "configurations of the space; use method = \"grid\" to train them all.")


def _origin(space: SearchSpace, axis: str, index: int) -> str:
    """Where value ``index`` of an axis comes from in the config: the optimizer axis pairs
    every ``space.optimizer[i]`` with each of its learning rates."""
    if axis != "optimizer":
        return f"{axis}[{index}]"
    owners = [i for i, o in enumerate(space.optimizer) for _ in o.learning_rate]
    return f"optimizer[{owners[index]}]"


# ----------------------------------------------------------------------------- the space

def dimensions(space: SearchSpace) -> Dict[str, List[Trial]]:
    """The axes of the space, each a list of partial trials: one optimizer value sets the
    optimizer's name, options and one of its learning rates."""
    return {
        "hidden": [{"hidden": list(h)} for h in space.hidden],
        "activation": [{"activation": a} for a in space.activation],
        "optimizer": [{"optimizer": o.name, "options": dict(o.options), "learning_rate": lr}
                      for o in space.optimizer for lr in o.learning_rate],
        "batch_size": [{"batch_size": b} for b in space.batch_size],
        "dropout": [{"dropout": d} for d in space.dropout],
        "input_dropout": [{"input_dropout": d} for d in space.input_dropout],
        "l2": [{"l2": v} for v in space.l2],
    }


def space_size(space: SearchSpace) -> int:
    return math.prod(len(values) for values in dimensions(space).values())


def trial_at(space: SearchSpace, index: int) -> Trial:
    """Configuration ``index`` of the product, in grid order (the last axis varies fastest)."""
    trial: Trial = {}
    for values in reversed(list(dimensions(space).values())):
        index, digit = divmod(index, len(values))
        trial.update(values[digit])
    return {k: trial[k] for values in dimensions(space).values() for k in values[0]}


@functools.partial(jax.jit, static_argnums=(1, 2))
def draw_without_replacement(key, size: int, count: int):
    """``count`` distinct indices in ``[0, size)``: ``jax.random.choice(key, size, (count,),
    replace=False)``, compiled once per ``(size, count)`` instead of one eager program per op."""
    return jax.random.choice(key, size, (count,), replace=False)


def sample_trials(cfg: Lab2SearchConfig) -> List[Trial]:
    """The trials to train: the whole grid, or ``search.trials`` distinct configurations drawn
    with the key ``fold_in(PRNGKey(seed), 0)``, so a seed always gives the same trials."""
    size = space_size(cfg.space)
    if cfg.search.method == "grid":
        indices = range(size)
    else:
        key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 0)
        indices = np.asarray(draw_without_replacement(key, size, cfg.search.trials))
    return [trial_at(cfg.space, int(i)) for i in indices]


def trial_config(cfg: Lab2SearchConfig, trial: Trial, *, epochs: int,
                 name: str = "trial") -> Config:
    """The `fnn run` config of a trial: [base] with the trial's values."""
    base = cfg.base
    return dataclasses.replace(
        base, name=name, seed=cfg.seed,
        model=dataclasses.replace(base.model, hidden=list(trial["hidden"]),
                                  activation=trial["activation"], dropout=trial["dropout"],
                                  input_dropout=trial["input_dropout"]),
        optimizer=OptimizerConfig(trial["optimizer"], trial["learning_rate"],
                                  dict(trial["options"])),
        train=dataclasses.replace(base.train, epochs=epochs, batch_size=trial["batch_size"],
                                  l2=trial["l2"]))


def final_config(cfg: Lab2SearchConfig, trial: Trial) -> Config:
    """The best trial for the full budget: [final]'s epochs, early stopping and augmentation."""
    f, base = cfg.final, cfg.base
    return dataclasses.replace(trial_config(cfg, trial, epochs=f.epochs, name=f.name),
                               early_stopping=f.early_stopping or base.early_stopping,
                               augment=f.augment or base.augment)


def optimizer_label(trial: Trial) -> str:
    """E.g. ``sgd (momentum=0.9, nesterov)``: the optimizer and its fixed options."""
    options = [k if v is True else f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
               for k, v in trial["options"].items()]
    return trial["optimizer"] + (f" ({', '.join(options)})" if options else "")


# ----------------------------------------------------------------------------- training

def load_data(cfg: Lab2SearchConfig) -> Data:
    """The splits `fnn run` makes from the same seed (so the final run validates on the very
    images the trials were scored on)."""
    return experiment.load_data(cfg.base.data, experiment.run_keys(cfg.seed)[0])


def train_trial(config: Config, data: Data) -> Dict[str, Any]:
    """Train a `fnn run` config on ``data["train"]`` as `fnn run` would (same keys, penalty,
    augmentation) and score it on ``data["validation"]``; the test split is not touched."""
    parts = experiment.check(config)
    model = experiment.build(config, experiment.num_classes(data))
    started = time.perf_counter()
    result = experiment.train_config(config, model, parts, data["train"],
                                     data["validation"], progress=False)
    h = result.history
    scored = (result.best_epoch or len(h["loss"])) - 1  # the epoch whose parameters fit returns
    return {"val_accuracy": h["val_accuracy"][scored], "val_loss": h["val_loss"][scored],
            "train_accuracy": h["accuracy"][scored], "train_loss": h["loss"][scored],
            "val_accuracy_per_epoch": h["val_accuracy"],
            "seconds": round(time.perf_counter() - started, 1)}


def rank(records: List[Dict]) -> List[Dict]:
    """Trials sorted best first: highest validation accuracy, then lowest validation loss
    (NaN last), then the earlier trial."""
    def order(r):
        loss = r["val_loss"]
        return (-r["val_accuracy"], math.inf if loss is None or math.isnan(loss) else loss,
                r["trial"])
    return sorted(records, key=order)


def search(cfg: Lab2SearchConfig, data: Data, *, train: Callable = train_trial,
           progress: bool = True, log=print) -> List[Dict]:
    """Train every sampled trial with ``train(config, data) -> metrics``; one record per trial
    (its index, values and metrics), in the order they were drawn."""
    trials = sample_trials(cfg)
    bar = progress_bar(len(trials), enabled=progress, unit="trial")
    records, best = [], None
    for i, trial in enumerate(trials):
        if bar is not None:
            bar.set_description(f"{trial['hidden']} {trial['activation']} {trial['optimizer']}")
        metrics = train(trial_config(cfg, trial, epochs=cfg.search.epochs, name=f"trial_{i}"),
                        data)
        records.append({"trial": i, **trial, **metrics})
        best = max(best or 0.0, metrics["val_accuracy"])
        if bar is not None:
            bar.update(1)
            bar.set_postfix(best_val_acc=f"{best:.4f}")
        else:
            log(f"trial {i + 1}/{len(trials)}: {format_trial(trial)} -> validation accuracy "
                f"{metrics['val_accuracy']:.4f} ({metrics['seconds']:.0f} s)")
    if bar is not None:
        bar.close()
    return records


def format_trial(trial: Trial) -> str:
    return (f"{trial['hidden']} {trial['activation']}, {optimizer_label(trial)} "
            f"η={trial['learning_rate']:g}, batch {trial['batch_size']}, dropout "
            f"{trial['dropout']:g}/{trial['input_dropout']:g} (input), λ={trial['l2']:g}")


# ----------------------------------------------------------------------------- outputs

COLUMNS = [  # (header, cell of a record)
    ("rank", lambda r, i: str(i + 1)),
    ("trial", lambda r, i: str(r["trial"])),
    ("hidden", lambda r, i: "-".join(map(str, r["hidden"]))),
    ("activation", lambda r, i: r["activation"]),
    ("optimizer", lambda r, i: optimizer_label(r)),
    ("η", lambda r, i: f"{r['learning_rate']:g}"),
    ("batch", lambda r, i: str(r["batch_size"])),
    ("dropout", lambda r, i: f"{r['dropout']:g}"),
    ("input dropout", lambda r, i: f"{r['input_dropout']:g}"),
    ("L2 λ", lambda r, i: f"{r['l2']:g}"),
    ("val acc", lambda r, i: f"{r['val_accuracy']:.4f}"),
    ("val loss", lambda r, i: "NaN" if r["val_loss"] is None else f"{r['val_loss']:.4f}"),
    ("train acc", lambda r, i: f"{r['train_accuracy']:.4f}"),
    ("seconds", lambda r, i: f"{r['seconds']:.0f}"),
]


def markdown_table(ranked: List[Dict]) -> str:
    """The trials, best first, as a Markdown table."""
    rows = [[cell(r, i) for _, cell in COLUMNS] for i, r in enumerate(ranked)]
    lines = ["| " + " | ".join(h for h, _ in COLUMNS) + " |",
             "|" + "|".join("---" for _ in COLUMNS) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def run(cfg: Lab2SearchConfig, out, *, data: Optional[Data] = None,
        train: Callable = train_trial, progress: bool = True, log=print) -> Dict:
    """Search, write the run folder, and (``final.run``) retrain and test the best trial.

    ``data`` replaces the splits of [base.data] and ``train(config, data) -> metrics`` the
    trainer, e.g. in tests; the final run always goes through `fnn.experiment.run`.
    Returns what ``results.json`` holds.
    """
    check(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(cfg) if data is None else data
    log(f"{cfg.name}: {cfg.search.method} search, {len(sample_trials(cfg))} of "
        f"{space_size(cfg.space)} configurations x {_epochs(cfg.search.epochs)} on "
        f"{len(data['train'][0])} training images, scored on {len(data['validation'][0])} "
        f"validation images -> {out}")
    started = time.perf_counter()
    records = jsonable(search(cfg, data, train=train, progress=progress, log=log))
    ranked = rank(records)
    best = ranked[0]
    best_config = final_config(cfg, best)
    search_seconds = round(time.perf_counter() - started, 1)
    (out / "best.toml").write_text(to_toml(best_config, _best_comment(cfg, best)))
    (out / "trials.md").write_text(markdown_table(ranked))
    log(f"best trial {best['trial']}: {format_trial(best)}, validation accuracy "
        f"{best['val_accuracy']:.4f} -> {out / 'best.toml'}")

    final = None
    if cfg.final.run:
        final = experiment.run(best_config, out / "final", progress=progress, log=log,
                               overwrite=True)  # inside this run's own folder
        final = {k: v for k, v in final.items() if k != "config"}  # the config is in "best"
    report = jsonable({
        "name": cfg.name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "search_seconds": search_seconds,
        "seconds": round(time.perf_counter() - started, 1),
        "config": dataclasses.asdict(cfg),
        "data": {name: len(x) for name, (x, _) in data.items()},
        "space_size": space_size(cfg.space),
        "trials": records,
        "ranking": [r["trial"] for r in ranked],
        "best": {"trial": best["trial"], "val_accuracy": best["val_accuracy"],
                 "config": to_dict(best_config)},
        "final": final,
    })
    experiment.write_json(out / "results.json", report)
    plot_search(report, out / "search.png")
    return report


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def _best_comment(cfg: Lab2SearchConfig, best: Dict) -> str:
    return (f"The best trial ({best['trial']}) of the {cfg.search.method} search `{cfg.name}` "
            f"(seed {cfg.seed}): validation accuracy\n{best['val_accuracy']:.4f} after "
            f"{_epochs(cfg.search.epochs)}; retrained for up to {_epochs(cfg.final.epochs)}.\n"
            f"Run: fnn run {cfg.final.name}.toml")


# ----------------------------------------------------------------------------- plot

PANELS = [  # (record key, axis label); the learning rate is numeric (log scale), others categories
    ("hidden", "hidden sizes"), ("activation", "activation"), ("optimizer", "optimizer"),
    ("learning_rate", "learning rate η"), ("batch_size", "batch size"), ("dropout", "dropout"),
    ("input_dropout", "input dropout"), ("l2", "L2 λ"),
]


def _category(record: Dict, key: str):
    """The value a panel sorts and groups a trial by (hidden sizes as a tuple)."""
    if key == "optimizer":
        return optimizer_label(record)
    return tuple(record[key]) if key == "hidden" else record[key]


TICK_SYMBOLS = {"momentum": "γ", "weight_decay": "wd"}  # short option names for tick labels


def _tick(value) -> str:
    """A category as a tick label; an optimizer's options, shortened, on a second line."""
    if isinstance(value, tuple):
        return "-".join(map(str, value))
    if not isinstance(value, str):
        return f"{value:g}"
    for option, symbol in TICK_SYMBOLS.items():
        value = value.replace(f"{option}=", f"{symbol}=")
    return value.replace(" (", "\n").replace(", ", " ").rstrip(")")


def _spread(groups: List, width: float = 0.5) -> np.ndarray:
    """Horizontal offsets that fan out the points of each category (deterministic, no jitter)."""
    offsets = np.zeros(len(groups))
    for group in set(groups):
        members = [i for i, g in enumerate(groups) if g == group]
        if len(members) > 1:
            offsets[members] = np.linspace(-width / 2, width / 2, len(members))
    return offsets


def plot_search(report: Dict, path) -> bool:
    """Validation accuracy of every trial against each hyper-parameter, one panel each; the
    colour is the optimizer, the star the best trial, a dash the median of a category."""
    if not plots_available():
        return False
    records = report["trials"]
    acc = np.array([r["val_accuracy"] for r in records])
    best = report["best"]["trial"]
    low = max(acc.min(), acc.max() - 0.06) - 0.002  # diverged trials would squash the rest
    shown = np.maximum(acc, low)
    optimizers = list(dict.fromkeys(optimizer_label(r) for r in records))
    import matplotlib
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = [cycle[optimizers.index(optimizer_label(r)) % len(cycle)] for r in records]

    fig = figure("plot_search", figsize=(17, 8.5), layout="constrained")
    axes = fig.subplots(2, 4, sharey=True).ravel()
    for ax, (key, title) in zip(axes, PANELS):
        values = [_category(r, key) for r in records]
        if key == "learning_rate":
            x = np.array(values) * np.exp(0.15 * _spread([optimizer_label(r) + str(v) for r, v
                                                          in zip(records, values)]))
            ax.set_xscale("log")
        else:
            categories = sorted(set(values))
            where = np.array([categories.index(v) for v in values], float)
            x = where + _spread(values)
            for c, category in enumerate(categories):
                ax.hlines(np.median(acc[where == c]), c - 0.35, c + 0.35, color="black", lw=1)
            ax.set_xticks(range(len(categories)), [_tick(c) for c in categories],
                          fontsize=7 if key == "optimizer" else 8)
            ax.set_xlim(-0.6, len(categories) - 0.4)
        clipped = acc < low
        ax.scatter(x[~clipped], shown[~clipped], c=np.array(colors)[~clipped], s=28,
                   edgecolors="white", linewidths=0.4, zorder=2)
        ax.scatter(x[clipped], shown[clipped], c=np.array(colors)[clipped], marker="v", s=30,
                   zorder=2)
        i = [r["trial"] for r in records].index(best)
        ax.scatter([x[i]], [acc[i]], marker="*", s=220, facecolors="none", edgecolors="black",
                   linewidths=1.2, zorder=3)
        ax.set_xlabel(title)
        ax.grid(alpha=0.3)
    for ax in axes[::4]:
        ax.set_ylabel("validation accuracy")
    handles = [matplotlib.lines.Line2D([], [], ls="", marker="o", color=cycle[i % len(cycle)],
                                       label=name) for i, name in enumerate(optimizers)]
    handles += [matplotlib.lines.Line2D([], [], ls="", marker="*", ms=12, mfc="none", mec="black",
                                        label=f"best (trial {best})"),
                matplotlib.lines.Line2D([], [], color="black", lw=1, label="median of a value")]
    if (acc < low).any():
        handles.append(matplotlib.lines.Line2D([], [], ls="", marker="v", color="gray",
                                               label=f"below {low:.3f}, drawn at the bottom"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5),
               fontsize=9)
    c = report["config"]
    fig.suptitle(f"{c['search']['method']} search: {len(records)} of {report['space_size']} "
                 f"configurations, {_epochs(c['search']['epochs'])} on {report['data']['train']} "
                 f"MNIST images each, scored on {report['data']['validation']} validation images",
                 fontsize=11)
    save(fig, path)
    return True


# ----------------------------------------------------------------------------- command line

def _replot(folder: Path) -> None:
    plot_search(read_results(folder), folder / "search.png")


def run_and_summarize(cfg: Lab2SearchConfig, out, progress: bool = True) -> dict:
    """`run`, then one line on the retrained best configuration."""
    report = run(cfg, out, progress=progress)
    if report["final"] is not None:
        print(f"final: test accuracy {report['final']['test_accuracy']:.4f} "
              f"(best epoch {report['final']['best_epoch']} of {report['final']['epochs_run']})")
    return report


def main(argv=None) -> int:
    return experiment_main(argv, name="lab2_search", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run_and_summarize, quick="3 trials of 1 epoch on 2,000 images, a 1-epoch final run", replot=_replot)


if __name__ == "__main__":
    sys.exit(main())
