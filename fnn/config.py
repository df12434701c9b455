"""Experiment configs: TOML files checked against typed dataclasses before anything runs.

An unknown key or a value of the wrong type is rejected with a `ConfigError` naming the key
and the expected type: ``config key `train.epochs` must be int; got '20' (str)``.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """A config that does not fit the schema; the message names the key."""


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "mnist"  # mnist | spiral | circles | xor | gaussians
    scaling: str = "minmax"  # none | minmax | mean | standardize | unit_norm
    per_feature: bool = True  # scaling statistics per feature (False: one for all, e.g. pixels)
    validation_size: int = 0  # examples of the training set held out for validation
    train_size: int = 0  # use only this many training examples (0: all)
    samples: int = 1000  # synthetic data sets: number of points
    noise: float = 0.1  # synthetic data sets: noise level
    test_fraction: float = 0.25  # synthetic data sets: share of points kept for the test
    data_dir: str = ""  # mnist: the folder holding its files ("": $FNN_DATA/mnist, the cache)


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "mlp"
    hidden: List[int] = field(default_factory=lambda: [300, 100])
    activation: str = "relu"
    w_init: str = "glorot_uniform"
    dropout: float = 0.0  # drop rate after each hidden activation (0: no dropout)
    input_dropout: float = 0.0  # drop rate on the inputs
    # other kinds (fnn.models.registry.MODELS, e.g. "lenet5"): every other key of [model] (or of
    # [model.options]) is a keyword argument of the builder, checked against its signature; the
    # keys above are the MLP's and must keep their defaults. kind = "layers": the [[model.layers]]
    # tables, {type = "conv2d", features = 32, kernel_size = 3, ...} (see fnn.models.registry)
    options: Dict[str, "Value"] = field(default_factory=dict)
    layers: List[Dict[str, "Value"]] = field(default_factory=list)
    EXTRA_KEYS = "options"  # where from_dict puts the keys this schema does not name
    MLP_KEYS = ("hidden", "activation", "w_init", "dropout", "input_dropout")

    @staticmethod
    def check_written(raw: Dict[str, Any], prefix: str) -> None:
        """The table as written (`from_dict` calls this): an MLP key given for another kind would
        be ignored, even one equal to its default, so it is a `ConfigError`."""
        kind = raw.get("kind", "mlp")
        written = [k for k in ModelConfig.MLP_KEYS if k in raw]
        if kind != "mlp" and written:
            raise ConfigError(f"config key `{prefix}{written[0]}` is for kind 'mlp'; arguments "
                              f"of {kind!r} go in [model.options].")

    def unwritten(self) -> tuple:
        """The fields `to_toml` leaves out: the MLP's keys unless the kind is "mlp"."""
        return () if self.kind == "mlp" else ModelConfig.MLP_KEYS


Scalar = Union[bool, int, float, str]
Value = Union[bool, int, float, str, list]  # a builder's or layer's argument (TOML arrays as lists)


@dataclass(frozen=True)
class OptimizerConfig:
    """``name`` and ``learning_rate``; every other key of ``[optimizer]`` lands in ``options`` and
    is passed to the optimizer (e.g. ``momentum = 0.9``), checked against its signature."""

    name: str = "sgd"
    learning_rate: float = 0.1
    options: Dict[str, Scalar] = field(default_factory=dict)
    EXTRA_KEYS = "options"  # where from_dict puts the keys this schema does not name


@dataclass(frozen=True)
class ScheduleConfig:
    """The learning rate over training; ``optimizer.learning_rate`` is its initial value.

    ``name``: a schedule of `fnn.optim.schedules.DECAYS` (``cosine_decay``, ``exponential_decay``,
    ``step_decay``, ``polynomial_decay``, ``inverse_time_decay``, ``constant``); every other key
    is that schedule's argument (``decay_steps = 15``), checked against its signature. ``unit``:
    what the schedule's step arguments and ``warmup`` count, ``"epoch"`` (the schedule is read at
    the fractional epoch ``t / steps_per_epoch``, so it changes every step) or ``"step"``.
    ``warmup``: a linear warm-up from 0 to the initial value over this many units first."""

    name: str = "constant"
    unit: str = "epoch"
    warmup: float = 0.0
    options: Dict[str, Scalar] = field(default_factory=dict)
    EXTRA_KEYS = "options"  # where from_dict puts the keys this schema does not name


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: Union[int, str] = 64  # an integer >= 1, or "full": one batch of every example
    loss: str = "softmax_cross_entropy"
    l2: float = 0.0  # the course's λ: loss + λ/(2P) Σ w² over the weights (biases skipped)
    l1: float = 0.0  # the course's λ: loss + λ/P Σ |w|
    microbatches: int = 1  # K independent slices per batch, spread over CPU cores (divides batch_size)


