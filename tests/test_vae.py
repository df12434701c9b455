"""The VAE (fnn/models/vae.py): structure, the closed-form KL against NumPy and a Monte-Carlo
estimate, the reparameterization gradient against float64 finite differences, eval mode, the
ELBO loss."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.core import LayerError
from fnn.layers import GaussianSample
from fnn.models import VAEOutput, decode, dense_vae, elbo_loss, encode, kl_divergence
from fnn.models.vae import reconstruction_nll

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def small_vae():
    """One small VAE for the tests below: (7, 4) inputs, hidden [6], latent 3 (the layer sizes
    of test_autoencoders.py's models, so eager init compiles nothing new)."""
    model = dense_vae((7, 4), [6], 3)
    return (model, *model.init(KEY, (None, 7, 4)))


@pytest.fixture(scope="module")
def jitted(small_vae):
    """The small VAE's apply, encode and decode, jitted once for the tests below (eagerly, each
    op of the model would compile a program of its own)."""
    model = small_vae[0]
    return (jax.jit(model.apply, static_argnames="train"),
            jax.jit(lambda params, state, x: encode(model, params, state, x)),
            jax.jit(lambda params, state, z: decode(model, params, state, z)))


# inputs in NumPy (a device_put compiles nothing; jax.random.uniform would compile)
X = np.random.default_rng(0).uniform(size=(5, 7, 4)).astype(np.float32)


def test_dense_vae_shapes_param_keys_and_halves(small_vae, jitted):
    model, shape, params, state = small_vae
    apply, encode_, decode_ = jitted
    assert shape == VAEOutput((None, 7, 4), (None, 3), (None, 3))
    assert set(params) == {"encoder", "sample", "decoder"} and params["sample"] == {}
    assert set(params["encoder"]["gaussian"]) == {"mean", "logvar"}
    assert params["decoder"]["dense_0"]["w"].shape == (3, 6)
    x = X
    out, _ = apply(params, state, x, key=KEY, train=True)
    assert isinstance(out, VAEOutput)
    assert [a.shape for a in out] == [(5, 7, 4), (5, 3), (5, 3)]
    mean, logvar = encode_(params, state, x)
    np.testing.assert_allclose(out.mean, mean, rtol=1e-6)
    assert decode_(params, state, mean).shape == (5, 7, 4)
    with pytest.raises(LayerError, match=r"vae expects inputs of shape \(batch, 7, 4\); "
                                         r"got \(batch, 28\)"):
        model.init(KEY, (None, 28))


def test_eval_mode_is_deterministic_keyless_and_decodes_the_mean(small_vae, jitted):
    model, _, params, state = small_vae
    apply, _, decode_ = jitted
    x = X
    first, _ = apply(params, state, x)
    second, _ = apply(params, state, x)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(first.reconstruction, decode_(params, state, first.mean),
                               rtol=1e-6)
    one, _ = apply(params, state, x, key=jax.random.PRNGKey(1), train=True)
    two, _ = apply(params, state, x, key=jax.random.PRNGKey(2), train=True)
    np.testing.assert_allclose(one.mean, two.mean, rtol=1e-6)
    assert not np.allclose(one.reconstruction, two.reconstruction)
    with pytest.raises(LayerError, match=r"GaussianSample\(\) in `sample` draws its noise"):
        model.apply(params, state, x, train=True)


def test_kl_matches_the_numpy_formula_and_a_monte_carlo_estimate(x64):
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(3, 4))
    logvar = rng.normal(scale=0.7, size=(3, 4))
    var = np.exp(logvar)
    # the same divergence written per dimension: log(1/σ) + (σ² + μ²)/2 − 1/2
    expected = np.sum(-0.5 * logvar + 0.5 * (var + mean ** 2) - 0.5, axis=1)
    # both divergences in one program (eagerly, each op compiles on its own)
    got, of_zeros = jax.jit(lambda mean, logvar, zeros: (
        kl_divergence(mean, logvar), kl_divergence(zeros, zeros)))(mean, logvar, np.zeros((1, 5)))
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12)

    # Monte Carlo: KL = E_q[log q(z) − log p(z)], z ~ N(μ, σ²), 200,000 draws per example
    z = mean + np.sqrt(var) * rng.normal(size=(200_000, 3, 4))
    log_q = -0.5 * (np.log(2 * np.pi) + logvar + (z - mean) ** 2 / var)
    log_p = -0.5 * (np.log(2 * np.pi) + z ** 2)
    samples = np.sum(log_q - log_p, axis=2)
    stderr = samples.std(axis=0) / np.sqrt(len(samples))
    assert np.all(np.abs(samples.mean(axis=0) - np.asarray(got)) < 4 * stderr)
    np.testing.assert_allclose(of_zeros, [0.0])


