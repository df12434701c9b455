"""experiments/lab2_search.py: the sampler, the ranking (with a fake trainer), trial configs as
valid `fnn run` configs, config errors, and one real run on tiny 2-D data (no MNIST; seconds)."""
import dataclasses
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from fnn import config as config_lib, plots
from fnn.config import ConfigError
from fnn.experiment import check as check_run_config

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("lab2_search",
                                               ROOT / "experiments" / "lab2_search.py")
lab2 = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("lab2_search", lab2)  # dataclasses look their module up
_spec.loader.exec_module(lab2)

SPACE = {
    "hidden": [[8], [16, 8]],
    "activation": ["relu", "tanh"],
    "batch_size": [16, 32],
    "dropout": [0.0, 0.5],
    "input_dropout": [0.0],
    "l2": [0.0, 1.0],
    "optimizer": [{"name": "sgd", "momentum": 0.9, "nesterov": True, "learning_rate": [0.05, 0.1]},
                  {"name": "adam", "learning_rate": [0.01]}],
}  # 2 · 2 · 2 · 2 · 1 · 2 · (2 + 1) = 96 configurations
SIZE = 96


def raw_config(**tables):
    raw = {"name": "tiny", "seed": 3,
           "base": {"data": {"dataset": "spiral", "samples": 400, "validation_size": 60}},
           "search": {"method": "random", "trials": 4, "epochs": 2},
           "space": SPACE,
           "final": {"name": "tiny_best", "run": False, "epochs": 2}}
    for table, values in tables.items():
        raw[table] = {**raw.get(table, {}), **values} if isinstance(values, dict) else values
    return raw


def key(trial):
    return json.dumps(trial, sort_keys=True)


def test_sampler_is_deterministic_per_seed_and_draws_only_the_configs_values():
    cfg = lab2.parse(raw_config(search={"trials": 12}))
    trials = lab2.sample_trials(cfg)
    assert trials == lab2.sample_trials(lab2.parse(raw_config(search={"trials": 12})))
    other = lab2.sample_trials(lab2.parse(raw_config(seed=4, search={"trials": 12})))
    assert {key(t) for t in other} != {key(t) for t in trials}
    assert len({key(t) for t in trials}) == 12  # without replacement
    rates = {"sgd": [0.05, 0.1], "adam": [0.01]}
    for t in trials:
        for name in ("hidden", "activation", "batch_size", "dropout", "input_dropout", "l2"):
            assert t[name] in SPACE[name], (name, t)
        assert t["learning_rate"] in rates[t["optimizer"]]  # each optimizer's own rates
        assert t["options"] == ({"momentum": 0.9, "nesterov": True}
                                if t["optimizer"] == "sgd" else {})


def test_grid_is_the_whole_product_once():
    cfg = lab2.parse(raw_config(search={"method": "grid"}))
    assert lab2.space_size(cfg.space) == SIZE
    trials = lab2.sample_trials(cfg)
    assert len({key(t) for t in trials}) == SIZE
    assert trials[0]["hidden"] == [8] and trials[-1]["hidden"] == [16, 8]
    assert [t["l2"] for t in trials[:2]] == [0.0, 1.0]  # the last axis varies fastest


def test_every_trial_is_a_valid_fnn_run_config_that_round_trips_through_toml(tmp_path):
    cfg = lab2.parse(raw_config(
        search={"method": "grid"},
        final={"augment": {"max_shift": 1}, "early_stopping": {"patience": 3}}))
    for i, trial in enumerate(lab2.sample_trials(cfg)[::7]):
        config = lab2.final_config(cfg, trial)
        path = tmp_path / f"trial_{i}.toml"
        path.write_text(lab2.to_toml(config, "a comment\nover two lines"))
        loaded = config_lib.load(path)
        assert loaded == config
        check_run_config(loaded)
        assert loaded.seed == 3 and loaded.name == "tiny_best" and loaded.train.epochs == 2
        assert loaded.model.hidden == trial["hidden"] and loaded.train.l2 == trial["l2"]
        assert loaded.optimizer.options == trial["options"]
        assert loaded.augment.max_shift == 1 and loaded.early_stopping.patience == 3
        assert loaded.data.dataset == "spiral"  # [base] carried over


def fake_trainer(config, data):
    """Validation accuracy from the config alone: wide nets and no dropout win."""
    width = sum(config.model.hidden)
    accuracy = 0.5 + width / 100 - config.model.dropout / 10 - config.train.l2 / 100
    loss = math.nan if config.optimizer.name == "adam" else 1 - accuracy
    return {"val_accuracy": accuracy, "val_loss": loss, "train_accuracy": accuracy,
            "train_loss": loss, "val_accuracy_per_epoch": [accuracy], "seconds": 0.0}


def tiny_data():
    rng = np.random.default_rng(0)
    split = lambda n: (rng.normal(size=(n, 2)).astype(np.float32),
                       rng.integers(0, 2, n).astype(np.int32))
    return {"train": split(40), "validation": split(20), "test": split(20)}


