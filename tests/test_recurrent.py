"""Recurrent cells and sequence layers (fnn.layers.recurrent) and truncated BPTT (fnn.sequence).

References are independent: each cell's equations from the course (lecture 8) and from PyTorch's
documentation written out in NumPy, Python loops over time, hand-made reversals of each valid
prefix, float64 finite differences.

Compile time: every `jnp` call outside `jax.jit` compiles its own small XLA program, so the test
data and references are NumPy, each test runs the fnn computations it checks inside one
`jax.jit`, and params are random NumPy arrays of the shapes init gives (`jax.eval_shape`: traced,
not compiled; a jitted init with its QR-based orthogonal blocks costs ~0.5 s to compile) unless
the test is about init's values.
"""
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import optim
from fnn.core import (
    Context, Layer, LayerError, apply_child, count_params, init_child, init_shapes,
    sequence_mask)
from fnn.layers import (
    RNN, Bidirectional, Dense, ElmanCell, GRUCell, JordanCell, LSTMCell, LSTMState, OneHot,
    RNNState, StackedRNN, TimeDistributed, serial)
from fnn.layers.recurrent import from_torch_gru, from_torch_lstm, valid_reversal
from fnn.sequence import (
    TBPTTState, chunked_loss, make_tbptt_step, mean_token_loss, sample, stream_batches,
    zero_carry)

KEY = jax.random.PRNGKey(0)
B, T, D, N = 3, 5, 4, 3


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def numpy_params(params):
    return {k: np.asarray(v, np.float64) for k, v in params.items()}


def random_params(cell, d=D, seed=1):
    """The cell's params with every entry random (biases and peepholes too, so none is skipped);
    NumPy float32 arrays of the shapes ``cell.init`` gives (traced by eval_shape, not run)."""
    shapes = jax.eval_shape(lambda key: cell.init(key, (d,))[1], KEY)
    rng = np.random.default_rng(seed)
    return {k: rng.normal(scale=0.5, size=v.shape).astype(np.float32)
            for k, v in shapes.items()}


