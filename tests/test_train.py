"""The train step, `fit`, `evaluate`, `predict`, early stopping and resuming from a checkpoint."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import losses
from fnn.layers import Dense, ReLU, serial
from fnn.optim import sgd
from fnn.data import batches
from fnn.train import (Batch, EarlyStopping, early_stopping_init, early_stopping_update, evaluate,
                       fit, make_train_step, masked_mean, predict)


def _classification_data(n=100, d=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
    return x, y % classes


def _small_model(d=5, classes=3):
    model = serial(Dense(16), ReLU(), Dense(classes))
    _, params, state = model.init(jax.random.PRNGKey(0), (None, d))
    return model, params, state


def _fit(data, **kwargs):
    model, params, state = _small_model()
    defaults = dict(loss="softmax_cross_entropy", optimizer=sgd(0.1), key=jax.random.PRNGKey(1),
                    epochs=3, batch_size=16, progress=False)
    return fit(model, params, state, data, **{**defaults, **kwargs})


def _assert_trees_equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("n, batch_size", [(10, 3), (9, 3), (1, 4), (7, 7)])
def test_padded_batches_cover_each_index_once(n, batch_size):
    seen = []
    for idx, mask in batches(np.arange(n), batch_size, key=jax.random.PRNGKey(0), pad=True):
        assert idx.shape == mask.shape == (min(batch_size, n),)
        assert mask.sum() >= 1 and np.all(np.diff(mask) <= 0), "real examples first, padding last"
        seen.extend(idx[mask == 1].tolist())
    assert sorted(seen) == list(range(n))


def test_shuffling_depends_on_the_key_only():
    order = lambda k: np.concatenate(
        [i for i, _ in batches(np.arange(50), 8, key=jax.random.PRNGKey(k), pad=True)])
    np.testing.assert_array_equal(order(3), order(3))
    assert not np.array_equal(order(3), order(4))


def test_masked_mean_ignores_padding():
    values, mask = jnp.array([1.0, 2.0, 3.0, 100.0]), jnp.array([1.0, 1.0, 1.0, 0.0])
    assert masked_mean(values, mask) == pytest.approx(2.0)
    assert masked_mean(values, jnp.zeros(4)) == 0.0


def test_step_is_traced_once_per_run_even_with_a_smaller_last_batch():
    traces = []

    def counting_loss(logits, labels):
        traces.append(logits.shape)  # runs only when the step is traced
        return losses.softmax_cross_entropy(logits, labels)

    x, y = _classification_data(n=70)  # 70 = 4 batches of 16 + 6
    _fit((x, y), loss=counting_loss, epochs=2)
    assert (6, 3) not in traces, traces  # the remainder is padded, never a step of its own
    # traced once to compile the epoch's loop and once by eval_shape for its metrics' shapes
    assert traces.count((16, 3)) <= 2, traces


def test_padded_examples_do_not_change_the_step():
    model, params, state = _small_model()
    step = make_train_step(model, "softmax_cross_entropy", sgd(0.5))
    x, y = _classification_data(n=6)
    opt_state = sgd(0.5).init(params)
    key = jax.random.PRNGKey(0)
    real = step(params, state, opt_state, Batch(x[:4], y[:4], np.ones(4, np.float32)), key)
    garbage_x = np.concatenate([x[:4], 1e3 * np.ones((2, 5), np.float32)])
    padded = step(params, state, opt_state,
                  Batch(garbage_x, np.concatenate([y[:4], y[:2]]), np.array([1, 1, 1, 1, 0, 0], np.float32)),
                  key)
    chex_close = lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    jax.tree_util.tree_map(chex_close, real[0], padded[0])
    chex_close(real[3]["loss"], padded[3]["loss"])


def test_full_batch_gradient_descent_reaches_least_squares(x64):
    """Linear regression by full-batch GD on ½‖Xw + b − y‖² converges to the lstsq solution."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3))
    y = x @ np.array([[1.5], [-2.0], [0.5]]) + 0.3 + 0.1 * rng.normal(size=(64, 1))
    model = Dense(1, dtype=jnp.float64)
    _, params, state = model.init(jax.random.PRNGKey(0), (None, 3))
    result = fit(model, params, state, (x, y), loss="half_squared_error", optimizer=sgd(0.1),
                 key=jax.random.PRNGKey(0), epochs=500, batch_size="full", progress=False)
    design = np.hstack([x, np.ones((64, 1))])
    expected = np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(np.asarray(result.params["w"]), expected[:3], atol=1e-6)
    np.testing.assert_allclose(np.asarray(result.params["b"]), expected[3], atol=1e-6)


