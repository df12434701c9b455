"""experiments/autoencoders.py on a tiny run (8-3-8 for 600 steps, 64 fake images): the 8-3-8
encoder problem learned to 100 %, the dense, denoising and convolutional parts, the run folder,
its JSON and the config checks."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fnn.config import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
_spec = importlib.util.spec_from_file_location("autoencoders", ROOT / "experiments" / "autoencoders.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("autoencoders", study)  # dataclasses look their module up
_spec.loader.exec_module(study)


def fake_digits(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(n, 28, 28)) < 0.2).astype(np.float32), rng.integers(0, 10, n)


@pytest.mark.slow
def test_tiny_run_learns_8_3_8_and_writes_codes_errors_and_plots(tmp_path):
    cfg = from_dict({"encoder_838": {"seeds": 1, "steps": 600, "learning_rate": 0.1},
                     "mnist": {"hidden": [8], "code_sizes": [2], "epochs": 1, "batch_size": 32,
                               "shown": 3},
                     "denoising": {"code_size": 2, "noises": ["masking"], "levels": [0.3]},
                     "conv": {"filters": [2], "code_sizes": [2]}},
                    study.AutoencoderConfig)
    data = {"train": fake_digits(64, 0), "test": fake_digits(16, 1)}
    report = study.run(cfg, tmp_path, progress=False, data=data, log=lambda *a: None)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["encoder_838"]["runs"][0]["accuracy"] == report["encoder_838"]["runs"][0]["accuracy"]
    run = saved["encoder_838"]["runs"][0]
    assert run["accuracy"] == 1.0 and saved["encoder_838"]["all_100_percent"]  # all 8 patterns
    assert run["loss_curve"][-1] < 0.2 * run["loss_curve"][0]
    codes = np.array(run["codes"])
    assert codes.shape == (8, 3) and 0 <= run["max_distance"] <= 0.5
    assert len({tuple(c) for c in codes.round(2).tolist()}) == 8  # eight different codes
    assert "pattern 7: h = [" in (tmp_path / "codes_838.txt").read_text()
    errors = saved["mnist"]["by_code_size"]["2"]
    assert 0 < errors["mse_per_pixel"] < 1 and len(errors["train_loss"]) == 1
    denoising = saved["denoising"]["masking 0.3"]
    assert set(denoising) >= {"noisy_input_mse_per_pixel", "plain", "denoising"}
    conv = saved["conv"]["by_code_size"]["2"]  # beside the dense autoencoder of code 2
    assert saved["conv"]["filters"] == [2] and 0 < conv["mse_per_pixel"] < 1
    assert set(conv["dense_same_code"]) == {"mse_per_pixel", "bce_per_image"}
    if study.plots_available():
        for name in ("reconstructions", "reconstruction_error", "denoising",
                     "conv_reconstructions"):
            assert (tmp_path / f"{name}.png").stat().st_size > 1000, name


def test_config_checks_name_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[denoising]\nnoises = ["masking", "salt"]\nlevels = [0.1, 0.2]\n')
    with pytest.raises(ConfigError, match=r"`denoising\.noises\[1\]` must be one of"):
        study.load_config(path)
    path.write_text("[conv]\nfilters = [4, 8, 16]\n")
    with pytest.raises(ConfigError, match=r"`conv\.filters` lists 3 stride-2 convolutions"):
        study.load_config(path)
    quick = study.load_config(ROOT / "configs" / "autoencoders.toml", quick=True)
    assert quick.mnist.epochs == 1 and study.load_config(
        ROOT / "configs" / "autoencoders.toml").mnist.code_sizes == [2, 16, 64]
