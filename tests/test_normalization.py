"""BatchNorm and LayerNorm against NumPy, the closed-form running averages, padded batches, fit."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import fnn
from fnn.core import Context, LayerError
from fnn.layers import BatchNorm, Dense, LayerNorm, serial

KEY = jax.random.PRNGKey(0)
RNG = np.random.default_rng(2)


@pytest.fixture(autouse=True)
def _same_draws_in_any_order():
    """Each test draws its data from a fresh generator, so that its numbers do not depend on
    which tests ran before it in the same process (pytest-xdist shares tests out differently
    for different selections)."""
    global RNG
    RNG = np.random.default_rng(2)


def np_batch_norm(x, gamma, beta, eps):
    axes = tuple(range(x.ndim - 1))
    mean, var = x.mean(axes), x.var(axes)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta, mean, var


def jitted(layer):
    """``layer.apply`` compiled: one compilation instead of one per operation."""
    return jax.jit(layer.apply, static_argnames="train")


def random_affine(params):
    return {k: jnp.asarray(RNG.normal(size=v.shape), v.dtype) for k, v in params.items()}


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5, 2)], ids=["dense", "nhwc"])
def test_train_mode_uses_batch_statistics(shape):
    layer = BatchNorm(decay=0.9, epsilon=1e-3)
    out, params, state = layer.init(KEY, (None,) + shape[1:])
    assert out == (None,) + shape[1:]
    np.testing.assert_array_equal(state["mean"], 0.0)
    np.testing.assert_array_equal(state["var"], 1.0)  # running variance starts at 1
    np.testing.assert_array_equal(params["gamma"], 1.0)
    np.testing.assert_array_equal(params["beta"], 0.0)
    params = random_affine(params)
    x = RNG.normal(2.0, 3.0, size=shape)
    y, new = jitted(layer)(params, state, jnp.asarray(x, jnp.float32), train=True)
    expected, mean, var = np_batch_norm(x, np.asarray(params["gamma"]),
                                        np.asarray(params["beta"]), 1e-3)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(new["mean"], 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(new["var"], 0.9 + 0.1 * var, rtol=1e-5)


def test_running_averages_closed_form_after_n_steps():
    """After N train steps on batches with statistics μ_t, σ²_t (t = 1..N):
    mean_N = Σ_t (1 − d) d^(N−t) μ_t and var_N = d^N · 1 + Σ_t (1 − d) d^(N−t) σ²_t."""
    d, n_steps = 0.8, 6
    layer = BatchNorm(decay=d)
    _, params, state = layer.init(KEY, (None, 3))
    apply = jitted(layer)
    batches = [RNG.normal(t, 1 + t, size=(5, 3)) for t in range(n_steps)]
    for x in batches:
        _, state = apply(params, state, jnp.asarray(x, jnp.float32), train=True)
    weights = [(1 - d) * d ** (n_steps - 1 - t) for t in range(n_steps)]
    mean = sum(w * x.mean(0) for w, x in zip(weights, batches))
    var = d ** n_steps + sum(w * x.var(0) for w, x in zip(weights, batches))
    np.testing.assert_allclose(state["mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(state["var"], var, rtol=1e-5)
    # the same batch N times: mean_N = (1 − d^N) μ
    _, _, state = layer.init(KEY, (None, 3))
    for _ in range(n_steps):
        _, state = apply(params, state, jnp.asarray(batches[0], jnp.float32), train=True)
    np.testing.assert_allclose(state["mean"], (1 - d ** n_steps) * batches[0].mean(0), rtol=1e-5)


def test_momentum_conventions():
    x = jnp.asarray(RNG.normal(size=(4, 2)), jnp.float32)
    torch_like = BatchNorm(pytorch_momentum=0.1, running_variance="unbiased")
    _, params, state = torch_like.init(KEY, (None, 2))
    _, new = jitted(torch_like)(params, state, x, train=True)
    # PyTorch: running = (1 − momentum)·running + momentum·batch, batch variance unbiased
    np.testing.assert_allclose(new["mean"], 0.1 * np.asarray(x).mean(0), rtol=1e-5)
    np.testing.assert_allclose(new["var"], 0.9 + 0.1 * np.asarray(x).var(0, ddof=1), rtol=1e-5)
    _, keras = jitted(BatchNorm(decay=0.9))(params, state, x, train=True)
    np.testing.assert_allclose(keras["var"], 0.9 + 0.1 * np.asarray(x).var(0), rtol=1e-5)
    assert BatchNorm().name == "BatchNorm(decay=0.99)"
    with pytest.raises(ValueError, match=r"`decay` .*weight of the old.*not both"):
        BatchNorm(decay=0.9, pytorch_momentum=0.1)
    with pytest.raises(ValueError, match=r"BatchNorm: `decay` must be a real number in \[0, 1\]"):
        BatchNorm(decay=1.5)
    with pytest.raises(ValueError, match=r"`running_variance` must be one of"):
        BatchNorm(running_variance="sample")


def test_eval_mode_reads_running_averages_and_keeps_state():
    layer = BatchNorm(epsilon=1e-5)
    _, params, _ = layer.init(KEY, (None, 2, 2, 3))
    params = random_affine(params)
    state = {"mean": jnp.asarray([1.0, -2.0, 0.5]), "var": jnp.asarray([4.0, 0.25, 1.0])}
    x = RNG.normal(size=(3, 2, 2, 3))
    y, new = jitted(layer)(params, state, jnp.asarray(x, jnp.float32), train=False,
                         context=Context(mask=jnp.asarray([1.0, 0.0, 1.0])))
    assert new is state or all(np.array_equal(new[k], state[k]) for k in state)
    expected = (np.asarray(params["gamma"]) * (x - np.asarray(state["mean"]))
                / np.sqrt(np.asarray(state["var"]) + 1e-5) + np.asarray(params["beta"]))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(5, 2, 3, 2)], ids=["nhwc"])  # (batch, features): the fit test
def test_padded_batch_equals_unpadded_batch(shape):
    """Rows with mask 0 (here junk, NaN included) change neither the real rows' outputs nor the
    running statistics; without the mask they would."""
    layer = BatchNorm(decay=0.7, running_variance="unbiased")
    _, params, state = layer.init(KEY, (None,) + shape[1:])
    params = random_affine(params)
    x = RNG.normal(size=shape).astype(np.float32)
    junk = np.full((3,) + shape[1:], 1e3, np.float32)
    junk[1] = np.nan
    padded = np.concatenate([x[:2], junk[:2], x[2:], junk[2:]])
    mask = np.array([1, 1, 0, 0, 1, 1, 1, 0], np.float32)
    apply = jitted(layer)
    y, new = apply(params, state, jnp.asarray(x), train=True)
    y_pad, new_pad = apply(params, state, jnp.asarray(padded), train=True,
                                 context=Context(mask=jnp.asarray(mask)))
    np.testing.assert_allclose(np.asarray(y_pad)[mask == 1], y, rtol=1e-5, atol=1e-5)
    for k in ("mean", "var"):
        np.testing.assert_allclose(new_pad[k], new[k], rtol=1e-5)
    # the same padded batch with copies instead of junk and no mask: different statistics
    copies = np.concatenate([x[:2], x[:2], x[2:], x[2:3]])
    _, unmasked = apply(params, state, jnp.asarray(copies), train=True)
    assert not np.allclose(unmasked["mean"], new["mean"])
    # gradients of a loss over the real rows equal the unpadded ones (finite junk here: a NaN
    # row times its zero loss weight is NaN in any masked loss, fit's included)
    finite = np.where(np.isnan(padded), 7.0, padded)
    weights = np.random.default_rng(5).normal(size=x.shape).astype(np.float32)
    padded_weights = np.zeros_like(finite)
    padded_weights[mask == 1] = weights

    def loss(p, v, w, context):
        return jnp.sum(layer.apply(p, state, v, train=True, context=context)[0] * w)

    g = jax.jit(jax.grad(loss))(params, jnp.asarray(x), weights, None)
    g_pad = jax.jit(jax.grad(loss))(params, jnp.asarray(finite), padded_weights,
                           Context(mask=jnp.asarray(mask)))
    for k in g:
        np.testing.assert_allclose(g_pad[k], g[k], rtol=1e-4, atol=1e-5)


def test_batch_norm_through_fit_ignores_padded_rows():
    """7 examples in batches of 4: the last batch has 3 real rows and 1 padding row. With
    decay 0.5, after one epoch the running mean is 0.25·μ(first batch) + 0.5·μ(last batch's real
    rows) for whichever split fit's shuffle made; it must be one of the 35 correct splits, and
    counting the padding row would give none of them."""
    x = (RNG.normal(size=(7, 3)) * np.array([1.0, 10.0, 100.0])).astype(np.float32)
    y = np.arange(7) % 2
    model = serial(BatchNorm(decay=0.5), Dense(2))
    _, params, state = model.init(KEY, (None, 3))
    result = fnn.fit(model, params, state, (x, y), loss=fnn.losses.softmax_cross_entropy,
                     optimizer=fnn.optim.sgd(0.1), key=jax.random.PRNGKey(3), epochs=1,
                     batch_size=4, progress=False, log=lambda *a: None)
    got = np.asarray(result.state["batch_norm_0"]["mean"])

    def running(first, last):
        return 0.25 * x[list(first)].mean(0) + 0.5 * x[list(last)].mean(0)

    correct, wrong = [], []
    for first in itertools.combinations(range(7), 4):
        last = [i for i in range(7) if i not in first]
        correct.append(running(first, last))
        for extra in last:  # the padding row counted as a fourth example
            wrong.append(running(first, last + [extra]))
    def distance(a, b):
        return np.abs(a - b).max() / np.abs(b).max()

    # the test can tell the two apart: no padded split comes near a correct one
    assert min(distance(w, c) for w in wrong for c in correct) > 1e-3
    assert min(distance(got, c) for c in correct) < 1e-5, \
        "BatchNorm's running mean counted the padding rows of fit's last batch"


def test_layer_norm_matches_numpy():
    layer = LayerNorm()
    out, params, state = layer.init(KEY, (None, 3, 4))
    assert out == (None, 3, 4) and state == {}
    params = random_affine(params)
    x = RNG.normal(1.0, 2.0, size=(2, 3, 4))
    y, _ = jitted(layer)(params, state, jnp.asarray(x, jnp.float32))
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    expected = (np.asarray(params["gamma"]) * (x - mean) / np.sqrt(var + 1e-5)
                + np.asarray(params["beta"]))
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_finite_differences_float64(x64):
    """Train mode with a padding mask (eval mode is checked by the conformance registry)."""
    train = True
    layer = serial(BatchNorm(), LayerNorm())
    _, params, state = layer.init(KEY, (4, 2, 2, 3))
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(RNG.normal(size=a.shape)), params)
    state = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64) + 0.5, state)
    x = jnp.asarray(RNG.normal(size=(4, 2, 2, 3)))
    context = Context(mask=jnp.asarray([1.0, 1.0, 0.0, 1.0]))
    f = jax.jit(lambda p, v: layer.apply(p, state, v, train=train, context=context)[0])
    check_grads(f, (params, x), order=1, modes=["rev"], eps=1e-6)


def test_errors_and_kinds():
    with pytest.raises(LayerError, match=r"BatchNorm\(decay=0.99\) expects inputs of shape"):
        BatchNorm().init(KEY, (4,))
    layer = BatchNorm()
    _, params, state = layer.init(KEY, (None, 3))
    with pytest.raises(LayerError, match=r"expects inputs of shape \(batch, \.\.\., 3\); got"):
        layer.apply(params, state, jnp.zeros((2, 4)), train=True)
    assert (BatchNorm().kind, LayerNorm().kind) == ("batch_norm", "layer_norm")
    _, params, _ = BatchNorm(use_scale=False, use_bias=False).init(KEY, (None, 3))
    assert params == {}
