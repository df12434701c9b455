"""experiments/playground.py on tiny runs: the input features, the one-factor-at-a-time grid,
side-by-side training, the XOR / x1·x2 lesson, the config checks and the run folder (seconds)."""
import importlib.util
import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from fnn.config import ConfigError, from_dict
from fnn.optim import sgd
from fnn.train import Batch, make_train_step

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("playground", ROOT / "experiments" / "playground.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("playground", study)  # dataclasses look their module up
_spec.loader.exec_module(study)

ALL = ["x1", "x2", "x1^2", "x2^2", "x1*x2", "sin(x1)", "sin(x2)"]


def config(sweeps, seeds=2, **base):
    raw = {"seeds": seeds, "plot": {"resolution": 12},
           "base": {"samples": 60, "epochs": 2, **base}, "sweeps": sweeps}
    return from_dict(raw, study.PlaygroundConfig)


def test_input_features_are_the_playground_columns_in_the_order_named():
    points = np.array([[0.5, -0.2], [-1.0, 0.3]], np.float32)
    got = study.input_features(points, ALL, scale=2.0)
    x1, x2 = 2.0 * points[:, 0], 2.0 * points[:, 1]
    expected = np.stack([x1, x2, x1 ** 2, x2 ** 2, x1 * x2, np.sin(x1), np.sin(x2)], 1)
    assert got.shape == (2, 7) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    unscaled = study.input_features(points, ["x1*x2", "x1"])
    np.testing.assert_allclose(unscaled, expected[:, [4, 0]] / [4, 2], rtol=1e-6)
    # any leading axes: (N, members, 2) -> (N, members, F)
    assert study.input_features(np.zeros((5, 3, 2)), ["x1", "x2^2"]).shape == (5, 3, 2)


def test_grid_varies_one_factor_at_a_time_and_shares_runs():
    cfg = config({
        "lr": {"datasets": ["circles", "xor"], "vary": {"learning_rate": [0.01, 0.1]}},
        "noise": {"datasets": ["xor"], "vary": {"noise": [0.1, 0.3]}},
        "lin": {"datasets": ["xor"], "fixed": {"hidden": []},
                "vary": {"features": [["x1", "x2"], ["x1", "x2", "x1*x2"]]}},
    }, learning_rate=0.1, noise=0.1)
    cells = study.expand(cfg)
    assert [(c.sweep, c.dataset, c.value) for c in cells] == [
        ("lr", "circles", 0.01), ("lr", "circles", 0.1), ("lr", "xor", 0.01), ("lr", "xor", 0.1),
        ("noise", "xor", 0.1), ("noise", "xor", 0.3),
        ("lin", "xor", ["x1", "x2"]), ("lin", "xor", ["x1", "x2", "x1*x2"])]
    base = cfg.base
    for cell in cells:
        changed = {k for k, v in vars(cell.setting).items() if v != getattr(base, k)}
        expected = {cell.factor} | ({"hidden"} if cell.sweep == "lin" else set())
        assert changed <= expected and getattr(cell.setting, cell.factor) == cell.value
    groups = study.group_runs(cells)
    runs = [run for g in groups for run in g.runs]
    assert len(runs) == 7  # xor at the base setting is in "lr" and in "noise": trained once
    # runs that differ only in their data (data set, noise) share one side-by-side fit
    assert sorted(len(g.runs) for g in groups) == [1, 1, 2, 3]


def test_side_by_side_copies_train_exactly_like_each_network_alone():
    setting = study.Setting(hidden=[5], features=["x1", "x2", "x1*x2"])
    one = study.build_model(setting)
    keys = [jax.random.PRNGKey(3), jax.random.PRNGKey(4)]
    _, params, state = study.init_copies(one, keys, (None, 3))
    pair = study.side_by_side(one, 2)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 2, 3)).astype(np.float32)
    y = rng.integers(0, 2, (8, 2)).astype(np.int32)
    mask = np.ones(8, np.float32)
    pair_step = make_train_step(pair, study.LOSS, sgd(0.5))
    together, *_ = pair_step(params, state, sgd(0.5).init(params), Batch(x, y, mask), keys[0])
    one_step = make_train_step(one, study.LOSS, sgd(0.5))
    for m, key in enumerate(keys):
        _, p, s = one.init(key, (None, 3))
        alone, *_ = one_step(p, s, sgd(0.5).init(p), Batch(x[:, m], y[:, m], mask), key)
        for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(together)):
            np.testing.assert_allclose(a, b[m], rtol=1e-5, atol=1e-6)


