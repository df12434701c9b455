"""word2vec (course lecture 6): CBOW and skip-gram with negative sampling or a full softmax.

Parameters are ``{"input": W (V, D), "output": U (V, D)}``: row ``W[w]`` is the embedding of word
``w`` (the "input" vectors; word2vec.c's ``syn0``), ``U[w]`` its output vector (``syn1neg``).
Initialization as word2vec.c and gensim: ``W ~ U(−0.5/D, 0.5/D)``, ``U = 0``.

One training example is an input ``h`` (D,) and a target word ``o``:

* skip-gram: ``h = W[c]`` for the centre word ``c``, the target is one context word (the course's
  "word predicts its context"; word2vec.c swaps the two roles, which gives the same pairs);
* CBOW: ``h = (1/|C|) Σ_{j∈C} W[j]`` over the context window ``C``, the target is the centre.

Losses, per example (σ the logistic function):

* negative sampling: ``L = −log σ(U[o]·h) − Σ_{k=1}^{K} log σ(−U[n_k]·h)``, the ``K`` noise
  words ``n_k ~ P_n ∝ count^0.75``; a noise word equal to ``o`` is skipped (as word2vec.c does);
* full softmax: ``L = −log softmax(U h)[o] = logsumexp_v(U[v]·h) − U[o]·h`` (small vocabularies).

Training is plain SGD on the sum (not the mean) of the per-example losses of a mini-batch of
``batch_size`` examples, so that each example moves the rows it touches as far as one
word2vec.c update would: the rows of the batch are gathered, the gradient computed with respect
to the gathered rows, and ``−η ∂L/∂row`` scatter-added back (rows shared by several examples
receive the sum). For CBOW the gradient with respect to ``h`` is added to every context row
undivided, as word2vec.c and gensim (``cbow_mean=1``) do. The learning rate decays linearly in
the number of corpus tokens processed, from ``learning_rate`` to ``min_learning_rate`` at the end
of the last epoch (gensim's ``alpha``/``min_alpha``). ``steps_per_call`` mini-batches run in one
jitted loop (``lax.fori_loop``); the host prepares the next chunk while the device works.

Unlike word2vec.c, the examples of an epoch are shuffled by default (``shuffle``): consecutive
examples of a text share words and topic, and updates computed together from the same
parameters then pile up on the same rows. In corpus order the batched updates gave slightly
worse vectors than gensim's sequential ones on ``enwiki_sample.txt``; shuffled, better ones (see
benchmarks/README.md).

Randomness: the initialization (``jax.random`` with ``key``) and the host pipeline
(subsampling, window shrink, shuffling and noise words, drawn with a NumPy generator per epoch
seeded by `fnn.embeddings.sampling.host_rng` from ``key`` and the epoch number) all come from the
one ``key`` given to `train`.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnn.embeddings import sampling
from fnn.embeddings.vocab import EncodedCorpus, Vocabulary, keep_probabilities, noise_distribution
from fnn.init import uniform
from fnn.optim.schedules import linear_schedule
from fnn.train import progress_bar

__all__ = ["Word2VecSettings", "Chunk", "TrainResult", "init_params", "negative_sampling_loss",
           "softmax_loss", "make_run_steps", "epoch_examples", "chunks", "train"]

ARCHITECTURES = ("skipgram", "cbow")
LOSSES = ("negative", "softmax")


@dataclasses.dataclass(frozen=True)
class Word2VecSettings:
    """Everything `train` needs besides the corpus and the key (defaults: gensim's, plus
    ``shuffle``, ``batch_size`` and ``steps_per_call``, which gensim does not have)."""

    architecture: str = "skipgram"  # "skipgram" | "cbow"
    loss: str = "negative"  # "negative" (sampling) | "softmax" (full; small vocabularies)
    dim: int = 100  # D, the size of the word vectors
    window: int = 5  # largest distance between centre and context (shrunk at random per centre)
    negative: int = 5  # K, noise words per example
    noise_power: float = 0.75  # P_n ∝ count^power
    sample: float = 1e-3  # subsampling threshold s (0: keep every token)
    epochs: int = 5
    learning_rate: float = 0.025  # η at the start (word2vec.c: 0.025 skip-gram, 0.05 CBOW)
    min_learning_rate: float = 1e-4  # η at the end of the last epoch
    shuffle: bool = True  # shuffle each epoch's examples (word2vec.c: corpus order)
    batch_size: int = 256  # examples per SGD step
    steps_per_call: int = 256  # SGD steps per jitted call

    def check(self) -> "Word2VecSettings":
        """Return self, or raise ValueError naming the first bad field."""
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"Word2VecSettings: architecture must be one of {ARCHITECTURES}; "
                             f"got {self.architecture!r}.")
        if self.loss not in LOSSES:
            raise ValueError(f"Word2VecSettings: loss must be one of {LOSSES}; got {self.loss!r}.")
        for name in ("dim", "window", "epochs", "batch_size", "steps_per_call"):
            if getattr(self, name) < 1:
                raise ValueError(f"Word2VecSettings: {name} must be >= 1; "
                                 f"got {getattr(self, name)}.")
        if self.loss == "negative" and self.negative < 1:
            raise ValueError(f"Word2VecSettings: negative must be >= 1 with loss='negative'; "
                             f"got {self.negative}.")
        if not 0 <= self.min_learning_rate <= self.learning_rate:
            raise ValueError(f"Word2VecSettings: need 0 <= min_learning_rate <= learning_rate; "
                             f"got {self.min_learning_rate} and {self.learning_rate}.")
        if self.sample < 0:
            raise ValueError(f"Word2VecSettings: sample must be >= 0; got {self.sample}.")
        return self


def init_params(key, vocab_size: int, dim: int) -> Dict[str, jax.Array]:
    """``{"input": W ~ U(−0.5/D, 0.5/D) (V, D), "output": U = 0 (V, D)}`` (word2vec.c)."""
    return {"input": uniform(0.5 / dim)(key, (vocab_size, dim)),
            "output": jnp.asarray(np.zeros((vocab_size, dim), np.float32))}


# ----------------------------------------------------------------------------- losses

def negative_sampling_loss(h, outputs, weights):
    """Per-example negative-sampling loss.

    ``h`` (B, D) inputs; ``outputs`` (B, 1+K, D) the output vectors of the target (first) and
    the K noise words; ``weights`` (B, 1+K) multiply each term (0 drops it). Returns (B,):
    ``−w_0 log σ(u_0·h) − Σ_k w_k log σ(−u_k·h)``.
    """
    scores = jnp.einsum("bd,bkd->bk", h, outputs)
    signs = jnp.where(jnp.arange(outputs.shape[1]) == 0, 1.0, -1.0).astype(scores.dtype)
    return -jnp.sum(weights * jax.nn.log_sigmoid(signs[None, :] * scores), axis=-1)


def softmax_loss(h, w_out, targets):
    """Per-example full-softmax loss ``logsumexp_v(U[v]·h) − U[o]·h``: ``h`` (B, D), ``w_out``
    (V, D), ``targets`` (B,) int -> (B,)."""
    logits = h @ w_out.T
    picked = jnp.take_along_axis(logits, targets[:, None], axis=1)[:, 0]
    return jax.nn.logsumexp(logits, axis=-1) - picked


# ----------------------------------------------------------------------------- one jitted chunk

class Chunk(NamedTuple):
    """``steps_per_call`` mini-batches for one jitted call (unused steps and rows padded).

    ``inputs`` (S, B, C) int32 input words (C = 1 for skip-gram, 2·window for CBOW),
    ``input_mask`` (S, B, C) float32 (1 for real inputs; an all-zero row is padding),
    ``targets`` (S, B) int32, ``noise`` (S, B, K) int32 noise words (K = 0 for the softmax),
    ``positions`` (S,) int32: tokens processed before each step (the learning-rate clock),
    ``steps`` the number of real steps, ``end`` the clock after the chunk's last example.
    """

    inputs: np.ndarray
    input_mask: np.ndarray
    targets: np.ndarray
    noise: np.ndarray
    positions: np.ndarray
    steps: int
    end: int

    @property
    def arrays(self):
        """The arrays `make_run_steps`' function takes (everything but ``steps``)."""
        return self[:5]


