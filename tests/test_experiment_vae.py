"""experiments/vae.py on a tiny run (64 fake images, 1 epoch): the run folder, its JSON and the
config checks."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fnn.config import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))  # experiments/vae.py imports its sibling
_spec = importlib.util.spec_from_file_location("vae_study", ROOT / "experiments" / "vae.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("vae_study", study)  # dataclasses look their module up
_spec.loader.exec_module(study)


def fake_digits(n, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, 28, 28)).astype(np.float32), rng.integers(0, 10, n)


@pytest.mark.slow
def test_tiny_run_reports_the_elbo_and_plots_the_latent_space(tmp_path):
    cfg = from_dict({"data": {"validation_size": 16}, "model": {"hidden": [8], "latent_sizes": [2]},
                     "train": {"epochs": 1, "batch_size": 32, "test_samples": 2},
                     "plots": {"grid": 4, "samples": 4, "interpolation_steps": 3}},
                    study.VAEConfig)
    data = {"train": fake_digits(80, 0), "test": fake_digits(24, 1)}
    study.run(cfg, tmp_path, progress=False, data=data, log=lambda *a: None)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["data"] == {"train": 64, "validation": 16, "test": 24}
    test = saved["latent"]["2"]["test"]
    assert test["neg_elbo"] == pytest.approx(test["reconstruction"] + test["kl"], rel=1e-5)
    assert test["kl"] >= 0 and test["reconstruction"] > 0
    history = saved["latent"]["2"]["history"]  # fit with the VAE's pytree outputs and metrics
    assert set(history) >= {"loss", "kl", "reconstruction", "val_loss"}
    np.testing.assert_allclose(np.add(history["reconstruction"], history["kl"]), history["loss"],
                               rtol=1e-5)
    if study.plots_available():
        for name in ("latent_space", "manifold", "samples_z2", "interpolations_z2", "elbo_curves"):
            assert (tmp_path / f"{name}.png").stat().st_size > 1000, name


def test_config_checks_name_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[model]\nlatent_sizes = []\n")
    with pytest.raises(ConfigError, match=r"`model\.latent_sizes` must list positive sizes"):
        study.load_config(path)
    assert study.load_config(ROOT / "configs" / "vae.toml").model.latent_sizes == [2, 20]
