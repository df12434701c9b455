"""Issue 7: the protocol carries every model — pytree batches, a context that reaches every layer,
children that every combinator exposes, stable parameter names, resuming mid-epoch, one
compilation per model and shape."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import checkpoint
from fnn.core import (Context, Layer, LayerError, apply_child, capture_outputs, row_mask,
                      sequence_mask, walk)
from fnn.layers import (Activation, Dense, Flatten, LeakyReLU, PReLU, ReLU, branch, parallel,
                        residual, serial)
from fnn.models import mlp
from fnn.optim import adam, sgd
from fnn.train import Batch, evaluate, fit, predict

KEY = jax.random.PRNGKey(0)


def RunningMean(decay=0.0):
    """A 10-line BatchNorm-like layer: state["mean"] tracks the mean of the real rows it saw.

    With decay 0 the state is the mean of the last training batch's real rows."""
    def init(key, input_shape):
        return input_shape, {}, {"mean": jnp.zeros(input_shape[-1:])}

    def apply(params, state, x, *, key=None, train=False, context=None):
        if not train:
            return x, state
        m = row_mask(context)
        m = jnp.ones(x.shape[0]) if m is None else m
        batch_mean = (m[:, None] * x).sum(0) / m.sum()
        return x, {"mean": decay * state["mean"] + (1 - decay) * batch_mean}

    return Layer(init, apply, "RunningMean()", "running_mean")


# --- the context reaches every layer ------------------------------------------------------------

def test_padded_rows_never_reach_batch_statistics_through_fit():
    """One real row padded to a batch of 4: the statistic is that row's value, not a mix of
    repeats (the issue's 12-line BatchNorm saw 7 instead of 1)."""
    x = np.array([[1.0], [7.0], [7.0], [7.0], [1.0]], np.float32)  # 5 rows, batch 4: last has 1
    y = np.zeros(5, np.int32)
    model = serial(("deep", residual(serial(RunningMean()))), Dense(2))
    _, params, state = model.init(KEY, (None, 1))
    result = fit(model, params, state, (x, y), loss="softmax_cross_entropy", optimizer=sgd(0.0),
                 key=KEY, epochs=1, batch_size=4, progress=False)
    order = np.asarray(jax.random.permutation(jax.random.fold_in(KEY, 0), 5))
    last_real_row = x[order[4], 0]
    stat = result.state["deep"]["block"]["serial_0"]["running_mean_0"]["mean"]
    np.testing.assert_allclose(stat, [last_real_row])


@pytest.mark.parametrize("wrap", [
    lambda layer: serial(Dense(3), layer),
    lambda layer: residual(layer),
    lambda layer: serial(branch(layer, Dense(3)), fnn.layers.Lambda(lambda xs: xs[0])),
    lambda layer: serial(parallel(layer), fnn.layers.Lambda(lambda xs: xs[0])),
])
def test_context_passes_unchanged_through_every_combinator(wrap):
    seen = []

    def init(key, input_shape):
        return input_shape, {}, {}

    def apply(params, state, x, *, key=None, train=False, context=None):
        seen.append(context)
        return x, state

    model = wrap(Layer(init, apply, "Spy()"))
    is_parallel = "parallel" in model.layers[0][0] if model.layers else False
    shape = ((None, 3),) if is_parallel else (None, 3)
    x = (jnp.ones((4, 3)),) if is_parallel else jnp.ones((4, 3))
    _, params, state = model.init(KEY, shape)
    context = Context(mask=jnp.array([1.0, 1.0, 0.0, 0.0]), seq_mask=jnp.ones((4, 5)))
    model.apply(params, state, x, context=context)
    assert seen and seen[-1] is context


def test_layers_without_the_keyword_accept_and_ignore_it():
    def apply(params, state, x, *, key=None, train=False):  # a user's layer of yesterday
        return 2 * x, state

    layer = Layer(lambda key, shape: (shape, {}, {}), apply, "Double()")
    y, _ = layer.apply({}, {}, jnp.ones(2), context=Context(mask=jnp.ones(2)))
    np.testing.assert_array_equal(y, [2.0, 2.0])


def test_sequence_mask_from_lengths():
    expected = [[0, 0, 0], [1, 1, 0], [1, 1, 1]]
    concrete = sequence_mask(np.array([0, 2, 3]), 3)  # built by NumPy
    traced = jax.jit(lambda lengths: sequence_mask(lengths, 3))(np.array([0, 2, 3]))
    for mask in (concrete, traced):
        assert isinstance(mask, jax.Array) and mask.dtype == jnp.float32
        np.testing.assert_array_equal(mask, expected)