def _sgd_step(settings: Word2VecSettings, schedule, params, batch):
    """One SGD step on a mini-batch (``batch`` = one step of a `Chunk`'s arrays); returns
    ``(params, summed loss)``."""
    inputs, input_mask, targets, noise, position = batch
    w_in, w_out = params["input"], params["output"]
    lr = schedule(position)
    count = input_mask.sum(-1)  # (B,) inputs per example; 0 marks a padded row
    real = (count > 0).astype(w_in.dtype)
    if inputs.shape[1] == 1:  # skip-gram: h = W[c] (a gather, no reduction)
        h = w_in[inputs[:, 0]]
    else:  # CBOW: h = mean of the context rows
        h = jnp.einsum("bc,bcd->bd", input_mask, w_in[inputs]) / jnp.maximum(count, 1.0)[:, None]
    if settings.loss == "negative":
        words = jnp.concatenate([targets[:, None], noise], axis=1)  # (B, 1+K)
        weights = jnp.concatenate([jnp.ones_like(noise[:, :1], w_in.dtype),
                                   (noise != targets[:, None]).astype(w_in.dtype)], axis=1)
        loss, (dh, d_out) = jax.value_and_grad(
            lambda h_, u_: negative_sampling_loss(h_, u_, weights * real[:, None]).sum(),
            (0, 1))(h, w_out[words])
        w_out = w_out.at[words.reshape(-1)].add(-lr * d_out.reshape(-1, d_out.shape[-1]))
    else:
        loss, (dh, d_out) = jax.value_and_grad(
            lambda h_, u_: (real * softmax_loss(h_, u_, targets)).sum(), (0, 1))(h, w_out)
        w_out = w_out - lr * d_out
    if inputs.shape[1] == 1:
        w_in = w_in.at[inputs[:, 0]].add(-lr * dh)  # padded rows have dh = 0
    else:  # ∂L/∂h added to every context row, undivided (word2vec.c): (B, C, D)
        d_in = input_mask[:, :, None] * dh[:, None, :]
        w_in = w_in.at[inputs.reshape(-1)].add(-lr * d_in.reshape(-1, d_in.shape[-1]))
    return {"input": w_in, "output": w_out}, loss


