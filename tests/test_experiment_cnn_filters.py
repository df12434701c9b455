"""experiments/cnn_filters.py: the course's edge kernel against a NumPy correlation, the shipped
config, and the --quick run (LeNet-5, 1 epoch on 300 digits) writing its JSON and three PNGs."""
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from fnn import experiment
from fnn.config import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("cnn_filters", ROOT / "experiments" / "cnn_filters.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("cnn_filters", study)  # dataclasses look their module up
_spec.loader.exec_module(study)


MNIST = Path(os.environ.get("FNN_DATA", "/nonexistent")) / "mnist"
needs_mnist = pytest.mark.skipif(not MNIST.is_dir(), reason="the --quick run reads MNIST from "
                                 "$FNN_DATA/mnist, which is absent")


def test_edge_kernel_is_minus_one_around_eight_and_matches_a_numpy_correlation():
    k = study.EDGE_KERNEL
    assert k[1, 1] == 8 and k.sum() == 0 and np.count_nonzero(k == -1) == 8
    image = np.random.default_rng(0).uniform(size=(7, 9)).astype(np.float32)
    padded = np.pad(image, 1)
    expected = np.array([[np.sum(padded[i:i + 3, j:j + 3] * k) for j in range(9)]
                         for i in range(7)])
    np.testing.assert_allclose(study.edge_response(image), expected, rtol=1e-5, atol=1e-5)
    assert np.allclose(study.edge_response(np.ones((5, 5)))[1:-1, 1:-1], 0)  # flat: no edge


def test_a_cnn_is_required_and_a_digit_index_checked():
    with pytest.raises(ConfigError, match="`model.kind` must name a CNN"):
        study.check(from_dict({"model": {"kind": "mlp"}}, study.FiltersConfig))
    with pytest.raises(ConfigError, match="`plot.digit` must be >= 0"):
        study.check(from_dict({"plot": {"digit": -1}}, study.FiltersConfig))


def test_shipped_config_is_valid_and_quick_shrinks_it():
    cfg = study.load_config(ROOT / "configs" / "cnn_filters.toml")
    quick = study.load_config(ROOT / "configs" / "cnn_filters.toml", quick=True)
    assert cfg.model.kind == quick.model.kind == "lenet5"
    assert quick.data.train_size < cfg.data.train_size and quick.train.epochs == 1


@pytest.mark.slow
@needs_mnist
def test_quick_run_writes_filters_maps_and_edges(tmp_path, monkeypatch):
    # The run as `--quick` makes it, scored on the first 1,000 test digits: the 10,000 cost
    # seconds of LeNet-5 arithmetic and test nothing more (digit 0 is among them).
    real = experiment.load_mnist

    def first_test_digits(split="train", data_dir=None, download=True):
        images, labels = real(split, data_dir, download)
        return (images[:1000], labels[:1000]) if split == "test" else (images, labels)
    monkeypatch.setattr(experiment, "load_mnist", first_test_digits)
    assert study.main(["--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["train_examples"] == 300
    assert np.array(saved["first_layer_kernels"]).shape == (5, 5, 1, 6)
    assert saved["feature_map_shapes"] == {"c1_act": [28, 28, 6], "c3_act": [10, 10, 16]}
    assert saved["digit"] == {"index": 0, "label": 7}  # MNIST's first test digit
    assert 0 <= saved["test_accuracy"] <= 1
    edges = saved["edge_response"]
    assert edges["mean_abs_on_flat_regions"] == 0 < edges["mean_abs_near_strokes"]
    for png in ("filters.png", "feature_maps.png", "edge.png"):
        assert (tmp_path / png).stat().st_size > 0
