"""fnn.embeddings: vocabulary, subsampling, windows, noise, the losses and one SGD step of
word2vec against direct NumPy implementations of word2vec.c's rules."""
import dataclasses

import numpy as np
import pytest
import jax
import jax.numpy as jnp

from fnn import embeddings as emb
from fnn.embeddings import sampling, word2vec as w2v


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ----------------------------------------------------------------------------- vocabulary

def test_vocabulary_keeps_min_count_most_frequent_first_and_encodes():
    sentences = [["b", "a", "c", "a"], ["b", "a", "d", "e", "e"], ["c", "b"]]
    vocab = emb.build_vocabulary(sentences, min_count=2)
    # a:3 b:3 c:2 e:2 kept (ties alphabetical), d:1 dropped
    assert vocab.words == ("a", "b", "c", "e") and list(vocab.counts) == [3, 3, 2, 2]
    assert vocab.total_tokens == 11 and vocab.index["e"] == 3
    assert emb.build_vocabulary(sentences, min_count=2, max_size=2).words == ("a", "b")
    corpus = emb.encode(sentences, vocab)
    assert corpus.ids.tolist() == [1, 0, 2, 0, 1, 0, 3, 3, 2, 1]  # "d" dropped
    assert corpus.sentence.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2] and corpus.raw_tokens == 11
    with pytest.raises(ValueError, match="build_vocabulary: min_count must be >= 1"):
        emb.build_vocabulary(sentences, min_count=0)
    with pytest.raises(ValueError, match="no word occurs min_count=9 times"):
        emb.build_vocabulary(sentences, min_count=9)


