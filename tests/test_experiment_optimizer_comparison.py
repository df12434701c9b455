"""experiments/optimizer_comparison.py on tiny random data: the learning-rate selection, the
runner's per-epoch history, the results JSON and the config checks (no MNIST; a few seconds)."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from fnn.config import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "optimizer_comparison", ROOT / "experiments" / "optimizer_comparison.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("optimizer_comparison", study)  # dataclasses look their module up
_spec.loader.exec_module(study)

CONFIG = ROOT / "configs" / "optimizer_comparison.toml"


def learnable(n, seed, shape=(6, 6), classes=4):
    """Each class is a fixed random image plus a little noise."""
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(99).uniform(0, 1, (classes, *shape))
    y = rng.integers(0, classes, n).astype(np.int32)
    return (prototypes[y] + 0.2 * rng.normal(size=(n, *shape))).astype(np.float32), y


def tiny_data():
    return {"train": learnable(96, 0), "validation": learnable(40, 1), "test": learnable(40, 2)}


def tiny_config(optimizers, factors=(0.5, 1.0, 2.0), epochs=3):
    return from_dict({"name": "tiny", "model": {"hidden": [16]},
                      "train": {"epochs": epochs, "batch_size": 32, "target_accuracy": 0.5},
                      "sweep": {"train_size": 64, "epochs": 1, "factors": list(factors)},
                      "optimizers": optimizers}, study.OptimizerComparisonConfig)


def peaked_score(best_lr):
    """A fake sweep score whose validation accuracy peaks at ``best_lr`` (log distance)."""
    def score(lr):
        distance = abs(math.log10(lr / best_lr))
        return {"val_accuracy": 0.9 - 0.1 * distance, "val_loss": 0.3 + distance}
    return score


# ----------------------------------------------------------------------------- the sweep

@pytest.mark.parametrize("best_lr", [1e-4, 1e-3, 1e-2])
def test_the_sweep_picks_the_learning_rate_with_the_best_validation_accuracy(best_lr):
    grid = study.learning_rate_grid(1e-3, [0.1, 1.0, 10.0])
    points = study.sweep(grid, peaked_score(best_lr))
    assert [p["learning_rate"] for p in points] == pytest.approx([1e-4, 1e-3, 1e-2])
    assert study.best_point(points)["learning_rate"] == pytest.approx(best_lr)


def test_accuracy_ties_go_to_the_lower_validation_loss_and_nan_ranks_last():
    points = [{"learning_rate": 0.1, "val_accuracy": 0.9, "val_loss": 0.5},
              {"learning_rate": 0.3, "val_accuracy": 0.9, "val_loss": 0.4},
              {"learning_rate": 1.0, "val_accuracy": math.nan, "val_loss": math.nan},
              {"learning_rate": 3.0, "val_accuracy": 0.95, "val_loss": math.nan}]
    assert study.best_point(points[:3])["learning_rate"] == 0.3
    assert study.best_point(points)["learning_rate"] == 3.0  # accuracy first, loss breaks ties
    assert study.best_point([points[2], points[0]])["learning_rate"] == 0.1


def test_the_grid_is_centred_on_the_default_and_sorted():
    assert study.learning_rate_grid(0.01, [10.0, 0.1, 1.0]) == pytest.approx([1e-3, 1e-2, 1e-1])


def test_epochs_to_reach_counts_from_one_and_is_none_when_never_reached():
    assert study.epochs_to_reach([0.90, 0.97, 0.96, 0.98], 0.97) == 2
    assert study.epochs_to_reach([0.90, 0.96], 0.97) is None


# ----------------------------------------------------------------------------- the runner

def tiny_model_and_params(hidden=8, classes=4):
    model = study.build_model(study.ModelSpec(hidden=[hidden]), classes)
    _, params, state = model.init(jax.random.PRNGKey(0), (None, 6, 6))
    return model, params, state


@pytest.mark.parametrize("best_lr", [0.005, 0.02])  # the two ends of the grid
def test_the_learning_rate_the_sweep_chose_is_the_one_trained_for_every_epoch(best_lr):
    cfg = tiny_config([{"name": "adam", "learning_rate": 0.01}], factors=(0.5, 1.0, 2.0),
                      epochs=2)
    data = {**tiny_data(), "sweep": None}  # the fake score never trains on it
    result = study.tune_and_train(*tiny_model_and_params(), data, cfg.optimizers[0], cfg,
                                  jax.random.PRNGKey(1), score=peaked_score(best_lr))
    assert result["learning_rate"] == pytest.approx(best_lr) and result["chosen_at_grid_edge"]
    assert [p["learning_rate"] for p in result["sweep"]] == pytest.approx([0.005, 0.01, 0.02])
    assert all(len(result["history"][k]) == 2 for k in study.HISTORY_KEYS)
    assert result["epochs_to_target"] == study.epochs_to_reach(
        result["history"]["val_accuracy"], 0.5)


def test_run_writes_one_history_row_per_epoch_for_each_optimizer_and_the_json(tmp_path):
    optimizers = [{"name": "sgd", "momentum": 0.9, "learning_rate": 0.03, "label": "momentum"},
                  {"name": "rprop", "learning_rate": 0.01, "batch_size": 96}]
    # A sweep of one real training per optimizer (every sweep trains its own program): the
    # choice among several rates is tested above, with a fake score and with real training.
    report = study.run(tiny_config(optimizers, factors=(2.0,)), tmp_path, data=tiny_data(),
                       progress=False, log=lambda *a: None)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == report
    assert saved["date"] and saved["config"]["train"]["epochs"] == 3
    assert saved["data"] == {"train": 96, "validation": 40, "test": 40, "sweep": 64}
    assert list(saved["results"]) == ["momentum", "rprop"]
    assert [row["label"] for row in saved["summary"]] == ["momentum", "rprop"]
    for label, result in saved["results"].items():
        assert set(result["history"]) == set(study.HISTORY_KEYS)
        assert all(len(values) == 3 for values in result["history"].values()), label
        assert [p["learning_rate"] for p in result["sweep"]] == pytest.approx(
            study.learning_rate_grid(saved["config"]["optimizers"][
                list(saved["results"]).index(label)]["learning_rate"], [2.0]))
        assert result["learning_rate"] in [p["learning_rate"] for p in result["sweep"]]
        assert 0 <= result["test_accuracy"] <= 1 and result["test_loss"] > 0
        assert result["train_seconds"] >= 0
    assert saved["results"]["rprop"]["batch_size"] == 96
    assert saved["results"]["momentum"]["options"] == {"momentum": 0.9}
    assert saved["results"]["momentum"]["test_accuracy"] > 0.5  # easy prototypes
    assert "| optimizer |" in (tmp_path / "table.md").read_text()
    if study.plots_available():
        for name in ("learning_curves", "lr_sweep"):
            assert (tmp_path / f"{name}.png").stat().st_size > 1000, name


def test_a_progress_callback_never_stops_training():
    """fit stops when a hook returns something true, as tqdm's update() may: the per-epoch
    callback's value must not reach fit."""
    data = tiny_data()
    model, params, state = tiny_model_and_params()
    calls = []
    trained = study.train_and_validate(
        model, params, state, data["train"], data["validation"], study.build_optimizer(
            study.OptimizerRun("sgd", 0.1), 0.1), epochs=3, batch=32, key=jax.random.PRNGKey(1),
        on_epoch=lambda: calls.append(1) or True)
    assert len(calls) == 3 and all(len(v) == 3 for v in trained["history"].values())


