"""The fast lowerings equal the plain ones: convolution as a product over patches, with its
weight gradient as one product per kernel offset (and its input gradient as one product with a
banded matrix), as one product with a banded matrix, and as a dense layer when the kernel covers
the padded input, against `jax.lax.conv_general_dilated`,
pooling over non-overlapping windows as strided slices against `jax.lax.reduce_window`: forward
values and gradients (reverse and forward mode), in float64, on random shapes over the
stride/padding/dilation combinations each fast path is chosen for. Each case is one jitted
function computing every lowering's values, gradients and tangents."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.core import LayerError, init_shapes
from fnn.layers import pooling
from fnn.layers import AvgPool1D, AvgPool2D, Conv1D, Conv2D, MaxPool1D, MaxPool2D, MinPool2D
from fnn.layers.conv import (
    BANDED_MAX_CHANNELS, BANDED_MAX_RATIO, OFFSETS_MAX_POSITIONS, PATCHES_MAX_CHANNELS,
    check_padding, conv_dense, conv_lowering, conv_offsets, conv_patches, conv_xla,
    padding_pairs)

RNG = np.random.default_rng(7)


def _close(a, b, tol=1e-10):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


def _vjp(f, args, cotangent):
    y, pullback = jax.vjp(f, *args)
    return y, pullback(cotangent)


# ----------------------------------------------------------------------------- convolution

def _conv_cases():
    """(ndim, sizes, C, F, kernel, strides, padding, dilation): every stride, padding and
    dilation choice at least once in 2-D (random sizes, kernels and channels), plus 1-D and 3-D."""
    choices = [(1, "VALID", 1), (2, "SAME", 2), ((1, 3), 1, (2, 1)), (2, ((2, 0), (1, 3)), 1),
               ((1, 3), "SAME", 1), (1, ((2, 0), (1, 3)), 2)]
    cases = []
    for strides, padding, dilation in choices:
        kernel = tuple(int(k) for k in RNG.integers(1, 4, 2))
        sizes = tuple(int(m) for m in RNG.integers(5, 9, 2))
        cases.append((2, sizes, int(RNG.integers(1, 4)), int(RNG.integers(1, 4)), kernel,
                      strides, padding, dilation))
    cases += [(1, (9,), 2, 3, (3,), (2,), (1, 2), (2,)),
              (3, (4, 5, 3), 2, 2, (2, 3, 1), (1, 2, 1), 1, (1, 1, 2))]
    return cases


@pytest.mark.parametrize("case", _conv_cases(),
                         ids=lambda c: f"{c[0]}d-{c[4]}-{c[5]}-{c[6]}-{c[7]}")
def test_fast_convolutions_equal_conv_general_dilated(x64, case):
    """conv_patches and conv_offsets (with XLA's and with the banded input gradient, whose
    tangent is conv_banded's value): values, both gradients and forward-mode tangents."""
    ndim, sizes, c, f, kernel, strides, padding, dilation = case
    tup = lambda v: (v,) * ndim if isinstance(v, int) else tuple(v)  # noqa: E731
    strides, dilation = tup(strides), tup(dilation)
    window = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    pads = padding_pairs(check_padding("test", padding, ndim), sizes, window, strides)
    x = RNG.normal(size=(2,) + sizes + (c,))
    w = RNG.normal(size=kernel + (c, f))
    out_shape = jax.eval_shape(lambda: conv_xla(x, w, strides, pads, dilation)).shape
    cotangent = RNG.normal(size=out_shape)
    tangents = (RNG.normal(size=x.shape), RNG.normal(size=w.shape))

    @jax.jit
    def every():
        results = []
        banded_offsets = lambda *a: conv_offsets(*a, True)  # noqa: E731
        for conv in (conv_xla, conv_patches, conv_offsets, banded_offsets):
            f = lambda x_, w_: conv(x_, w_, strides, pads, dilation)  # noqa: E731
            y, grads = _vjp(f, (x, w), cotangent)
            results.append((y, grads, jax.jvp(f, (x, w), tangents)[1]))
        return results
    (y_ref, grads_ref, dy_ref), *fast = every()
    for y, grads, dy in fast:
        assert y.shape == y_ref.shape and y.dtype == jnp.float64
        _close(y, y_ref)
        _close(grads[0], grads_ref[0])
        _close(grads[1], grads_ref[1])
        _close(dy, dy_ref)


def test_layer_lowerings_agree_and_auto_picks_by_shape(x64):
    """The layer with lowering="patches", "offsets", "banded" and "xla" (true convolution, bias,
    strides, padding): the same outputs and parameter gradients; "auto" takes the patches for
    few input channels, the offsets for more channels and a small output grid, XLA's
    convolution otherwise and for groups."""
    x = RNG.normal(size=(3, 9, 8, 2))
    kwargs = dict(strides=(2, 1), padding="SAME", dilation=(1, 2), flip_kernel=True,
                  dtype=jnp.float64)
    layers = [Conv2D(4, 3, lowering=lowering, **kwargs)
              for lowering in ("xla", "patches", "offsets", "banded")]
    _, shapes, _ = init_shapes(layers[0], x.shape)
    params = jax.tree_util.tree_map(lambda a: RNG.normal(size=a.shape), shapes)

    @jax.jit
    def every(p):
        return [jax.value_and_grad(lambda p_: jnp.sum(jnp.sin(layer.apply(p_, {}, x)[0])))(p)
                for layer in layers]
    (v_plain, g_plain), *fast = every(params)
    for v_fast, g_fast in fast:
        _close(v_fast, v_plain)
        _close(g_fast["w"], g_plain["w"])
        _close(g_fast["b"], g_plain["b"])

    def primitives(layer, shape):  # traced on shapes only: nothing is initialized or compiled
        _, p, _ = jax.eval_shape(lambda: layer.init(jax.random.PRNGKey(0), shape))
        return str(jax.make_jaxpr(lambda p_, x_: layer.apply(p_, {}, x_)[0])(
            p, jax.ShapeDtypeStruct(shape, jnp.float32)))
    assert "conv_general_dilated" not in primitives(Conv2D(6, 5), (2, 12, 12, 1))
    assert "conv_general_dilated" not in primitives(Conv1D(3, 2), (2, 8, 1))
    many = PATCHES_MAX_CHANNELS + 1
    assert "custom_jvp_call" in primitives(Conv2D(6, 3), (2, 8, 8, many))  # 6×6 positions
    side = int(OFFSETS_MAX_POSITIONS ** 0.5) + 1  # more positions than the offsets take
    plain = primitives(Conv2D(6, 1), (1, side, side, many))
    assert "conv_general_dilated" in plain and "custom_jvp_call" not in plain
    assert "custom_jvp_call" not in primitives(Conv2D(6, 3), (2, 3, 3, many))  # 1 position
    grouped = primitives(Conv2D(4, 3, groups=2), (2, 8, 8, 2))
    assert "conv_general_dilated" in grouped and "custom_jvp_call" not in grouped


def test_dense_lowering_equals_conv_when_the_kernel_covers_the_padded_input(x64):
    """conv_dense (one product of the flattened input and kernel): values, both gradients and
    tangents, with and without padding, 2-D and 1-D; "auto" takes it for such kernels."""
    cases = [((2, 5, 5, 4), (5, 5), ((0, 0), (0, 0))),
             ((3, 3, 4, 2), (5, 6), ((1, 1), (0, 2))),
             ((2, 6, 3), (7,), ((1, 0),))]
    data = []
    for shape, kernel, pads in cases:
        x, w = RNG.normal(size=shape), RNG.normal(size=kernel + (shape[-1], 3))
        data.append((x, w, pads, RNG.normal(size=(shape[0],) + (1,) * len(kernel) + (3,)),
                     (RNG.normal(size=x.shape), RNG.normal(size=w.shape))))

    @jax.jit
    def every():
        results = []
        for x, w, pads, cotangent, tangents in data:
            ones = (1,) * (x.ndim - 2)
            pair = []
            for f in (lambda x_, w_: conv_xla(x_, w_, ones, pads, ones),  # noqa: B023
                      lambda x_, w_: conv_dense(x_, w_, pads)):  # noqa: B023
                y, grads = _vjp(f, (x, w), cotangent)
                pair.append((y, grads, jax.jvp(f, (x, w), tangents)[1]))
            results.append(pair)
        return results
    for (y_ref, g_ref, dy_ref), (y, g, dy) in every():
        assert y.shape == y_ref.shape
        _close(y, y_ref)
        _close(g[0], g_ref[0])
        _close(g[1], g_ref[1])
        _close(dy, dy_ref)
    layer = Conv2D(120, 5)
    _, p, _ = jax.eval_shape(lambda: layer.init(jax.random.PRNGKey(0), (2, 5, 5, 16)))
    jaxpr = str(jax.make_jaxpr(lambda p_, x_: layer.apply(p_, {}, x_)[0])(
        p, jax.ShapeDtypeStruct((2, 5, 5, 16), jnp.float32)))
    assert "conv_general_dilated" not in jaxpr and "custom_jvp_call" not in jaxpr
    with pytest.raises(LayerError, match=r"lowering='dense', which needs an undilated kernel"):
        init_shapes(Conv2D(4, 3, lowering="dense"), (1, 6, 6, 2))


def test_auto_lowering_rule():
    """conv_lowering's choices at the boundaries of its constants (LeNet-5: C1 patches, C3
    banded, C5 dense)."""
    assert conv_lowering("auto", 1, 1, 28 * 28, False, 32 / 5) == "patches"
    assert conv_lowering("auto", 6, 1, 100, False, 14 / 5) == "banded"
    assert conv_lowering("auto", 16, 1, 1, True, 1.0) == "dense"
    assert conv_lowering("auto", 16, 2, 1, True, 1.0) == "xla"  # grouped
    c = BANDED_MAX_CHANNELS
    assert conv_lowering("auto", c + 1, 1, 100, False, BANDED_MAX_RATIO) == "offsets"
    assert conv_lowering("auto", c, 1, 100, False, BANDED_MAX_RATIO + 0.1) == "offsets"
    assert conv_lowering("auto", c, 1, OFFSETS_MAX_POSITIONS + 1, False, 1.0) == "xla"
    assert conv_lowering("offsets", 6, 1, 100, False, 1.0) == "offsets"  # explicit: kept


def test_lowering_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"Conv2D: `lowering` must be one of"):
        Conv2D(4, 3, lowering="fft")
    with pytest.raises(LayerError, match=r"lowering='patches', which needs groups=1"):
        init_shapes(Conv2D(4, 3, groups=2, lowering="patches"), (1, 6, 6, 2))
    with pytest.raises(LayerError, match=r"lowering='offsets', which needs groups=1"):
        init_shapes(Conv2D(4, 3, groups=2, lowering="offsets"), (1, 6, 6, 2))
    with pytest.raises(ValueError, match=r"MaxPool2D: lowering='slices' needs non-overlapping"):
        MaxPool2D(3, 2, lowering="slices")
    with pytest.raises(ValueError, match=r"AvgPool2D: `lowering` must be one of"):
        AvgPool2D(2, lowering="patches")