def test_read_sentences_cuts_long_lines_and_text_path_explains(tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text("One two, three four five\n\nSix SEVEN's\n")
    assert emb.read_sentences(path, max_sentence_length=2) == [
        ["One", "two,"], ["three", "four"], ["five"], ["Six", "SEVEN's"]]
    assert emb.read_sentences(path, lowercase=True, words_only=True)[0] == [
        "one", "two", "three", "four", "five"]
    assert emb.text_path("c.txt", path) == path
    monkeypatch.delenv("FNN_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="FNN_DATA is not set"):
        emb.text_path("c.txt")
    monkeypatch.setenv("FNN_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"\$FNN_DATA/text/c.txt"):
        emb.text_path("c.txt")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "c.txt").write_text("x\n")
    assert emb.text_path("c.txt") == tmp_path / "text" / "c.txt"


def test_keep_probabilities_are_word2vec_c_formula():
    counts = np.array([5000, 4000, 990, 9, 1])
    got = emb.keep_probabilities(counts, sample=1e-3)
    # word2vec.c: ran = (sqrt(cn / (sample * train_words)) + 1) * (sample * train_words) / cn
    train_words = counts.sum()
    ran = (np.sqrt(counts / (1e-3 * train_words)) + 1) * (1e-3 * train_words) / counts
    np.testing.assert_allclose(got, np.minimum(ran, 1.0), rtol=1e-12)
    assert got[0] == pytest.approx((np.sqrt(500) + 1) * 10 / 5000)  # by hand: 0.046721
    assert got[3] == got[4] == 1.0  # rare words always kept
    np.testing.assert_array_equal(emb.keep_probabilities(counts, 0.0), 1.0)
    rng = np.random.default_rng(0)
    ids = np.zeros(100_000, np.int64)
    assert sampling.subsample(got, ids, rng).mean() == pytest.approx(got[0], abs=0.003)


def test_host_rng_is_a_function_of_key_and_stream():
    def key(seed):  # the raw uint32 data of jax.random.PRNGKey(seed), without compiling it
        return np.array([0, seed], np.uint32)

    def draw(*args):
        return sampling.host_rng(*args).integers(0, 2 ** 31, 4).tolist()

    assert draw(key(7), 1) == draw(key(7), 1)
    assert draw(key(7), 1) != draw(key(7), 2) and draw(key(7), 1) != draw(key(8), 1)


def test_noise_distribution_and_alias_sampler():
    counts = np.array([100, 30, 7, 1, 1, 0])
    p = emb.noise_distribution(counts, 0.75)
    np.testing.assert_allclose(p, counts ** 0.75 / (counts ** 0.75).sum(), rtol=1e-12)
    table = sampling.alias_table(p)
    np.testing.assert_allclose(sampling.alias_distribution(table), p, atol=1e-7)
    draws = sampling.sample_negatives(table, (200, 1000), np.random.default_rng(1))
    assert draws.shape == (200, 1000) and draws.dtype == np.int32
    assert (draws != 5).all()  # zero probability, never drawn
    np.testing.assert_allclose(np.bincount(draws.ravel(), minlength=6) / draws.size, p, atol=0.003)


# ----------------------------------------------------------------------------- windows

def _word2vec_c_contexts(sentence, reach, window):
    """word2vec.c's loop: b = window − reach; for a in [b, 2·window − b], a ≠ window, the
    context at i − window + a if inside the sentence."""
    pairs = []
    for i in range(len(sentence)):
        b = window - reach[i]
        for a in range(b, 2 * window + 1 - b):
            j = i - window + a
            if a != window and 0 <= j < len(sentence) and sentence[j] == sentence[i]:
                pairs.append((i, j))
    return pairs


def test_windows_shrink_and_stop_at_sentences_like_word2vec_c():
    rng = np.random.default_rng(0)
    reach = sampling.window_reach(20_000, 4, rng)
    assert set(np.unique(reach)) == {1, 2, 3, 4}
    assert np.bincount(reach)[1:] / 20_000 == pytest.approx([0.25] * 4, abs=0.02)
    sentence = np.array([0] * 7 + [1] * 2 + [2] + [3] * 6)
    reach = sampling.window_reach(len(sentence), 3, rng)
    centre, context = sampling.skipgram_pairs(sentence, reach, 3)
    expected = _word2vec_c_contexts(sentence, reach, 3)
    assert list(zip(centre.tolist(), context.tolist())) == sorted(expected)  # centre order
    windows = sampling.cbow_windows(sentence, reach, 3)
    assert 9 not in windows.centre  # a one-word sentence has no context
    for row, i in enumerate(windows.centre):
        got = sorted(windows.context[row][windows.mask[row]].tolist())
        assert got == sorted(j for c, j in expected if c == i)


# ----------------------------------------------------------------------------- losses

def test_negative_sampling_loss_and_gradient_match_numpy(x64):
    rng = np.random.default_rng(2)
    h, u = rng.normal(size=(3, 4)), rng.normal(size=(3, 1 + 2, 4))
    weights = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    labels = np.array([1.0, 0.0, 0.0])
    scores = np.einsum("bd,bkd->bk", h, u)
    expected = -(weights * np.log(sigmoid(np.where(labels == 1, scores, -scores)))).sum(1)
    np.testing.assert_allclose(jax.jit(w2v.negative_sampling_loss)(h, u, weights), expected,
                               rtol=1e-12)
    # word2vec.c: g = label − σ(u·h); ∂L/∂h = −Σ_k g_k u_k, ∂L/∂u_k = −g_k h (per weight)
    g = weights * (labels - sigmoid(scores))
    dh, du = jax.jit(jax.grad(lambda a, b: w2v.negative_sampling_loss(a, b, weights).sum(),
                              (0, 1)))(h, u)
    np.testing.assert_allclose(dh, -np.einsum("bk,bkd->bd", g, u), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(du, -g[:, :, None] * h[:, None, :], rtol=1e-10, atol=1e-12)


def test_softmax_loss_matches_numpy(x64):
    rng = np.random.default_rng(3)
    h, w_out, targets = rng.normal(size=(5, 4)), rng.normal(size=(7, 4)), np.array([0, 6, 2, 2, 3])
    logits = h @ w_out.T
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(jax.jit(w2v.softmax_loss)(h, w_out, targets),
                               -log_p[np.arange(5), targets], rtol=1e-12)


# ----------------------------------------------------------------------------- one SGD step

def _numpy_step(w_in, w_out, inputs, mask, targets, noise, lr, softmax=False):
    """A batched word2vec step in NumPy: every example's update from the old parameters,
    summed; CBOW adds ∂L/∂h to every context row undivided (word2vec.c)."""
    new_in, new_out = w_in.copy(), w_out.copy()
    for b in range(len(targets)):
        if mask[b].sum() == 0:
            continue
        h = (mask[b][:, None] * w_in[inputs[b]]).sum(0) / mask[b].sum()
        if softmax:
            p = np.exp(w_out @ h - (w_out @ h).max())
            p /= p.sum()
            g = -p
            g[targets[b]] += 1.0  # label − softmax
            new_out += lr * g[:, None] * h[None, :]
            dh = g @ w_out
        else:
            dh = np.zeros_like(h)
            for k, word in enumerate([targets[b], *noise[b]]):
                if k > 0 and word == targets[b]:
                    continue  # word2vec.c skips a noise word equal to the target
                g = (k == 0) - sigmoid(w_out[word] @ h)
                dh += g * w_out[word]
                new_out[word] += lr * g * h
        for j, m in zip(inputs[b], mask[b]):
            new_in[j] += lr * m * dh
    return new_in, new_out


@pytest.mark.parametrize("architecture, loss", [("skipgram", "negative"), ("cbow", "softmax")])
def test_one_jitted_step_equals_numpy_sum_of_per_example_updates(architecture, loss):
    rng = np.random.default_rng(4)
    vocab_size, dim, batch = 6, 5, 4
    settings = emb.Word2VecSettings(architecture=architecture, loss=loss, dim=dim, negative=3,
                                    learning_rate=0.5, batch_size=batch, steps_per_call=2)
    params = {"input": rng.normal(size=(vocab_size, dim)).astype(np.float32),
              "output": rng.normal(size=(vocab_size, dim)).astype(np.float32)}
    c = 1 if architecture == "skipgram" else 3
    inputs = np.array([[1, 2, 1], [3, 3, 0], [0, 0, 0], [5, 4, 1]], np.int32)[:, :c]
    mask = np.array([[1, 1, 1], [1, 1, 0], [0, 0, 0], [1, 0, 1]], np.float32)[:, :c]
    mask[2] = 0.0  # a padded row
    targets = np.array([2, 1, 4, 2], np.int32)  # row 0 and 3 share a target: summed updates
    noise = np.array([[2, 0, 5], [1, 1, 4], [3, 3, 3], [2, 2, 0]], np.int32)[:, :3 if
                                                                         loss == "negative" else 0]
    arrays = tuple(np.stack([a, a]) for a in (inputs, mask, targets, noise)) + (
        np.zeros(2, np.int32),)
    run = w2v.make_run_steps(settings, total_tokens=1000)
    new, total, lr = run(jax.tree.map(jnp.asarray, params), arrays, 1)  # one step
    assert float(lr) == 0.5  # the rate at clock 0
    expected = _numpy_step(params["input"], params["output"], inputs, mask, targets, noise, 0.5,
                           softmax=loss == "softmax")
    np.testing.assert_allclose(new["input"], expected[0], rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(new["output"], expected[1], rtol=2e-5, atol=2e-6)
    assert np.isfinite(float(total)) and float(total) > 0


def test_chunks_pad_the_last_step_and_keep_the_learning_rate_clock():
    settings = emb.Word2VecSettings(batch_size=4, steps_per_call=3, negative=2)
    n = 17  # 12 examples per chunk: one full chunk, then 5 examples in 2 steps
    examples = (np.arange(n, dtype=np.int32)[:, None], np.ones((n, 1), np.float32),
                np.arange(n, dtype=np.int32) + 100, np.arange(n) * 2)  # positions rise
    table = sampling.alias_table(np.ones(5))
    first, last = w2v.chunks(examples, settings, table, np.random.default_rng(0), offset=1000)
    assert first.steps == 3 and last.steps == 2
    assert first.inputs.shape == (3, 4, 1) and first.noise.shape == (3, 4, 2)
    assert first.positions.tolist() == [1000, 1008, 1016] and first.end == 1000 + 22 + 1
    assert last.positions.tolist() == [1024, 1032, 1032] and last.end == 1000 + 32 + 1
    assert last.targets.ravel()[:5].tolist() == [112, 113, 114, 115, 116]
    assert last.input_mask.ravel().tolist() == [1] * 5 + [0] * 7  # padding masked
    assert ((0 <= last.noise) & (last.noise < 5)).all()
    softmax, = w2v.chunks(examples, dataclasses.replace(settings, steps_per_call=6), None,
                          np.random.default_rng(0))  # one chunk; no noise words without sampling
    assert softmax.noise.shape == (6, 4, 0) and softmax.steps == 5


def test_settings_are_checked_with_the_field_named():
    with pytest.raises(ValueError, match="architecture must be one of"):
        emb.Word2VecSettings(architecture="glove").check()
    with pytest.raises(ValueError, match="window must be >= 1"):
        emb.Word2VecSettings(window=0).check()
    with pytest.raises(ValueError, match="min_learning_rate <= learning_rate"):
        emb.Word2VecSettings(learning_rate=0.01, min_learning_rate=0.1).check()
