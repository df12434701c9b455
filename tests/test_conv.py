"""Convolution layers against a direct NumPy loop over the course's formula.

Reference: y[n, q, f] = b[f] + Σ_{offsets k, channels c of f's group} x_pad[n, q·S + k·d, c]·w[k, c, f],
with Q = ⌊(M + P_lo + P_hi − d(K − 1) − 1)/S⌋ + 1 outputs per axis; "SAME" padding as TensorFlow
defines it (output ⌈M/S⌉, total padding max((Q−1)S + K_eff − M, 0), the odd cell at the end).
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from fnn import init as fnn_init
from fnn.core import LayerError, count_params, init_shapes
from fnn.layers import (
    Conv1D, Conv2D, Conv2DTranspose, Conv3D, DepthwiseConv2D, SeparableConv2D, serial)

KEY = jax.random.PRNGKey(0)
RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------- references

def same_pads(sizes, kernel, strides, dilation):
    pads = []
    for m, k, s, d in zip(sizes, kernel, strides, dilation):
        k_eff = d * (k - 1) + 1
        q = -(-m // s)
        total = max((q - 1) * s + k_eff - m, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def np_conv(x, w, b, strides, pads, dilation, groups=1):
    """Cross-correlation of x (N, *spatial, C) with w (*kernel, C/groups, F): a loop over
    output positions and kernel offsets."""
    nd = x.ndim - 2
    x = np.pad(x, [(0, 0)] + [tuple(p) for p in pads] + [(0, 0)])
    kernel, (cg, f) = w.shape[:nd], w.shape[nd:]
    fg = f // groups
    out = [(x.shape[1 + a] - dilation[a] * (kernel[a] - 1) - 1) // strides[a] + 1
           for a in range(nd)]
    y = np.zeros((x.shape[0], *out, f))
    for pos in itertools.product(*map(range, out)):
        for off in itertools.product(*map(range, kernel)):
            idx = tuple(p * s + o * d for p, o, s, d in zip(pos, off, strides, dilation))
            for g in range(groups):
                y[(slice(None), *pos, slice(g * fg, (g + 1) * fg))] += (
                    x[(slice(None), *idx, slice(g * cg, (g + 1) * cg))]
                    @ w[(*off, slice(None), slice(g * fg, (g + 1) * fg))])
    return y + (0 if b is None else b)


def np_conv_transpose(x, w, b, strides, pads, dilation, output_padding):
    """The scatter definition: y[i·S + k·d − P_lo] += x[i] · w[k] (2-D, w (K, K', C, F))."""
    n, m1, m2, _ = x.shape
    k1, k2, _, f = w.shape
    full = [(m - 1) * s + d * (k - 1) + 1 + op for m, s, d, k, op in
            zip((m1, m2), strides, dilation, (k1, k2), output_padding)]
    # a canvas large enough for negative crops (extra cells on both sides)
    extra = max(0, -min(p for pair in pads for p in pair))
    y = np.zeros((n, full[0] + 2 * extra, full[1] + 2 * extra, f))
    for i, j, a, c in itertools.product(range(m1), range(m2), range(k1), range(k2)):
        y[:, extra + i * strides[0] + a * dilation[0], extra + j * strides[1] + c * dilation[1]] \
            += x[:, i, j] @ w[a, c]
    out = [fl - p[0] - p[1] for fl, p in zip(full, pads)]
    y = y[:, extra + pads[0][0]:extra + pads[0][0] + out[0],
          extra + pads[1][0]:extra + pads[1][0] + out[1]]
    return y + (0 if b is None else b)


def random_params(layer, input_shape, dtype=np.float32):
    """Params of the shapes ``layer.init`` gives, drawn by NumPy: `init_shapes` computes
    nothing, which spares a compilation of the random initializers for every kernel shape."""
    _, params, state = init_shapes(layer, input_shape, KEY)  # KEY: no PRNGKey compile under x64
    params = jax.tree_util.tree_map(lambda a: RNG.normal(size=a.shape).astype(dtype), params)
    return params, state


def run(layer, x):
    params, state = random_params(layer, x.shape)
    y, _ = jax.jit(layer.apply)(params, state, np.asarray(x, np.float32))
    return np.asarray(y), params


# ----------------------------------------------------------------------------- against NumPy

CONV2D_CASES = [  # (M, M'), C, F, kernel, strides, padding, dilation, groups
    ((5, 6), 2, 3, 3, 1, "VALID", 1, 1),
    ((7, 7), 3, 2, (3, 2), (2, 1), "SAME", 1, 1),
    ((6, 5), 2, 2, 3, 2, "SAME", 1, 1),
    ((6, 6), 1, 2, 3, 1, 1, 2, 1),
    ((5, 7), 2, 3, 2, (1, 3), ((1, 0), (2, 1)), (2, 1), 1),
    ((6, 6), 4, 6, 3, 1, "SAME", 1, 2),
    ((5, 5), 4, 4, 3, 2, 1, 1, 4),
    ((4, 4), 3, 2, 1, 1, "VALID", 1, 1),  # a 1×1 convolution: a Dense on every pixel
]


@pytest.mark.parametrize("sizes,c,f,kernel,strides,padding,dilation,groups", CONV2D_CASES)
def test_conv2d_matches_numpy_loop(sizes, c, f, kernel, strides, padding, dilation, groups):
    layer = Conv2D(f, kernel, strides=strides, padding=padding, dilation=dilation,
                   groups=groups)
    x = RNG.normal(size=(2, *sizes, c))
    y, params = run(layer, x)
    k2 = (kernel, kernel) if isinstance(kernel, int) else kernel
    s2 = (strides, strides) if isinstance(strides, int) else strides
    d2 = (dilation, dilation) if isinstance(dilation, int) else dilation
    if padding == "SAME":
        pads = same_pads(sizes, k2, s2, d2)
    elif isinstance(padding, int):
        pads = [(padding, padding)] * 2
    elif padding == "VALID":
        pads = [(0, 0)] * 2
    else:
        pads = padding
    expected = np_conv(x, params["w"], params["b"], s2, pads, d2, groups)
    assert params["w"].shape == (*k2, c // groups, f)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_conv1d_and_conv3d_match_numpy_loop():
    x1 = RNG.normal(size=(2, 9, 3))
    y, p = run(Conv1D(4, 3, strides=2, padding=(1, 2), dilation=1), x1)
    np.testing.assert_allclose(y, np_conv(x1, p["w"], p["b"], (2,), [(1, 2)], (1,)),
                               rtol=1e-5, atol=1e-5)
    y, p = run(Conv1D(6, 2, dilation=3, groups=3, padding="SAME", use_bias=False), x1)
    np.testing.assert_allclose(y, np_conv(x1, p["w"], None, (1,), same_pads((9,), (2,), (1,), (3,)),
                                          (3,), groups=3), rtol=1e-5, atol=1e-5)
    x3 = RNG.normal(size=(1, 4, 5, 3, 2))
    y, p = run(Conv3D(3, (2, 3, 1), strides=(1, 2, 1), padding=1), x3)
    assert p["w"].shape == (2, 3, 1, 2, 3)
    np.testing.assert_allclose(y, np_conv(x3, p["w"], p["b"], (1, 2, 1), [(1, 1)] * 3, (1, 1, 1)),
                               rtol=1e-5, atol=1e-5)


def test_true_convolution_rotates_the_kernel():
    """The course's convolution: y[i, j] = Σ x[i + K−1−k, j + K'−1−k'] w[k, k'] (VALID), i.e. a
    correlation with the kernel rotated 180°; it differs from the correlation for an asymmetric
    kernel."""
    x = RNG.normal(size=(1, 5, 6, 1))
    w = np.arange(6.0).reshape(2, 3, 1, 1)
    conv = Conv2D(1, (2, 3), use_bias=False, flip_kernel=True)
    corr = Conv2D(1, (2, 3), use_bias=False)
    y_conv, y_corr = np.asarray(jax.jit(lambda w, x: [  # one program, not one per op
        layer.apply({"w": w}, {}, x)[0] for layer in (conv, corr)])(
            np.asarray(w, np.float32), np.asarray(x, np.float32)))
    expected = np.zeros((1, 4, 4, 1))
    for i, j, k, kk in itertools.product(range(4), range(4), range(2), range(3)):
        expected[0, i, j, 0] += x[0, i + 1 - k, j + 2 - kk, 0] * w[k, kk, 0, 0]
    np.testing.assert_allclose(y_conv, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y_conv, np_conv(x, w[::-1, ::-1], None, (1, 1), [(0, 0)] * 2,
                                               (1, 1)), rtol=1e-5, atol=1e-5)
    assert not np.allclose(y_conv, y_corr)


def test_edge_detection_kernel_of_the_course():
    """The course's edge detector (−1 around 8) is 0 on a flat image and responds at an edge."""
    w = -np.ones((3, 3, 1, 1))
    w[1, 1] = 8.0
    image = np.zeros((1, 5, 6, 1))
    image[:, :, 3:] = 1.0
    y, _ = jax.jit(Conv2D(1, 3, use_bias=False).apply)({"w": np.asarray(w, np.float32)}, {},
                                                       np.asarray(image, np.float32))
    y = np.asarray(y)[0, :, :, 0]
    np.testing.assert_allclose(y[:, 0], 0.0)  # inside the flat dark region
    np.testing.assert_allclose(y[:, 1], -3.0)  # left of the edge: −(3 bright neighbours)
    np.testing.assert_allclose(y[:, 2], 3.0)  # right of the edge: 8 − 5 bright neighbours


def test_depthwise_each_channel_its_own_filters():
    x = RNG.normal(size=(2, 6, 5, 3))
    m = 2
    y, p = run(DepthwiseConv2D(3, depth_multiplier=m, strides=(2, 1), padding="SAME",
                               ), x)
    assert p["w"].shape == (3, 3, 1, 3 * m)
    pads = same_pads((6, 5), (3, 3), (2, 1), (1, 1))
    for c, j in itertools.product(range(3), range(m)):
        o = c * m + j
        ref = np_conv(x[..., c:c + 1], p["w"][..., o:o + 1], p["b"][o], (2, 1), pads, (1, 1))
        np.testing.assert_allclose(y[..., o:o + 1], ref, rtol=1e-5, atol=1e-5)


def test_separable_is_depthwise_then_pointwise():
    x = RNG.normal(size=(2, 6, 6, 3))
    layer = SeparableConv2D(4, 3, padding=1)
    y, p = run(layer, x)
    assert [n for n, _ in layer.layers] == ["depthwise", "pointwise"]
    assert layer.kind == "separable_conv2d"
    dw = np.concatenate([np_conv(x[..., c:c + 1], p["depthwise"]["w"][..., c:c + 1], None,
                                 (1, 1), [(1, 1)] * 2, (1, 1)) for c in range(3)], axis=-1)
    expected = dw @ p["pointwise"]["w"][0, 0] + p["pointwise"]["b"]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    # K·K'·C + C·F + F numbers
    assert count_params(p) == 9 * 3 + 3 * 4 + 4


TRANSPOSE_CASES = [  # (M, M'), C, F, kernel, strides, padding, output_padding, dilation
    ((3, 4), 2, 3, 3, 2, "VALID", 0, 1),
    ((3, 3), 2, 2, 3, 2, "SAME", 0, 1),
    ((4, 3), 1, 2, 2, (2, 3), "SAME", (1, 0), 1),
    ((3, 3), 2, 2, 4, 2, 1, 1, 1),
    ((2, 3), 1, 1, 1, 3, "SAME", 0, 1),  # kernel smaller than the stride: cells added
    ((3, 3), 2, 1, 2, 1, ((1, 0), (0, 1)), 0, 2),
]


def _transpose_pads(padding, kernel, strides, dilation):
    if padding == "VALID":
        return [(0, 0)] * 2
    if padding == "SAME":
        totals = [d * (k - 1) + 1 - s for k, s, d in zip(kernel, strides, dilation)]
        return [(t // 2, t - t // 2) for t in totals]
    if isinstance(padding, int):
        return [(padding, padding)] * 2
    return padding


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("sizes,c,f,kernel,strides,padding,op,dilation", TRANSPOSE_CASES)
def test_conv_transpose_matches_scatter_and_size_formula(sizes, c, f, kernel, strides, padding,
                                                         op, dilation):
    k2, s2, op2, d2 = _pair(kernel), _pair(strides), _pair(op), _pair(dilation)
    layer = Conv2DTranspose(f, kernel, strides=strides, padding=padding, output_padding=op,
                            dilation=dilation)
    x = RNG.normal(size=(2, *sizes, c))
    y, p = run(layer, x)
    pads = _transpose_pads(padding, k2, s2, d2)
    expected = np_conv_transpose(x, p["w"], p["b"], s2, pads, d2, op2)
    # O = (M − 1)·S + d(K − 1) + 1 − P_lo − P_hi + output_padding
    sizes_formula = tuple((m - 1) * s + d * (k - 1) + 1 - pl - ph + o for m, s, d, k, (pl, ph), o
                          in zip(sizes, s2, d2, k2, pads, op2))
    assert y.shape == (2, *sizes_formula, f) == expected.shape
    assert init_shapes(layer, (None, *sizes, c))[0] == (None, *sizes_formula, f)
    if padding == "SAME":
        assert sizes_formula == tuple(m * s + o for m, s, o in zip(sizes, s2, op2))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n,kernel,strides,padding", [
    (7, 3, 2, "VALID"), (8, 3, 2, "SAME"), (7, 4, 3, 1), (6, 2, 2, "SAME")])
def test_conv_transpose_is_the_adjoint_of_conv(n, kernel, strides, padding):
    """⟨conv_v(x), y⟩ = ⟨x, convᵀ_w(y)⟩ with v = w with its last two axes swapped; output_padding
    picks the input size n among those the strided convolution maps to the same size."""
    c, f = 2, 3
    conv = Conv2D(f, kernel, strides=strides, padding=padding, use_bias=False)
    out_shape, _, _ = init_shapes(conv, (1, n, n, c))
    m = out_shape[1]
    pads = (same_pads((n,), (kernel,), (strides,), (1,))[0] if padding == "SAME"
            else (0, 0) if padding == "VALID" else (padding, padding))
    op = n - ((m - 1) * strides + kernel - pads[0] - pads[1])
    explicit = [pads, pads]
    convT = Conv2DTranspose(c, kernel, strides=strides, padding=explicit, output_padding=op,
                            use_bias=False)
    w = np.asarray(RNG.normal(size=(kernel, kernel, f, c)), np.float32)
    x = np.asarray(RNG.normal(size=(1, n, n, c)), np.float32)
    y = np.asarray(RNG.normal(size=(1, m, m, f)), np.float32)

    @jax.jit  # one program (eager, every op compiles on its own)
    def both_sides(w, x, y):
        conv_x, _ = conv.apply({"w": jnp.swapaxes(w, -1, -2)}, {}, x)
        convT_y, _ = convT.apply({"w": w}, {}, y)
        return jnp.vdot(conv_x, y), jnp.vdot(x, convT_y), convT_y

    left, right, convT_y = both_sides(w, x, y)
    assert convT_y.shape == x.shape
    np.testing.assert_allclose(left, right, rtol=1e-4)


# ----------------------------------------------------------------------------- output sizes

OUTPUT_SIZES = [  # M, K, S, P, Q = ⌊(M + 2P − K)/S⌋ + 1 worked by hand
    (28, 5, 1, 0, 24),  # LeNet-5 C1 on MNIST
    (32, 5, 1, 0, 28),  # LeNet-5 C1 on 32×32
    (28, 5, 1, 2, 28),  # "same" by explicit padding
    (227, 11, 4, 0, 55),  # AlexNet conv1
    (224, 11, 4, 2, 55),  # torchvision AlexNet conv1
    (224, 7, 2, 3, 112),  # ResNet stem
    (7, 3, 2, 1, 4),
    (6, 3, 2, 0, 2),  # the floor drops the last incomplete window
    (5, 3, 2, 0, 2),
    (3, 3, 1, 0, 1),
    (4, 1, 1, 0, 4),  # 1×1 convolution
]


@pytest.mark.parametrize("m,k,s,p,q", OUTPUT_SIZES)
def test_output_size_table(m, k, s, p, q):
    assert (m + 2 * p - k) // s + 1 == q
    out, params, _ = init_shapes(Conv2D(2, k, strides=s, padding=p), (None, m, m + 1, 1))
    assert out == (None, q, (m + 1 + 2 * p - k) // s + 1, 2)
    assert params["w"].shape == (k, k, 1, 2)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 12), k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 2),
       d=st.integers(1, 2))
def test_output_size_random(m, k, s, p, d):
    layer = Conv1D(1, k, strides=s, padding=p, dilation=d)
    k_eff = d * (k - 1) + 1
    if k_eff > m + 2 * p:
        with pytest.raises(LayerError, match="larger than the padded input"):
            init_shapes(layer, (2, m, 1))
        return
    out, _, _ = init_shapes(layer, (2, m, 1))
    assert out == (2, (m + 2 * p - k_eff) // s + 1, 1)
    same, _, _ = init_shapes(Conv1D(1, k, strides=s, padding="SAME", dilation=d), (2, m, 1))
    assert same == (2, -(-m // s), 1)


# ----------------------------------------------------------------------------- gradients

def test_course_manual_backprop_matches_grad():
    """Input delta = output delta (padded by K−1) correlated with the kernel rotated 180°
    (channels swapped); kernel gradient = correlation of the inputs with the output deltas."""
    x = RNG.normal(size=(1, 6, 5, 2))
    w = RNG.normal(size=(3, 2, 2, 3))
    delta = RNG.normal(size=(1, 4, 4, 3))
    layer = Conv2D(3, (3, 2), use_bias=False)

    def loss(w_, x_):
        y, _ = layer.apply({"w": w_}, {}, x_)
        return jnp.sum(y * delta)

    gw, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))(np.asarray(w, np.float32),
                                                     np.asarray(x, np.float32))
    rotated = np.swapaxes(w[::-1, ::-1], -1, -2)  # (3, 2, F=3, C=2)
    dx = np_conv(delta, rotated, None, (1, 1), [(2, 2), (1, 1)], (1, 1))
    dw = np.zeros_like(w)
    for a, b in itertools.product(range(3), range(2)):
        dw[a, b] = np.einsum("nijc,nijf->cf", x[:, a:a + 4, b:b + 4], delta)
    np.testing.assert_allclose(gx, dx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gw, dw, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layer,shape", [
    (Conv2D(2, 3, strides=2, padding="SAME", groups=2, flip_kernel=True), (2, 5, 5, 2)),
    (serial(Conv2DTranspose(2, 3, strides=2, padding="SAME", output_padding=1),
            SeparableConv2D(2, 2, dilation=2)), (1, 3, 3, 2)),
], ids=["conv2d", "transpose_separable"])
def test_finite_differences_float64(x64, layer, shape):
    params, state = random_params(layer, shape, np.float64)
    f = jax.jit(lambda p, x_: layer.apply(p, state, x_)[0])
    check_grads(f, (params, RNG.normal(size=shape)), order=1, modes=["rev"], eps=1e-6,
                atol=1e-6, rtol=1e-6)


# ----------------------------------------------------------------------------- errors and names

def test_impossible_combinations_are_layer_errors_naming_the_numbers():
    with pytest.raises(LayerError, match=r"Conv2D\(4, 5×5\).*kernel of size 5 .*3 \+ 0 \+ 0 = 3"):
        Conv2D(4, 5).init(KEY, (1, 3, 3, 1))
    with pytest.raises(LayerError, match=r"groups=2.*3 channels.*4 filters"):
        Conv2D(4, 3, groups=2).init(KEY, (1, 5, 5, 3))
    with pytest.raises(LayerError, match=r"kernel of size 5"):  # dilation 2: 2·(3−1)+1
        Conv1D(1, 3, dilation=2).init(KEY, (1, 4, 1))
    with pytest.raises(LayerError, match=r"\(batch, height, width, channels\)"):
        Conv2D(4, 3).init(KEY, (1, 5, 5))
    with pytest.raises(ValueError, match=r"Conv2D\(4, 3×3.*\): `padding` must be 'VALID'"):
        Conv2D(4, 3, padding="FULL")
    with pytest.raises(ValueError, match=r"Conv2D: `strides` must be a positive integer"):
        Conv2D(4, 3, strides=0)
    with pytest.raises(ValueError, match=r"Conv2DTranspose: `output_padding` must be smaller"):
        Conv2DTranspose(4, 3, strides=2, output_padding=2)
    layer = Conv2D(4, 3)
    params, state = random_params(layer, (1, 5, 5, 2))
    with pytest.raises(LayerError, match=r"with 2 channels; got \(1, 5, 5, 3\)"):
        layer.apply(params, state, np.zeros((1, 5, 5, 3), np.float32))


def test_kinds_and_he_fans_for_hwio():
    kinds = {Conv1D(1, 1).kind, Conv2D(1, 1).kind, Conv3D(1, 1).kind, DepthwiseConv2D(1).kind,
             SeparableConv2D(1, 1).kind, Conv2DTranspose(1, 1).kind}
    assert kinds == {"conv1d", "conv2d", "conv3d", "depthwise_conv2d", "separable_conv2d",
                     "conv2d_transpose"}
    # the kernel reaches the initializer as HWIO, so fnn.init's fans are K·K'·C/groups and K·K'·F
    seen = []

    def recording(key, shape, dtype=jnp.float32):
        seen.append(tuple(shape))
        return jnp.zeros(shape, dtype)

    init_shapes(Conv2D(64, 5, groups=2, w_init=recording), (1, 8, 8, 16))
    assert seen == [(5, 5, 8, 64)]
    assert fnn_init.fans(seen[0]) == (5 * 5 * 8, 5 * 5 * 64)