# ----------------------------------------------------------------------------- pooling

POOL_CASES = [  # layer, window, padding, input sizes (some not multiples of the window)
    (MaxPool2D, 2, "VALID", (6, 7)),
    (MaxPool2D, (3, 2), "SAME", (7, 5)),
    (MinPool2D, (2, 3), ((1, 0), (0, 1)), (5, 9)),
    (AvgPool2D, 2, "VALID", (6, 5)),
    (AvgPool2D, (3, 2), "SAME", (7, 5)),
    (MaxPool1D, 3, 1, (10,)),
    (AvgPool1D, 2, (1, 0), (7,)),
]


@pytest.mark.parametrize("layer,window,padding,sizes", POOL_CASES,
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_slice_pooling_equals_reduce_window(x64, layer, window, padding, sizes, monkeypatch):
    """Integer-valued inputs with many ties: the gradient goes to the same single winner (the
    first in the window) as reduce_window's. Forward mode is checked as the adjoint of
    reduce_window's reverse mode, ⟨J t, c⟩ = ⟨t, Jᵀ c⟩: reduce_window's own forward-mode rule
    (select_and_gather_add) picks another winner on ties when the input is padded."""
    x = RNG.integers(0, 3, size=(2,) + sizes + (3,)).astype(np.float64)
    extra = {"count_include_pad": True} if layer is AvgPool2D and padding == "SAME" else {}
    fast = layer(window, padding=padding, lowering="slices", **extra)
    plain = layer(window, padding=padding, lowering="xla", **extra)
    out_shape, _, _ = init_shapes(plain, x.shape)
    cotangent, tangent = RNG.normal(size=out_shape), RNG.normal(size=x.shape)

    @jax.jit
    def both():
        results = []
        for pool in (plain, fast):
            f = lambda x_: pool.apply({}, {}, x_)[0]  # noqa: E731
            y, (g,) = _vjp(f, (x,), cotangent)
            results.append((y, g, jax.jvp(f, (x,), (tangent,))[1]))
        return results
    (y_ref, g_ref, _), (y, g, dy) = both()
    assert y.shape == y_ref.shape == out_shape
    _close(y, y_ref)
    _close(g, g_ref)
    _close(jnp.vdot(dy, cotangent), jnp.vdot(tangent, g_ref))
    if layer is MaxPool2D and padding == "VALID":  # the masked derivative of huge inputs
        monkeypatch.setattr(pooling, "SCATTER_MAX_SIZE", 0)
        (_, g_ref, _), (_, g, dy) = jax.jit(lambda: both.__wrapped__())()  # traced anew
        _close(g, g_ref)
        _close(jnp.vdot(dy, cotangent), jnp.vdot(tangent, g_ref))


def test_auto_pooling_slices_only_non_overlapping_windows():
    def primitives(layer):
        return str(jax.make_jaxpr(lambda x_: layer.apply({}, {}, x_)[0])(jnp.zeros((1, 6, 6, 2))))
    assert "reduce_window" not in primitives(MaxPool2D(2))
    assert "reduce_window" not in primitives(AvgPool2D(3, padding="SAME"))
    assert "reduce_window" in primitives(MaxPool2D(3, 2))
    assert "reduce_window" in primitives(MaxPool2D(2, lowering="xla"))