# ----------------------------------------------------------------------------- the config

def test_the_shipped_config_compares_every_optimizer_with_rprop_on_large_batches():
    cfg = study.load_config(CONFIG)
    names = {run.name for run in cfg.optimizers}
    assert names == {"sgd", "adagrad", "adadelta", "rmsprop", "adam", "adamw", "adamax", "nadam",
                     "rprop", "sign_sgd"}
    assert len(cfg.optimizers) == 12  # sgd three times: plain, momentum, Nesterov
    assert cfg.model.hidden == [300, 100] and cfg.model.w_init == "he_normal"
    rprop = next(run for run in cfg.optimizers if run.name == "rprop")
    assert study.batch_size(rprop, cfg.train) >= 50 * cfg.train.batch_size
    quick = study.load_config(CONFIG, quick=True)
    assert quick.train.epochs < cfg.train.epochs and quick.optimizers == cfg.optimizers


@pytest.mark.parametrize("text, message", [
    ("[train]\nepoch = 2\n", r"unknown config key `train\.epoch`"),
    ("[sweep]\nfactors = [1.0, -0.1]\n", r"`sweep\.factors` must list distinct positive"),
    ("[train]\ntarget_accuracy = 97\n", r"`train\.target_accuracy` must be in \(0, 1\]"),
    ('[model]\nactivation = "rleu"\n', r"`model\.activation`: unknown activation 'rleu'"),
    ('[[optimizers]]\nname = "sgd"\nlearning_rate = 0.1\n'
     '[[optimizers]]\nname = "sgd"\nlabel = "momentum"\nlearning_rate = 0.01\nmomentun = 0.9\n',
     r"unknown config key `optimizers\[1\]\.momentun`: sgd takes"),
    ('[[optimizers]]\nname = "adamm"\nlearning_rate = 0.1\n',
     r"`optimizers\[0\]\.name`: unknown optimizer 'adamm'"),
    ('[[optimizers]]\nname = "sgd"\nlearning_rate = "fast"\n',
     r"`optimizers\[0\]\.learning_rate` must be float"),
    ('[[optimizers]]\nname = "sgd"\nlearning_rate = 0.1\n'
     '[[optimizers]]\nname = "sgd"\nlearning_rate = 0.2\n',
     r"`optimizers` must have distinct labels"),
    ("", r"`optimizers` must list at least one"),
])
def test_config_errors_name_the_key(tmp_path, text, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(text + ("" if "[[optimizers]]" in text or not text else
                           '[[optimizers]]\nname = "sgd"\nlearning_rate = 0.1\n'))
    with pytest.raises(ConfigError, match=message):
        study.load_config(bad)