def test_fit_gives_layers_the_sequence_mask_and_masks_per_step_losses():
    """A Batch with a seq_mask: layers read it from the context, and a per-step (B, T) loss
    averages over real steps only."""
    def init(key, input_shape):
        return input_shape, {"w": jnp.ones(())}, {"real_steps": jnp.zeros(())}

    def apply(params, state, x, *, key=None, train=False, context=None):
        steps = jnp.sum(context.seq_mask * context.mask[:, None])
        return params["w"] * x, {"real_steps": state["real_steps"] + steps} if train else state

    model = Layer(init, apply, "StepCounter()")
    x = np.ones((3, 4), np.float32)
    targets = np.zeros((3, 4), np.float32)
    seq = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], np.float32)
    _, params, state = model.init(KEY, (None, 4))
    per_step = lambda out, t: (out - t) ** 2  # (B, T)
    result = fit(model, params, state, Batch(x, targets, seq_mask=seq), loss=per_step,
                 optimizer=sgd(0.0), key=KEY, epochs=1, batch_size=2, progress=False,
                 metrics=lambda o, t, m: {})
    assert float(result.state["real_steps"]) == 7.0  # padding row of batch 2 not counted
    assert result.history["loss"] == [pytest.approx(1.0)]
    np.testing.assert_allclose(
        evaluate(model, params, state, Batch(x * seq * 2, targets, seq_mask=seq), loss=per_step,
                 metrics=lambda o, t, m: {})["loss"], 4.0)


# --- pytree batches ------------------------------------------------------------------------------

def two_input_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    xa = rng.normal(size=(n, 3)).astype(np.float32)
    xb = rng.normal(size=(n, 2)).astype(np.float32)
    y = ((xa[:, 0] + xb[:, 1]) > 0).astype(np.int32)
    return xa, xb, y


def test_a_two_input_parallel_model_trains_through_fit():
    xa, xb, y = two_input_data()
    model = serial(parallel(Dense(8), Dense(8)), fnn.layers.Concatenate(), ReLU(), Dense(2))
    _, params, state = model.init(KEY, ((None, 3), (None, 2)))
    result = fit(model, params, state, ((xa, xb), y), loss="softmax_cross_entropy",
                 optimizer=adam(0.05), key=KEY, epochs=15, batch_size=10,
                 validation_data=((xa[:20], xb[:20]), y[:20]), progress=False)
    assert result.history["accuracy"][-1] > 0.9
    out = predict(model, result.params, result.state, (xa, xb), batch_size=7)
    assert out.shape == (64, 2)
    scores = evaluate(model, result.params, result.state, ((xa, xb), y),
                      loss="softmax_cross_entropy")
    assert scores["accuracy"] == pytest.approx(float(np.mean(np.argmax(out, -1) == y)))


def test_dict_inputs_reach_parallel_children_by_name():
    xa, xb, y = two_input_data(n=12)
    model = serial(parallel(("image", Dense(4)), ("tokens", Dense(4))),
                   fnn.layers.Lambda(lambda d: d["image"] + d["tokens"]), Dense(2))
    shape, params, state = model.init(KEY, {"image": (None, 3), "tokens": (None, 2)})
    assert shape == (None, 2)
    result = fit(model, params, state, ({"image": xa, "tokens": xb}, y),
                 loss="softmax_cross_entropy", optimizer=sgd(0.1), key=KEY, epochs=1,
                 batch_size=5, progress=False)
    assert np.isfinite(result.history["loss"][0])


def test_one_batching_function_for_pytrees():
    xa, xb, y = two_input_data(n=10)
    items = list(fnn.data.batches(((xa, xb), y), 4, pad=True))
    assert len(items) == 3
    ((a, b), labels), mask = items[-1]
    assert a.shape == (4, 3) and b.shape == (4, 2) and labels.shape == (4,)
    np.testing.assert_array_equal(mask, [1, 1, 0, 0])
    np.testing.assert_array_equal(a[:2], xa[8:])
    assert [m.sum() for _, m in fnn.data.batches(y, 4, pad=True, skip=2)] == [2]


def test_bad_data_is_named():
    with pytest.raises(ValueError, match="train_data: every array needs the same number"):
        fit(*mlp_model(), ((np.zeros((4, 3)), np.zeros((5, 2))), np.zeros(4, np.int32)),
            loss="softmax_cross_entropy", optimizer=sgd(0.1), key=KEY, epochs=1)
    with pytest.raises(ValueError, match=r"`train_data` must be an \(inputs, targets\) pair"):
        fit(*mlp_model(), (np.zeros((4, 3)),), loss="softmax_cross_entropy",
            optimizer=sgd(0.1), key=KEY, epochs=1)


def test_an_optimizer_given_by_name_is_explained():
    with pytest.raises(TypeError, match=r"fit: `optimizer` must be an fnn.optim optimizer .*"
                                        r"fnn.optim.sgd\(learning_rate\)"):
        fit(*mlp_model(), (np.zeros((4, 3)), np.zeros(4, np.int32)),
            loss="softmax_cross_entropy", optimizer="sgd", key=KEY, epochs=1)


