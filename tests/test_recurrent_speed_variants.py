"""The fused recurrent path (``RNN(impl="fused")``, issue 10's speed work) against the plain one.

The plain path (``impl="scan"``, ``cell.apply`` under `lax.scan`, differentiated by JAX) is
itself tested against NumPy implementations of the course's equations in test_recurrent.py; here
the fused path, with its input products hoisted out of the loop and its hand-written backward
pass (`jax.custom_vjp`), must give the same outputs, final carries and float64 gradients with
respect to the parameters, the inputs and the initial carry, with and without masks.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.core import Context
from fnn.layers import RNN, GRUCell, JordanCell, LSTMCell
from fnn.layers.recurrent import resolve_impl, scan_cell

B, T, D, N = 3, 5, 4, 3
# row 0 full, row 1 a prefix, row 2 a gap (a mask needs not be a prefix), row 3 nothing valid
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 1, 1, 0], [0, 0, 0, 0, 0]], np.float64)


def random_tree(tree, rng):
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray(rng.normal(scale=0.6, size=a.shape), jnp.result_type(float)), tree)


def scan_loss(cell, impl, mask):
    def loss(params, carry, x):
        final, ys = scan_cell(cell, params, carry, x, mask, impl=impl)
        # weights that differ per output and per carry field, so no cotangent is uniform
        w = jnp.cos(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)
        return jnp.sum(w * jnp.tanh(ys)) + sum(jnp.sum((k + 1.5) * jnp.sin(c))
                                               for k, c in enumerate(final)), (final, ys)
    return loss


def layer_loss(layer, state, context):
    def loss(params, x):
        out, _ = layer.apply(params, state, x, context=context)
        return sum(jnp.sum(jnp.sin(a) * (k + 1)) for k, a in
                   enumerate(jax.tree_util.tree_leaves(out))), out
    return loss


# Compiling the loops is this file's whole cost, so the cases are few and share one compilation:
# the LSTM with peepholes and a mask (the generic fused path's every LSTM step but the coupled
# gates' `1 - i`), the GRU without a mask (a cell whose z_x and z_h differ, so both are stacked),
# the plain LSTM without a mask (its own written-out loops, `_lstm_scan`), and a plain LSTM layer
# with a mask, reversal and a learned carry below (the written-out loops' masked steps). The
# coupled LSTM and the Elman cell share the generic fused code (only their `combine` differs,
# the one their plain path runs too, tested against NumPy in test_recurrent.py).
CASES = [("lstm_peepholes", LSTMCell(N, peepholes=True), MASK),
         ("gru_reset_after", GRUCell(N, reset_after=True), None),
         ("lstm", LSTMCell(N), None)]


def random_params(cell, rng):
    """Random params of ``cell`` for inputs of D features (shapes by `jax.eval_shape`: no
    initializer runs, nothing compiles)."""
    _, params = jax.eval_shape(lambda: cell.init(jax.random.PRNGKey(0), (D,)))
    return random_tree(params, rng)


@pytest.mark.slow
def test_fused_equals_plain_values_and_float64_gradients(x64):
    """Each cell with a fused form, and an `RNN` layer with ``reverse`` and a learned initial
    carry around it: the same loss, outputs, final carries and gradients (w.r.t. params, inputs
    and the initial carry) on both paths."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, T, D)))
    args, losses = {}, {}
    for name, cell, mask in CASES:
        assert resolve_impl(cell, "fused") == "fused"
        # biases and peepholes random too, so that no term is skipped
        args[name] = (random_params(cell, rng), random_tree(
            jax.eval_shape(lambda: cell.init_carry((4,), jnp.float64)), rng), x)
        for impl in ("fused", "scan"):
            losses[name, impl] = jax.value_and_grad(
                scan_loss(cell, impl, None if mask is None else jnp.asarray(mask)),
                argnums=(0, 1, 2), has_aux=True)
    context = Context(seq_mask=jnp.asarray(MASK))
    for impl in ("fused", "scan"):  # reversal of each valid prefix, a learned initial carry
        layer = RNN(LSTMCell(N, dtype=jnp.float64), reverse=True, initial_carry="learned",
                    return_state=True, impl=impl)
        _, params, state = jax.eval_shape(lambda: layer.init(jax.random.PRNGKey(3), (None, T, D)))
        args["rnn_reverse_learned"] = (random_tree(params, np.random.default_rng(4)), x)
        losses["rnn_reverse_learned", impl] = jax.value_and_grad(
            layer_loss(layer, state, context), argnums=(0, 1), has_aux=True)

    results = jax.jit(lambda args: {key: fn(*args[key[0]]) for key, fn in losses.items()})(args)
    for name in args:
        fused, plain = results[name, "fused"], results[name, "scan"]
        flat, flat0 = jax.tree_util.tree_leaves(fused), jax.tree_util.tree_leaves(plain)
        assert len(flat) == len(flat0)
        for a, b in zip(flat, flat0):
            assert np.abs(b).max() > 0, name  # every gradient reaches every input
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)
    for name, cell, mask in CASES:
        if mask is not None:  # padded steps output zeros; the row without steps keeps its carry
            (_, (final, ys)), _ = results[name, "fused"]
            assert np.all(np.asarray(ys)[mask == 0] == 0)
            for a, c in zip(final, args[name][1]):
                np.testing.assert_array_equal(a[3], c[3])


