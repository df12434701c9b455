"""experiments/rbm.py on fake binary "digits" (no MNIST needed): training, features, classifier,
the JSON and the plots; a missing MNIST stops it with a message (seconds)."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fnn.config import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("rbm_experiment", ROOT / "experiments" / "rbm.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("rbm_experiment", study)  # dataclasses look their module up
_spec.loader.exec_module(study)


def fake_mnist(split, download=True):
    """Two classes of 28×28 images: a bar in the top or the bottom half, with pixel noise."""
    rng = np.random.default_rng(0 if split == "train" else 1)
    n = 300 if split == "train" else 100
    labels = rng.integers(0, 2, n).astype(np.uint8)
    images = (rng.uniform(size=(n, 28, 28)) < 0.05).astype(np.uint8) * 255
    for i, label in enumerate(labels):
        images[i, 4:10, :] = 255 if label == 0 else images[i, 4:10, :]
        images[i, 18:24, :] = 255 if label == 1 else images[i, 18:24, :]
    return images, labels


def test_run_on_fake_digits(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "load_mnist", fake_mnist)
    monkeypatch.setattr(study, "plots_available", lambda: False)  # seconds of CPU
    cfg = from_dict({"data": {"train_size": 0, "validation_size": 50},
                     "rbm": {"hidden": 8, "epochs": 3, "batch_size": 25, "learning_rate": 0.1},
                     "classifier": {"epochs": 3, "batch_size": 50, "learning_rate": 0.05,
                                    "compare_pixels": False},  # seconds of CPU
                     "plot": {"filters": 8, "chains": 2, "chain_steps": [0, 2]}}, study.RBMConfig)
    report = study.run(cfg, tmp_path, progress=False, log=lambda *a: None)
    assert report["data"] == {"train": 250, "validation": 50, "test": 100}
    assert report["test_reconstruction_error"] < 0.5 * report["test_reconstruction_error_before"]
    assert report["logistic_regression_on_hidden"]["test_accuracy"] > 0.9
    assert report["logistic_regression_on_pixels"] is None
    assert len(report["reconstruction_error_per_epoch"]) == 3
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["logistic_regression_on_hidden"] == report["logistic_regression_on_hidden"]
    assert not list(tmp_path.glob("*.png"))  # plots are off here: the real runs draw them


def test_missing_mnist_stops_with_a_message(tmp_path, monkeypatch):
    def absent(split, download=True):
        raise FileNotFoundError("load_mnist: found neither train-images-idx3-ubyte ...")

    monkeypatch.setattr(study, "load_mnist", absent)
    messages = []
    report = study.run(study.load_config(ROOT / "configs" / "rbm.toml", quick=True), tmp_path,
                       progress=False, log=messages.append)
    assert "skipped" in report and "MNIST files are absent" in messages[0]


def test_shipped_config_checks(tmp_path):
    cfg = study.load_config(ROOT / "configs" / "rbm.toml")
    assert (cfg.rbm.hidden, cfg.rbm.k) == (128, 1)
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\nthreshold = 1.5\n")
    with pytest.raises(ConfigError, match=r"`data\.threshold` must be in \(0, 1\)"):
        study.load_config(bad)