def test_online_learning_runs_one_example_per_step():
    x, y = _classification_data(n=12)
    result = _fit((x, y), batch_size=1, epochs=2)
    assert len(result.history["loss"]) == 2


def test_fit_learns_and_is_deterministic():
    data = _classification_data(n=300)
    a, b = _fit(data, epochs=15), _fit(data, epochs=15)
    _assert_trees_equal(a.params, b.params)
    assert a.history["loss"][-1] < 0.5 * a.history["loss"][0]
    assert a.history["accuracy"][-1] > 0.9


def test_validation_metrics_are_logged_each_epoch():
    x, y = _classification_data(n=120)
    result = _fit((x[:100], y[:100]), validation_data=(x[100:], y[100:]), epochs=4)
    assert set(result.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 4 for v in result.history.values())


def test_evaluate_matches_a_direct_computation():
    model, params, state = _small_model()
    x, y = _classification_data(n=37)
    got = evaluate(model, params, state, (x, y), loss="softmax_cross_entropy", batch_size=8)
    # the network and the loss written out in NumPy
    p = jax.tree_util.tree_map(np.asarray, params)
    logits = np.maximum(x @ p["dense_0"]["w"] + p["dense_0"]["b"], 0) @ p["dense_1"]["w"] \
        + p["dense_1"]["b"]
    top = logits.max(-1, keepdims=True)
    log_p = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    assert got["loss"] == pytest.approx(float(-log_p[np.arange(len(y)), y].mean()), rel=1e-5)
    assert got["accuracy"] == pytest.approx(float((logits.argmax(-1) == y).mean()))


def test_predict_trims_padding_and_matches_apply():
    model, params, state = _small_model()
    x, _ = _classification_data(n=23)
    out = predict(model, params, state, x, batch_size=10)
    np.testing.assert_allclose(np.asarray(out), np.asarray(model.apply(params, state, x)[0]),
                               rtol=1e-5, atol=1e-6)


def test_early_stopping_rule_counts_patience_and_remembers_the_best():
    rule = EarlyStopping(patience=2, min_delta=0.1)
    es = early_stopping_init(rule, "p0", "s0")
    stops = []
    for epoch, value in enumerate([1.0, 0.8, 0.75, 0.72, 0.5]):
        es, stop = early_stopping_update(rule, es, value, epoch, f"p{epoch}", f"s{epoch}")
        stops.append(stop)
    # 0.75 and 0.72 do not beat 0.8 by more than 0.1: the second of them exhausts the patience
    assert stops == [False, False, False, True, False]
    assert (es.best, es.best_epoch, es.best_params) == (0.5, 4, "p4")


def test_early_stopping_mode_max():
    rule = EarlyStopping(monitor="val_accuracy", patience=1, mode="max")
    es = early_stopping_init(rule, None, None)
    es, stop = early_stopping_update(rule, es, 0.5, 0, None, None)
    es, stop = early_stopping_update(rule, es, 0.4, 1, None, None)
    assert stop and es.best == 0.5


def test_fit_stops_early_and_restores_the_best_params():
    x, y = _classification_data(n=120)
    snapshots = []
    hook = lambda epoch, logs, ts: snapshots.append(ts.params)
    result = _fit((x[:100], y[:100]), validation_data=(x[100:], y[100:]), epochs=20, hooks=[hook],
                  early_stopping=EarlyStopping(patience=2, min_delta=1e9))
    assert result.stopped_early and len(result.history["loss"]) == 3 and result.best_epoch == 1
    _assert_trees_equal(result.params, snapshots[0])  # nothing beats epoch 1 by 1e9


def test_a_hook_can_stop_training():
    x, y = _classification_data(n=40)
    result = _fit((x, y), epochs=10, hooks=[lambda epoch, logs, ts: epoch == 1])
    assert result.stopped_early and len(result.history["loss"]) == 2


