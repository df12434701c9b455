"""The convolutional architectures: parameter counts against published numbers, shapes, and
one training step of the course's networks (LeNet-5, the Keras-style CNN) at their MNIST size.

Counts are computed with `init_shapes` (jax.eval_shape: nothing is computed). Sources:
- torchvision: the ``num_params`` of each model's ImageNet weights in the table of
  https://pytorch.org/vision/stable/models.html (parameters only; BatchNorm running statistics
  are buffers, here state).
- Keras Applications: ``model.summary()`` of ``keras.applications.<Model>(weights=None)``:
  "Trainable params" are our params (γ and β included), "Total params" adds the BatchNorm
  moving mean and variance, our state.
- LeNet-5: 61,706 for the common variant (full C3 connections, C5 a 5×5 convolution), the sum
  156 + 2,416 + 48,120 + 10,164 + 850.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.core import count_params, init_shapes
from fnn.models import (
    alexnet, deconvnet, densenet121, fcn, googlenet, inception_module, keras_cnn, lenet5,
    mobilenet_v1, mobilenet_v2, resnet18, resnet34, resnet50, vgg11, vgg16, xception)
from fnn.models.resnet import resnet

IMAGENET = (None, 224, 224, 3)
PUBLISHED = [  # builder, input shape, params, params + state (None: not published), source
    (lambda: lenet5(), (None, 32, 32, 1), 61_706, 61_706, "LeNet-5, common variant"),
    (lambda: vgg11(), IMAGENET, 132_863_336, None, "torchvision vgg11"),
    (lambda: vgg16(), IMAGENET, 138_357_544, None, "torchvision vgg16"),
    (lambda: resnet18(), IMAGENET, 11_689_512, None, "torchvision resnet18"),
    (lambda: resnet34(), IMAGENET, 21_797_672, None, "torchvision resnet34"),
    (lambda: resnet50(), IMAGENET, 25_557_032, None, "torchvision resnet50"),
    (lambda: alexnet(), IMAGENET, 61_100_840, None, "torchvision alexnet"),
    (lambda: mobilenet_v1(), IMAGENET, 4_231_976, 4_253_864, "Keras MobileNet"),
    (lambda: mobilenet_v2(), IMAGENET, 3_504_872, 3_538_984,
     "torchvision mobilenet_v2; Keras MobileNetV2 total"),
    (lambda: densenet121(), IMAGENET, 7_978_856, 8_062_504,
     "torchvision densenet121; Keras DenseNet121 total"),
    (lambda: googlenet(large_kernel=3), IMAGENET, 6_624_904, None,
     "torchvision googlenet (3×3 in its '5×5' branch, no auxiliary classifiers)"),
    (lambda: xception(), (None, 299, 299, 3), 22_855_952, 22_910_480, "Keras Xception"),
]


@pytest.mark.parametrize("build,shape,params,total,source", PUBLISHED,
                         ids=[p[-1].split(";")[0].split(",")[0] for p in PUBLISHED])
def test_parameter_count_equals_published(build, shape, params, total, source):
    out, p, s = init_shapes(build(), shape)
    assert out == (None, 1000 if shape[1] > 32 else 10)
    assert count_params(p) == params, source
    if total is not None:
        assert count_params(p) + count_params(s) == total, source


def test_hand_counted_models():
    # the course's Keras-style network on 28×28×1: conv 3·3·64 + 64, BN 2·64, conv 3·3·64·128 +
    # 128, BN 2·128, dense 128·512 + 512, dense 512·10 + 10; state 2·(64 + 128)
    out, p, s = init_shapes(keras_cnn(), (None, 28, 28, 1))
    assert out == (None, 10)
    assert count_params(p) == 640 + 128 + 73_856 + 256 + 66_048 + 5_130 == 146_058
    assert count_params(s) == 384
    # LeNet-5 on 28×28 MNIST: C1 padded by 2 gives the 32×32 network's shapes and count
    assert count_params(init_shapes(lenet5(padding=2), (None, 28, 28, 1))[1]) == 61_706
    # an inception module (3a) on 28×28×192: 1×1 64; 1×1 96 → 3×3 128; 1×1 16 → K×K 32;
    # pool → 1×1 32; each convolution without bias, with BN (2 per channel)
    for k in (5, 3):  # the paper's 5×5 branch, and torchvision's 3×3
        convs = 192 * 64 + 192 * 96 + 9 * 96 * 128 + 192 * 16 + k * k * 16 * 32 + 192 * 32
        bn = 2 * (64 + 96 + 128 + 16 + 32 + 32)
        out, p, _ = init_shapes(inception_module(64, 96, 128, 16, 32, 32, large_kernel=k),
                                (None, 28, 28, 192))
        assert out == (None, 28, 28, 256) and count_params(p) == convs + bn
    # FCN with widths (16, 32) on 32×32×1, 3 classes: conv 9·16 + BN 32, conv 9·16·32 + BN 64,
    # score 32·3 + 3, transposed 8·8·3·3 + 3
    out, p, _ = init_shapes(fcn(3), (None, 32, 32, 1))
    assert out == (None, 32, 32, 3)
    assert count_params(p) == 144 + 32 + 4608 + 64 + 99 + 579


def test_resnet_blocks_expose_block_and_shortcut():
    model = resnet18()
    stages = dict(model.layers)
    assert [n for n, _ in stages["stage2"].layers] == ["basic_block_0", "basic_block_1"]
    projected = stages["stage2"].layers[0][1].layers[0][1]  # its residual
    assert projected.kind == "residual"
    assert [n for n, _ in projected.layers] == ["block", "shortcut"]
    identity = stages["stage1"].layers[1][1].layers[0][1]
    assert [n for n, _ in identity.layers] == ["block"]  # same shape: identity shortcut
    paths = {info.path for info in fnn.core.walk(resnet(18, 10, widths=(2, 2, 2, 2)),
                                                 (None, 32, 32, 3))}
    assert ("stage2", "basic_block_0", "residual_0", "shortcut", "conv2d_0") in paths
    assert ("stage2", "basic_block_1", "residual_0", "shortcut") not in paths


@pytest.mark.parametrize("build", [fcn, deconvnet])
def test_segmentation_nets_keep_the_image_size(build):
    out, params, state = init_shapes(build(5, widths=(4, 8, 8)), (None, 40, 24, 3))
    assert out == (None, 40, 24, 5) and count_params(state) > 0


def he_params(shapes, rng):
    """Params for the shapes of `init_shapes`, drawn by NumPy (He-scaled kernels, γ = 1,
    zero biases): no compilation of the random initializers for each kernel shape."""
    def draw(path, leaf):
        name = path[-1].key
        if name == "w":
            fan_in = int(np.prod(leaf.shape[:-1]))
            return (rng.normal(size=leaf.shape) * np.sqrt(2 / fan_in)).astype(np.float32)
        return np.full(leaf.shape, 1.0 if name == "gamma" else 0.0, np.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


# One training step for the course's two networks at their standard MNIST size. (A compiled
# training step costs 2–10 s of CPU per architecture, so the large catalogue models are
# checked by parameter counts and shapes only, within the test-time budget.)
REDUCED = [
    (lambda: lenet5(padding=2), (4, 28, 28, 1)),
    (lambda: keras_cnn(), (4, 28, 28, 1)),
]


@pytest.mark.parametrize("build,shape", REDUCED, ids=["lenet5", "keras_cnn"])
def test_one_train_step_lowers_the_loss(build, shape):
    model = build()
    out, params, state = init_shapes(model, shape)
    rng = np.random.default_rng(1)
    params, state = he_params(params, rng), jax.tree_util.tree_map(
        lambda a: np.ones(a.shape, np.float32), state)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    labels = jnp.asarray(rng.integers(0, out[-1], size=out[:-1]))

    def loss(p, s):
        y, new_s = model.apply(p, s, x, train=True, key=jax.random.PRNGKey(2))
        return fnn.losses.softmax_cross_entropy(y, labels).mean(), new_s

    @jax.jit
    def step(p, s):
        (value, new_s), grads = jax.value_and_grad(loss, has_aux=True)(p, s)
        p = jax.tree_util.tree_map(lambda w, g: w - 0.01 * g, p, grads)
        return value, grads, p, new_s

    before, grads, params2, state2 = step(params, state)
    after = step(params2, state)[0]
    assert np.isfinite(float(before)) and float(after) < float(before)
    assert all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))
    if jax.tree_util.tree_leaves(state):  # BatchNorm's running statistics moved
        assert any(not np.allclose(a, b) for a, b in zip(jax.tree_util.tree_leaves(state),
                                                          jax.tree_util.tree_leaves(state2)))