def make_run_steps(settings: Word2VecSettings, total_tokens: int) -> Callable:
    """``run(params, chunk_arrays, steps) -> (params, summed loss, first learning rate)``:
    jitted, the ``params`` buffers donated; runs the first ``steps`` mini-batches of a `Chunk`
    (``chunk_arrays`` = ``chunk.arrays``).
    ``total_tokens`` (epochs × corpus tokens) sets the linear learning-rate decay."""
    settings.check()
    schedule = linear_schedule(settings.learning_rate, settings.min_learning_rate,
                               max(int(total_tokens), 1))

    def run(params, arrays, steps):
        def body(t, carry):
            params, total = carry
            batch = jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, t, keepdims=False),
                                 arrays)
            params, loss = _sgd_step(settings, schedule, params, batch)
            return params, total + loss
        params, total = jax.lax.fori_loop(0, steps, body, (params, jnp.zeros((), jnp.float32)))
        return params, total, schedule(arrays[-1][0])

    return jax.jit(run, donate_argnums=0)


# ----------------------------------------------------------------------------- host pipeline

def epoch_examples(corpus: EncodedCorpus, keep, settings: Word2VecSettings,
                   rng: np.random.Generator):
    """One epoch's examples: ``(inputs (P, C), input_mask (P, C), targets (P,), positions
    (P,))``, in corpus order or, with ``settings.shuffle``, in a random order. ``positions`` is
    the learning-rate clock: the corpus index of the centre token of the example at that place
    in corpus order (so it rises through the epoch also when the examples are shuffled)."""
    kept = np.nonzero(sampling.subsample(keep, corpus.ids, rng))[0]
    ids, sentence = corpus.ids[kept], corpus.sentence[kept]
    reach = sampling.window_reach(len(ids), settings.window, rng)
    if settings.architecture == "skipgram":
        centre, context = sampling.skipgram_pairs(sentence, reach, settings.window)
        inputs, mask, targets = ids[centre][:, None], np.ones((len(centre), 1), np.float32), \
            ids[context]
    else:
        centre, context, valid = sampling.cbow_windows(sentence, reach, settings.window)
        inputs, mask, targets = ids[context], valid.astype(np.float32), ids[centre]
    if settings.shuffle:
        order = rng.permutation(len(targets))
        inputs, mask, targets = inputs[order], mask[order], targets[order]
    return inputs.astype(np.int32), mask, targets.astype(np.int32), kept[centre]


