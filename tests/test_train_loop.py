"""`fit`'s compiled loop (issue 12) and its checks and output (issue 8): the loop equals the plain
step-by-step loop bit for bit, whatever the chunking and wherever the data lives; labels are
checked before training; one line per epoch; the checkpoint keeps the history compactly."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn.train
from fnn import checkpoint
from fnn.data import batch_indices, batches
from fnn.layers import Dense, Embedding, ReLU, serial
from fnn.optim import adam
from fnn.train import (Batch, EarlyStopping, check_labels, evaluate, fit, make_train_step)

KEY = jax.random.PRNGKey(1)


def _data(n=45, d=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1)).astype(np.int32) % classes


def _model(d=4, classes=3):
    model = serial(Dense(8), ReLU(), Dense(classes))
    _, params, state = model.init(jax.random.PRNGKey(0), (None, d))
    return model, params, state


def _fit(data, **options):
    model, params, state = _model()
    defaults = dict(loss="softmax_cross_entropy", optimizer=adam(0.05), key=KEY, epochs=2,
                    batch_size=8, progress=False)
    return fit(model, params, state, data, **{**defaults, **options})


def _reference(data, epochs=2, batch_size=8):
    """The loop `fit` runs, written step by step: one jitted step per padded batch, step key
    fold_in(fold_in(key, epoch), i), metrics weighted by the real examples."""
    model, params, state = _model()
    step = make_train_step(model, "softmax_cross_entropy", adam(0.05))
    opt_state = adam(0.05).init(params)
    history = {}
    for epoch in range(epochs):
        epoch_key = jax.random.fold_in(KEY, epoch)
        sums, count = None, 0.0
        for i, ((x, y), mask) in enumerate(batches(data, batch_size, key=epoch_key, pad=True)):
            params, state, opt_state, m = step(params, state, opt_state, Batch(x, y, mask),
                                               jax.random.fold_in(epoch_key, i))
            weighted = {k: v * float(mask.sum()) for k, v in m.items()}
            sums = weighted if sums is None else {k: sums[k] + weighted[k] for k in sums}
            count += float(mask.sum())
        for k, v in sums.items():
            history.setdefault(k, []).append(float(v) / count)
    return params, opt_state, history


def _assert_same(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def reference():
    return _reference(_data())


@pytest.mark.parametrize("steps_per_call", [None, 1, 4])
def test_fit_equals_the_step_by_step_loop_bit_for_bit(reference, steps_per_call):
    result = _fit(_data(), steps_per_call=steps_per_call)  # 45 = 5 batches of 8 + 5, padded
    params, opt_state, history = reference
    _assert_same(result.params, params)
    _assert_same(result.opt_state, opt_state)
    assert result.history == history


def test_host_batching_equals_device_batching(reference, monkeypatch):
    monkeypatch.setattr(fnn.train, "DEVICE_DATA_LIMIT", 0)  # numpy data stays on the host
    monkeypatch.setattr(fnn.train, "HOST_CHUNK_BYTES", 3 * 8 * 4 * 4)  # 3 steps of x per call
    result = _fit(_data())
    _assert_same(result.params, reference[0])
    assert result.history == reference[2]


def test_device_data_stays_and_the_callers_arrays_stay_valid(reference):
    x, y = _data()
    model, params, state = _model()
    kept = []
    result = fit(model, params, state, (jnp.asarray(x), jnp.asarray(y)),
                 loss="softmax_cross_entropy", optimizer=adam(0.05), key=KEY, epochs=2,
                 batch_size=8, progress=False,
                 hooks=[lambda epoch, logs, train_state: kept.append(train_state.params)])
    _assert_same(result.params, reference[0])
    # fit donates its buffers to each call: the arrays passed in, and those a hook kept, live on
    for tree in (params, *kept):
        assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree_util.tree_leaves(tree))
    _assert_same(kept[-1], result.params)


def test_early_stopping_keeps_the_best_weights_across_donation():
    x, y = _data(60)
    result = _fit((x[:40], y[:40]), validation_data=(x[40:], y[40:]), epochs=12,
                  early_stopping=EarlyStopping(patience=2, restore_best=True))
    model = _model()[0]
    val = evaluate(model, result.params, result.state, (x[40:], y[40:]),
                   loss="softmax_cross_entropy")
    best = result.history["val_loss"][result.best_epoch - 1]
    assert val["loss"] == pytest.approx(best, rel=1e-6)


def test_batch_indices_are_the_padded_batches():
    data = np.arange(11)
    index, mask = batch_indices(11, 4, key=KEY)
    rows = list(batches(data, 4, key=KEY, pad=True))
    assert index.shape == mask.shape == (3, 4)
    for (row, row_mask), i, m in zip(rows, index, mask):
        np.testing.assert_array_equal(row, i)
        np.testing.assert_array_equal(row_mask, m)
    assert mask[-1].tolist() == [1, 1, 1, 0]


# --- labels are checked against the model before training ------------------------------------

def test_out_of_range_labels_are_named_before_training():
    x, y = _data()
    y = y.copy()
    y[:5] = [3, 4, 3, 7, 0]
    with pytest.raises(ValueError, match=r"train_data: class labels must be integers in \[0, 3\) "
                                         r"for a model with 3 outputs; 4 of 45 labels are not: "
                                         r"3, 4, 7\."):
        _fit((x, y))
    with pytest.raises(ValueError, match=r"validation_data: .*: -1\."):
        _fit(_data(), validation_data=(x, np.full_like(y, -1)))
    model, params, state = _model()
    with pytest.raises(ValueError, match=r"evaluate: class labels"):
        evaluate(model, params, state, (x, y), loss="softmax_cross_entropy")


def test_padding_label_is_allowed_only_in_per_step_targets():
    model = serial(Embedding(5, 4), Dense(5))
    _, params, state = model.init(jax.random.PRNGKey(0), (None, 3))
    tokens = np.array([[1, 2, 3], [4, 0, 0]], np.int32)
    check_labels("fit", model, params, state,
                 Batch(tokens, np.array([[2, 3, 4], [0, -1, -1]], np.int32)))
    with pytest.raises(ValueError, match=r"in \[0, 5\) or -1 \(a padded step\).*: 5, 9\."):
        check_labels("fit", model, params, state,
                     Batch(tokens, np.array([[2, 3, 5], [9, -1, -1]], np.int32)))


def test_one_hot_and_regression_targets_are_not_label_checked():
    x, y = _data()
    one_hot = np.eye(3, dtype=np.float32)[y] * 7.0  # not probabilities, still not class labels
    _fit((x, one_hot), loss="softmax_cross_entropy", epochs=1)


def test_empty_data_and_bad_progress_are_named():
    x, y = _data()
    with pytest.raises(ValueError, match="fit: `train_data` holds no examples"):
        _fit((x[:0], y[:0]))
    with pytest.raises(ValueError, match="fit: `progress` must be True"):
        _fit((x, y), progress="yes")


# --- what fit shows ------------------------------------------------------------------------------

def test_one_line_per_epoch_with_the_early_stopping_decision():
    x, y = _data(60)
    lines = []
    result = _fit((x[:40], y[:40]), validation_data=(x[40:], y[40:]), epochs=30,
                  early_stopping=EarlyStopping(patience=2), progress="lines", log=lines.append)
    epochs = len(result.history["loss"])
    assert result.stopped_early and epochs < 30
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == epochs
    assert epoch_lines[0].startswith("epoch 1/30 - ") and "s - accuracy " in epoch_lines[0]
    assert epoch_lines[0].endswith("val_loss improved")
    assert epoch_lines[-1].endswith("val_loss did not improve for 2 of 2 epochs")
    assert lines[-2] == f"stopped early after epoch {epochs}: val_loss did not improve for 2 epochs"
    assert lines[-1].startswith(f"restored the weights of epoch {result.best_epoch}, the best "
                                "val_loss (")


def test_quiet_fit_prints_nothing():
    lines = []
    _fit(_data(), progress=False, log=lines.append)
    assert lines == []


# --- the checkpoint ------------------------------------------------------------------------------

def test_checkpoint_keeps_the_history_as_one_array_per_metric(tmp_path):
    path = str(tmp_path / "run.npz")
    first = _fit(_data(), epochs=3, checkpoint_path=path)
    saved = checkpoint.load(path)
    history = saved["progress"]["history"]
    assert sorted(history) == ["accuracy", "loss"]
    np.testing.assert_array_equal(history["loss"], np.asarray(first.history["loss"], np.float64))
    resumed = _fit(_data(), epochs=5, checkpoint_path=path, resume=True, log=lambda *a: None)
    uninterrupted = _fit(_data(), epochs=5)
    assert resumed.history == uninterrupted.history
    _assert_same(resumed.params, uninterrupted.params)


# --- memory and precision ----------------------------------------------------------------------

def test_remat_gives_the_same_outputs_and_gradients_and_recomputes():
    from fnn.layers import remat
    block = serial(Dense(8), ReLU(), Dense(8), ReLU())
    plain = serial(("block", block), Dense(3))
    rematted = serial(("block", remat(block)), Dense(3))
    _, params, state = plain.init(jax.random.PRNGKey(0), (None, 4))
    assert jax.tree_util.tree_structure(rematted.init(jax.random.PRNGKey(0), (None, 4))[1]) \
        == jax.tree_util.tree_structure(params)
    x, y = _data(6)

    def loss(model):
        return lambda p: jnp.mean(
            (model.apply(p, state, x, train=True)[0] - jax.nn.one_hot(y, 3)) ** 2)

    # jitted: eagerly every primitive of the backward pass would compile a program of its own
    _assert_same(jax.jit(jax.grad(loss(rematted)))(params), jax.jit(jax.grad(loss(plain)))(params))
    assert "remat" in str(jax.make_jaxpr(jax.grad(loss(rematted)))(params))
    assert "remat" not in str(jax.make_jaxpr(jax.grad(loss(plain)))(params))


def test_mixed_precision_keeps_float32_weights_and_tracks_float32_training():
    x, y = _data(64)
    full = _fit((x, y), epochs=3)
    for dtype, scale in (("bfloat16", 1.0), ("float16", 1024.0)):
        mixed = _fit((x, y), epochs=3, compute_dtype=dtype, loss_scale=scale)
        assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(mixed.params))
        # bfloat16 keeps 8 bits of mantissa: losses agree to a few parts in a thousand
        np.testing.assert_allclose(mixed.history["loss"], full.history["loss"], rtol=1e-2)
    with pytest.raises(ValueError, match=r"`compute_dtype` must be one of \('float32', "
                                         r"'bfloat16', 'float16'\)"):
        _fit((x, y), compute_dtype="int8")
