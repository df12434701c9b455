"""experiments/mnist_rows.py on stand-in digits (no MNIST needed): the Elman RNN and the
bidirectional LSTM (the cells themselves are tested in test_recurrent.py) train through `fit`
and the table's numbers land in the JSON (plots off; seconds)."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fnn.config import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("mnist_rows_experiment",
                                               ROOT / "experiments" / "mnist_rows.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("mnist_rows_experiment", study)  # dataclasses look their module up
_spec.loader.exec_module(study)


def stand_in_digits(split, download=True):
    """Digits whose class is which row is bright: a task a sequence model must read in order."""
    n = 200 if split == "train" else 60
    rng = np.random.default_rng(0 if split == "train" else 1)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
    images[np.arange(n), 2 * labels + 3, :] = 255
    return images, labels


def test_every_model_trains_and_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "load_mnist", stand_in_digits)
    monkeypatch.setattr(study, "plot", lambda *a, **k: None)
    cfg = from_dict({"train_size": 150, "validation_size": 50, "test_size": 60, "epochs": 2,
                     "units": 8, "batch_size": 50, "learning_rate": 0.01,
                     "models": ["rnn", "bilstm"]}, study.RowsConfig)
    results = study.run(cfg, tmp_path, progress=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    # parameter counts of the course's formulas: RNN Nd + N² + N, LSTM 4× (twice), + Dense(10)
    n, d, head = 8, 28, 8 * 10 + 10
    expected = {"rnn": n * d + n * n + n + head,
                "bilstm": 2 * 4 * (n * d + n * n + n) + 2 * n * 10 + 10}
    assert sorted(saved["models"]) == ["bilstm", "rnn"]
    for kind in ("rnn", "bilstm"):
        model = saved["models"][kind]
        assert model["parameters"] == expected[kind], kind
        assert len(model["history"]["val_accuracy"]) == 2
        assert 0.0 <= model["test_accuracy"] <= 1.0
    assert results["models"]["rnn"]["test_accuracy"] == saved["models"]["rnn"]["test_accuracy"]


def test_config_names_bad_keys(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('models = ["lstm", "transformer"]\n')
    with pytest.raises(ConfigError, match=r"config key `models` must list some of"):
        study.load_config(path)
    path.write_text("train_size = 59000\nvalidation_size = 5000\n")
    with pytest.raises(ConfigError, match=r"`train_size` \+ `validation_size` must be <= 60000"):
        study.load_config(path)