@dataclass(frozen=True)
class AugmentConfig:
    """Random image augmentations applied to each training batch (0 turns one off)."""

    max_shift: int = 0  # pixels
    max_degrees: float = 0.0  # rotation
    noise_std: float = 0.0  # additive Gaussian noise


@dataclass(frozen=True)
class EarlyStoppingConfig:
    monitor: str = "val_loss"
    patience: int = 5
    min_delta: float = 0.0
    mode: str = "min"
    restore_best: bool = True


@dataclass(frozen=True)
class ParallelConfig:
    """Data-parallel training over a device mesh (`fnn.parallel.mesh`): each batch split over
    ``data`` devices; with ``shard_params`` large kernels split over ``model`` devices. With
    several processes (``fnn run --processes``) the mesh spans every process's devices."""

    data: int = 0  # devices along the batch axis (0: all devices divided by `model`)
    model: int = 1  # devices along the model axis
    shard_params: bool = False  # split kernels whose last axis divides over `model`


@dataclass(frozen=True)
class Config:
    name: str = "run"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: Optional[ScheduleConfig] = None
    train: TrainConfig = field(default_factory=TrainConfig)
    early_stopping: Optional[EarlyStoppingConfig] = None
    augment: Optional[AugmentConfig] = None
    parallel: Optional[ParallelConfig] = None
    REQUIRED_TABLES = ("data", "model")  # what a config file must say: `load` checks them


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (list, List):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin in (dict, Dict):
        return "table"
    return "table" if dataclasses.is_dataclass(tp) else tp.__name__


def _convert(value: Any, tp, key: str):
    """Check ``value`` against the annotation ``tp``; build nested dataclasses from tables."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(options) == 1:  # Optional[X]: None (from to_dict; TOML has no null) or an X
            return None if value is None else _convert(value, options[0], key)
        if type(value) in options:  # a union of scalars: the exact type must be one of them
            return value
        raise ConfigError(f"config key `{key}` must be {_type_name(tp)}; "
                          f"got {value!r} ({type(value).__name__}).")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key `{key}` must be a table ([{key}]); got {value!r}.")
        return from_dict(value, tp, prefix=f"{key}.")
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise ConfigError(f"config key `{key}` must be a table; got {value!r}.")
        item = typing.get_args(tp)[1]
        return {k: _convert(v, item, f"{key}.{k}") for k, v in value.items()}
    if origin in (list, List):
        if not isinstance(value, list):
            raise ConfigError(f"config key `{key}` must be {_type_name(tp)}; "
                              f"got {value!r} ({type(value).__name__}).")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(f"config key `{key}` must be {_type_name(tp)}; "
                          f"got {value!r} ({type(value).__name__}).")
    return value


def from_dict(raw: Dict[str, Any], schema=Config, prefix: str = ""):
    """Build ``schema`` from a dict, rejecting unknown keys and ill-typed values."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    unknown = sorted(set(raw) - set(fields))
    extra_field = getattr(schema, "EXTRA_KEYS", None)
    if unknown and not extra_field:
        raise ConfigError(f"unknown config key `{prefix}{unknown[0]}`; "
                          f"expected one of: {', '.join(prefix + k for k in fields)}.")
    missing = [k for k, f in fields.items() if k not in raw and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"config key `{prefix}{missing[0]}` is required; it has no default.")
    if hasattr(schema, "check_written"):  # a rule on the keys as written, defaults or not
        schema.check_written(raw, prefix)
    values = {k: _convert(v, hints[k], prefix + k) for k, v in raw.items() if k in fields}
    if extra_field:  # an open table: the keys the schema does not name go into one field,
        # added to that field's own entries when it is given too (so to_dict's output round-trips)
        item = typing.get_args(hints[extra_field])[1]
        extra = {k: _convert(raw[k], item, prefix + k) for k in unknown}
        values[extra_field] = {**values.get(extra_field, {}), **extra}
    return schema(**values)


