"""experiments/early_stopping.py, augmentation.py and debugging.py on tiny random-data nets: the
core of each study, its run folder and its config checks (no MNIST needed; a few seconds)."""
import importlib.util
import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from fnn.config import Config, ConfigError, from_dict
from fnn import experiment

ROOT = Path(__file__).resolve().parents[1]
QUIET = dict(progress=False, log=lambda *args: None)


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


early_stopping, augmentation, debugging = (_load(name) for name in
                                           ("early_stopping", "augmentation", "debugging"))


def digits(n, seed, *, shape=(8, 8), classes=4, noise=0.3, random_labels=False):
    """Images made of one fixed random prototype per class plus noise, float32 in about [0, 1];
    with ``random_labels`` the labels carry no information about the images."""
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(99).uniform(0, 1, (classes, *shape))
    y = rng.integers(0, classes, n).astype(np.int32)
    x = prototypes[y] + noise * rng.normal(size=(n, *shape))
    if random_labels:
        y = rng.permutation(y)
    return x.astype(np.float32), y


# ----------------------------------------------------------------------------- early stopping

def memorizing_config(**early_stopping):
    """A tiny net, a large learning rate and many epochs: it memorizes 32 randomly labelled
    examples and the validation loss climbs after the first epochs."""
    return from_dict({"name": "tiny", "data": {"validation_size": 200},
                      "model": {"hidden": [64], "w_init": "he_normal"},
                      "optimizer": {"name": "sgd", "learning_rate": 0.3},
                      "train": {"epochs": 40, "batch_size": 16},
                      "early_stopping": {"patience": 4, "min_delta": 0.0, **early_stopping}},
                     Config)


def memorizing_data():
    return {name: digits(n, seed, random_labels=True)
            for name, n, seed in (("train", 32, 0), ("validation", 200, 1), ("test", 200, 2))}


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch(tmp_path):
    report = early_stopping.run(memorizing_config(), tmp_path, data=memorizing_data(), **QUIET)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == report and saved["date"] and saved["config"]["early_stopping"]["patience"] == 4
    best, stop, val = saved["best_epoch"], saved["stop_epoch"], saved["history"]["val_loss"]
    assert saved["stopped_early"] and saved["budget_epochs"] == len(val) == 40
    assert stop == best + 4 < 40  # min_delta 0: no improvement in the 4 epochs after the best
    assert val[best - 1] == min(val[:stop]) == saved["monitored_at_best"]
    assert val[-1] > val[best - 1]  # it turned up
    assert saved["same_trajectory"]  # the stopped run is the start of the full one
    # The returned parameters are the best epoch's: their validation loss, measured again, is
    # the history's at that epoch, and lower than the last epoch's.
    assert saved["restored"]["val_loss"] == pytest.approx(val[best - 1], rel=1e-5)
    assert saved["last"]["val_loss"] == pytest.approx(val[-1], rel=1e-5)
    assert saved["restored"]["test_loss"] != saved["last"]["test_loss"]
    if early_stopping.plots_available():
        assert (tmp_path / "curves.png").stat().st_size > 1000


# ----------------------------------------------------------------------------- augmentation

def test_augmentation_run_writes_two_rows_curves_and_example_grid(tmp_path):
    cfg = from_dict({"name": "tiny", "repeats": 1, "data": {"validation_size": 64},
                     "model": {"hidden": [32]}, "optimizer": {"learning_rate": 0.1},
                     "train": {"epochs": 2, "batch_size": 32},
                     "augment": {"max_shift": 1, "max_degrees": 10.0},
                     "grid": {"examples": 4, "variants": 2}}, augmentation.AugmentationConfig)
    data = {"train": digits(96, 0), "validation": digits(64, 1), "test": digits(64, 2)}
    report = augmentation.run(cfg, tmp_path, data=data, **QUIET)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == report and saved["date"] and saved["config"]["augment"]["max_shift"] == 1
    assert [row["setting"] for row in saved["rows"]] == ["plain", "augmented"]
    for row in saved["rows"]:
        assert row["gap"] == pytest.approx(row["train_accuracy"] - row["val_accuracy"])
        assert all(0 <= row[k] <= 1 for k in ("train_accuracy", "val_accuracy", "test_accuracy"))
    for (run,) in saved["runs"].values():  # one repeat
        assert len(run["train_accuracy"]) == len(run["val_accuracy"]) == 2  # one value per epoch
    if augmentation.plots_available():
        for name in ("accuracy_curves", "augmented_examples"):
            assert (tmp_path / f"{name}.png").stat().st_size > 1000, name


def test_example_grid_shows_originals_then_distinct_augmented_copies():
    x, y = digits(40, 0)
    cfg = from_dict({"augment": {"max_shift": 2}}, augmentation.AugmentationConfig)
    augment = experiment.make_augment(cfg.augment)
    grid = augmentation.example_grid((x, y), augment, jax.random.PRNGKey(0),
                                     augmentation.GridSpec(examples=4, variants=3))
    picked = augmentation.pick_examples(y, 4)
    assert grid.shape == (4, 4, 8, 8) and sorted(y[picked]) == [0, 1, 2, 3]  # one per class
    np.testing.assert_array_equal(grid[0], x[picked])
    assert not np.array_equal(grid[1], grid[2])  # every row is a new draw


# ----------------------------------------------------------------------------- debugging

def tiny_debugging_config():
    return from_dict({
        "name": "tiny", "model": {"hidden": [32, 32]},
        "overfit": {"examples": 20, "steps": 100, "cases": [
            {"name": "sane", "learning_rate": 0.2},
            {"name": "dead", "learning_rate": 0.2, "hidden_bias": -10.0}]},
        "monitor": {"epochs": 2, "batch_size": 32, "cases": [
            {"name": "sane", "learning_rate": 0.01},
            {"name": "tiny learning rate", "learning_rate": 1e-6}]}},
        debugging.DebuggingConfig)


