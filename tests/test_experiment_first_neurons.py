"""experiments/first_neurons.py on a tiny config: AND and OR learned, XOR not (reported), the
2-2-1 MLP, the jockey data and Adaline near least squares, and the JSON; plots off (seconds)."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from fnn.config import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("first_neurons",
                                               ROOT / "experiments" / "first_neurons.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("first_neurons", study)  # dataclasses look their module up
_spec.loader.exec_module(study)


def test_run_reports_and_or_learned_xor_not_and_writes_its_files(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "plots_available", lambda: False)  # seconds of CPU
    cfg = from_dict({"mlp": {"epochs": 200, "seeds": 1}, "adaline": {"epochs": 30},
                     "jockeys": {"per_class": 10}}, study.FirstNeuronsConfig)
    report = study.run(cfg, tmp_path, progress=False, log=lambda *a: None)
    gates = report["gates"]
    assert gates["AND"]["learned"] and gates["OR"]["learned"]
    assert gates["AND"]["answers"] == [0, 0, 0, 1] and gates["OR"]["answers"] == [0, 1, 1, 1]
    xor = gates["XOR"]
    assert not xor["learned"] and xor["epochs"] == cfg.perceptron.max_epochs
    assert min(xor["errors_per_epoch"]) > 0
    assert report["xor_mlp"]["seeds"] == 1 and len(report["xor_mlp"]["runs"]) == 1
    jockeys = report["jockeys"]
    assert jockeys["perceptron"]["learned"]
    ada = jockeys["adaline"]
    assert ada["training_accuracy"] == 1.0
    assert ada["least_squares_mse"] <= ada["final_mse"] < 1.5 * ada["least_squares_mse"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["gates"]["XOR"]["learned"] is False and saved["date"]
    assert not list(tmp_path.glob("*.png"))  # plots are off here: the real runs draw them


def test_shipped_config_and_its_checks(tmp_path):
    cfg = study.load_config(ROOT / "configs" / "first_neurons.toml")
    quick = study.load_config(ROOT / "configs" / "first_neurons.toml", quick=True)
    assert quick.mlp.epochs < cfg.mlp.epochs and cfg.mlp.hidden == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[adaline]\nmu = 0.0\n")
    with pytest.raises(ConfigError, match=r"`adaline\.mu` must be > 0"):
        study.load_config(bad)