def inputs(shape=(B, T, D), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def random_init(layer, input_shape, seed=1):
    """``layer.init``'s (output shape, params, state) with the params (and any state) random
    NumPy float32 arrays of init's shapes (`init_shapes`: traced, nothing compiled)."""
    shape, params, state = init_shapes(layer, input_shape)
    rng = np.random.default_rng(seed)
    params, state = jax.tree_util.tree_map(
        lambda a: rng.normal(scale=0.5, size=a.shape).astype(np.float32), (params, state))
    return shape, params, state


def to_numpy(tree):
    """A pytree of device arrays as NumPy arrays (indexing them then compiles nothing)."""
    return jax.tree_util.tree_map(np.asarray, tree)


# --- the course's equations, one step, in NumPy -------------------------------------------------

def elman_step(p, h, x, phi):
    h = phi(x @ p["w_x"] + h @ p["w_h"] + p["b"])
    return h, h


def jordan_step(p, y, x):
    h = np.tanh(x @ p["w_x"] + y @ p["w_y"] + p["b"])
    y = sigmoid(h @ p["w_o"] + p["b_o"])
    return y, y


def lstm_step(p, carry, x, peepholes=False, coupled=False):
    h, c = carry
    n = h.shape[-1]
    W = {g: (p["w_x"][:, k * n:(k + 1) * n], p["w_h"][:, k * n:(k + 1) * n],
             p["b"][k * n:(k + 1) * n])
         for k, g in enumerate("igo" if coupled else "ifgo")}

    def pre(g):
        wx, wh, b = W[g]
        return x @ wx + h @ wh + b

    i = sigmoid(pre("i") + (p["p_i"] * c if peepholes else 0))
    f = 1 - i if coupled else sigmoid(pre("f") + (p["p_f"] * c if peepholes else 0))
    c_new = f * c + i * np.tanh(pre("g"))
    o = sigmoid(pre("o") + (p["p_o"] * c_new if peepholes else 0))
    h_new = o * np.tanh(c_new)
    return (h_new, c_new), h_new


def gru_course_step(p, h, x):
    """z = σ(W_z[h, x]), r = σ(W_r[h, x]), h̃ = tanh(W[r ⊙ h, x]), h = (1 − z) h + z h̃."""
    n = h.shape[-1]
    wx, wh, b = p["w_x"], p["w_h"], p["b"]
    r = sigmoid(np.concatenate([h, x], -1) @ np.concatenate([wh[:, :n], wx[:, :n]]) + b[:n])
    z = sigmoid(np.concatenate([h, x], -1) @ np.concatenate([wh[:, n:2 * n], wx[:, n:2 * n]])
                + b[n:2 * n])
    cand = np.tanh(np.concatenate([r * h, x], -1) @ np.concatenate([wh[:, 2 * n:], wx[:, 2 * n:]])
                   + b[2 * n:])
    h = (1 - z) * h + z * cand
    return h, h


def run_numpy(step, carry, xs):
    """Loop ``step`` over time: xs (batch, time, d) -> (final carry, ys (batch, time, N))."""
    ys = []
    for t in range(xs.shape[1]):
        carry, y = step(carry, xs[:, t])
        ys.append(y)
    return carry, np.stack(ys, 1) if ys else np.zeros(xs.shape[:2] + (0,))


CELL_CASES = {
    "elman_sigmoid": (lambda: ElmanCell(N, activation="sigmoid"),
                      lambda p: lambda h, x: elman_step(p, h, x, sigmoid), 1),
    "jordan": (lambda: JordanCell(N, 2), lambda p: lambda y, x: jordan_step(p, y, x), 1),
    "lstm": (lambda: LSTMCell(N), lambda p: lambda c, x: lstm_step(p, c, x), 2),
    "lstm_peepholes": (lambda: LSTMCell(N, peepholes=True),
                       lambda p: lambda c, x: lstm_step(p, c, x, peepholes=True), 2),
    "lstm_coupled_peepholes": (lambda: LSTMCell(N, coupled=True, peepholes=True),
                               lambda p: lambda c, x: lstm_step(p, c, x, True, True), 2),
    "gru_course": (lambda: GRUCell(N), lambda p: lambda h, x: gru_course_step(p, h, x), 1),
}


@pytest.mark.parametrize("name", list(CELL_CASES))
def test_cells_follow_the_course_equations(name):
    """RNN(cell) over a sequence equals the course's equations looped in NumPy, step by step,
    final carry included (from a nonzero initial carry)."""
    make, reference, fields = CELL_CASES[name]
    cell = make()
    params = random_params(cell)
    x = inputs()
    carry0 = jax.tree_util.tree_map(
        lambda a: np.random.default_rng(5).normal(size=a.shape).astype(np.float32),
        jax.eval_shape(lambda: cell.init_carry((B,), jnp.float32)))
    layer = RNN(cell, return_state=True, initial_carry="given")
    (y, carry), _ = jax.jit(layer.apply)(params, {}, (x, carry0))
    start = tuple(np.asarray(a, np.float64) for a in carry0)
    carry_np, y_np = run_numpy(reference(numpy_params(params)),
                               start if fields == 2 else start[0], np.asarray(x, np.float64))
    np.testing.assert_allclose(y, y_np, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(carry[0] if fields == 1 else carry,
                               carry_np if fields == 2 else carry_np, rtol=2e-5, atol=2e-6)


def test_scan_equals_a_python_loop_over_the_cell():
    """The scanned layer (unrolled by 2, time-major or not) equals calling cell.apply in a loop."""
    cell = LSTMCell(N, peepholes=True)
    params = random_params(cell)
    x = inputs()
    layers = [(RNN(cell, return_state=True, unroll=2), x, 1),
              (RNN(cell, return_state=True, time_major=True), np.swapaxes(x, 0, 1), 0)]

    @jax.jit
    def run(params):
        carry = cell.init_carry((B,), jnp.float32)
        ys = []
        for t in range(T):  # the Python loop, unrolled into the program
            carry, y = cell.apply(params, carry, x[:, t])
            ys.append(y)
        scans = [layer.apply(params, {}, xin)[0] for layer, xin, _ in layers]
        last, _ = RNN(cell, return_sequences=False).apply(params, {}, x)
        return carry, ys, scans, last

    carry, ys, scans, last = run(params)
    for (_, _, axis), (y_scan, carry_scan) in zip(layers, scans):
        np.testing.assert_allclose(y_scan, np.stack(ys, axis), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(carry_scan.c, carry.c, rtol=1e-6, atol=1e-6)
        assert isinstance(carry_scan, LSTMState)
    np.testing.assert_allclose(last, ys[-1], rtol=1e-6, atol=1e-6)


# --- PyTorch's formulas, written out from its documentation -------------------------------------

def torch_lstm_step(Wih, Whh, bih, bhh, h, c, x):
    """torch.nn.LSTM: gates = W_ih x + b_ih + W_hh h + b_hh, split i, f, g, o."""
    gates = x @ Wih.T + bih + h @ Whh.T + bhh
    i, f, g, o = np.split(gates, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def torch_gru_step(Wih, Whh, bih, bhh, h, x):
    """torch.nn.GRU: r, z = σ(W_i· x + b_i· + W_h· h + b_h·);
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)); h' = (1 − z) ⊙ n + z ⊙ h."""
    xr, xz, xn = np.split(x @ Wih.T + bih, 3, axis=-1)
    hr, hz, hn = np.split(h @ Whh.T + bhh, 3, axis=-1)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    return (1 - z) * n + z * h


def test_pytorch_weights_give_pytorch_outputs():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(B, T, D))
    for kind, gates in [("lstm", 4), ("gru", 3)]:
        Wih, Whh = rng.normal(size=(gates * N, D)) * 0.5, rng.normal(size=(gates * N, N)) * 0.5
        bih, bhh = rng.normal(size=gates * N) * 0.5, rng.normal(size=gates * N) * 0.5
        h, c, ys = np.zeros((B, N)), np.zeros((B, N)), []
        for t in range(T):
            if kind == "lstm":
                h, c = torch_lstm_step(Wih, Whh, bih, bhh, h, c, x[:, t])
            else:
                h = torch_gru_step(Wih, Whh, bih, bhh, h, x[:, t])
            ys.append(h)
        if kind == "lstm":
            cell, convert = LSTMCell(N), from_torch_lstm
        else:
            cell, convert = GRUCell(N, reset_after=True), from_torch_gru

        @jax.jit
        def run(weights, x):
            params = {k: v.astype(jnp.float32) for k, v in convert(*weights).items()}
            y, _ = RNN(cell).apply(params, {}, x)
            if kind == "lstm":
                return y, None
            # the course's GRU is another function of the same weights
            return y, RNN(GRUCell(N)).apply(
                {k: v for k, v in params.items() if k != "b_hn"}, {}, x)[0]

        y, course = run((Wih, Whh, bih, bhh), x.astype(np.float32))
        np.testing.assert_allclose(y, np.stack(ys, 1), rtol=2e-5, atol=2e-6, err_msg=kind)
    assert np.abs(np.asarray(course) - np.stack(ys, 1)).max() > 1e-2


@pytest.mark.parametrize("cell,count", [
    (ElmanCell(N), N * D + N * N + N),
    (LSTMCell(N), 4 * (N * D + N * N + N)),
    (LSTMCell(N, peepholes=True), 4 * (N * D + N * N + N) + 3 * N),
    (LSTMCell(N, coupled=True), 3 * (N * D + N * N + N)),
    (LSTMCell(N, coupled=True, peepholes=True), 3 * (N * D + N * N + N) + 2 * N),
    (GRUCell(N), 3 * (N * D + N * N + N)),
    (GRUCell(N, reset_after=True), 3 * (N * D + N * N + N) + N),
    (JordanCell(N, 2), N * D + 2 * N + N + N * 2 + 2),
], ids=lambda v: getattr(v, "name", str(v)))
def test_parameter_counts(cell, count):
    """The course's counts: Nd + N² + N for the RNN, 4(Nd + N² + N) for the LSTM (counted on
    the shapes init gives, traced by eval_shape)."""
    assert count_params(jax.eval_shape(lambda key: cell.init(key, (D,))[1], KEY)) == count
    assert count_params(init_shapes(RNN(cell), (None, T, D))[1]) == count


def test_forget_bias_initializes_the_forget_gate_only():
    b, b_coupled = jax.jit(lambda key: [cell.init(key, (D,))[1]["b"] for cell in (
        LSTMCell(N, forget_bias=1.0), LSTMCell(N, coupled=True, forget_bias=1.0))])(KEY)
    np.testing.assert_array_equal(b, np.r_[np.zeros(N), np.ones(N), np.zeros(2 * N)])
    np.testing.assert_array_equal(b_coupled, np.r_[-np.ones(N), np.zeros(2 * N)])


# --- variable lengths -------------------------------------------------------------------------

LENGTHS = np.array([5, 2, 0])


def masked_setup(cell=None):
    cell = cell or LSTMCell(N)
    params = random_params(cell)
    x = inputs()
    x[np.arange(T)[None, :] >= LENGTHS[:, None]] = 100.0  # padding that would show
    context = Context(seq_mask=np.asarray(jax.jit(sequence_mask, static_argnums=1)(LENGTHS, T)))
    return cell, params, x, context


def test_masked_outputs_and_final_carry_equal_unpadded_runs():
    cell, params, x, context = masked_setup()
    layer = RNN(cell, return_state=True)

    @jax.jit
    def run(params, x):
        (y, carry), _ = layer.apply(params, {}, x, context=context)
        (last, _), _ = RNN(cell, return_sequences=False, return_state=True).apply(
            params, {}, x, context=context)
        alone = [layer.apply(params, {}, x[b:b + 1, :length])[0] if length else
                 (None, cell.init_carry((1,), jnp.float32)) for b, length in enumerate(LENGTHS)]
        return y, carry, last, alone

    y, carry, last, alone = to_numpy(run(params, x))
    for b, length in enumerate(LENGTHS):
        y_b, carry_b = alone[b]
        if length:
            np.testing.assert_allclose(y[b, :length], y_b[0], rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(last[b], y_b[0, -1], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(y[b, length:], 0.0)
        for got, want in zip(carry, carry_b):
            np.testing.assert_allclose(got[b], want[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(last[2], 0.0)  # no valid step: zeros


def test_padded_steps_pass_no_gradient():
    cell, params, x, context = masked_setup(GRUCell(N))
    layer = RNN(cell, return_state=True)

    def loss(params, x):
        (y, carry), _ = layer.apply(params, {}, x, context=context)
        return jnp.sum(jnp.sin(y)) + jnp.sum(carry.h ** 2)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    g_params, g_x = grad(params, x)
    padded = np.arange(T)[None, :] >= LENGTHS[:, None]
    np.testing.assert_array_equal(np.asarray(g_x)[padded], 0.0)
    assert np.abs(np.asarray(g_x)[~padded]).min() > 0
    other = np.where(padded[..., None], np.float32(-7.0), x)  # other padding, same gradient
    g_other, _ = grad(params, other)
    for k in g_params:
        np.testing.assert_allclose(g_params[k], g_other[k], rtol=1e-6, atol=1e-7)


def test_named_sequence_masks():
    cell, params, x, context = masked_setup()
    masks = {"source": context.seq_mask, "target": np.ones((B, T), np.float32)}

    @jax.jit
    def run(params, x):
        y_named, _ = RNN(cell, seq_mask="source").apply(params, {}, x,
                                                        context=Context(seq_mask=masks))
        y, _ = RNN(cell).apply(params, {}, x, context=context)
        return y_named, y

    y_named, y = run(params, x)
    np.testing.assert_array_equal(y_named, y)
    with pytest.raises(LayerError, match="seq_mask=NAME"):
        RNN(cell).apply(params, {}, x, context=Context(seq_mask=masks))
    with pytest.raises(LayerError, match="'other'"):
        RNN(cell, seq_mask="other").apply(params, {}, x, context=Context(seq_mask=masks))
    with pytest.raises(LayerError, match=r"sequence mask of shape \(3, 5\)"):
        RNN(cell).apply(params, {}, x, context=Context(seq_mask=np.ones((B, T + 1))))


def test_valid_reversal_reverses_each_valid_prefix():
    holes = np.array([[1, 0, 1, 1, 0]], np.int32)
    prefixes, holed = jax.jit(lambda holes: (valid_reversal(sequence_mask(LENGTHS, T)),
                                             valid_reversal(holes)))(holes)
    np.testing.assert_array_equal(prefixes, [[4, 3, 2, 1, 0], [1, 0, 2, 3, 4], [0, 1, 2, 3, 4]])
    np.testing.assert_array_equal(holed, [[3, 1, 2, 0, 4]])


def test_bidirectional_against_reversing_each_prefix_by_hand():
    """Forward outputs, backward outputs over each reversed valid prefix put back in forward
    order (NumPy), zeros at padding; final carries; the sum merge; the last outputs."""
    _, _, x, context = masked_setup()
    layer = Bidirectional(ElmanCell(N), return_state=True)

    _, params, state = random_init(layer, (None, T, D))

    @jax.jit
    def run(params, state, x):
        (y, carries), _ = layer.apply(params, state, x, context=context)
        summed, _ = Bidirectional(ElmanCell(N), merge="sum").apply(params, state, x,
                                                                   context=context)
        # the last step each direction read: forward at the last valid step, backward at step 0
        last, _ = Bidirectional(ElmanCell(N), return_sequences=False).apply(params, state, x,
                                                                           context=context)
        return y, carries, summed, last

    y, carries, summed, last = to_numpy(run(params, state, x))
    pf, pb = numpy_params(params["forward"]), numpy_params(params["backward"])
    xs = np.asarray(x, np.float64)
    for b, length in enumerate(LENGTHS):
        fwd_carry, fwd = run_numpy(lambda h, v: elman_step(pf, h, v, np.tanh), np.zeros((1, N)),
                                   xs[b:b + 1, :length])
        bwd_carry, bwd = run_numpy(lambda h, v: elman_step(pb, h, v, np.tanh), np.zeros((1, N)),
                                   xs[b:b + 1, :length][:, ::-1])
        if length:
            want = np.concatenate([fwd, bwd[:, ::-1]], -1)  # backward back in forward order
            np.testing.assert_allclose(y[b, :length], want[0], rtol=2e-5, atol=2e-6)
        np.testing.assert_array_equal(y[b, length:], 0.0)
        np.testing.assert_allclose(carries.forward.h[b], fwd_carry[0], rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(carries.backward.h[b], bwd_carry[0], rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(summed, y[..., :N] + y[..., N:], rtol=1e-6)
    np.testing.assert_allclose(last[0], np.r_[y[0, 4, :N], y[0, 0, N:]], rtol=1e-6)
    np.testing.assert_allclose(last[1], np.r_[y[1, 1, :N], y[1, 0, N:]], rtol=1e-6)
    np.testing.assert_array_equal(last[2], 0.0)


# --- initial carries, stacking, time distribution ---------------------------------------------

def test_learned_initial_carry_is_a_parameter():
    layer = RNN(LSTMCell(N), initial_carry="learned", return_state=True)
    _, params, _ = random_init(layer, (None, T, D))
    assert set(params["carry0"]) == {"h", "c"} and params["carry0"]["c"].shape == (N,)
    params["carry0"] = {"h": np.full((N,), 0.3, np.float32), "c": np.full((N,), -0.2, np.float32)}
    x = inputs()
    given = RNN(LSTMCell(N), initial_carry="given")

    @jax.jit
    def run(params):
        (y, _), _ = layer.apply(params, {}, x)
        y_given, _ = given.apply({k: v for k, v in params.items() if k != "carry0"}, {},
                                 (x, (jnp.full((B, N), 0.3), jnp.full((B, N), -0.2))))
        grads = jax.grad(lambda p: jnp.sum(layer.apply(p, {}, x)[0][0]))(params)
        return y, y_given, grads

    y, y_given, grads = run(params)
    np.testing.assert_allclose(y, y_given, rtol=1e-6)
    assert np.abs(grads["carry0"]["c"]).max() > 0


def test_stacked_rnn_equals_serial_and_threads_carries():
    cells = (LSTMCell(4), GRUCell(N))
    stacked = StackedRNN(*cells, dropout=0.5)
    plain = serial(RNN(cells[0]), RNN(cells[1]))
    given = StackedRNN(*cells, initial_carry="given", return_state=True)
    names = []  # the params' keys in init's order (eval_shape's dicts come back sorted)
    jax.eval_shape(lambda key: names.extend(stacked.init(key, (None, T, D))[1]), KEY)
    assert names == ["rnn_0", "dropout_0", "rnn_1"]
    _, params, state = random_init(stacked, (None, T, D))
    out_shape = init_shapes(given, ((None, T, D), None))[0]
    x = inputs()

    @jax.jit
    def run(params, state):
        y, _ = stacked.apply(params, state, x)  # eval: dropout is the identity
        y_plain, _ = plain.apply({"rnn_0": params["rnn_0"], "rnn_1": params["rnn_1"]},
                                 {"rnn_0": {}, "rnn_1": {}}, x)
        carries = zero_carry(out_shape[1], B)
        (y1, c1), _ = given.apply(params, state, (x[:, :2], carries))
        (y2, c2), _ = given.apply(params, state, (x[:, 2:], c1))
        return y, y_plain, y1, y2, c2

    y, y_plain, y1, y2, c2 = run(params, state)
    np.testing.assert_allclose(y, y_plain, rtol=1e-6)
    np.testing.assert_allclose(np.concatenate([y1, y2], 1), y, rtol=1e-5, atol=1e-6)
    assert isinstance(c2[0], LSTMState) and isinstance(c2[1], RNNState)


def test_time_distributed_equals_dense_on_the_last_axis_and_masks_rows():
    td = TimeDistributed(Dense(2))
    x = inputs()
    seen = []

    def spy(params, state, x, *, key=None, train=False, context=None):
        seen.append(context.mask)
        return x, state

    @jax.jit
    def run(key):
        shape, params, state = td.init(key, (None, T, D))
        assert shape == (None, T, 2)
        y, _ = td.apply(params, state, x)
        TimeDistributed(Layer(lambda k, s: (s, {}, {}), spy, "spy")).apply(
            {}, {}, x, context=Context(mask=jnp.array([1.0, 1.0, 0.0]),
                                       seq_mask=sequence_mask(LENGTHS, T)))
        return y, Dense(2).apply(params, {}, x)[0], seen[0]  # the mask the spy saw

    y, y_dense, mask_seen = run(KEY)
    np.testing.assert_allclose(y, y_dense, rtol=1e-6)
    np.testing.assert_array_equal(mask_seen, np.r_[np.ones(5), [1, 1, 0, 0, 0], np.zeros(5)])


def test_errors_name_the_layer_and_the_fix():
    with pytest.raises(LayerError, match=r"RNN\(LSTMCell\(3\)\) expects inputs of shape "
                                         r"\(batch, time, features\); got \(batch, 4\)"):
        RNN(LSTMCell(N)).init(KEY, (None, D))
    with pytest.raises(LayerError, match="initial_carry='given' and expects inputs"):
        RNN(LSTMCell(N), initial_carry="given").init(KEY, (None, T, D))
    with pytest.raises(LayerError, match="expects an initial carry"):
        RNN(ElmanCell(N), initial_carry="given").apply(
            random_params(ElmanCell(N)), {}, (inputs(), (np.zeros((B, N + 1), np.float32),)))
    with pytest.raises(LayerError, match="expects inputs with 4 features per step"):
        RNN(ElmanCell(N)).apply(random_params(ElmanCell(N)), {}, inputs((B, T, D + 1)))
    with pytest.raises(ValueError, match="RNN: `initial_carry` must be one of"):
        RNN(LSTMCell(N), initial_carry="random")
    with pytest.raises(ValueError, match="`activation` must be 'tanh' or 'sigmoid'"):
        ElmanCell(N, activation="relu")
    with pytest.raises(TypeError, match="must be a Cell"):
        RNN(Dense(3))


# --- backpropagation through time ---------------------------------------------------------------

def test_bptt_gradients_match_float64_finite_differences(x64):
    """jax.grad through the masked scan equals central differences (GRU, course form)."""
    cell, params, x, context = masked_setup(GRUCell(2))
    x = x[:, :4, :2].astype(np.float64)
    params = {k: v.astype(np.float64) for k, v in random_params(cell, d=2).items()}
    layer = RNN(cell, return_state=True)
    flat, unravel = jax.flatten_util.ravel_pytree((params, x))

    def loss(flat):
        p, v = unravel(flat)
        context = Context(seq_mask=sequence_mask(np.array([4, 2, 1]), 4))
        (y, carry), _ = layer.apply(p, {}, v, context=context)
        return jnp.sum(jnp.cos(y)) + jnp.sum(carry.h)

    eps = 1e-6
    steps = eps * np.eye(flat.size)

    @jax.jit
    def grad_and_fd(flat):
        fd = (jax.vmap(loss)(flat[None] + steps) - jax.vmap(loss)(flat[None] - steps)) / (2 * eps)
        return jax.grad(loss)(flat), fd

    grad, fd = grad_and_fd(flat)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def tbptt_model():
    return StackedRNN(ElmanCell(N), initial_carry="given", return_state=True)


def test_truncated_bptt_stops_gradients_at_chunk_boundaries():
    model = tbptt_model()
    x = inputs((B, 6, D))
    targets = np.concatenate([np.zeros((B, 3, N), np.float32), np.ones((B, 3, N), np.float32)], 1)

    shape, params, state = random_init(model, ((None, 6, D), None))

    @jax.jit
    def run(x):
        carry = zero_carry(shape[1], B)

        def loss_of(chunk):
            def dot(y, t):  # only the second chunk's outputs count
                return jnp.sum(y * t)
            return jax.grad(lambda x: chunked_loss(model, params, state, carry, x, targets,
                                                   chunk=chunk, loss=dot), has_aux=True)

        return loss_of(3)(x), loss_of(6)(x)

    (g_truncated, (c_chunks, _)), (g_full, (c_full, _)) = to_numpy(run(x))
    np.testing.assert_array_equal(g_truncated[:, :3], 0.0)  # nothing crosses the boundary
    assert np.abs(g_full[:, :3]).min() > 0  # without truncation it would
    # chunked_loss averages its 2 chunks: the second chunk's gradient is half the full one
    np.testing.assert_allclose(2 * g_truncated[:, 3:], g_full[:, 3:], rtol=1e-5, atol=1e-7)
    # the forward pass is not truncated: chunk 2 starts from chunk 1's carry
    np.testing.assert_allclose(c_chunks[0].h, c_full[0].h, rtol=1e-6)


def test_tbptt_step_passes_the_carry_and_stops_its_gradient():
    rnn = StackedRNN(ElmanCell(4), initial_carry="given", return_state=True)
    ids = np.array([[0, 1, 2], [3, 2, 1]], np.int32)
    optimizer = optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(0.1))
    step = make_tbptt_step(rnn, optimizer, loss=mean_token_loss)

    shape, params, state = random_init(rnn, ((None, 3, 4), None))

    @jax.jit
    def setup(params, state):
        carry = zero_carry(shape[1], 2)
        x = OneHot(4).apply({}, {}, ids)[0]
        (_, expected_carry), _ = rnn.apply(params, state, (x, carry))
        return TBPTTState(params, state, optimizer.init(params), carry), x, expected_carry

    train, x, expected_carry = setup(params, state)
    new, loss = step(train, x, ids, KEY)
    np.testing.assert_allclose(new.carry[0].h, expected_carry[0].h, rtol=1e-6)
    assert np.isfinite(loss) and not np.allclose(new.params["rnn_0"]["w_h"],
                                                 params["rnn_0"]["w_h"])


def test_stream_batches_continue_each_row_across_chunks():
    tokens = np.arange(23)
    x, y = stream_batches(tokens, batch=2, chunk=5)
    assert x.shape == (2, 2, 5)  # (chunks, batch, chunk): L = 11 per stream, 2 whole chunks
    np.testing.assert_array_equal(np.concatenate([x[0], x[1]], 1), [np.arange(10),
                                                                    np.arange(11, 21)])
    np.testing.assert_array_equal(y, x + 1)
    with pytest.raises(ValueError, match="stream_batches: 23 tokens make no chunk"):
        stream_batches(tokens, batch=4, chunk=6)


# --- sampling -----------------------------------------------------------------------------------

def test_sampling_is_reproducible_and_temperature_zero_is_argmax():
    logits = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]], np.float32))
    np.testing.assert_array_equal(jax.jit(sample, static_argnums=2)(KEY, logits, 0.0), [1, 0])
    draws = jax.jit(lambda keys, t: jax.vmap(lambda k: sample(k, logits, t))(keys),
                    static_argnums=1)
    keys = np.asarray(jax.jit(jax.random.split, static_argnums=1)(KEY, 2000))
    hot, again, cold = draws(keys, 1.0), draws(keys, 1.0), draws(keys[:200], 0.05)
    np.testing.assert_array_equal(hot, again)  # a key gives the same draw
    assert (np.asarray(cold) == np.array([[1, 0]])).all()  # T -> 0: the argmax
    np.testing.assert_allclose(np.mean(np.asarray(hot[:, 0]) == 1), 0.6, atol=0.04)
    with pytest.raises(ValueError, match="sample: `temperature`"):
        sample(KEY, logits, -1.0)


def test_the_hello_example_learns():
    """Train on "hell" -> "ello" (course, lecture 8): the scores' argmax spells "ello"."""
    rnn = StackedRNN(ElmanCell(8), initial_carry="given", return_state=True)

    def init(key, input_shape):
        ids_shape = input_shape[0]
        _, p_rnn, _ = init_child("rnn", rnn, jax.random.fold_in(key, 0), ((None, None, 4), None))
        out = init_child("head", Dense(4), jax.random.fold_in(key, 1), (None, None, 8))
        return ((ids_shape + (4,), None), {"rnn": p_rnn, "head": out[1]},
                {"rnn": {"rnn_0": {}}, "head": {}})

    def apply(params, state, inputs, *, key=None, train=False, context=None):
        ids, carry = inputs
        x = OneHot(4).apply({}, {}, ids)[0]
        (h, carry), _ = apply_child("rnn", rnn, params["rnn"], state["rnn"], (x, carry))
        y, _ = apply_child("head", Dense(4), params["head"], {}, h)
        return (y, carry), state

    model = Layer(init, apply, "hello", "hello")
    params, state = jax.jit(lambda key: model.init(key, ((None, 4), None))[1:])(KEY)
    carry = (RNNState(np.zeros((1, 8), np.float32)),)
    x = np.array([[0, 1, 2, 2]], np.int32)  # h e l l
    y = np.array([[1, 2, 2, 3]], np.int32)  # -> e l l o
    optimizer = optim.adam(0.05)

    @jax.jit
    def train(params):
        def body(_, carry_state):
            p, s = carry_state
            grads = jax.grad(lambda p: mean_token_loss(
                model.apply(p, state, (x, carry))[0][0], y))(p)
            updates, s = optimizer.update(grads, s, p)
            return optim.apply_updates(p, updates), s
        return jax.lax.fori_loop(0, 100, body, (params, optimizer.init(params)))[0]

    @jax.jit
    def evaluate(params):
        (scores, _), _ = model.apply(params, state, (x, carry))
        return scores, mean_token_loss(scores, y)

    scores, loss = evaluate(train(params))
    assert list(np.argmax(scores[0], -1)) == [1, 2, 2, 3]
    assert float(loss) < 0.1