def test_debugging_flags_the_broken_cases_and_not_the_sane_ones(tmp_path):
    data = {"train": digits(128, 0), "probe": digits(64, 1)}
    report = debugging.run(tiny_debugging_config(), tmp_path, data=data, **QUIET)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == report and saved["date"]
    overfit = {row["name"]: row for row in saved["overfit"]}
    assert overfit["sane"]["passed"] and not overfit["dead"]["passed"]
    assert len(overfit["sane"]["losses"]) == 101
    monitored = {case["name"]: case for case in saved["monitor"]}
    sane, tiny = monitored["sane"], monitored["tiny learning rate"]
    assert sane["final_warnings"] == [] and sane["flagged_epochs"] == []
    assert tiny["flagged_epochs"] == [0, 1, 2]  # the record before training, then every epoch
    assert tiny["final_warnings"] and all("learning rate too low" in w
                                          for w in tiny["final_warnings"])
    assert tiny["update_ratio_range"][1] < 1e-4 <= sane["update_ratio_range"][0]
    assert "epoch 2: dense_0: update/weight ratio" in (tmp_path / "warnings.txt").read_text()
    if debugging.plots_available():
        for name in ("overfit_check", "update_ratio", "monitor_sane", "monitor_tiny_learning_rate"):
            assert (tmp_path / f"{name}.png").stat().st_size > 1000, name


def test_hidden_bias_kills_every_hidden_relu_but_leaves_the_output_layer():
    model = debugging.build_model(debugging.ModelSpec(hidden=[16, 16]), 4)
    _, params, _ = model.init(jax.random.PRNGKey(0), (None, 8, 8))
    dead = debugging.with_hidden_bias(model, params, -10.0)
    assert float(dead["dense_0"]["b"].max()) == float(dead["dense_1"]["b"].max()) == -10.0
    assert dead["dense_2"] is params["dense_2"]
    assert debugging.with_hidden_bias(model, params, 0.0) is params


# ----------------------------------------------------------------------------- configs

@pytest.mark.parametrize("module", [early_stopping, augmentation, debugging],
                         ids=lambda m: m.__name__)
def test_shipped_config_is_valid_and_quick_shrinks_it(module):
    path = ROOT / "configs" / f"{module.__name__}.toml"
    cfg, quick = module.load_config(path), module.load_config(path, quick=True)
    assert cfg.name == module.__name__ and cfg.model == quick.model and cfg != quick


def test_shipped_configs_describe_the_studies():
    es = early_stopping.load_config(ROOT / "configs" / "early_stopping.toml")
    assert es.early_stopping.patience >= 1 and es.model.dropout == es.train.l2 == 0
    aug = augmentation.load_config(ROOT / "configs" / "augmentation.toml")
    assert aug.augment.max_shift == 2 and aug.augment.max_degrees == 10 and aug.repeats >= 2
    dbg = debugging.load_config(ROOT / "configs" / "debugging.toml")
    assert {case.name for case in dbg.monitor.cases} >= {"sane", "tiny learning rate"}
    assert any(case.hidden_bias < 0 for case in dbg.overfit.cases)


@pytest.mark.parametrize("module, text, message", [
    (early_stopping, "[train]\nepoch = 3\n", r"unknown config key `train\.epoch`"),
    (early_stopping, "[data]\nvalidation_size = 100\n", r"config key `early_stopping` is missing"),
    (early_stopping, "[data]\nvalidation_size = 100\n[early_stopping]\npatience = 0\n",
     r"`early_stopping\.patience` must be >= 1"),
    (early_stopping, '[early_stopping]\nmin_delta = "small"\n',
     r"`early_stopping\.min_delta` must be float"),
    (early_stopping, "[data]\nvalidation_size = 100\n[early_stopping]\nrestore_best = false\n",
     r"`early_stopping\.restore_best` must be true"),
    (augmentation, "repeats = 0\n[data]\nvalidation_size = 100\n[augment]\nmax_shift = 1\n",
     r"config key `repeats` must be positive"),
    (augmentation, "[data]\nvalidation_size = 100\n", r"config key `augment` must turn on"),
    (augmentation, "[augment]\nmax_shift = 1.5\n", r"`augment\.max_shift` must be int"),
    (augmentation, "[grid]\nrows = 2\n", r"unknown config key `grid\.rows`"),
    (debugging, "[[monitor.cases]]\nname = 'a'\nlearning_rate = -1.0\n",
     r"`monitor\.cases\[0\]\.learning_rate` must be positive"),
    (debugging, "[[overfit.cases]]\nname = 'a'\nlr = 0.1\n",
     r"unknown config key `overfit\.cases\[0\]\.lr`"),
    (debugging, "[model]\nactivation = 'relux'\n", r"config key `model\.activation`"),
    (debugging, "[[overfit.cases]]\nlearning_rate = 0.1\n",
     r"`overfit\.cases\[0\]\.name` is required"),
], ids=lambda value: getattr(value, "__name__", None))
def test_bad_keys_are_named(tmp_path, module, text, message):
    path = tmp_path / "bad.toml"
    # every run config needs its [data] and [model] tables (fnn.config.load checks that first)
    required = "".join(f"\n[{table}]\n" for table in ("data", "model")
                       if f"[{table}]" not in text and module is not debugging)
    path.write_text(text + required)
    with pytest.raises(ConfigError, match=message):
        module.load_config(path)
