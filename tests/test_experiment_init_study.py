"""experiments/init_study.py on tiny random-data nets: the measurements, the training loop, the
config checks and the run folder (no MNIST needed; a few seconds)."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from fnn.config import ConfigError, from_dict
from fnn.experiment import jsonable

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("init_study", ROOT / "experiments" / "init_study.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("init_study", study)  # dataclasses look their module up
_spec.loader.exec_module(study)


def random_batch(n=256, shape=(8, 8), classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 1, (n, *shape)).astype(np.float32),
            rng.integers(0, classes, n).astype(np.int32))


def probe(activation, init_name, depth=4, width=16, seed=0):
    model = study.build_model(activation, init_name, depth, width, 10)
    x, y = random_batch(n=64)  # the probe batch of `tiny_config`: probe runs eagerly, and
    # every op compiles once per shape, so the tests share their programs
    _, params, state = model.init(jax.random.PRNGKey(seed), (None, *x.shape[1:]))
    return study.probe(model, params, state, x, y)


def test_probe_has_one_entry_per_layer():
    stats = probe("tanh", "glorot_normal", depth=4)
    for key in ("activation_variance", "activation_grad_variance", "unit_spread"):
        assert len(stats[key]) == 4, key  # hidden layers
    for key in ("preactivation_variance", "delta_variance", "grad_w_variance"):
        assert len(stats[key]) == 5, key  # dense layers, the output layer last
    assert all(v > 0 for k in ("activation_variance", "grad_w_variance", "delta_variance")
               for v in stats[k])
    assert math.log(10) * 0.5 < stats["loss"] < math.log(10) * 2


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_zeros_init_kills_every_signal_but_the_output_bias(activation):
    stats = probe(activation, "zeros")
    assert stats["activation_variance"] == [0.0] * 4
    assert stats["grad_w_variance"] == [0.0] * 5  # even the output W: its input a^4 is 0
    assert stats["delta_variance"][:-1] == [0.0] * 4
    assert stats["delta_variance"][-1] > 0  # softmax(0) − y: only the output bias can learn


def test_constant_init_makes_every_unit_of_a_layer_identical():
    stats = probe("tanh", "constant")
    assert stats["unit_spread"] == [0.0] * 4
    # tanh(0.1 · 16 · a) saturates: after the first layer nothing varies between examples.
    assert stats["activation_variance"][-1] < 1e-6 * stats["input_variance"]


def test_he_keeps_relu_variance_while_glorot_and_uniform_2_shrink_it():
    depth, width = 8, 64
    he = probe("relu", "he_normal", depth, width)["activation_variance"]
    assert max(he) / min(he) < 4, he
    glorot = probe("relu", "glorot_normal", depth, width)["activation_variance"]
    assert glorot[-1] / glorot[0] < 0.05, glorot  # ≈ 2^-(depth-1): halved at every layer
    uniform2 = probe("relu", "uniform_2_over_sqrt_fan_in", depth, width)["activation_variance"]
    assert uniform2[-1] / uniform2[0] < 0.3, uniform2  # ≈ (2/3)^(depth-1)
    assert glorot[-1] < uniform2[-1] < he[-1]


def test_relu_constant_init_overflows_and_is_reported_as_null():
    stats = probe("relu", "constant", depth=30, width=256)
    assert any(not math.isfinite(v) for v in stats["activation_variance"])
    clean = jsonable(stats)
    json.dumps(clean, allow_nan=False)  # raises if any inf/NaN survived


def _train(activation, init_name, steps_per_epoch=4, epochs=2, lr=0.05, learnable=False):
    x, y = random_batch(n=32 * steps_per_epoch)
    if learnable:  # each class is a fixed random image plus a little noise
        prototypes = np.random.default_rng(2).uniform(0, 1, (10, *x.shape[1:]))
        x = (prototypes[y] + 0.2 * (x - 0.5)).astype(np.float32)
    model = study.build_model(activation, init_name, 3, 16, 10)
    _, params, state = model.init(jax.random.PRNGKey(0), (None, *x.shape[1:]))
    calls = []
    result = study.train(model, params, state, {"train": (x, y), "test": (x, y)},
                         learning_rate=lr, epochs=epochs, batch_size=32,
                         key=jax.random.PRNGKey(1), on_step=lambda: calls.append(1))
    return model, params, result, len(calls)


def test_training_records_every_step_and_zeros_never_leave_zero():
    model, params, result, calls = _train("tanh", "zeros")
    assert result["steps"] == len(result["loss_steps"]) == calls == 8
    assert result["diverged_at_step"] is None
    change = study.weight_change(params, result["params"], model)
    assert change == [0.0] * 4  # no hidden or output weight ever gets a gradient
    assert 0 <= result["test_accuracy"] <= 1


def test_constant_init_stays_symmetric_under_training():
    model, params, result, _ = _train("tanh", "constant")
    trained = result["params"]
    hidden = [d for d, a in study.dense_and_activation_names(model) if a is not None]
    assert all(study._unit_spread(trained[d]["w"]) < 1e-6 for d in hidden)
    assert study.weight_change(params, trained, model)[-1] > 0  # the output layer did move


def test_glorot_tanh_learns_an_easy_task_that_zeros_init_cannot():
    kwargs = dict(steps_per_epoch=4, epochs=15, lr=0.2, learnable=True)
    _, _, glorot, _ = _train("tanh", "glorot_normal", **kwargs)
    assert np.mean(glorot["loss_steps"][-4:]) < 0.25 * glorot["loss_steps"][0]
    assert glorot["test_accuracy"] > 0.9
    _, _, zeros, _ = _train("tanh", "zeros", **kwargs)
    assert np.mean(zeros["loss_steps"][-4:]) > 2.0  # only the output biases learn: class priors
    assert zeros["test_accuracy"] < 0.3


def tiny_config(**model):
    # One activation and two initializers: the grid's two levels (activation, then init) with
    # two runs to compile, not four (the tanh runs train the same code).
    return from_dict({"name": "tiny", "model": {"depth": 3, "width": 16, "activations": ["relu"],
                                                "inits": ["zeros", "he_normal"], **model},
                      "probe": {"batch_size": 64},
                      "train": {"epochs": 1, "batch_size": 32, "learning_rate": 0.05}},
                     study.InitStudyConfig)


def test_run_writes_numbers_config_date_and_plots(tmp_path):
    data = {"train": random_batch(n=96), "test": random_batch(n=40, seed=1)}
    report = study.run(tiny_config(), tmp_path, data=data, progress=False, log=lambda *a: None)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == report
    assert saved["config"]["model"]["depth"] == 3 and saved["date"]
    assert set(saved["results"]) == {"relu"}
    assert set(saved["results"]["relu"]) == {"zeros", "he_normal"}
    assert len(saved["summary"]) == 2
    run = saved["results"]["relu"]["he_normal"]
    assert len(run["init"]["activation_variance"]) == 3
    assert len(run["train"]["loss_steps"]) == 3  # ceil(96 / 32) steps, 1 epoch
    if study.plots_available():
        for name in ("activation_variance", "gradient_variance", "training_loss"):
            assert (tmp_path / f"{name}.png").stat().st_size > 1000, name


def test_shipped_config_is_a_deep_net_and_bad_keys_are_named(tmp_path):
    cfg = study.load_config(ROOT / "configs" / "init_study.toml")
    assert cfg.model.depth >= 30 and set(cfg.model.activations) == {"tanh", "relu"}
    quick = study.load_config(ROOT / "configs" / "init_study.toml", quick=True)
    assert quick.train.train_size < cfg.train.train_size and quick.model == cfg.model

    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\ninits = ["zeros", "hee_normal"]\n')
    with pytest.raises(ConfigError, match=r"model\.inits\[1\].*hee_normal"):
        study.load_config(bad)
    bad.write_text("[train]\nepoch = 2\n")
    with pytest.raises(ConfigError, match=r"unknown config key `train\.epoch`"):
        study.load_config(bad)
    bad.write_text("[model]\ndepth = 0\n")
    with pytest.raises(ConfigError, match=r"`model\.depth` must be positive"):
        study.load_config(bad)
