"""The encoder–decoder of fnn.models.seq2seq: greedy decoding against a Python loop over the
teacher-forced model on the growing prefix, source masks against unpadded sources, the attention
against NumPy, the parameter count, and the layer protocol (`check_layer`).

Compiling is most of these tests' time, so parameters come from `jax.eval_shape` of init (no
compile) filled with random values, and each computation is one jitted function."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.core import Context, LayerError
from fnn.models import greedy_decode
from fnn.models.seq2seq import (
    LuongAttention, seq2seq, sequence_accuracy, shift_right, split_masks, token_cross_entropy)
from fnn.testing import check_layer

KEY = jax.random.PRNGKey(0)
V_IN, V_OUT, S, T = 7, 5, 6, 5
LENGTHS = np.array([6, 3, 1])
# one model for the tests that run it, so that each shape compiles once
MODEL = seq2seq(V_IN, V_OUT, embed=4, hidden=5, cell="lstm", attention="luong")


def source_batch():
    ids = np.random.default_rng(0).integers(1, V_IN, (3, S)).astype(np.int32)
    mask = (np.arange(S)[None, :] < LENGTHS[:, None]).astype(np.float32)
    return jnp.asarray(ids * mask.astype(np.int32)), jnp.asarray(mask)  # padding id 0


def random_params(layer, input_shape, scale=1.5, seed=3):
    """``(params, state)`` of init's structure and shapes (by `jax.eval_shape`, nothing
    compiled), every entry drawn from N(0, scale²): large, so greedy decoding picks varied
    tokens."""
    params, state = jax.eval_shape(lambda key: layer.init(key, input_shape)[1:], KEY)
    leaves, tree = jax.tree_util.tree_flatten(params)
    rng = np.random.default_rng(seed)
    params = tree.unflatten([jnp.asarray(rng.normal(scale=scale, size=a.shape), a.dtype)
                             for a in leaves])
    return params, jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), state)


@jax.jit
def teacher_forced(params, state, source, decoder_in, mask):
    return MODEL.apply(params, state, (source, decoder_in),
                       context=Context(seq_mask={"source": mask}))[0]


def test_greedy_decode_equals_a_loop_over_the_growing_prefix():
    start = 0
    params, state = random_params(MODEL, ((None, S), (None, T)))
    source, mask = source_batch()
    tokens = jax.jit(lambda p: greedy_decode(MODEL, p, state, source, start=start, length=T,
                                             source_mask=mask))(params)
    # independent: the teacher-forced model rerun on [start, y_1, ..., y_t] at every step t (the
    # prefix padded with zeros after t, which the decoder, reading left to right, cannot see)
    prefix = np.zeros((3, T), np.int32)
    prefix[:, 0] = start
    for t in range(T):
        logits = teacher_forced(params, state, source, jnp.asarray(prefix), mask)
        assert logits.shape == (3, T, V_OUT)
        chosen = np.argmax(logits[:, t], -1)
        if t + 1 < T:
            prefix[:, t + 1] = chosen
    expected = np.concatenate([prefix[:, 1:], chosen[:, None]], 1)
    assert tokens.shape == (3, T) and tokens.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(tokens), expected)
    assert len(np.unique(expected)) > 1  # the decoding is not trivially constant


def test_parameter_count_and_source_masks():
    params, state = random_params(MODEL, ((None, S), (None, T)), scale=0.7)
    # 2 embeddings, 2 LSTMs 4(Nd + N² + N), attention N² + 2N·N, head N·V + V
    n, d = 5, 4
    count = sum(a.size for a in jax.tree_util.tree_leaves(params))
    assert count == (V_IN * d + V_OUT * d + 2 * 4 * (n * d + n * n + n) + 3 * n * n
                     + n * V_OUT + V_OUT)
    source, mask = source_batch()
    decoder_in = jnp.asarray(np.random.default_rng(1).integers(0, V_OUT, (3, T)), jnp.int32)
    logits = teacher_forced(params, state, source, decoder_in, mask)
    # a padded, masked source gives the logits of the same source alone
    row, n_real = 1, LENGTHS[1]
    alone = teacher_forced(params, state, source[row:row + 1, :n_real], decoder_in[row:row + 1],
                           jnp.ones((1, n_real)))
    np.testing.assert_allclose(logits[row], alone[0], rtol=1e-5, atol=1e-6)
    # ... whatever the padding holds
    junk = jnp.where(mask > 0, source, 5)
    np.testing.assert_allclose(teacher_forced(params, state, junk, decoder_in, mask), logits,
                               rtol=1e-5, atol=1e-6)


def test_split_masks_reads_a_dict_or_one_source_array():
    a, b = jnp.ones((2, 3)), jnp.ones((2, 4))
    assert split_masks("m", None) == (None, None) and split_masks("m", Context()) == (None, None)
    assert split_masks("m", Context(seq_mask=a)) == (a, None)
    assert split_masks("m", Context(seq_mask={"source": a, "target": b})) == (a, b)
    assert split_masks("m", Context(seq_mask={"target": b})) == (None, b)
    with pytest.raises(LayerError, match="'source' and 'target'.*'src'"):
        split_masks("m", Context(seq_mask={"src": a}))


def test_luong_attention_against_numpy():
    layer = LuongAttention(3)
    rng = np.random.default_rng(2)
    h, memory = rng.normal(size=(2, 4, 5)), rng.normal(size=(2, 6, 5))
    mask = np.array([[1, 1, 1, 0, 0, 0], [1] * 6], np.float32)
    params, _ = random_params(layer, ((None, 4, 5), (None, 6, 5)), scale=0.5)
    assert {k: v.shape for k, v in params.items()} == {"w_a": (5, 5), "w_c": (10, 3)}
    y = jax.jit(lambda p, h, m, mask: layer.apply(p, {}, (h, m), context=Context(
        seq_mask=mask))[0])(params, jnp.asarray(h, jnp.float32),
                            jnp.asarray(memory, jnp.float32), jnp.asarray(mask))
    w_a, w_c = (np.asarray(params[k], np.float64) for k in ("w_a", "w_c"))
    for b in range(2):
        real = memory[b][mask[b] > 0]
        for t in range(4):
            score = real @ w_a.T @ h[b, t]
            alpha = np.exp(score - score.max()) / np.exp(score - score.max()).sum()
            expected = np.tanh(np.concatenate([alpha @ real, h[b, t]]) @ w_c)
            np.testing.assert_allclose(y[b, t], expected, rtol=1e-5, atol=1e-6)


def test_helpers_shift_loss_and_accuracy():
    targets = np.array([[3, 1, 2], [4, 2, -1]])
    shifted = shift_right(targets, 0)
    assert isinstance(shifted, np.ndarray)  # NumPy stays NumPy (and jnp arrays trace, above)
    np.testing.assert_array_equal(shifted, [[0, 3, 1], [0, 4, 2]])
    logits = np.random.default_rng(4).normal(size=(2, 3, 5)).astype(np.float32)
    values = jax.jit(token_cross_entropy)(logits, targets)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = [[-log_p[b, t, targets[b, t]] if targets[b, t] >= 0 else 0.0 for t in range(3)]
                for b in range(2)]
    np.testing.assert_allclose(values, expected, rtol=1e-5)
    exact, tokens = sequence_accuracy(np.array([[3, 1, 2], [4, 0, 1]]), targets)
    assert float(exact) == 0.5 and float(tokens) == pytest.approx(4 / 5)


def test_the_model_passes_the_layer_protocol_checks():
    """check_layer takes the (source, decoder_in) pytree of shapes and integer inputs. Only its
    abstract checks run here (init's output shape against apply's, unknown batch, dtypes,
    state): the full check (jit, vmap, row masks, float64 finite differences) passes too, all 21
    checks, but compiles the model some 15 times (about 35 s on the shared cores), over this
    file's time budget."""
    model = seq2seq(V_IN, V_OUT, embed=3, hidden=3, cell="gru")

    def token_ids(rng, shape, dtype):
        return rng.integers(0, V_OUT, shape).astype(np.int32)  # valid for both vocabularies

    report = check_layer(model, ((2, 3), (2, 2)), inputs=token_ids, abstract_only=True)
    assert report.ok and len(report.results) >= 5, str(report)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="seq2seq.*cell"):
        seq2seq(5, 5, cell="transformer")
    model = seq2seq(5, 5, embed=2, hidden=2)
    with pytest.raises(LayerError, match="source_shape, decoder_in_shape"):
        model.init(KEY, ((None, 4),))
    with pytest.raises(LayerError, match="source token ids of shape"):
        model.init(KEY, ((None, 4, 2), (None, 3)))
    with pytest.raises(ValueError, match="greedy_decode: `model`"):
        greedy_decode(LuongAttention(2), {}, {}, jnp.zeros((1, 2), jnp.int32), start=0, length=2)
