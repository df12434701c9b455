"""Experiment configs: TOML files checked against typed dataclasses before anything runs.

An unknown key or a value of the wrong type is rejected with a `ConfigError` naming the key
and the expected type: ``config key `train.epochs` must be int; got '20' (str)``.
"""
from __future__ import annotations

import dataclasses
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


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "mlp"
    hidden: List[int] = field(default_factory=lambda: [300, 100])
    activation: str = "relu"
    w_init: str = "glorot_uniform"
    dropout: float = 0.0  # drop rate after each hidden activation (0: no dropout)
    input_dropout: float = 0.0  # drop rate on the inputs


Scalar = Union[bool, int, float, str]


@dataclass(frozen=True)
class OptimizerConfig:
    """``name`` and ``learning_rate``; every other key of ``[optimizer]`` lands in ``options`` and
    is passed to the optimizer (e.g. ``momentum = 0.9``), checked against its signature."""

    name: str = "sgd"
    learning_rate: float = 0.1
    options: Dict[str, Scalar] = field(default_factory=dict)
    EXTRA_KEYS = "options"  # where from_dict puts the keys this schema does not name


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: Union[int, str] = 64  # an integer >= 1, or "full": one batch of every example
    loss: str = "softmax_cross_entropy"
    l2: float = 0.0  # the course's λ: loss + λ/(2P) Σ w² over the weights (biases skipped)
    l1: float = 0.0  # the course's λ: loss + λ/P Σ |w|


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
class Config:
    name: str = "run"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    early_stopping: Optional[EarlyStoppingConfig] = None
    augment: Optional[AugmentConfig] = None


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
    after merging in ``overrides`` (experiments use them for ``--quick``)."""
    return from_dict(merged(read(path), overrides or {}), schema)


def to_dict(config: Config) -> Dict[str, Any]:
    """The config as plain dicts (for the run folder's JSON)."""
    return dataclasses.asdict(config)
