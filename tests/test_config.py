"""Configs: every key is checked (name and type) before any training starts."""
import math
import re
from pathlib import Path

import pytest

from fnn import config as config_lib
from fnn.config import Config, ConfigError, from_dict
from fnn.experiment import check

ROOT = Path(__file__).resolve().parents[1]
# configs/NAME.toml belongs to experiments/NAME.py when that script exists (its own tests check
# it); every other config is an `fnn run` config
CONFIGS = [p for p in sorted((ROOT / "configs").glob("*.toml"))
           if not (ROOT / "experiments" / f"{p.stem}.py").exists()]


def test_the_fnn_run_configs_are_found():
    assert {"mnist_mlp.toml", "quickstart.toml"} <= {p.name for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    check(config_lib.load(path))


def test_defaults_fill_missing_keys():
    config = from_dict({"train": {"epochs": 3}})
    assert config.train.epochs == 3 and config.train.batch_size == Config().train.batch_size
    assert config.early_stopping is None


def test_int_is_accepted_where_a_float_is_expected():
    assert from_dict({"optimizer": {"learning_rate": 1}}).optimizer.learning_rate == 1.0


@pytest.mark.parametrize("raw, message", [
    ({"trian": {}}, "unknown config key `trian`; expected one of: name, seed, data"),
    ({"train": {"epoch": 3}}, "unknown config key `train.epoch`; expected one of: train.epochs"),
    ({"train": {"epochs": "20"}}, r"config key `train.epochs` must be int; got '20' \(str\)"),
    ({"train": {"epochs": True}}, r"`train.epochs` must be int; got True \(bool\)"),
    ({"optimizer": {"learning_rate": "fast"}}, "`optimizer.learning_rate` must be float"),
    ({"model": {"hidden": 300}}, "`model.hidden` must be list of int; got 300"),
    ({"model": {"hidden": [300, 1.5]}}, r"`model.hidden\[1\]` must be int; got 1.5"),
    ({"early_stopping": {"patience": 2.5}}, "`early_stopping.patience` must be int"),
    ({"data": 3}, r"config key `data` must be a table \(\[data\]\)"),
])
def test_bad_keys_and_types_are_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(raw)


def test_full_batch_is_spelled_full_in_configs():
    """One meaning: "full" (0 used to mean full batch in configs while fit said None)."""
    cfg = from_dict({"train": {"batch_size": "full"}})
    check(cfg)
    for bad in (0, "all"):
        with pytest.raises(ConfigError, match='`train.batch_size` must be an integer >= 1 or "full"'):
            check(from_dict({"train": {"batch_size": bad}}))


@pytest.mark.parametrize("raw, message", [
    ({"model": {"activation": "rleu"}}, "`model.activation`: unknown activation 'rleu'"),
    ({"model": {"w_init": "he"}}, "`model.w_init`"),
    ({"model": {"kind": "cnn"}}, "`model.kind`: unknown model 'cnn'"),
    ({"model": {"hidden": [300, 0]}}, "`model.hidden` must list positive sizes"),
    ({"data": {"dataset": "cifar"}}, "`data.dataset`: unknown data set 'cifar'"),
    ({"data": {"scaling": "zscore"}}, "`data.scaling`"),
    ({"train": {"loss": "l2"}}, "`train.loss`"),
    ({"train": {"epochs": 0}}, "`train.epochs` must be > 0"),
    ({"train": {"batch_size": -1}}, "`train.batch_size` must be an integer >= 1 or \"full\""),
    ({"train": {"microbatches": 0}}, "`train.microbatches` must be >= 1; got 0"),
    ({"train": {"batch_size": 64, "microbatches": 3}},
     "`train.microbatches` = 3 must divide `train.batch_size` = 64"),
    ({"optimizer": {"name": "adamm"}}, "`optimizer.name`: unknown optimizer 'adamm'"),
    ({"optimizer": {"name": "sgd", "momentun": 0.9}},
     "unknown config key `optimizer.momentun`: sgd takes momentum, nesterov"),
    ({"optimizer": {"name": "sgd", "momentum": 1.5}}, "`optimizer`: sgd: `momentum` must be"),
    ({"optimizer": {"name": "sgd", "nesterov": 1}}, "`optimizer.nesterov` must be bool"),
    ({"optimizer": {"name": "adam", "beta1": "high"}}, "`optimizer.beta1` must be float"),
    ({"model": {"dropout": 1.0}}, r"`model.dropout` must be >= 0 and < 1; got 1.0"),
    ({"train": {"l2": -0.1}}, "`train.l2` must be >= 0"),
    ({"augment": {"max_degrees": -5.0}}, "`augment.max_degrees` must be >= 0"),
])
def test_bad_names_are_rejected_before_training(raw, message):
    with pytest.raises(ConfigError, match=message):
        check(from_dict(raw))


def test_invalid_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs = 3")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        config_lib.load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        config_lib.load(tmp_path / "missing.toml")


def test_optimizer_options_reach_the_optimizer():
    config = from_dict({"optimizer": {"name": "sgd", "learning_rate": 0.5, "momentum": 0.9}})
    assert config.optimizer.options == {"momentum": 0.9}
    check(config)
    from fnn.experiment import make_optimizer
    import jax.numpy as jnp
    opt = make_optimizer(config.optimizer)
    state = opt.init({"w": jnp.zeros(1)})
    for _ in range(2):  # classic momentum: v1 = η g, v2 = γ v1 + η g
        updates, state = opt.update({"w": jnp.ones(1)}, state, {"w": jnp.zeros(1)})
    assert float(updates["w"][0]) == pytest.approx(-(0.9 * 0.5 + 0.5))


def test_a_schedule_in_epochs_follows_the_step_count():
    # cosine over 4 epochs of 10 steps after a 1-epoch linear warm-up, from η0 = 0.2
    config = from_dict({"optimizer": {"name": "sgd", "learning_rate": 0.2},
                        "train": {"batch_size": 10},
                        "schedule": {"name": "cosine_decay", "decay_steps": 4, "warmup": 1}})
    parts = check(config)
    from fnn.experiment import make_schedule, steps_per_epoch
    steps = steps_per_epoch(config, 95)  # 9 full batches and a padded one
    assert steps == 10
    rate = make_schedule(config.schedule, 0.2, steps)
    expected = [0.2 * t / 10 if t < 10 else 0.1 * (1 + math.cos(math.pi * min(t - 10, 40) / 40))
                for t in range(0, 60, 5)]
    assert [float(rate(t)) for t in range(0, 60, 5)] == pytest.approx(expected, abs=1e-6)
    # the optimizer's update uses the rate of its step: η_t g with g = 1 at t = 0, 1, 2
    import jax.numpy as jnp
    opt = parts.optimizer_for(steps)
    state = opt.init({"w": jnp.zeros(1)})
    for t in range(3):
        updates, state = opt.update({"w": jnp.ones(1)}, state, {"w": jnp.zeros(1)})
        assert float(updates["w"][0]) == pytest.approx(-0.2 * t / 10, abs=1e-7)
    # unit "step": the arguments count steps; full batch is one step per epoch
    config = from_dict({"train": {"batch_size": "full"}, "schedule": {
        "name": "step_decay", "decay_factor": 0.5, "decay_every": 3, "unit": "step"}})
    assert steps_per_epoch(config, 95) == 1
    rate = make_schedule(config.schedule, 1.0, 7)
    assert [float(rate(t)) for t in (0, 2, 3, 6)] == [1.0, 1.0, 0.5, 0.25]


@pytest.mark.parametrize("schedule, message", [
    ({"name": "cosine"}, "`schedule.name`: unknown schedule 'cosine'; expected one of"),
    ({"name": "cosine_decay"}, "`schedule.decay_steps` is required by cosine_decay"),
    ({"name": "cosine_decay", "decay_stps": 3}, "unknown config key `schedule.decay_stps`"),
    ({"name": "cosine_decay", "decay_steps": 3, "unit": "epochs"},
     "`schedule.unit` must be \"epoch\" or \"step\"; got 'epochs'"),
    ({"name": "cosine_decay", "decay_steps": 3, "warmup": -1}, "`schedule.warmup` must be >= 0"),
    ({"name": "cosine_decay", "decay_steps": 0}, "config key `schedule`: cosine_decay"),
])
def test_bad_schedules_are_named_before_training(schedule, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check(from_dict({"schedule": schedule}))


def test_a_required_key_is_named_and_to_dict_round_trips():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Case:
        name: str

    with pytest.raises(ConfigError, match="config key `name` is required"):
        from_dict({}, Case)
    config = from_dict({"optimizer": {"name": "sgd", "momentum": 0.9}})
    assert from_dict(config_lib.to_dict(config)) == config  # early_stopping None included


@pytest.mark.parametrize("text, message", [
    ("", r"config file .*c.toml is empty; a run config needs the tables \[data\], \[model\]"),
    ("# only a comment\nname = 'x'\n", r"c.toml has no \[data\] and no \[model\]; a run config"),
    ("[data]\ndataset = 'xor'\n", r"c.toml has no \[model\]; a run config needs the tables"),
    ("[model]\nhidden = [4]\n", r"c.toml has no \[data\]; a run config needs the tables"),
])
def test_a_run_config_must_name_its_data_and_model(tmp_path, text, message):
    """An empty file used to mean a default MNIST run."""
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        config_lib.load(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text("[data]\n[model]\n")  # empty tables: defaults, but said
    assert config_lib.load(tmp_path / "c.toml") == Config()


@pytest.mark.parametrize("text, expected", [
    ("train.epochs=5", {"train": {"epochs": 5}}),
    ("optimizer.learning_rate = 1e-3", {"optimizer": {"learning_rate": 0.001}}),
    ("model.hidden=[64, 32]", {"model": {"hidden": [64, 32]}}),
    ("optimizer.name=adam", {"optimizer": {"name": "adam"}}),  # a bare word is a string
    ('name="my run"', {"name": "my run"}),
    ("early_stopping.restore_best=false", {"early_stopping": {"restore_best": False}}),
])
def test_set_overrides_are_toml_values(text, expected):
    assert config_lib.parse_override(text) == expected


@pytest.mark.parametrize("texts, message", [
    (["train.epochs"], "--set expects KEY=VALUE with a dotted config key"),
    (["=5"], "--set expects KEY=VALUE"),
    (["train..epochs=5"], "--set expects KEY=VALUE"),
    (["train.epoch=5"], "unknown config key `train.epoch`; expected one of: train.epochs"),
    (["train.epochs=ten"], r"config key `train.epochs` must be int; got 'ten' \(str\)"),
    (["train.epochs=5", "model.hiden=[3]"], "unknown config key `model.hiden`"),
])
def test_set_overrides_are_checked_like_the_file(tmp_path, texts, message):
    path = tmp_path / "c.toml"
    path.write_text("[data]\ndataset = 'xor'\n[model]\nhidden = [4]\n")
    with pytest.raises(ConfigError, match=message):  # as `fnn run` checks a config
        check(config_lib.load(path, overrides=config_lib.parse_overrides(texts)))


def test_overrides_merge_and_the_later_wins(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[data]\ndataset = 'xor'\n[model]\nhidden = [4]\n[train]\nepochs = 3\n")
    config = config_lib.load(path, overrides=config_lib.parse_overrides(
        ["train.epochs=5", "train.batch_size=8", "train.epochs=7", "data.data_dir=/d"]))
    assert (config.train.epochs, config.train.batch_size, config.model.hidden) == (7, 8, [4])
    assert config.data.data_dir == "/d"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_to_toml_reads_back_to_the_same_config(tmp_path, path):
    config = config_lib.load(path)
    text = config_lib.to_toml(config, "written\nby a test")
    assert text.startswith("# written\n# by a test\n")
    (tmp_path / "c.toml").write_text(text)
    assert config_lib.load(tmp_path / "c.toml") == config
    assert config_lib.flat(config)["data.dataset"] == config.data.dataset


def test_to_toml_writes_options_layers_and_odd_values(tmp_path):
    config = from_dict({"data": {"noise": float("inf")}, "optimizer": {"momentum": 0.9},
                        "model": {"kind": "layers", "layers": [
                            {"type": "conv2d", "features": 4, "kernel_size": [3, 3],
                             "padding": "same"}, {"type": "flatten"}]},
                        "name": 'quote " and ü'})
    (tmp_path / "c.toml").write_text(config_lib.to_toml(config))
    assert config_lib.load(tmp_path / "c.toml") == config
    # a builder option named like a field of [model] stays in [model.options]
    config = from_dict({"data": {}, "model": {"kind": "lenet5", "depth": 2,
                                              "options": {"activation": "tanh"}}})
    text = config_lib.to_toml(config)
    assert "depth = 2\n" in text and '[model.options]\nactivation = "tanh"' in text
    (tmp_path / "c.toml").write_text(text)
    assert config_lib.load(tmp_path / "c.toml") == config
