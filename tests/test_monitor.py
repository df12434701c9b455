"""The debugging monitor against direct computation, its warnings, and the overfit check."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import fit
from fnn.layers import Dense, ReLU, residual, serial
from fnn.models.mlp import mlp
from fnn.monitor import Monitor, diagnose, layer_outputs, layer_stats, overfit_check
from fnn.optim import chain, reduce_on_plateau, sgd
from fnn.train import TrainState

KEY = jax.random.PRNGKey(0)
RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 5)).astype(np.float32)
Y = ((X[:, 0] > 0).astype(np.int32) + (X[:, 1] > 0.5)).astype(np.int32)
LOSS = "softmax_cross_entropy"


def small_network():
    """5 -> Dense(4) -> ReLU -> Dense(3), with hidden unit 2 forced dead by a bias of −100."""
    model = serial(Dense(4), ReLU(), Dense(3))
    _, params, state = model.init(KEY, (None, 5))
    params["dense_0"]["b"] = params["dense_0"]["b"].at[2].set(-100.0)
    return model, params, state


def test_monitor_stats_match_a_direct_computation():
    model, params, state = small_network()
    x, y = X[:16], Y[:16]
    optimizer = sgd(0.1)
    monitor = Monitor(model, LOSS, (x, y), optimizer)
    assert monitor.warnings() == []  # nothing recorded yet
    stats = monitor.record(params, state, optimizer.init(params), epoch=0)  # jitted layer_stats
    assert list(stats) == ["dense_0", "relu_0", "dense_1"]  # depth order, not jit's sorted keys
    assert list(stats["relu_0"]) == ["act_var", "dead_fraction"]  # no params, an activation
    assert all(isinstance(v, float) for s in stats.values() for v in s.values())

    def mean_loss(p):  # by hand, not through the layers
        hidden = jnp.maximum(x @ p["dense_0"]["w"] + p["dense_0"]["b"][None, :], 0)
        logits = hidden @ p["dense_1"]["w"] + p["dense_1"]["b"][None, :]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(16), y])

    grads = jax.jit(jax.grad(mean_loss))(params)
    w0, b0 = np.asarray(params["dense_0"]["w"]), np.asarray(params["dense_0"]["b"])
    z = x @ w0 + b0[None, :]  # NumPy: eager jnp ops would compile one program each
    for name in ("dense_0", "dense_1"):
        w, g = np.asarray(params[name]["w"]), np.asarray(grads[name]["w"])  # weights, not biases
        np.testing.assert_allclose(stats[name]["grad_norm"], np.linalg.norm(g), rtol=1e-5)
        np.testing.assert_allclose(stats[name]["update_ratio"],
                                   0.1 * np.linalg.norm(g) / np.linalg.norm(w), rtol=1e-5)
        np.testing.assert_allclose(stats[name]["weight_var"], np.var(w), rtol=1e-5)
    np.testing.assert_allclose(stats["dense_0"]["act_var"], np.var(z), rtol=1e-5)
    np.testing.assert_allclose(stats["relu_0"]["act_var"], np.var(np.maximum(z, 0)), rtol=1e-5)
    assert stats["relu_0"]["dead_fraction"] == 0.25  # unit 2 only: 1 of 4
    assert np.all(np.asarray(grads["dense_0"]["w"])[:, 2] == 0)  # which is why it is dead
    # Called as a fit hook, it records the same numbers after "epoch 1" and never stops fit.
    assert monitor(0, {}, TrainState(params, state, optimizer.init(params))) is None
    assert monitor.epochs == [0, 1] and monitor.records[1] == stats


def test_loss_driven_optimizers_get_the_probe_loss():
    model, params, state = small_network()
    plain, plateau = sgd(0.1), chain(sgd(0.1), reduce_on_plateau())  # the latter needs `loss=`
    ratios = [Monitor(model, LOSS, (X[:16], Y[:16]), opt).record(
                  params, state, opt.init(params), epoch=0)["dense_1"]["update_ratio"]
              for opt in (plain, plateau)]
    assert ratios[1] == pytest.approx(ratios[0], rel=1e-6)  # its scale starts at 1


def test_layer_outputs_are_the_serial_forward_pass():
    model, params, state = small_network()
    outputs = layer_outputs(model, params, state, X[:4])
    assert list(outputs) == ["dense_0", "relu_0", "dense_1"]
    np.testing.assert_allclose(outputs["dense_1"], model.apply(params, state, X[:4])[0], rtol=1e-6)
    block = residual(Dense(5), ReLU())  # any combinator: its leaves, by path
    _, params, state = block.init(KEY, (None, 5))
    outputs = layer_outputs(block, params, state, X[:4])
    assert list(outputs) == ["block/dense_0", "block/relu_0"]
    np.testing.assert_allclose(outputs["block/relu_0"] + X[:4], block.apply(params, state, X[:4])[0],
                               rtol=1e-6)


def test_other_combinators_get_statistics_per_inner_layer():
    model = residual(Dense(5), shortcut=Dense(5))
    _, params, state = model.init(KEY, (None, 5))
    stats = jax.jit(partial(layer_stats, model, loss="mse"))(params, state, (X[:8], X[:8]))
    assert set(stats) == {"block/dense_0", "shortcut"}
    assert set(stats["block/dense_0"]) == {"grad_norm", "weight_var", "act_var"}  # no update ratio


@pytest.fixture(scope="module")
def sane_monitor():
    """A monitor used as a fit hook, every 2 epochs of 4, with a reasonable learning rate."""
    model, optimizer = mlp([16, 3], flatten=False), sgd(0.05)
    _, params, state = model.init(KEY, (None, 5))
    monitor = Monitor(model, LOSS, (X[:32], Y[:32]), optimizer, every=2)
    fit(model, params, state, (X, Y), loss=LOSS, optimizer=optimizer, key=KEY, epochs=4,
        batch_size=32, hooks=[monitor], progress=False)
    return monitor


def test_monitor_flags_a_tiny_learning_rate_and_not_a_sane_one(sane_monitor):
    model = mlp([16, 3], flatten=False)
    _, params, state = model.init(KEY, (None, 5))
    tiny = Monitor(model, LOSS, (X[:32], Y[:32]), sgd(1e-7))
    tiny.record(params, state, epoch=0)  # the ratio is the optimizer's next step: no training needed
    problems = tiny.warnings()
    assert len(problems) == 2  # both Dense layers
    assert all("update/weight ratio" in p and "< 1e-04: learning rate too low?" in p
               for p in problems)
    assert problems[0].startswith("dense_0:") and problems[1].startswith("dense_1:")
    assert sane_monitor.warnings() == []
    ratios = [r for layer in sane_monitor.history["update_ratio"].values() for r in layer]
    assert all(1e-4 < r < 1e-2 for r in ratios)


def test_monitor_history_and_every(sane_monitor):
    assert sane_monitor.epochs == [2, 4]
    history = sane_monitor.history
    assert history["epoch"] == [2, 4]
    assert list(history["grad_norm"]) == ["dense_0", "dense_1"]  # depth order
    assert list(history["dead_fraction"]) == ["relu_0"]
    assert all(len(v) == 2 and all(isinstance(f, float) for f in v)
               for stat in ("grad_norm", "update_ratio", "weight_var", "act_var")
               for v in history[stat].values())
    assert list(sane_monitor.records[0]) == ["dense_0", "relu_0", "dense_1"]


def test_diagnose_names_each_problem():
    stats = {
        "dense_0": {"grad_norm": 1e-9, "update_ratio": 5e-2, "weight_var": 1e-2, "act_var": 1.0},
        "relu_0": {"act_var": 1.0, "dead_fraction": 0.75},
        "dense_1": {"grad_norm": float("nan"), "update_ratio": 1e-3, "weight_var": 1e-2,
                    "act_var": 1.0},
        "relu_1": {"act_var": 1e-3, "dead_fraction": 0.0},
    }
    problems = diagnose(stats)
    assert problems == [
        "dense_0: update/weight ratio 5.0e-02 > 1e-02: learning rate too high?",
        "dense_0: gradient norm 1.0e-09 ≈ 0: the layer has stopped learning (vanishing "
        "gradients or dead units?)",
        "relu_0: 75% of its units are dead (0 on every probe example): lower the learning rate, "
        "try He initialization or LeakyReLU?",
        "dense_1: grad_norm is nan: training diverged? Lower the learning rate, check the inputs "
        "are scaled.",
        "activation variance shrinks from 1.0e+00 (relu_0) to 1.0e-03 (relu_1): exploding or "
        "vanishing activations; check the initialization or add normalization.",
    ]
    assert diagnose(stats, ratio_range=(1e-4, 1e-1), max_dead=0.8, min_grad_norm=0,
                    max_act_var_change=1e4) == [problems[3]]


def test_monitor_argument_errors():
    model, _, _ = small_network()
    with pytest.raises(ValueError, match=r"Monitor: `probe` must be an \(inputs, targets\) pair"):
        Monitor(model, LOSS, X)
    with pytest.raises(ValueError, match="Monitor: `probe` has 4 inputs but 3 targets"):
        Monitor(model, LOSS, (X[:4], Y[:3]))
    with pytest.raises(ValueError, match="Monitor: `every` must be a positive integer; got 0"):
        Monitor(model, LOSS, (X, Y), every=0)


def test_overfit_check_passes_a_sane_mlp_and_fails_a_learning_rate_of_zero():
    model = mlp([32, 3], flatten=False)
    _, params, state = model.init(KEY, (None, 5))
    labels = RNG.integers(0, 3, size=len(X)).astype(np.int32)  # random: only memory can fit them
    good = overfit_check(model, params, state, (X, labels), loss=LOSS, optimizer=sgd(1.0),
                         key=KEY, n=50, steps=200)
    assert good.passed and good.final_loss < 0.1 * good.initial_loss
    assert len(good.losses) == 201 and good.losses[0] == good.initial_loss
    assert good.losses[-1] == good.final_loss and (good.n, good.steps) == (50, 200)
    assert str(good).startswith("overfit check passed: loss")

    # Fewer examples than n: all of them.
    stuck = overfit_check(model, params, state, (X[:10], labels[:10]), loss=LOSS,
                          optimizer=sgd(0.0), key=KEY, steps=20)
    assert not stuck.passed and stuck.final_loss == pytest.approx(stuck.initial_loss)
    assert stuck.n == 10 and "FAILED" in str(stuck)


def test_overfit_check_argument_errors():
    model = mlp([3], flatten=False)
    _, params, state = model.init(KEY, (None, 5))
    common = dict(loss=LOSS, optimizer=sgd(0.1), key=KEY)
    with pytest.raises(ValueError, match=r"overfit_check: `data` must be an \(inputs, targets\)"):
        overfit_check(model, params, state, X, **common)
    with pytest.raises(ValueError, match="overfit_check: `steps` must be a positive integer"):
        overfit_check(model, params, state, (X, Y), steps=0, **common)