def test_full_batch_has_one_spelling():
    model, params, state = mlp_model()
    data = (np.ones((6, 3), np.float32), np.zeros(6, np.int32))
    result = fit(model, params, state, data, loss="softmax_cross_entropy", optimizer=sgd(0.1),
                 key=KEY, epochs=2, batch_size="full", progress=False)
    assert len(result.history["loss"]) == 2
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive integer; got None\. For one batch of every "
                                         r"example, say 'full'"):
        fit(model, params, state, data, loss="softmax_cross_entropy", optimizer=sgd(0.1),
            key=KEY, epochs=1, batch_size=None)


def mlp_model():
    model = serial(Dense(4), ReLU(), Dense(2))
    _, params, state = model.init(KEY, (None, 3))
    return model, params, state


# --- children and names --------------------------------------------------------------------------

def test_every_combinator_exposes_its_children():
    for model in (parallel(Dense(2), ReLU()), branch(Dense(2), ReLU()),
                  residual(Dense(2), shortcut=Dense(2)), serial(Dense(2))):
        assert model.layers and all(isinstance(c, Layer) for _, c in model.layers)
    assert [n for n, _ in residual(Dense(2), shortcut=Dense(2)).layers] == ["block", "shortcut"]


def test_walk_and_capture_reach_any_depth():
    model = serial(residual(Dense(3), ReLU()), Dense(2))
    paths = [info.path for info in walk(model, (None, 3))]
    assert paths == [("residual_0",), ("residual_0", "block"), ("residual_0", "block", "dense_0"),
                     ("residual_0", "block", "relu_0"), ("dense_0",)]
    _, params, state = model.init(KEY, (None, 3))
    x = jnp.arange(6.0).reshape(2, 3)
    y, outputs = jax.jit(lambda p: capture_outputs(model, p, state, x))(params)
    inner = outputs[("residual_0", "block", "dense_0")]
    np.testing.assert_allclose(inner, x @ params["residual_0"]["block"]["dense_0"]["w"]
                               + params["residual_0"]["block"]["dense_0"]["b"][None, :], rtol=1e-6)
    np.testing.assert_allclose(outputs[("dense_0",)], y)


def test_monitor_sees_inside_a_residual_block():
    model = serial(Dense(4), residual(Dense(4), ReLU()), Dense(2))
    _, params, state = model.init(KEY, (None, 3))
    x, y = np.ones((8, 3), np.float32), np.zeros(8, np.int32)
    # jitted (it is pure): one compilation instead of one per eager op
    stats = jax.jit(lambda p: fnn.monitor.layer_stats(model, p, state, (x, y),
                                                      loss="softmax_cross_entropy"))(params)
    assert "residual_0/block/dense_0" in stats and "grad_norm" in stats["residual_0/block/dense_0"]
    assert "dead_fraction" in stats["residual_0/block/relu_0"]


def test_parameter_keys_come_from_the_kind_not_the_display_name():
    layer = Dense(3)._replace(name="A dense layer, renamed for display")
    assert serial(layer).init(KEY, (None, 2))[1].keys() == {"dense_0"}
    assert Layer(lambda k, s: (s, {}, {}), lambda p, s, x, **kw: (x, s), "Spy(1)").kind == "spy"
    with pytest.raises(ValueError, match="`kind` must be an identifier"):
        Layer(lambda k, s: (s, {}, {}), lambda p, s, x, **kw: (x, s), "Spy", kind="not ok")


def test_todays_mlp_keeps_its_parameter_names():
    """Checkpoints of today's MLPs still load: the keys are the ones models had before kinds."""
    _, params, _ = mlp([8, 4, 2], activation="relu").init(KEY, (None, 5, 5))
    assert list(params) == ["flatten_0", "dense_0", "relu_0", "dense_1", "relu_1", "dense_2"]
    kinds = [layer.kind for layer in (LeakyReLU(), PReLU(), fnn.layers.Softmax(),
                                      fnn.layers.LogSoftmax(), fnn.layers.BinaryStep(),
                                      fnn.layers.DropConnect(3, 0.5), Flatten(),
                                      fnn.layers.Maxout(2), fnn.layers.Dropout(0.5))]
    assert kinds == ["leaky_relu", "prelu", "softmax", "log_softmax", "binary_step",
                     "drop_connect", "flatten", "maxout", "dropout"]
    assert Activation(jnp.tanh).kind == "tanh"


# --- compiling once ------------------------------------------------------------------------------

def counting_model():
    traces = []

    def init(key, input_shape):
        return input_shape[:-1] + (2,), {"w": jnp.ones((input_shape[-1], 2))}, {}

    def apply(params, state, x, *, key=None, train=False):
        traces.append(x.shape)
        return x @ params["w"], state

    return Layer(init, apply, "Counted()"), traces


