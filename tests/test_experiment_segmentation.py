"""experiments/segmentation.py: the config checks, foreground scores by hand, and the --quick
run (an FCN for 1 epoch on 64 canvases) writing its JSON and predictions."""
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from fnn.config import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("segmentation", ROOT / "experiments" / "segmentation.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("segmentation", study)  # dataclasses look their module up
_spec.loader.exec_module(study)


MNIST = Path(os.environ.get("FNN_DATA", "/nonexistent")) / "mnist"
needs_mnist = pytest.mark.skipif(not MNIST.is_dir(), reason="the --quick run reads MNIST from "
                                 "$FNN_DATA/mnist, which is absent")


def fake_digits(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(n, 28, 28)) < 0.2).astype(np.float32), rng.integers(0, 10, n)


@pytest.mark.parametrize("raw, message", [
    ({"model": {"kind": "lenet5"}}, "`model.kind` must be 'fcn' or 'deconvnet'"),
    ({"canvas": {"size": 34}}, "`canvas.size` must be >= 28 and a multiple of the network's stride 4"),
    ({"canvas": {"size": 40}, "model": {"kind": "fcn", "widths": [4, 4, 4, 4]}},
     "multiple of the network's stride 16"),
    ({"canvas": {"test_count": 0}}, "`canvas.test_count` must be >= 1"),
])
def test_bad_configs_are_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        study.check(from_dict(raw, study.SegmentationConfig))


def test_foreground_scores_merge_the_digit_classes():
    cm = np.array([[10, 1, 1], [2, 3, 1], [0, 1, 4]])  # background, digit a, digit b
    s = study.foreground_scores(cm)
    # merged: [[10, 2], [2, 9]]
    assert s["pixel_accuracy"] == pytest.approx(19 / 23)
    assert s["iou"] == pytest.approx([10 / 14, 9 / 13])


def test_shipped_config_is_valid_and_quick_shrinks_it():
    cfg = study.load_config(ROOT / "configs" / "segmentation.toml")
    quick = study.load_config(ROOT / "configs" / "segmentation.toml", quick=True)
    assert cfg.model.kind == "fcn" and quick.canvas.train_count < cfg.canvas.train_count


def test_canvases_from_digits_label_background_and_classes():
    cfg = from_dict({"canvas": {"size": 32, "train_count": 6, "test_count": 3}},
                    study.SegmentationConfig)
    digits = {"train": fake_digits(10, 0), "test": fake_digits(10, 1)}
    data = study.make_data(cfg, digits)
    assert data["train"][0].shape == (6, 32, 32) and data["test"][1].shape == (3, 32, 32)
    assert data["train"][1].max() <= 10 and (data["train"][1] == 0).any()


@pytest.mark.slow
@needs_mnist
def test_quick_run_writes_scores_and_predictions(tmp_path):
    assert study.main(["--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "results.json").read_text())
    cm = np.array(saved["confusion_matrix"])
    assert cm.shape == (11, 11) and cm.sum() == 16 * 32 * 32
    assert saved["pixel_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert len(saved["iou"]) == 11 and 0 <= saved["mean_iou"] <= 1
    assert (tmp_path / "predictions.png").stat().st_size > 0