def test_reparameterization_gradient_reaches_mean_and_logvar(x64):
    """d/dμ and d/d(log σ²) of f(z) = Σ sin(z)·c, z = μ + exp(½ log σ²) ε with the ε of a fixed
    key, against central finite differences in float64."""
    sample = GaussianSample()
    c = np.array([[1.0, -2.0], [0.5, 3.0]])

    @jax.jit
    def f(mean, logvar):
        z, _ = sample.apply({}, {}, (mean, logvar), key=KEY, train=True)
        return jnp.sum(jnp.sin(z) * c)

    mean = np.array([[0.3, -0.1], [1.2, 0.4]])
    logvar = np.array([[-0.5, 0.2], [0.1, -1.0]])
    grad_mean, grad_logvar = jax.device_get(jax.jit(jax.grad(f, argnums=(0, 1)))(mean, logvar))
    eps = np.asarray(jax.random.normal(KEY, mean.shape, mean.dtype))
    # in NumPy from here: no eager op compiles
    z = mean + np.exp(0.5 * logvar) * eps
    np.testing.assert_allclose(grad_mean, np.cos(z) * np.asarray(c), rtol=1e-10)  # ∂z/∂μ = 1
    h = 1e-6
    for index in np.ndindex(*mean.shape):
        bump = np.zeros_like(mean)
        bump[index] = h
        # float64 differences of the float64 values, in Python (no eager jnp subtract)
        fd_mean = (float(f(mean + bump, logvar)) - float(f(mean - bump, logvar))) / (2 * h)
        fd_logvar = (float(f(mean, logvar + bump)) - float(f(mean, logvar - bump))) / (2 * h)
        assert grad_mean[index] == pytest.approx(float(fd_mean), rel=1e-7, abs=1e-9)
        assert grad_logvar[index] == pytest.approx(float(fd_logvar), rel=1e-7, abs=1e-9)
    assert np.all(np.abs(np.asarray(grad_logvar)) > 1e-3)


def test_elbo_loss_is_reconstruction_plus_kl():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 5)).astype(np.float32)
    x = rng.uniform(size=(3, 5)).astype(np.float32)
    mean, logvar = (rng.normal(size=(3, 2)).astype(np.float32) for _ in range(2))
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    bernoulli = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1)
    kl = -0.5 * np.sum(1 + logvar - mean ** 2 - np.exp(logvar), axis=1)
    sigma = 0.5
    loss, nll = jax.jit(lambda out, x: (  # one program: eagerly, each op compiles on its own
        elbo_loss("bernoulli")(out, x), reconstruction_nll(out.reconstruction, x, "gaussian",
                                                           sigma)))(
        VAEOutput(logits, mean, logvar), x)
    np.testing.assert_allclose(loss, bernoulli + kl, rtol=1e-5)
    gaussian = (np.sum((x - logits) ** 2, axis=1) / (2 * sigma ** 2)
                + 2.5 * math.log(2 * math.pi * sigma ** 2))
    np.testing.assert_allclose(nll, gaussian, rtol=1e-5)
    with pytest.raises(ValueError, match=r"elbo_loss: `likelihood` must be one of"):
        elbo_loss("poisson")


# Training through `fnn.fit` (pytree outputs, vae_metrics) and sampling from the prior:
# tests/test_experiment_vae.py.
