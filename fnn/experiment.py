"""Run an experiment from a config: data, model, training, test metrics and a run folder.

The run folder holds ``config.toml`` (the config as run), ``metrics.jsonl`` (one line per epoch),
``checkpoint.npz`` (the latest epoch, for ``--resume``), ``model.npz`` (the trained model, for
`fnn.load_run`), ``results.json`` (test metrics), ``curves.png`` (learning curves) and, for 2-D
inputs, ``boundary.png`` (decision regions). An existing run is never replaced silently.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
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

from fnn import activations, checkpoint, init, losses, metrics, optim, parallel, plots
from fnn import config as config_lib
from fnn.config import (AugmentConfig, Config, ConfigError, DataConfig, ModelConfig,
                        OptimizerConfig, ParallelConfig, ScheduleConfig, TrainConfig, to_dict)
from fnn.data import as_float, augment, load_mnist, scaling, synthetic
from fnn.validation import CrossValidation, cross_validate, kfold
from fnn.core import Layer, init_shapes
from fnn.models import mlp, registry
from fnn.train import EarlyStopping, FitResult, TrainingDiverged, evaluate, fit, predict

Split = Tuple[np.ndarray, np.ndarray]
SYNTHETIC = ("spiral", "circles", "xor", "gaussians")


def _checked(key: str, resolve, value):
    """Resolve a named component, re-raising an unknown name as a `ConfigError` naming the key."""
    try:
        return resolve(value)
    except ValueError as error:
        raise ConfigError(f"config key `{key}`: {error}") from None


def mnist_or_none(train_size: int = 0, test_size: int = 0, log=print):
    """``{"train": (x, y), "test": (x, y)}`` with images float32 (N, 28, 28) in [0, 1], the first
    ``train_size``/``test_size`` of each (0: all); None, with a message, without the files."""
    try:
        train, test = load_mnist("train", download=False), load_mnist("test", download=False)
    except FileNotFoundError as error:
        log(f"skipping MNIST: {error}")
        return None
    cut = lambda pair, n: (as_float(pair[0][:n or None]), np.asarray(pair[1][:n or None]))  # noqa
    return {"train": cut(train, train_size), "test": cut(test, test_size)}


def load_splits(cfg: DataConfig, key) -> Dict[str, Split]:
    """The raw train / validation / test splits a config describes (validation only when
    ``validation_size`` > 0); MNIST is read from ``data_dir`` when the config gives one. A split
    that would be empty is a `ConfigError` naming the keys that emptied it."""
    if cfg.dataset == "mnist":
        data_dir = cfg.data_dir or None
        try:
            (x, y), test = load_mnist("train", data_dir), load_mnist("test", data_dir)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error}\nWith a config: set `data_dir` in its [data] "
                                    "table, or pass fnn run --data-dir DIR.") from error
    elif cfg.dataset in SYNTHETIC:
        x, y = getattr(synthetic, cfg.dataset)(jax.random.fold_in(key, 0), cfg.samples, cfg.noise)
        n_test = int(round(cfg.test_fraction * cfg.samples))
        if not 0 < n_test < cfg.samples:
            raise ConfigError(f"config keys `data.samples` = {cfg.samples} and "
                              f"`data.test_fraction` = {cfg.test_fraction} leave "
                              f"{n_test} test and {cfg.samples - n_test} training examples; "
                              "both need at least one.")
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


def fit_scaling(cfg: DataConfig, x_train):
    """The statistics of ``[data] scaling`` fitted on the training inputs (per feature or, with
    ``per_feature = false``, one for all); `scale_inputs` applies them."""
    scaler = _checked("data.scaling", scaling.get, cfg.scaling)
    return scaler.fit(x_train, axis=0 if cfg.per_feature else None)


def scale_inputs(cfg: DataConfig, x, stats) -> np.ndarray:
    """Inputs scaled with statistics from `fit_scaling`, as float32."""
    return np.asarray(scaling.get(cfg.scaling).transform(x, stats), np.float32)


def scale_splits(cfg: DataConfig, splits: Dict[str, Split], stats=None) -> Dict[str, Split]:
    """Every split as float32 inputs and int32 labels, scaled with ``stats`` (by default
    `fit_scaling` on the ``"train"`` split only)."""
    stats = fit_scaling(cfg, splits["train"][0]) if stats is None else stats
    return {name: (scale_inputs(cfg, xs, stats), np.asarray(ys, np.int32))
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
    """What a checked config builds, once: its loss, its optimizer (a function of the number of
    steps per epoch, which a ``[schedule]`` in epochs needs: ``optimizer_for(steps)``), its
    batch augmentation and its device mesh (None: one device)."""

    loss: Callable
    optimizer_for: Callable[[int], optim.Optimizer]
    augment: Optional[Callable]
    mesh: Optional[parallel.Mesh] = None


def check(config: Config) -> Parts:
    """Reject names and values the schema's types cannot catch, before any data is loaded; return
    the loss, optimizer and augmentation the config names (each built once, here)."""
    m, d, t = config.model, config.data, config.train
    check_model(m)
    if d.dataset not in ("mnist", *SYNTHETIC):
        raise ConfigError(f"config key `data.dataset`: unknown data set {d.dataset!r}; "
                          f"expected one of {['mnist', *SYNTHETIC]}.")
    if any(h < 1 for h in m.hidden):
        raise ConfigError(f"config key `model.hidden` must list positive sizes; got {m.hidden}.")
    _check_range("train.epochs", t.epochs, 0, low_open=True)
    if t.batch_size != "full" and not (isinstance(t.batch_size, int) and t.batch_size >= 1):
        raise ConfigError(f"config key `train.batch_size` must be an integer >= 1 or \"full\" "
                          f"(one batch of every example); got {t.batch_size!r}.")
    _check_range("train.microbatches", t.microbatches, 1)
    if isinstance(t.batch_size, int) and t.batch_size % t.microbatches:
        raise ConfigError(f"config key `train.microbatches` = {t.microbatches} must divide "
                          f"`train.batch_size` = {t.batch_size}.")
    if d.dataset in SYNTHETIC:
        _check_range("data.samples", d.samples, 2)
        _check_range("data.test_fraction", d.test_fraction, 0, 1, low_open=True)
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
    optimizer_for = functools.partial(make_optimizer, config.optimizer, config.schedule)
    optimizer_for(1)  # its names and arguments checked now, before any data is loaded
    return Parts(_checked("train.loss", losses.get, t.loss), optimizer_for,
                 make_augment(config.augment), make_mesh(config.parallel))


def _same_kind(value, default) -> bool:
    """A config value fits an argument whose default is ``default`` (an int fits a float)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def check_arguments(section: str, owner: str, factory: Callable, values: Dict,
                    fixed=(), *, strict: bool = True) -> None:
    """Check the config keys ``values`` of ``[section]`` against ``factory``'s keyword arguments
    (``fixed`` ones are set by the caller, not the config): an unknown key is a `ConfigError`
    naming ``section.key`` and the arguments ``owner`` takes. ``strict``: a value must also be of
    the kind of the argument's default (an int fits a float); otherwise (layer and model
    arguments such as ``padding`` or ``strides`` take a string, a number or a list) a bool default
    needs a bool, a numeric default rejects strings and bools, and a required argument that is
    missing is named; the builder checks the rest. ``factory`` may be an `inspect.Signature`
    (e.g. `registry.model_signature`)."""
    signature = factory if isinstance(factory, inspect.Signature) else inspect.signature(factory)
    arguments = signature.parameters
    options = [a for a, p in arguments.items() if a not in fixed
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    for key, value in values.items():
        if key not in options:
            raise ConfigError(f"unknown config key `{section}.{key}`: {owner} takes "
                              f"{', '.join(options) or 'no options'}.")
        default = arguments[key].default
        if default is inspect.Parameter.empty:
            continue
        if strict:
            wrong = not _same_kind(value, default)
        elif isinstance(default, bool):
            wrong = not isinstance(value, bool)
        else:
            wrong = isinstance(default, (int, float)) and isinstance(value, (str, bool))
        if wrong:
            raise ConfigError(f"config key `{section}.{key}` must be {type(default).__name__} "
                              f"like its default {default!r}; got {value!r}.")
    if not strict:
        missing = [a for a in options if a not in values
                   and arguments[a].default is inspect.Parameter.empty]
        if missing:
            raise ConfigError(f"config key `{section}.{missing[0]}` is required by {owner}.")


def check_model(m: ModelConfig) -> None:
    """``[model]``: a known ``kind``; for "mlp" no builder options, for a `registry.MODELS`
    kind its options checked against the builder, for "layers" every table's ``type`` and
    arguments; a `ConfigError` names the key."""
    mlp_keys = ModelConfig.MLP_KEYS
    if m.kind == "mlp":
        if m.options:
            raise ConfigError(f"unknown config key `model.{next(iter(m.options))}`: the mlp "
                              f"takes {', '.join(mlp_keys)}.")
    else:
        default = ModelConfig()
        changed = [k for k in mlp_keys if getattr(m, k) != getattr(default, k)]
        if changed:
            raise ConfigError(f"config key `model.{changed[0]}` is for kind 'mlp'; arguments of "
                              f"{m.kind!r} go in [model.options].")
    if m.layers and m.kind != "layers":
        raise ConfigError(f"config key `model.layers` needs `model.kind` = \"layers\"; "
                          f"got {m.kind!r}.")
    if m.kind == "layers":
        if m.options:
            raise ConfigError(f"unknown config key `model.{next(iter(m.options))}`: kind "
                              f"'layers' takes only [[model.layers]] tables.")
        if not m.layers:
            raise ConfigError("config key `model.layers` must list at least one layer table "
                              "for kind 'layers', e.g. [[model.layers]] type = \"flatten\".")
        for i, spec in enumerate(m.layers):
            key = f"model.layers[{i}]"
            if "type" not in spec:
                raise ConfigError(f"config key `{key}.type` is required.")
            factory = _checked(f"{key}.type", registry.layer_factory, spec["type"])
            check_arguments(key, spec["type"], factory,
                            {k: v for k, v in spec.items() if k not in ("type", "name")},
                            registry.LAYER_FIXED, strict=False)
            child = spec.get("name", "_")
            if not isinstance(child, str) or not child.isidentifier():
                raise ConfigError(f"config key `{key}.name` must be an identifier; "
                                  f"got {spec['name']!r}.")
    elif m.kind != "mlp":
        signature = _checked("model.kind", registry.model_signature, m.kind)
        check_arguments("model", m.kind, signature, m.options, registry.MODEL_FIXED,
                        strict=False)


def make_optimizer(cfg: OptimizerConfig, schedule: Optional[ScheduleConfig] = None,
                   steps_per_epoch: int = 1):
    """The optimizer ``[optimizer]`` names, its other keys checked against the factory's
    arguments; its learning rate follows ``[schedule]`` when there is one (`make_schedule`)."""
    factory = _checked("optimizer.name", optim.get, cfg.name)
    check_arguments("optimizer", cfg.name, factory, cfg.options, ("learning_rate",))
    rate = (cfg.learning_rate if schedule is None
            else make_schedule(schedule, cfg.learning_rate, steps_per_epoch))
    return _checked("optimizer", lambda c: factory(rate, **c.options), cfg)


def make_schedule(cfg: ScheduleConfig, initial_value: float, steps_per_epoch: int):
    """The learning-rate schedule of ``[schedule]`` as a function of the step ``t``: the named
    schedule started at ``initial_value`` and read at ``t / steps_per_epoch`` (unit "epoch") or
    ``t`` (unit "step"), after a linear warm-up from 0 over ``warmup`` units when it is > 0."""
    factory = _checked("schedule.name", optim.schedules.get_decay, cfg.name)
    first = next(iter(inspect.signature(factory).parameters))  # the initial value
    check_arguments("schedule", cfg.name, factory, cfg.options, (first,), strict=False)
    if cfg.unit not in ("epoch", "step"):
        raise ConfigError(f"config key `schedule.unit` must be \"epoch\" or \"step\"; "
                          f"got {cfg.unit!r}.")
    _check_range("schedule.warmup", cfg.warmup, 0)
    schedule = _checked("schedule", lambda o: factory(initial_value, **o), cfg.options)
    per_unit = steps_per_epoch if cfg.unit == "epoch" else 1
    if cfg.unit == "epoch":
        schedule = optim.schedules.per_epoch(schedule, per_unit, staircase=False)
    warmup_steps = round(cfg.warmup * per_unit)
    return optim.schedules.warmup_then(schedule, warmup_steps) if warmup_steps else schedule


def steps_per_epoch(config: Config, num_examples: int) -> int:
    """The number of batches ``fit`` makes of ``num_examples`` at ``train.batch_size``."""
    size = config.train.batch_size
    return 1 if size == "full" else math.ceil(num_examples / size)


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


def make_mesh(cfg: Optional[ParallelConfig]):
    """The device mesh ``[parallel]`` describes over every device of every process
    (`fnn.parallel.mesh`); None without ``[parallel]`` in a single process (one device). Several
    processes (``fnn run --processes``) always train over a mesh, by default all devices on
    ``"data"``."""
    if cfg is None and jax.process_count() == 1:
        return None
    cfg = ParallelConfig() if cfg is None else cfg
    _check_range("parallel.data", cfg.data, 0)
    _check_range("parallel.model", cfg.model, 1)
    devices = jax.device_count()
    if cfg.data * cfg.model not in (0, devices) or devices % cfg.model:
        raise ConfigError(f"config keys `parallel.data` × `parallel.model` must use all "
                          f"{devices} devices (data = 0: all divided by model); got data = "
                          f"{cfg.data}, model = {cfg.model}.")
    return parallel.mesh(cfg.data or None, cfg.model)


def make_penalty(cfg: TrainConfig, num_examples: int):
    """The course's weight penalty ``λ2/(2P) Σ w² + λ1/P Σ |w|`` over the weights (biases and
    normalization parameters skipped), P the number of training examples; None when both are 0."""
    if not (cfg.l1 or cfg.l2):
        return None
    return lambda params: (cfg.l2 * losses.l2_penalty(params)
                           + cfg.l1 * losses.l1_penalty(params)) / num_examples


def build(config: Config, classes: int) -> Layer:
    """The model a checked config describes, with ``classes`` outputs: the MLP of ``[model]``;
    a `registry.MODELS` builder called with ``num_classes=classes`` and the options; or, for
    kind "layers", the `[[model.layers]]` list (its last layer gives the scores). Both of the
    latter start with `registry.ImageInput` ((N, H, W) images get a channel axis)."""
    m = config.model
    if m.kind == "mlp":
        return mlp([*m.hidden, classes], activation=m.activation, w_init=m.w_init,
                   dropout=m.dropout, input_dropout=m.input_dropout)
    if m.kind == "layers":
        return _checked("model.layers", registry.build_layers, m.layers)
    return _checked("model", lambda o: registry.build_model(m.kind, classes, **o), m.options)


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
    optimizer = parts.optimizer_for(steps_per_epoch(config, len(x_train)))
    if jax.process_count() > 1:  # each process trains on its shard; the batches are global
        shard = parallel.process_shard(len(x_train))
        train_data = tuple(a[shard] for a in train_data)
    if parts.mesh is not None:
        fit_options.update(mesh=parts.mesh, shard_params=bool(
            config.parallel and config.parallel.shard_params))
    return fit(model, params, state, train_data, loss=parts.loss, optimizer=optimizer,
               key=fit_key, epochs=config.train.epochs, batch_size=config.train.batch_size,
               validation_data=validation_data,
               early_stopping=EarlyStopping(**dataclasses.asdict(es)) if use_es else None,
               penalty=make_penalty(config.train, len(x_train)), augment=parts.augment,
               microbatches=config.train.microbatches, **fit_options)


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
    if folds > len(pool[1]):
        raise ConfigError(f"cross_validate_config: `folds` (fnn cv --folds) = {folds} is more "
                          f"than the {len(pool[1])} training examples the config gives.")
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


RUN_FILES = ("config.toml", "metrics.jsonl", "checkpoint.npz", "model.npz", "results.json",
             "curves.png", "boundary.png")
"""What `run` writes in a run folder (``--overwrite`` removes these and only these)."""
RESUMABLE_KEYS = ("train.epochs", "data.data_dir")
"""The config keys that may differ from the run's ``config.toml`` on ``--resume``: more (or fewer)
epochs, and where the data is read from. Any other change would continue a different run."""


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (it holds a run and neither --resume nor
    --overwrite was given, there is nothing to resume, or the config differs from the run's)."""


def existing_run_files(folder) -> list:
    """The `RUN_FILES` that ``folder`` holds (none when it does not exist)."""
    return [name for name in RUN_FILES if (Path(folder) / name).exists()]


def check_run_folder(folder, config=None, *, resume: bool = False, overwrite: bool = False,
                     resumable: bool = True, load_saved: Optional[Callable] = None) -> None:
    """Refuse, before anything is written, to use ``folder`` in a way that would lose data.

    Without ``resume`` a folder that already holds a run is refused unless ``overwrite`` (the
    message offers ``--resume`` too when the run is ``resumable``); with ``resume`` it must hold
    a run whose ``config.toml``, read by ``load_saved(path)`` (by default `fnn.config.load` with
    the schema of ``config``), equals ``config`` but for the `RESUMABLE_KEYS`
    (`config_differences` names the keys that differ). Raises `RunFolderError`.
    """
    folder = Path(folder)
    found = existing_run_files(folder)
    if resume and overwrite:
        raise RunFolderError("--resume continues the run in the folder and --overwrite replaces "
                             "it: give one of them.")
    if resume:
        if not (folder / "config.toml").is_file():
            raise RunFolderError(f"{folder} holds no run to resume (no config.toml); start it "
                                 "without --resume.")
        if config is not None:
            saved = (load_saved or (lambda path: config_lib.load(path, type(config))))(
                folder / "config.toml")
            differ = {k: v for k, v in config_differences(saved, config).items()
                      if k not in RESUMABLE_KEYS}
            if differ:
                listed = "; ".join(f"`{k}` {_shown(old)} -> {_shown(new)}"
                                   for k, (old, new) in differ.items())
                raise RunFolderError(
                    f"cannot resume {folder}: the config differs from the run's config.toml at "
                    f"{listed}. Only {', '.join(RESUMABLE_KEYS)} may change on resume; for "
                    "another config start a new run (a new --out, or --overwrite).")
    elif found and not overwrite:
        resume_hint = "Continue it with --resume, or write" if resumable else "Write"
        raise RunFolderError(
            f"{folder} already holds a run ({', '.join(found)}). {resume_hint} to a new --out "
            "folder, or replace it with --overwrite.")


def _shown(value) -> str:
    return "(absent)" if value is _ABSENT else "(no table)" if value is None else repr(value)


_ABSENT = object()


def config_differences(old, new) -> Dict[str, Tuple]:
    """``{dotted key: (old value, new value)}`` for every key whose value differs between two
    configs of one schema (a key only one of them has shows the other side as absent)."""
    a, b = config_lib.flat(old), config_lib.flat(new)
    keys = [*a, *(k for k in b if k not in a)]
    return {key: (a.get(key, _ABSENT), b.get(key, _ABSENT)) for key in keys
            if a.get(key, _ABSENT) != b.get(key, _ABSENT)}


def remove_run_files(folder) -> None:
    """Delete the `RUN_FILES` in ``folder`` (for ``--overwrite``); other files stay."""
    for name in RUN_FILES:
        (Path(folder) / name).unlink(missing_ok=True)


def completed_epochs(checkpoint_path) -> int:
    """The epochs a `fit` checkpoint has finished (0 when there is no file): its progress record's
    ``epoch``, which a mid-epoch save also holds (the epoch under way is not finished)."""
    path = Path(checkpoint_path)
    if not path.exists():
        return 0
    return int(checkpoint.load(path)["progress"]["epoch"])


def metrics_line(epoch: int, logs: Dict[str, float]) -> str:
    """One line of ``metrics.jsonl``: ``{"epoch": e, **logs}`` as strict JSON (NaN as null)."""
    return json.dumps(jsonable({"epoch": epoch, **logs}), allow_nan=False) + "\n"


def read_metrics(path) -> Dict[str, list]:
    """``metrics.jsonl`` as a history ``{name: [value per epoch]}`` (null read back as NaN)."""
    history: Dict[str, list] = {}
    for line in Path(path).read_text().splitlines():
        for key, value in json.loads(line).items():
            if key != "epoch":
                history.setdefault(key, []).append(math.nan if value is None else value)
    return history


def truncate_metrics(path, epochs: int) -> None:
    """Keep the lines of epochs 1..``epochs`` of ``metrics.jsonl``: a run killed after writing an
    epoch's line but before its checkpoint was saved repeats that epoch on resume."""
    path = Path(path)
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if json.loads(line)["epoch"] <= epochs]
    if len(kept) != len(lines):
        path.write_text("".join(kept))


def test_scores(model, params, state, test: Split, loss, classes: int) -> dict:
    """Loss, accuracy, macro F1 and confusion matrix of a trained model on a test split."""
    x_test, y_test = test
    scores = evaluate(model, params, state, test, loss=loss)
    predicted = np.asarray(predict(model, params, state, x_test).argmax(-1))
    cm = metrics.confusion_matrix(y_test, predicted, classes)
    return {"test_loss": scores["loss"], "test_accuracy": float(metrics.accuracy(cm)),
            "test_macro_f1": float(metrics.f1(cm, average="macro")), "confusion_matrix": cm}


def save_model(path, params, state, *, classes: int, input_shape, scaling_stats) -> Path:
    """``model.npz``: what `fnn.load_run` needs besides the config (the trained parameters and
    state, the number of classes, the input shape without the batch axis, the scaling statistics
    fitted on the training inputs)."""
    return checkpoint.save(path, {"params": params, "state": state, "classes": int(classes),
                                  "input_shape": [int(n) for n in input_shape],
                                  "scaling": scaling_stats})


def _divergence_note(error) -> str:
    """The first clause of a `TrainingDiverged` message, for the curves."""
    return "training diverged: " + str(error).split(";")[0].removeprefix("fit: ")


def run(config: Config, out_dir, *, resume: bool = False, overwrite: bool = False,
        progress: bool = True, log=print, parts: Optional[Parts] = None,
        config_text: Optional[str] = None) -> dict:
    """Train and test the config's model; write the run folder; return the results.

    ``parts`` is what `check` returned for ``config`` (checked here when not given). The folder
    is checked first (`check_run_folder`: an existing run is refused unless ``resume`` or
    ``overwrite``; a resumed run's config must match), and created only once the data is loaded
    and the model's shapes are known, so a run that fails before training leaves nothing behind.
    ``config.toml`` gets ``config_text`` (by default the config written by `fnn.config.to_toml`).
    On ``resume`` ``metrics.jsonl`` keeps only the epochs the checkpoint finished. The trained
    model (the best epoch's with early stopping) is saved as ``model.npz`` for `fnn.load_run`.
    A diverged run still draws its curves, with a note, then re-raises `TrainingDiverged`.
    Several processes (`fnn.parallel.initialize`, ``fnn run --processes``) each train on their
    shard of the training set over one mesh; process 0 checks and writes the folder and returns
    the results, the others return ``{}`` (to resume, every process reads the checkpoint: the
    folder must be on a file system they all see).
    """
    parts = check(config) if parts is None else parts
    out = Path(out_dir)
    lead = jax.process_index() == 0  # several processes train together: one writes the folder
    if lead:  # (the others would race with it: the folder appears when process 0 starts)
        check_run_folder(out, config, resume=resume, overwrite=overwrite)
    loss = parts.loss
    data_key, init_key, _ = run_keys(config.seed)
    splits = load_splits(config.data, data_key)
    stats = fit_scaling(config.data, splits["train"][0])
    data = scale_splits(config.data, splits, stats)
    x_train = data["train"][0]
    classes = num_classes(data)
    model = build(config, classes)
    init_shapes(model, (None, *x_train.shape[1:]), init_key)  # a shape error stops here
    done = completed_epochs(out / "checkpoint.npz") if resume else 0

    metrics_path = out / "metrics.jsonl"
    if lead:
        if overwrite:
            remove_run_files(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.toml").write_text(config_lib.to_toml(config) if config_text is None
                                         else config_text)
        if resume:
            truncate_metrics(metrics_path, done)
    metrics_log = metrics_path.open("a" if resume else "w") if lead else contextlib.nullcontext()

    def write_epoch(epoch, logs, train_state):
        if lead:
            metrics_log.write(metrics_line(epoch + 1, logs))
            metrics_log.flush()

    log(f"{config.name}: {len(x_train)} training, {len(data.get('validation', ([],))[0])} "
        f"validation, {len(data['test'][0])} test examples -> {out}"
        + ("" if parts.mesh is None else
           f" (data-parallel over a mesh of {dict(parts.mesh.shape)} devices, "
           f"{jax.process_count()} process{'es' if jax.process_count() > 1 else ''})"))
    started = time.perf_counter()
    try:
        with metrics_log:
            result = train_config(config, model, parts, data["train"],
                                  data.get("validation"), hooks=[write_epoch],
                                  checkpoint_path=str(out / "checkpoint.npz"), resume=resume,
                                  progress=progress, log=log)
    except TrainingDiverged as error:
        if plots.available() and lead:
            plots.plot_history(read_metrics(metrics_path), out / "curves.png",
                               title=config.name, note=_divergence_note(error))
        raise
    seconds = time.perf_counter() - started
    params, state = parallel.gather_to_host((result.params, result.state))
    if not lead:
        return {}
    save_model(out / "model.npz", params, state, classes=classes,
               input_shape=x_train.shape[1:], scaling_stats=stats)

    scores = test_scores(model, params, state, data["test"], loss, classes)
    cm = scores.pop("confusion_matrix")
    history = read_metrics(metrics_path)  # every epoch, resumed or not
    results = {
        "name": config.name,
        **scores,
        "epochs_run": len(history["loss"]),
        "stopped_early": result.stopped_early,
        "best_epoch": result.best_epoch,
        "train_seconds": round(seconds, 1),
        "final": {k: v[-1] for k, v in history.items()},
        "confusion_matrix": np.asarray(cm).tolist(),
        "date": time.strftime("%Y-%m-%d"),
        "config": to_dict(config),
    }
    write_json(out / "results.json", results)
    if plots.available():
        plots.plot_history(history, out / "curves.png", title=config.name,
                           best_epoch=result.best_epoch)
        x_test = data["test"][0]
        if x_test.shape[1:] == (2,):
            plots.plot_decision_boundary(
                lambda xs: predict(model, params, state, xs), data["test"],
                out / "boundary.png", title=f"{config.name} (test)")
    else:
        log("no plots: matplotlib is missing (pip install 'fnn[viz]')")
    log(f"test accuracy {results['test_accuracy']:.4f}  test loss {results['test_loss']:.4f}")
    log(metrics.classification_report(cm))
    return results


def copy_config(path, out_dir) -> None:
    shutil.copyfile(path, Path(out_dir) / "config.toml")


def run_folder(name: str, out=None, *, create: bool = True) -> Path:
    """The run folder, ``out`` or ``runs/<name>-<date>-<time>``; created (if missing) unless
    ``create`` is False."""
    folder = Path(out or f"runs/{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if create:
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
                    run: Callable, quick: str, replot: Optional[Callable] = None,
                    resumable: bool = False) -> int:
    """The command line every experiment shares; returns the exit code.

        python experiments/NAME.py [configs/NAME.toml] [--out DIR] [--overwrite] [--quick]
                                   [--no-progress] [--replot RUN_FOLDER]

    ``load_config(path, quick=...)`` reads and checks the config (a `ConfigError` exits with 2
    and the message); ``--out`` into a folder that already holds a run exits with 2 unless
    ``--overwrite`` (which removes its `RUN_FILES` first; other files are replaced as the
    experiment writes them) or, for a ``resumable`` experiment (one whose ``run`` continues from
    the checkpoint it finds in the folder), ``--resume`` with the run's own config (a config that
    differs is refused, naming the keys); ``run(config, out, progress=...)`` does the work;
    ``replot(folder)``, when given, redraws a finished run's outputs without training.
    """
    parser = argparse.ArgumentParser(prog=f"experiments/{name}.py", description=description)
    parser.add_argument("config", nargs="?", default=f"configs/{name}.toml")
    parser.add_argument("--out", help="run folder (default: runs/<name>-<date>-<time>)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run that --out already holds")
    if resumable:
        parser.add_argument("--resume", action="store_true",
                            help="continue the run that --out holds from its checkpoint")
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
        out = run_folder(config.name + ("-quick" if args.quick else ""), args.out, create=False)
        resume = resumable and args.resume
        if resume and not args.out:
            raise RunFolderError("--resume needs --out, the run folder to continue.")
        check_run_folder(out, config, resume=resume, overwrite=args.overwrite,
                         resumable=resumable,
                         load_saved=lambda path: load_config(path, quick=args.quick))
    except (ConfigError, RunFolderError) as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
    if args.overwrite:
        remove_run_files(out)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        copy_config(args.config, out)
    run(config, out, progress=not args.no_progress)
    return 0
