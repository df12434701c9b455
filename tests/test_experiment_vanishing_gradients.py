"""experiments/vanishing_gradients.py: the measured input gradients against a hand-computed
case, and a tiny run's JSON (plots off; seconds)."""
import importlib.util
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.config import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "vanishing_experiment", ROOT / "experiments" / "vanishing_gradients.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("vanishing_experiment", study)  # dataclasses look their module up
_spec.loader.exec_module(study)


def test_elman_gradients_follow_the_chain_rule_written_out():
    """g_t for an Elman RNN equals the product of Jacobians computed by hand in NumPy."""
    cfg = study.VanishingConfig(units=3, features=2, batch=1)
    key = jax.random.PRNGKey(3)
    measured = study.input_gradient_norms("elman", cfg, 4, key[None])[0]
    layer = study.RNN(study.ElmanCell(3), return_sequences=False)
    k_init, k_x, k_v = jax.random.split(key, 3)
    _, params, _ = layer.init(k_init, (None, 4, 2))
    p = jax.tree_util.tree_leaves(params)  # b, w_h, w_x (sorted keys)
    b, wh, wx = (np.asarray(a, np.float64) for a in p)
    x = np.asarray(jax.random.normal(k_x, (1, 4, 2)), np.float64)[0]
    v = np.asarray(jax.random.normal(k_v, (3,)), np.float64)
    v /= np.linalg.norm(v)
    h, hs = np.zeros(3), []
    for t in range(4):
        h = np.tanh(x[t] @ wx + h @ wh + b)
        hs.append(h)
    upstream, expected = v, []  # ∂(h_T·v)/∂h_t, walking back
    for t in reversed(range(4)):
        da = upstream * (1 - hs[t] ** 2)
        expected.append(np.linalg.norm(wx @ da))
        upstream = wh @ da
    np.testing.assert_allclose(measured, expected[::-1], rtol=1e-5)


def test_quick_run_writes_ratios_that_fall_with_length(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "plot", lambda *a, **k: None)
    cfg = from_dict({"lengths": [4, 12], "seeds": 2, "batch": 4, "units": 8,
                     "cells": ["lstm"]}, study.VanishingConfig)
    results = study.run(cfg, tmp_path, progress=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    for cell in ("lstm",):
        ratios = saved["first_over_last"][cell]
        assert ratios["12"] < ratios["4"] < 1.0, (cell, ratios)
        assert len(saved["gradient_norms"][cell]["12"]) == 12
    assert results["config"]["cells"] == ["lstm"]


def test_config_names_bad_keys(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('cells = ["lstm", "tcn"]\n')
    with pytest.raises(ConfigError, match=r"config key `cells` must list some of"):
        study.load_config(path)
    path.write_text("lengths = [1]\n")
    with pytest.raises(ConfigError, match=r"config key `lengths`"):
        study.load_config(path)