def test_resuming_from_a_checkpoint_matches_an_uninterrupted_run(tmp_path):
    x, y = _classification_data(n=90)
    data, val = (x[:70], y[:70]), (x[70:], y[70:])
    kwargs = dict(validation_data=val, early_stopping=EarlyStopping(patience=50))
    full = _fit(data, epochs=4, checkpoint_path=str(tmp_path / "full.npz"), **kwargs)
    path = str(tmp_path / "part.npz")
    _fit(data, epochs=2, checkpoint_path=path, **kwargs)
    resumed = _fit(data, epochs=4, checkpoint_path=path, resume=True, log=lambda *a: None, **kwargs)
    _assert_trees_equal(full.params, resumed.params)
    _assert_trees_equal(full.opt_state, resumed.opt_state)
    assert full.history == resumed.history


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), r"`batch_size` must be a positive integer; got 0\. For one batch of every example, say 'full'"),
    (dict(early_stopping=EarlyStopping()), "no `validation_data`"),
    (dict(validation_data=(np.zeros((3, 5), np.float32), np.zeros(2, np.int32))),
     "validation_data: every array needs the same number of examples"),
])
def test_fit_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _fit(_classification_data(n=20), **kwargs)


def test_early_stopping_on_an_unlogged_metric_is_named():
    x, y = _classification_data(n=40)
    with pytest.raises(ValueError, match="'val_f1', which is not among the logged metrics"):
        _fit((x[:30], y[:30]), validation_data=(x[30:], y[30:]),
             early_stopping=EarlyStopping(monitor="val_f1"))


def test_augment_transforms_each_training_batch_with_its_own_key():
    model, params, state = _small_model()
    seen = []

    def augment(key, inputs):
        seen.append(key.shape)
        return jnp.zeros_like(inputs)  # the model then sees only zeros

    step = make_train_step(model, "softmax_cross_entropy", sgd(0.1), augment=augment)
    x, y = _classification_data(n=8)
    batch, key = Batch(x, y, np.ones(8, np.float32)), jax.random.PRNGKey(0)
    _, _, _, got = step(params, state, sgd(0.1).init(params), batch, key)
    zeros = model.apply(params, state, np.zeros_like(x))[0]
    assert seen and float(got["loss"]) == pytest.approx(
        float(losses.softmax_cross_entropy(zeros, y).mean()), rel=1e-5)


def test_penalty_is_added_to_the_objective():
    model, params, state = _small_model()
    x, y = _classification_data(n=8)
    batch, key = Batch(x, y, np.ones(8, np.float32)), jax.random.PRNGKey(0)
    plain = make_train_step(model, "softmax_cross_entropy", sgd(1.0))
    decayed = make_train_step(model, "softmax_cross_entropy", sgd(1.0),
                              penalty=lambda p: 0.5 * losses.l2_penalty(p))
    a = plain(params, state, sgd(1.0).init(params), batch, key)[0]
    b = decayed(params, state, sgd(1.0).init(params), batch, key)[0]
    # ∂/∂w of ½·½Σw² is ½w: the decayed step shrinks every weight by half of itself more
    np.testing.assert_allclose(np.asarray(a["dense_0"]["w"] - b["dense_0"]["w"]),
                               0.5 * np.asarray(params["dense_0"]["w"]), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(a["dense_0"]["b"]), np.asarray(b["dense_0"]["b"]))


def test_only_an_explicit_true_from_a_hook_stops_training():
    x, y = _classification_data(n=40)
    result = _fit((x, y), epochs=3, hooks=[lambda epoch, logs, ts: 1])  # e.g. tqdm.update's value
    assert not result.stopped_early and len(result.history["loss"]) == 3


def test_entries_a_hook_adds_to_the_logs_join_the_history():
    x, y = _classification_data(n=40)

    def double_loss(epoch, logs, train_state):
        logs["double_loss"] = 2 * logs["loss"]

    result = _fit((x, y), epochs=2, hooks=[double_loss])
    assert result.history["double_loss"] == [2 * v for v in result.history["loss"]]