def read(path) -> Dict[str, Any]:
    """The TOML file at ``path`` as a dict, or a `ConfigError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist.")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None


def merged(raw: Dict[str, Any], overrides: Dict[str, Any]) -> Dict[str, Any]:
    """``raw`` with ``overrides`` written over it, table by table at every depth
    (``{"train": {"epochs": 1}}`` changes one key of ``[train]``)."""
    out = dict(raw)
    for key, value in overrides.items():
        out[key] = merged(raw.get(key, {}), value) if isinstance(value, dict) else value
    return out


def load(path, schema=Config, overrides: Optional[Dict[str, Any]] = None):
    """Read a TOML file and check it against ``schema`` (by default `fnn run`'s `Config`),
    after merging in ``overrides`` (experiments use them for ``--quick``; ``fnn run --set``).

    The tables a schema lists in ``REQUIRED_TABLES`` (`Config`: ``[data]`` and ``[model]``, what
    to learn from and what to train) must be in the file: an empty file is not a default MNIST run.
    """
    raw = read(path)
    required = getattr(schema, "REQUIRED_TABLES", ())
    missing = [name for name in required if name not in raw]
    if missing:
        what = "is empty" if not raw else "has no " + " and no ".join(f"[{m}]" for m in missing)
        raise ConfigError(f"config file {path} {what}; a run config needs the tables "
                          f"{', '.join(f'[{r}]' for r in required)} (e.g. configs/quickstart.toml).")
    return from_dict(merged(raw, overrides or {}), schema)


def parse_override(text: str) -> Dict[str, Any]:
    """``"train.epochs=5"`` as the nested override ``{"train": {"epochs": 5}}``.

    The value is read as a TOML value (``5``, ``0.1``, ``true``, ``"adam"``, ``[64, 64]``); a
    bare word that is not TOML (``adam``) is taken as a string. The key is checked later, with
    the file, by `load`: an unknown key is a `ConfigError` naming it.
    """
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set expects KEY=VALUE with a dotted config key, e.g. "
                          f"train.epochs=5; got {text!r}.")
    try:
        parsed = tomllib.loads(f"value = {value}")["value"]
    except tomllib.TOMLDecodeError:
        parsed = value
    for part in reversed(key.split(".")):
        parsed = {part: parsed}
    return parsed


def parse_overrides(texts) -> Dict[str, Any]:
    """Several `parse_override` texts merged into one override dict (a later key wins)."""
    out: Dict[str, Any] = {}
    for text in texts:
        out = merged(out, parse_override(text))
    return out


def to_dict(config: Config) -> Dict[str, Any]:
    """The config as plain dicts (for the run folder's JSON)."""
    return dataclasses.asdict(config)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # nan, inf and -inf are TOML too
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table, e.g. one of [[model.layers]]
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"to_toml: cannot write {type(value).__name__} {value!r}.")


def _toml_key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "_-" for c in key) else json.dumps(key)


def _toml_items(node) -> Dict[str, Any]:
    """A config dataclass as ``{key: value or dict}``, its ``EXTRA_KEYS`` entries flattened in
    (as a file writes them; one named like a field stays in its own sub-table) and absent
    optional tables left out."""
    items: Dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(node)}
    unwritten = node.unwritten() if hasattr(node, "unwritten") else ()
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if f.name in unwritten:
            continue
        if f.name == getattr(node, "EXTRA_KEYS", None):
            items.update({k: v for k, v in value.items() if k not in names})
            clashing = {k: v for k, v in value.items() if k in names}
            if clashing:
                items[f.name] = clashing
        elif dataclasses.is_dataclass(value):
            items[f.name] = _toml_items(value)
        elif value is not None:
            items[f.name] = value
    return items


def to_toml(config, comment: str = "") -> str:
    """A config (any schema's dataclass) as TOML text that `load` reads back to an equal config:
    ``EXTRA_KEYS`` entries (optimizer options) become keys of their table, absent optional
    tables are left out, ``comment`` heads the file."""
    items = _toml_items(config)
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    lines += [f"{k} = {_toml_value(v)}" for k, v in items.items() if not isinstance(v, dict)]
    for table, values in items.items():
        if isinstance(values, dict):
            lines += ["", f"[{table}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items()
                                           if not isinstance(v, dict)]
            for sub, sub_values in values.items():
                if isinstance(sub_values, dict):
                    lines += ["", f"[{table}.{sub}]"] + [f"{k} = {_toml_value(v)}"
                                                         for k, v in sub_values.items()]
    return "\n".join(lines) + "\n"


def flat(config) -> Dict[str, Any]:
    """A config as ``{dotted key: value}`` (``"train.epochs": 10``, ``"optimizer.momentum": 0.9``;
    an absent optional table is one key with the value None), for comparing two configs."""
    out: Dict[str, Any] = {}

    def walk(items, prefix):
        for key, value in items.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                out[prefix + key] = value

    walk(_toml_items(config), "")
    for f in dataclasses.fields(config):
        if getattr(config, f.name) is None:
            out[f.name] = None
    return out
