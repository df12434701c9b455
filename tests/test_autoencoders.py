"""Autoencoders (fnn/models/autoencoders.py): structure and shapes, the denoising corruption in
train mode only, the convolutional autoencoder's layout, the code-binarity measure."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.core import LayerError, init_shapes
from fnn.layers import MaskingNoise
from fnn.models import (
    decode, decoder_of, dense_autoencoder, denoising_autoencoder, encode, encoder_of, mlp)
from fnn.models.autoencoders import code_binarity, conv_autoencoder

KEY = jax.random.PRNGKey(0)
# one set of layer sizes for every model here: eager init and apply then compile each op once


def test_dense_autoencoder_shapes_and_param_keys():
    model = dense_autoencoder((7, 4), [6], 3)
    shape, params, state = model.init(KEY, (None, 7, 4))
    assert shape == (None, 7, 4) and set(params) == {"encoder", "decoder"}
    enc, dec = params["encoder"], params["decoder"]
    assert set(enc) == {"flatten_0", "dense_0", "relu_0", "dense_1"}
    assert [enc[k]["w"].shape for k in ("dense_0", "dense_1")] == [(28, 6), (6, 3)]
    assert [dec[k]["w"].shape for k in ("dense_0", "dense_1")] == [(3, 6), (6, 28)]
    x = jax.random.uniform(KEY, (5, 7, 4))
    y, _ = model.apply(params, state, x)
    codes = encode(model, params, state, x)
    assert y.shape == (5, 7, 4) and codes.shape == (5, 3)
    np.testing.assert_allclose(decode(model, params, state, codes), y, rtol=1e-6)
    assert encoder_of(model).name == "encoder" and decoder_of(model).name == "decoder"


def test_autoencoder_rejects_inputs_of_another_shape_and_models_without_halves():
    model = dense_autoencoder(784, [16], 4)
    with pytest.raises(LayerError, match=r"autoencoder expects inputs of shape \(batch, 784\); "
                                         r"got \(batch, 28, 28\)"):
        model.init(KEY, (None, 28, 28))
    with pytest.raises(ValueError, match=r"encoder_of: expects an autoencoder.*mlp has"):
        encoder_of(mlp([3, 2]))
    with pytest.raises(ValueError, match=r"dense_autoencoder: `input_shape`"):
        dense_autoencoder((28, 0), [16], 4)


def test_denoising_autoencoder_corrupts_in_train_mode_only_with_the_encoders_key():
    model = denoising_autoencoder((7, 4), [6], 3, noise="masking", level=0.5)
    _, params, state = model.init(KEY, (None, 7, 4))
    assert params["encoder"]["corruption"] == {}
    x = jax.random.uniform(KEY, (5, 7, 4), minval=0.5, maxval=1.0)
    clean, _ = model.apply(params, state, x)
    noisy, _ = model.apply(params, state, x, key=KEY, train=True)
    assert not np.allclose(clean, noisy)
    # the only difference in train mode is the corruption, drawn with the encoder's first key
    encoder_key = jax.random.fold_in(jax.random.fold_in(KEY, 0), 0)
    corrupted, _ = MaskingNoise(0.5).apply({}, {}, x, key=encoder_key, train=True)
    assert 0 < float(jnp.mean(corrupted == 0)) < 1
    np.testing.assert_allclose(noisy, model.apply(params, state, corrupted)[0], rtol=1e-6)
    np.testing.assert_allclose(encode(model, params, state, x),
                               encode(model, params, state, x), rtol=0)  # keyless, deterministic
    with pytest.raises(ValueError, match=r"corruption_layer: `noise` must be one of"):
        denoising_autoencoder((7, 4), [6], 3, noise="salt")


def test_code_binarity_measures_the_distance_to_zero_or_one():
    report = code_binarity(np.array([[0.02, 0.97], [0.9, 0.1], [0.4, 0.99]]))
    assert report["max_distance"] == pytest.approx(0.4)
    assert report["mean_distance"] == pytest.approx(np.mean([0.02, 0.03, 0.1, 0.1, 0.4, 0.01]))
    assert report["binary_codes"] == [[0, 1], [1, 0], [0, 1]] and not report["distinct"]


# The 8-3-8 encoder problem learned to 100 %: tests/test_experiment_autoencoders.py (one run
# serves both the experiment's smoke test and the learning test).


def test_conv_autoencoder_halves_down_to_the_code_and_doubles_back():
    """(8, 8) images, filters [2, 4]: 8×8×1 → 4×4×2 → 2×2×4 → code 3 → 2×2×4 → 4×4×2 → 8×8×1.
    Shapes from `init_shapes` (nothing computed), one jitted apply."""
    model = conv_autoencoder((8, 8), [2, 4], 3)
    shape, params, state = init_shapes(model, (None, 8, 8))
    assert shape == (None, 8, 8)
    enc, dec = params["encoder"], params["decoder"]
    assert [enc[k]["w"].shape for k in ("conv2d_0", "conv2d_1", "dense_0")] == [
        (3, 3, 1, 2), (3, 3, 2, 4), (16, 3)]
    assert [dec[k]["w"].shape for k in ("dense_0", "conv2d_transpose_0", "conv2d_transpose_1")] \
        == [(3, 16), (3, 3, 4, 2), (3, 3, 2, 1)]
    rng = np.random.default_rng(0)
    params = jax.tree_util.tree_map(lambda a: rng.normal(size=a.shape).astype(np.float32), params)

    @jax.jit
    def run(p, x_):
        codes = encode(model, p, state, x_)
        return model.apply(p, state, x_)[0], codes, decode(model, p, state, codes)
    y, codes, decoded = run(params, rng.uniform(size=(2, 8, 8)).astype(np.float32))
    assert y.shape == (2, 8, 8) and codes.shape == (2, 3)
    np.testing.assert_allclose(decoded, y, rtol=1e-5, atol=1e-5)
    out, _, _ = init_shapes(conv_autoencoder((8, 4, 3), [5], 2), (None, 8, 4, 3))
    assert out == (None, 8, 4, 3)  # colour images keep their channels
    with pytest.raises(ValueError, match=r"conv_autoencoder: 3 stride-2 convolutions need H and W "
                                         r"divisible by 8; got 28×28"):
        conv_autoencoder((28, 28), [4, 8, 16], 10)
    with pytest.raises(ValueError, match=r"conv_autoencoder: `input_shape` must be \(H, W\) or"):
        conv_autoencoder((8, 8, 1, 1), [2], 3)