def chunks(examples, settings: Word2VecSettings, noise: Optional[sampling.AliasTable],
           rng: np.random.Generator, offset: int = 0) -> Iterator[Chunk]:
    """Cut an epoch's examples (from `epoch_examples`) into `Chunk` s of
    ``steps_per_call × batch_size`` examples, the last padded, with ``settings.negative`` noise
    words per example drawn from the alias table ``noise`` (None: the softmax, no noise);
    ``offset`` is added to the learning-rate clock (tokens of earlier epochs)."""
    inputs, mask, targets, positions = examples
    b, s, c = settings.batch_size, settings.steps_per_call, inputs.shape[1]
    k = settings.negative if noise is not None else 0
    per_chunk = b * s
    for start in range(0, len(targets), per_chunk):
        stop = min(start + per_chunk, len(targets))
        n, steps = stop - start, -(-(stop - start) // b)
        chunk_inputs = np.zeros((per_chunk, c), np.int32)
        chunk_mask = np.zeros((per_chunk, c), np.float32)
        chunk_targets = np.zeros(per_chunk, np.int32)
        chunk_inputs[:n], chunk_mask[:n] = inputs[start:stop], mask[start:stop]
        chunk_targets[:n] = targets[start:stop]
        chunk_noise = (sampling.sample_negatives(noise, (per_chunk, k), rng) if k
                       else np.zeros((per_chunk, 0), np.int32))
        step_positions = np.empty(s, np.int64)
        step_positions[:steps] = positions[start:stop:b]
        step_positions[steps:] = step_positions[steps - 1]
        yield Chunk(chunk_inputs.reshape(s, b, c), chunk_mask.reshape(s, b, c),
                    chunk_targets.reshape(s, b), chunk_noise.reshape(s, b, k),
                    (step_positions + offset).astype(np.int32), steps,
                    int(positions[stop - 1]) + 1 + offset)


class TrainResult(NamedTuple):
    """``params`` the trained ``{"input", "output"}``; ``history`` per jitted call:
    ``"loss"`` (mean loss per example of the call), ``"epoch"`` (fractional epochs done at its
    end) and ``"learning_rate"`` (at its start); ``seconds`` wall time of training (compilation
    included); ``words_per_second`` corpus tokens (out-of-vocabulary ones included, as gensim
    counts) × epochs / seconds; ``examples`` the number of training examples seen."""

    params: Dict[str, jax.Array]
    history: Dict[str, List[float]]
    seconds: float
    words_per_second: float
    examples: int


def train(corpus: EncodedCorpus, vocab: Vocabulary, key, settings: Word2VecSettings = None, *,
          params=None, progress: bool = False, log: Optional[Callable] = None) -> TrainResult:
    """Train word vectors on an encoded corpus (see the module docstring for the algorithm).

    ``corpus`` from `fnn.embeddings.encode` with the same ``vocab``; ``key`` a JAX key, the
    only source of randomness; ``params`` to continue from (default: `init_params`).
    """
    settings = (settings or Word2VecSettings()).check()
    if len(corpus.ids) == 0:
        raise ValueError("train: the corpus has no in-vocabulary tokens.")
    if corpus.ids.max() >= len(vocab.words):
        raise ValueError(f"train: the corpus has word ids up to {corpus.ids.max()} but the "
                         f"vocabulary has {len(vocab.words)} words; encode it with the same "
                         f"vocabulary.")
    if params is None:
        params = init_params(key, len(vocab.words), settings.dim)
    else:
        params = jax.tree.map(jnp.array, params)  # a copy: the buffers get donated
    n_tokens = len(corpus.ids)
    total = settings.epochs * n_tokens
    run = make_run_steps(settings, total)
    keep = keep_probabilities(vocab.counts, settings.sample)
    noise = (sampling.alias_table(noise_distribution(vocab.counts, settings.noise_power))
             if settings.loss == "negative" else None)
    history: Dict[str, List[float]] = {"loss": [], "epoch": [], "learning_rate": []}
    pending = []  # (summed loss and learning rate on the device, examples, epoch)
    examples_seen = 0
    bar = progress_bar(settings.epochs, "word2vec", progress, unit="epoch")
    started = time.perf_counter()
    for epoch in range(settings.epochs):
        rng = sampling.host_rng(key, epoch)
        examples = epoch_examples(corpus, keep, settings, rng)
        for chunk in chunks(examples, settings, noise, rng, offset=epoch * n_tokens):
            n_real = int(chunk.input_mask.any(-1).sum())
            params, loss, lr = run(params, chunk.arrays, chunk.steps)
            examples_seen += n_real
            pending.append((loss, lr, n_real, chunk.end / n_tokens))
            if len(pending) >= 8:  # fetch losses now and then: each fetch waits for the device
                _drain(pending, history)
        _drain(pending, history)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({"loss": f"{history['loss'][-1]:.4f}"}, refresh=False)
        if log is not None:
            log(f"epoch {epoch + 1}/{settings.epochs}: loss {history['loss'][-1]:.4f}")
    jax.block_until_ready(params)
    seconds = time.perf_counter() - started
    if bar is not None:
        bar.close()
    return TrainResult(params, history, seconds,
                       settings.epochs * corpus.raw_tokens / seconds, examples_seen)


def _drain(pending, history) -> None:
    """Move the queued chunk losses into ``history`` (blocks on the device)."""
    for loss, lr, n, epoch in pending:
        history["loss"].append(float(loss) / max(n, 1))
        history["epoch"].append(float(epoch))
        history["learning_rate"].append(float(lr))
    pending.clear()