def test_run_ranks_by_validation_accuracy_and_writes_the_best_config(tmp_path):
    cfg = lab2.parse(raw_config(search={"trials": 10}))
    report = lab2.run(cfg, tmp_path, data=tiny_data(), train=fake_trainer, progress=False,
                      log=lambda *a: None)
    trials = report["trials"]
    accuracies = [t["val_accuracy"] for t in trials]
    assert report["best"]["trial"] == int(np.argmax(accuracies))
    assert [trials[i]["val_accuracy"] for i in report["ranking"]] == sorted(accuracies,
                                                                            reverse=True)
    assert any(t["val_loss"] is None for t in trials)  # NaN written as null
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == report and saved["date"] and saved["final"] is None

    best = trials[report["best"]["trial"]]
    written = config_lib.load(tmp_path / "best.toml")
    check_run_config(written)
    assert written == lab2.final_config(cfg, {k: best[k] for k in lab2.sample_trials(cfg)[0]})
    assert dataclasses.asdict(written) == saved["best"]["config"]

    rows = (tmp_path / "trials.md").read_text().splitlines()[2:]
    assert len(rows) == 10
    shown = [float(row.split("|")[11]) for row in rows]
    assert shown == sorted(shown, reverse=True)
    if lab2.plots_available():
        assert (tmp_path / "search.png").stat().st_size > 10_000


def test_ties_go_to_the_lower_validation_loss_then_the_earlier_trial():
    records = [{"trial": 0, "val_accuracy": 0.9, "val_loss": None},
               {"trial": 1, "val_accuracy": 0.9, "val_loss": 0.3},
               {"trial": 2, "val_accuracy": 0.8, "val_loss": 0.1},
               {"trial": 3, "val_accuracy": 0.9, "val_loss": 0.3}]
    assert [r["trial"] for r in lab2.rank(records)] == [1, 3, 0, 2]


def test_real_trials_score_what_fnn_run_then_reproduces(tmp_path, monkeypatch):
    """The search trains as `fnn run` does: the same config run by fnn.experiment.run (here the
    final run, with the trials' budget) ends on the validation accuracy the trial scored."""
    # No PNGs: this test reads numbers only, and drawing is much of a tiny run's time (the
    # search's plot is checked by the ranking test above, fnn run's in test_cli).
    monkeypatch.setattr(plots, "available", lambda: False)
    monkeypatch.setattr(lab2, "plots_available", lambda: False)
    cfg = lab2.parse(raw_config(search={"trials": 1}, final={"run": True}))
    report = lab2.run(cfg, tmp_path, progress=False, log=lambda *a: None)
    best = report["trials"][report["best"]["trial"]]
    assert len(best["val_accuracy_per_epoch"]) == 2 and 0 <= best["val_accuracy"] <= 1
    assert report["data"] == {"train": 240, "validation": 60, "test": 100}
    epochs = [json.loads(line) for line in (tmp_path / "final" / "metrics.jsonl").open()]
    assert epochs[-1]["val_accuracy"] == pytest.approx(best["val_accuracy"], abs=1e-6)
    assert report["final"]["test_accuracy"] == pytest.approx(
        json.loads((tmp_path / "final" / "results.json").read_text())["test_accuracy"])


@pytest.mark.parametrize("tables, message", [
    ({"space": {**SPACE, "hiden": [[8]]}}, r"unknown config key `space\.hiden`"),
    ({"space": {**SPACE, "activation": ["relu", "rleu"]}},
     r"`space\.activation\[1\]`: config key `model\.activation`: unknown activation 'rleu'"),
    ({"space": {**SPACE, "dropout": [0.0, 1.0]}}, r"`space\.dropout\[1\]`.*must be >= 0 and < 1"),
    ({"space": {**SPACE, "hidden": [[8], [16, 0]]}}, r"`space\.hidden\[1\]`.*positive sizes"),
    ({"space": {**SPACE, "l2": []}}, r"`space\.l2` must list at least one value"),
    ({"space": {**SPACE, "optimizer": [{"name": "adam", "learning_rate": [0.01]},
                                       {"name": "sgd", "momentun": 0.9, "learning_rate": [0.1]}]}},
     r"`space\.optimizer\[1\]`: unknown config key `optimizer\.momentun`"),
    ({"space": {**SPACE, "optimizer": [{"name": "sgd", "learning_rate": 0.1}]}},
     r"`space\.optimizer\[0\]\.learning_rate` must be list of float"),
    ({"space": {**SPACE, "optimizer": [{"name": "adam", "learning_rate": []}]}},
     r"`space\.optimizer\[0\]\.learning_rate` must list at least one value"),
    ({"search": {"method": "bayes"}}, r"`search\.method` must be 'random' or 'grid'"),
    ({"search": {"trials": 97}}, r"`search\.trials` = 97 exceeds the 96 configurations"),
    ({"search": {"epochs": 0}}, r"`search\.epochs` must be positive"),
    ({"base": {"seed": 1}}, r"`base\.seed` is not allowed"),
    ({"base": {"data": {"validation_size": 0}}}, r"`base\.data\.validation_size` must be positive"),
    ({"base": {"data": {"validation_size": 10}, "train": {"loss": "l3"}}},
     r"in \[base\]: config key `train\.loss`"),
    ({"final": {"augment": {"max_shift": -1}}}, r"in \[final\]: config key `augment\.max_shift`"),
])
def test_config_errors_name_the_key(tables, message):
    with pytest.raises(ConfigError, match=message):
        lab2.parse(raw_config(**tables))


def test_shipped_config_is_valid_and_quick_shrinks_it():
    cfg = lab2.load_config(ROOT / "configs" / "lab2_search.toml")
    assert cfg.base.data.validation_size == 5000 and cfg.base.data.dataset == "mnist"
    assert len(cfg.space.hidden) >= 4 and len(cfg.space.optimizer) >= 4
    assert cfg.final.name == "mnist_mlp_best"
    trials = lab2.sample_trials(cfg)
    assert len(trials) == cfg.search.trials
    check_run_config(lab2.final_config(cfg, trials[0]))
    quick = lab2.load_config(ROOT / "configs" / "lab2_search.toml", quick=True)
    assert quick.search.trials < cfg.search.trials and quick.space == cfg.space
    assert 0 < quick.base.data.train_size < 10_000
