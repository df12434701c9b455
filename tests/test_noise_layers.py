"""Noise layers (fnn/layers/noise.py): GaussianNoise and MaskingNoise corrupt in train mode only,
from their key; GaussianSample is the VAE's reparameterization."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.core import LayerError
from fnn.layers import GaussianNoise, GaussianSample, MaskingNoise, reparameterize, serial

KEY = jax.random.PRNGKey(0)


def test_gaussian_noise_statistics_and_modes():
    layer = GaussianNoise(0.5)
    shape, params, state = layer.init(KEY, (None, 400, 100))
    assert shape == (None, 400, 100) and params == {} and state == {}
    x = jnp.full((400, 100), 2.0)
    y, _ = layer.apply(params, state, x, key=KEY, train=True)
    noise = np.asarray(y - x).ravel()  # 40,000 draws of N(0, 0.25): mean ± 0.0025, std ± 0.002
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 0.5) < 0.01
    again, _ = layer.apply(params, state, x, key=KEY, train=True)
    other, _ = layer.apply(params, state, x, key=jax.random.PRNGKey(1), train=True)
    assert np.array_equal(y, again) and not np.allclose(y, other)
    evaluated, _ = layer.apply(params, state, x)  # eval: identity, no key
    assert evaluated is x


def test_masking_noise_zeroes_the_rate_and_keeps_the_rest_unscaled():
    layer = MaskingNoise(0.3)
    _, params, state = layer.init(KEY, (None, 100))
    x = jax.random.uniform(KEY, (400, 100), minval=0.5, maxval=1.0)
    y, _ = layer.apply(params, state, x, key=jax.random.PRNGKey(2), train=True)
    zeroed = np.asarray(y == 0)
    assert abs(zeroed.mean() - 0.3) < 0.01  # 40,000 Bernoulli(0.3): std 0.0023
    np.testing.assert_array_equal(np.asarray(y)[~zeroed], np.asarray(x)[~zeroed])
    assert layer.apply(params, state, x)[0] is x
    assert MaskingNoise(0.0).apply({}, {}, x, train=True)[0] is x  # no key needed for rate 0


@pytest.mark.parametrize("layer, pattern", [
    (GaussianNoise(0.1), r"GaussianNoise\(0\.1\) in `noise` draws its noise from a key"),
    (MaskingNoise(0.2), r"MaskingNoise\(0\.2\) in `noise` draws its noise from a key"),
    (GaussianSample(), r"GaussianSample\(\) in `noise` draws its noise from a key"),
])
def test_train_mode_without_a_key_names_the_layer(layer, pattern):
    x = jnp.ones((2, 3))
    x = (x, x) if layer.name.startswith("GaussianSample") else x
    model = serial(("noise", layer))
    _, params, state = model.init(KEY, (None, 3) if not isinstance(x, tuple) else
                                  ((None, 3), (None, 3)))
    with pytest.raises(LayerError, match=pattern):
        model.apply(params, state, x, train=True)
    model.apply(params, state, x)  # eval mode is fine without a key


@pytest.mark.parametrize("build, message", [
    (lambda: GaussianNoise(-0.1), r"GaussianNoise: `std` must be a number >= 0"),
    (lambda: MaskingNoise(1.0), r"MaskingNoise: `rate` must be a number in \[0\.0, 1\.0\)"),
    (lambda: MaskingNoise("0.2"), r"MaskingNoise: `rate`"),
])
def test_bad_arguments_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_gaussian_sample_modes_statistics_and_shape_errors():
    layer = GaussianSample()
    shape, params, state = layer.init(KEY, ((None, 4), (None, 4)))
    assert shape == (None, 4)
    mean = jnp.array([[1.0, -2.0, 0.0, 3.0]]).repeat(5000, axis=0)
    logvar = jnp.log(jnp.array([[0.25, 1.0, 4.0, 0.01]])).repeat(5000, axis=0)
    z, _ = layer.apply(params, state, (mean, logvar), key=KEY, train=True)
    np.testing.assert_allclose(z.mean(0), mean[0], atol=0.1)
    np.testing.assert_allclose(z.std(0), [0.5, 1.0, 2.0, 0.1], rtol=0.05)
    eps = jax.random.normal(KEY, mean.shape)  # the layer's draw is this ε
    np.testing.assert_allclose(z, reparameterize(mean, logvar, eps), rtol=1e-6)
    assert layer.apply(params, state, (mean, logvar))[0] is mean
    with pytest.raises(LayerError, match=r"GaussianSample\(\) expects a pair \(mean, logvar\)"):
        layer.init(KEY, (None, 4))
    with pytest.raises(LayerError, match=r"expects mean and logvar of one shape; got mean "
                                         r"\(batch, 4\) and logvar \(batch, 3\)"):
        layer.init(KEY, ((None, 4), (None, 3)))


def test_noise_is_drawn_from_the_key_a_combinator_gives_its_child():
    model = serial(GaussianNoise(1.0), MaskingNoise(0.5))
    _, params, state = model.init(KEY, (None, 5))
    assert set(params) == {"gaussian_noise_0", "masking_noise_0"}
    x = jnp.ones((2, 5))
    a, _ = model.apply(params, state, x, key=KEY, train=True)
    b, _ = model.apply(params, state, x, key=KEY, train=True)
    clean, _ = model.apply(params, state, x)
    assert np.array_equal(a, b) and not np.allclose(a, clean)
    jitted = jax.jit(lambda p, x, k: model.apply(p, state, x, key=k, train=True)[0])
    np.testing.assert_allclose(jitted(params, x, KEY), a, rtol=1e-6)