def test_the_fused_path_runs_its_own_backward_pass():
    """The equality above is not trivial: the fused path is a custom_vjp, the plain one is not."""
    cell = LSTMCell(N)
    params = random_params(cell, np.random.default_rng(0))
    x = jnp.ones((B, T, D))

    def jaxpr(impl):
        return str(jax.make_jaxpr(lambda p: scan_cell(cell, p, cell.init_carry((B,)), x,
                                                      impl=impl)[1].sum())(params))

    assert "custom_vjp" in jaxpr("fused") and "custom_vjp" not in jaxpr("scan")


def test_only_the_plain_lstm_takes_the_written_out_loops():
    """The plain LSTM's fused forward is one product per step (``[W_x; W_h]ᵀ [x_t; h]``) and
    nothing else; the peephole LSTM's generic fused path adds the hoisted input product."""
    assert LSTMCell(N).equations == "lstm"
    assert LSTMCell(N, peepholes=True).equations is None
    assert LSTMCell(N, coupled=True).equations is None
    x = jnp.ones((B, T, D))

    def products(cell):
        params = random_params(cell, np.random.default_rng(0))
        jaxpr = jax.make_jaxpr(lambda p: scan_cell(cell, p, cell.init_carry((B,)), x,
                                                   impl="fused")[1])(params)
        return str(jaxpr).count("dot_general")

    assert products(LSTMCell(N)) == 1
    assert products(LSTMCell(N, peepholes=True)) == 2


def test_cells_without_a_fused_form_fall_back_and_auto_picks_by_measurement():
    course_gru, jordan = GRUCell(N), JordanCell(N, 2)
    for cell in (course_gru, jordan):
        assert resolve_impl(cell, "fused") == "scan"
    assert resolve_impl(LSTMCell(N), "auto") == "fused"
    assert resolve_impl(LSTMCell(N, coupled=True), "auto") == "fused"
    assert resolve_impl(GRUCell(N, reset_after=True), "auto") == "scan"
    assert resolve_impl(LSTMCell(N), "scan") == "scan"
    params = random_params(course_gru, np.random.default_rng(0))
    x, carry = jnp.ones((B, T, D)), course_gru.init_carry((B,))

    def jaxpr(impl):  # the same program: the fused request ran the plain path
        return str(jax.make_jaxpr(lambda p: scan_cell(course_gru, p, carry, x, impl=impl))(params))

    assert jaxpr("fused") == jaxpr("scan")
    with pytest.raises(ValueError, match="RNN.*impl"):
        RNN(LSTMCell(N), impl="cudnn")
