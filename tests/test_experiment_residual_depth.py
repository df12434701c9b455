"""experiments/residual_depth.py: the plain and residual layer lists (depth counted in weight
layers), the config checks, and the --quick run writing its JSON and curves."""
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from fnn.config import ConfigError, from_dict
from fnn.core import walk
from fnn.models import registry

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("residual_depth", ROOT / "experiments" / "residual_depth.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("residual_depth", study)  # dataclasses look their module up
_spec.loader.exec_module(study)


MNIST = Path(os.environ.get("FNN_DATA", "/nonexistent")) / "mnist"
needs_mnist = pytest.mark.skipif(not MNIST.is_dir(), reason="the --quick run reads MNIST from "
                                 "$FNN_DATA/mnist, which is absent")


@pytest.mark.parametrize("depth", [4, 10])
def test_both_networks_have_depth_weight_layers_and_only_one_has_shortcuts(depth):
    for kind in ("plain", "residual"):
        model = registry.build_layers(study.layer_specs(kind, depth, 4))
        kinds = [info.layer.kind for info in walk(model, (1, 28, 28))]
        assert kinds.count("conv2d") + kinds.count("dense") == depth, kind
        assert ("residual" in kinds) == (kind == "residual")


def test_odd_or_shallow_depths_are_rejected():
    with pytest.raises(ConfigError, match="`depths` must list even depths >= 4"):
        study.check(from_dict({"depths": [8, 9]}, study.DepthConfig))


def test_shipped_config_is_valid_and_quick_shrinks_it():
    cfg = study.load_config(ROOT / "configs" / "residual_depth.toml")
    quick = study.load_config(ROOT / "configs" / "residual_depth.toml", quick=True)
    assert max(quick.depths) < max(cfg.depths) and quick.data.train_size < cfg.data.train_size


@pytest.mark.slow
@needs_mnist
def test_quick_run_writes_every_curve(tmp_path):
    assert study.main(["--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert sorted(saved["runs"]) == ["plain4", "residual4"]
    assert all(len(r["train_loss"]) == 2 for r in saved["runs"].values())
    assert saved["train_examples"] == 128
    assert (tmp_path / "curves.png").stat().st_size > 0
