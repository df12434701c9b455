"""experiments/som.py on a tiny config: the uniform map unfolds (errors fall, frames kept), the
batch rule runs, MNIST can be switched off, and the JSON; plots off (seconds)."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from fnn.config import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("som_experiment", ROOT / "experiments" / "som.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("som_experiment", study)  # dataclasses look their module up
_spec.loader.exec_module(study)


def test_run_on_uniform_data_writes_its_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "plots_available", lambda: False)  # seconds of CPU
    cfg = from_dict({"uniform": {"samples": 150, "frames": [0, 2],
                                 "map": {"rows": 4, "cols": 4, "epochs": 2, "radius_start": 2.0}},
                     "mnist": {"enabled": False}}, study.SOMConfig)
    report = study.run(cfg, tmp_path, progress=False, log=lambda *a: None)
    for rule in ("online", "batch"):
        qe = report["uniform"][rule]["quantization_error"]
        assert len(qe) == 2 and qe[-1] < 0.25, (rule, qe)  # a random 4×4 map of the square
    assert report["mnist"] == {"skipped": "mnist.enabled = false"}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["uniform"] == json.loads(json.dumps(report["uniform"]))
    assert not list(tmp_path.glob("*.png"))  # plots are off here: the real runs draw them


def test_mnist_is_skipped_with_a_message_when_absent(monkeypatch):
    def absent(split, download=True):
        raise FileNotFoundError("load_mnist: found neither train-images-idx3-ubyte ...")

    monkeypatch.setattr(study, "load_mnist", absent)
    messages = []
    part = study.mnist_part(study.MnistConfig(), None, messages.append)
    assert "skipped" in part and "MNIST skipped" in messages[0]


def test_shipped_config_and_its_checks(tmp_path):
    cfg = study.load_config(ROOT / "configs" / "som.toml")
    assert cfg.mnist.enabled and cfg.uniform.frames[0] == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[uniform.map]\nneighbourhood = "mexican_hat"\n')
    with pytest.raises(ConfigError, match=r"`uniform\.map\.neighbourhood` must be one of"):
        study.load_config(bad)