def test_diverged_seeds_are_null_and_left_out_of_mean_and_std():
    stats = study.summarize([0.5, float("nan"), 0.7])
    assert stats["runs"] == [0.5, None, 0.7] and stats["mean"] == pytest.approx(0.6)
    assert stats["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert study.summarize([float("inf")]) == {"mean": None, "std": None, "runs": [None]}

    cell = study.Cell("lr", "xor", "learning_rate", 3.0, study.Setting(learning_rate=3.0))
    nan = float("nan")
    trained = {"runs": {"train_loss": np.array([0.1, nan]), "train_accuracy": np.array([1.0, 0.5]),
                        "test_loss": np.array([0.2, nan]), "test_accuracy": np.array([0.9, 0.5])},
               "curve": np.array([[0.6, 0.7], [0.1, nan]]), "steps": 50}
    record = study.cell_record(cell, trained)
    assert record["diverged"] == 1 and record["test_accuracy"]["runs"] == [0.9, None]
    assert record["train_loss_curve"] == [pytest.approx(0.65), None]
    json.dumps(record, allow_nan=False)  # raises if a NaN survived


def test_run_shows_a_linear_classifier_needs_x1_times_x2_for_xor(tmp_path):
    cfg = config({"xor": {"question": "which features?", "datasets": ["xor"],
                          "fixed": {"hidden": []},
                          "vary": {"features": [["x1", "x2"], ["x1", "x2", "x1*x2"]]}}},
                 samples=120, noise=0.0, epochs=15, learning_rate=0.3, batch_size=10)
    report = study.run(cfg, tmp_path, progress=False, log=lambda *a: None)
    without, with_product = (cell["test_accuracy"] for cell in report["cells"])
    assert len(without["runs"]) == 2  # one per seed
    assert max(without["runs"]) < 0.75, without  # no straight line in (x1, x2) separates XOR
    assert min(with_product["runs"]) > 0.9, with_product  # sign(x1·x2) is the label

    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == json.loads(json.dumps(report)) and saved["date"]
    cell = saved["cells"][1]
    assert (cell["dataset"], cell["value"]) == ("xor", ["x1", "x2", "x1*x2"])
    assert len(cell["train_loss_curve"]) == 15 and cell["steps"] == 15 * 6  # 60 points / 10
    assert cell["train_loss_curve"][-1] < cell["train_loss_curve"][0]
    table = (tmp_path / "results.md").read_text()
    assert "## xor: which features?" in table and "\n| x1, x2, x1x2 | " in table
    if study.plots_available():
        for name in ("accuracy", "boundaries_xor", "curves_xor"):
            assert (tmp_path / f"{name}.png").stat().st_size > 1000, name


def test_shipped_config_asks_every_course_question():
    cfg = study.load_config(ROOT / "configs" / "playground.toml")
    factors = {f for sweep in cfg.sweeps.values() for f in study._named(sweep.vary)}
    assert factors == {"learning_rate", "activation", "batch_size", "hidden", "noise", "features",
                       "train_fraction"}
    assert cfg.seeds >= 3 and set(cfg.sweeps["activation"].vary.activation) >= {"linear", "relu"}
    quick = study.load_config(ROOT / "configs" / "playground.toml", quick=True)
    assert quick.base.epochs < cfg.base.epochs and quick.sweeps == cfg.sweeps


@pytest.mark.parametrize("toml, message", [
    ("[base]\nepoch = 2\n", r"unknown config key `base\.epoch`"),
    ("[base]\ntrain_fraction = 1.0\n", r"`base\.train_fraction` must be in \(0, 1\)"),
    ('[sweeps.a]\nvary.features = [["x1"], ["x1", "x3"]]\n',
     r"`sweeps\.a\.vary\.features\[1\]` must be a non-empty list of distinct names"),
    ("[sweeps.a]\nvary.noise = [0.1]\nvary.learning_rate = [0.1]\n",
     r"`sweeps\.a\.vary` must name exactly one .* got \['learning_rate', 'noise'\]"),
    ("[sweeps.a]\nvary.noise = [0.1]\nfixed.noise = 0.2\n",
     r"`sweeps\.a\.fixed\.noise` is the factor the sweep varies"),
    ('[sweeps.a]\ndatasets = ["moons"]\nvary.noise = [0.1]\n',
     r"`sweeps\.a\.datasets\[0\]`: unknown data set 'moons'"),
    ("[sweeps.a]\nvary.activation = ['tanh', 'swish']\n", r"`sweeps\.a\.vary\.activation\[1\]`"),
    ("[sweeps.a]\nvary.batch_size = [10, '30']\n",
     r"`sweeps\.a\.vary\.batch_size\[1\]` must be int"),
    ("[sweeps.a]\nfixed.samples = 10\nvary.train_fraction = [0.01]\n",
     r"`sweeps\.a`: train_fraction 0\.01 of 10 samples leaves no training"),
])
def test_config_errors_name_the_key(tmp_path, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml if "[sweeps" in toml else toml + "[sweeps.a]\nvary.noise = [0.1]\n")
    with pytest.raises(ConfigError, match=message):
        study.load_config(path)