def test_per_step_weights_read_the_target_entry_of_a_dict_of_sequence_masks():
    """A seq2seq batch names its masks {"source": ..., "target": ...}: per-step losses (B, T)
    count the target's real steps (times the example mask), not the source's."""
    from fnn.train import entry_weights
    source = np.array([[1, 1, 1], [1, 0, 0]], np.float32)
    target = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], np.float32)
    batch = Batch(np.zeros((2, 3)), np.zeros((2, 4)), mask=np.array([1.0, 0.0]),
                  seq_mask={"source": source, "target": target})
    np.testing.assert_array_equal(entry_weights(batch, (2, 4)), target * [[1], [0]])
    np.testing.assert_array_equal(entry_weights(batch, (2, 4, 5)).shape, (2, 4, 5))
    # per-example quantities get the example mask only; a dict without "target" adds nothing
    np.testing.assert_array_equal(entry_weights(batch, (2,)), [1, 0])
    only_source = batch._replace(seq_mask={"source": source})
    np.testing.assert_array_equal(entry_weights(only_source, (2, 4)), [[1] * 4, [0] * 4])


def test_microbatches_give_the_whole_batch_gradient_and_metrics(x64):
    # float64: slices change only the order of the sums
    model, params, state = _small_model()
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
    x, y = _classification_data(n=12)
    mask = np.array([1.0, 0.0] * 5 + [0.0] * 2)  # 2 slices hold 5 and 0 real rows, 3 slices 2, 1, 2
    batch, key = Batch(x.astype(np.float64), y, mask), jax.random.PRNGKey(0)
    optimizer = sgd(0.5)

    def run(microbatches):
        step = make_train_step(model, "softmax_cross_entropy", optimizer, microbatches=microbatches,
                               penalty=lambda p: 0.1 * losses.l2_penalty(p), loss_scale=8.0)
        return step(params, state, optimizer.init(params), batch, key)

    whole = run(1)
    assert 0 < float(whole[3]["accuracy"]) < 1
    for microbatches in (2, 3):
        sliced = run(microbatches)
        for a, b in zip(jax.tree_util.tree_leaves((whole[0], whole[3])),
                        jax.tree_util.tree_leaves((sliced[0], sliced[3])), strict=True):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12, atol=1e-14)


def test_microbatches_give_batchnorm_one_update_per_slice():
    from fnn.layers import BatchNorm
    model = serial(Dense(4), BatchNorm(), Dense(3))
    _, params, state = model.init(jax.random.PRNGKey(0), (None, 5))
    x, y = _classification_data(n=8)
    step = make_train_step(model, "softmax_cross_entropy", sgd(0.1), microbatches=2)
    new_state = step(params, state, sgd(0.1).init(params), Batch(x, y), jax.random.PRNGKey(0))[1]
    expected = state
    apply = jax.jit(lambda p, s, x: model.apply(p, s, x, train=True)[1])
    for rows in (slice(0, None, 2), slice(1, None, 2)):  # the interleaved slices, in turn
        expected = apply(params, expected, x[rows])
    for a, b in zip(jax.tree_util.tree_leaves(new_state), jax.tree_util.tree_leaves(expected),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    assert not np.allclose(np.asarray(jax.tree_util.tree_leaves(new_state)[0]),
                           np.asarray(jax.tree_util.tree_leaves(state)[0]))


def test_fit_with_microbatches_trains_as_without():
    data = _classification_data(n=100)  # 100 = 6 × 16 + 4: the padded last batch's slices differ
    whole, sliced = _fit(data), _fit(data, microbatches=4)
    for a, b in zip(jax.tree_util.tree_leaves(whole.params), jax.tree_util.tree_leaves(sliced.params),
                    strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sliced.history["loss"], whole.history["loss"], rtol=1e-5)


def test_microbatches_that_do_not_divide_the_batch_are_named():
    model, params, state = _small_model()
    x, y = _classification_data(n=8)
    with pytest.raises(ValueError, match="`microbatches` must be a positive integer; got 0"):
        make_train_step(model, "softmax_cross_entropy", sgd(0.1), microbatches=0)
    step = make_train_step(model, "softmax_cross_entropy", sgd(0.1), microbatches=3)
    with pytest.raises(ValueError, match=r"a batch of 8 examples does not split into "
                                         r"`microbatches`=3 equal slices"):
        step(params, state, sgd(0.1).init(params), Batch(x, y), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"fit: `microbatches`=3 must divide the batch size 16"):
        _fit(_classification_data(n=20), microbatches=3)