def test_predict_and_evaluate_compile_once_per_model_and_shape():
    model, traces = counting_model()
    _, params, state = model.init(KEY, (None, 3))
    x, y = np.ones((10, 3), np.float32), np.zeros(10, np.int32)
    for _ in range(3):
        predict(model, params, state, x, batch_size=4)
    assert len(traces) == 1
    for _ in range(2):
        evaluate(model, params, state, (x, y), loss="softmax_cross_entropy", batch_size=4)
    # one compiled eval step; each call's label check only evaluates shapes, on one example
    assert traces.count((4, 3)) == 2 and set(traces) == {(4, 3), (1, 3)}


# --- resuming ------------------------------------------------------------------------------------

class _Interrupted(Exception):
    pass


def _train(tmp_path, *, interrupt_after_saves=None, resume=False, epochs=3):
    model = serial(Dense(8), ReLU(), fnn.layers.Dropout(0.2), Dense(3))
    _, params, state = model.init(KEY, (None, 4))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    y = rng.integers(0, 3, 50).astype(np.int32)
    return fit(model, params, state, (x, y), loss="softmax_cross_entropy",
               optimizer=adam(0.01), key=jax.random.PRNGKey(3), epochs=epochs, batch_size=8,
               checkpoint_path=str(tmp_path / "ck.npz"), checkpoint_every=3, resume=resume,
               progress=False, steps_per_call=1)  # one compiled step, not a scan per chunk size


def _assert_same(a, b):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_resuming_mid_epoch_reproduces_the_uninterrupted_run(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    full = _train(tmp_path / "a")
    saves, real_save = [], checkpoint.save

    def save_then_die(path, tree):
        real_save(path, tree)
        saves.append(tree["progress"]["batch"])
        if len(saves) == 4:  # epoch 1 of 7 batches: saves after steps 3, 6, the epoch end, 9
            raise _Interrupted

    (tmp_path / "b").mkdir()
    monkeypatch.setattr(checkpoint, "save", save_then_die)
    with pytest.raises(_Interrupted):
        _train(tmp_path / "b")
    assert saves == [3, 6, 0, 2]  # the last one is mid-epoch (2 batches into epoch 2)
    monkeypatch.setattr(checkpoint, "save", real_save)
    resumed = _train(tmp_path / "b", resume=True)
    _assert_same(full.params, resumed.params)
    _assert_same(full.opt_state, resumed.opt_state)
    assert full.history == resumed.history


def test_resume_uses_the_live_structure_not_importable_classes(tmp_path):
    """A NamedTuple optimizer state whose class cannot be imported by name still resumes."""
    from typing import NamedTuple

    class LocalState(NamedTuple):  # defined in a function: not importable from its module
        count: jax.Array

    def counting_sgd(rate):
        inner = sgd(rate)
        return fnn.optim.Optimizer(
            lambda p: (LocalState(jnp.zeros((), jnp.int32)), inner.init(p)),
            lambda g, s, p=None, **kw: (inner.update(g, s[1], p)[0],
                                        (LocalState(s[0].count + 1), inner.update(g, s[1], p)[1])))

    model, params, state = mlp_model()
    data = (np.ones((6, 3), np.float32), np.zeros(6, np.int32))
    path = str(tmp_path / "ck.npz")
    kwargs = dict(loss="softmax_cross_entropy", optimizer=counting_sgd(0.1), key=KEY,
                  batch_size=3, checkpoint_path=path, progress=False)
    fit(model, params, state, data, epochs=1, **kwargs)
    with pytest.raises(checkpoint.CheckpointError, match="cannot import the NamedTuple class"):
        checkpoint.load(path)
    result = fit(model, params, state, data, epochs=2, resume=True, **kwargs)
    assert int(result.opt_state[0].count) == 4


# --- a diverging loss stops training (issue 8) ---------------------------------------------------

def test_a_non_finite_loss_stops_fit_and_names_epoch_and_batch(tmp_path):
    model, params, state = mlp_model()
    x = np.ones((12, 3), np.float32)
    x[7] = np.nan  # one bad example: its shuffled batch is the first non-finite one
    y = np.zeros(12, np.int32)
    path = tmp_path / "ck.npz"
    kwargs = dict(loss="softmax_cross_entropy", optimizer=sgd(0.1), key=KEY, batch_size=4,
                  progress=False, checkpoint_path=str(path))
    with pytest.raises(fnn.TrainingDiverged, match=r"loss became nan at epoch 1, batch \d of 3"):
        fit(model, params, state, (x, y), epochs=2, **kwargs)
    assert not path.exists()  # nothing non-finite was saved
    result = fit(model, params, state, (x, y), epochs=1, check_finite=False,
                 **{**kwargs, "checkpoint_path": None})
    assert np.isnan(result.history["loss"][0])
