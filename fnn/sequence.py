"""Training and sampling over long sequences: truncated backpropagation through time and
sampling with a temperature (lecture 8, lab 4).

Truncated BPTT (Williams & Peng 1990; min-char-rnn) cuts a long sequence into chunks of
``chunk`` steps. The model runs over the chunks in order, each starting from the carry the
previous one ended with, but gradients are not propagated across a chunk boundary: the carry
goes through `jax.lax.stop_gradient` there. The model is any `fnn.core.Layer` that maps
``(x, carry) -> (logits, carry)``, e.g. ``StackedRNN(..., initial_carry="given",
return_state=True)`` between an `Embedding` and a `Dense` (`fnn.models.char_lm`).

- `stream_batches` lays a token stream out as ``batch`` parallel streams and cuts it into
  chunks, so row b of chunk k+1 continues row b of chunk k and the carry can be passed on.
- `make_tbptt_step` is one optimizer update per chunk that returns the carry for the next chunk
  (the usual way: it fits a custom loop, see experiments/char_lm.py).
- `chunked_loss` is the loss of a whole long sequence with the chunk boundaries cut, as one
  differentiable function (one update per sequence; its gradient is the sum of the chunks'
  truncated gradients).
- `sample` draws from ``softmax(logits / T)`` with an explicit key; `generate` feeds a model its
  own samples.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn.checks import check_int, check_nonnegative
from fnn.core import Layer
from fnn.losses import softmax_cross_entropy
from fnn.optim import Optimizer, apply_updates


def stream_batches(tokens, batch: int, chunk: int):
    """``(inputs, targets)``, each (num_chunks, batch, chunk) int32: the stream ``tokens`` cut
    into ``batch`` contiguous streams (row b holds ``tokens[b·L : (b+1)·L]``, L = (n−1) // batch)
    and those into chunks of ``chunk`` steps; ``targets`` are the inputs shifted by one step.
    The tail that does not fill a chunk is dropped."""
    check_int("stream_batches", "batch", batch)
    check_int("stream_batches", "chunk", chunk)
    tokens = np.asarray(tokens)
    length = (len(tokens) - 1) // batch
    chunks = length // chunk
    if chunks < 1:
        raise ValueError(f"stream_batches: {len(tokens)} tokens make no chunk of {chunk} steps "
                         f"in {batch} streams; need at least {batch * chunk + 1}.")
    rows = np.arange(batch)[:, None] * length + np.arange(chunks * chunk)[None, :]
    x, y = tokens[rows], tokens[rows + 1]  # (batch, chunks·chunk)

    def cut(a):
        return a.reshape(batch, chunks, chunk).transpose(1, 0, 2).astype(np.int32)

    return cut(x), cut(y)


def mean_token_loss(logits, targets):
    """Mean softmax cross-entropy per token in nats: logits (batch, time, vocab), targets
    (batch, time) integer ids (−1 marks padding, which counts neither in the sum nor the mean)."""
    total = jnp.sum(softmax_cross_entropy(logits, targets))
    return total / jnp.maximum(jnp.sum(targets >= 0), 1)


def chunked_loss(model: Layer, params, state, carry, inputs, targets, *, chunk: int,
                 key=None, train: bool = False, loss: Callable = mean_token_loss):
    """``(loss, (carry, state))`` over a long sequence inputs (batch, time, ...) in chunks of
    ``chunk`` steps (time a multiple of it): ``loss`` is the mean of the chunks' losses, each
    chunk starting from ``stop_gradient`` of the carry the previous one ended with, so the
    gradient of this loss is truncated BPTT's. Chunk k gets the key ``fold_in(key, k)``."""
    time = inputs.shape[1]
    if time % chunk:
        raise ValueError(f"chunked_loss: the sequence length {time} must be a multiple of "
                         f"`chunk` = {chunk}.")
    total = 0.0
    for k in range(time // chunk):
        window = slice(k * chunk, (k + 1) * chunk)
        carry = jax.lax.stop_gradient(carry)
        (logits, carry), state = model.apply(
            params, state, (inputs[:, window], carry),
            key=None if key is None else jax.random.fold_in(key, k), train=train)
        total = total + loss(logits, targets[:, window])
    return total / (time // chunk), (jax.lax.stop_gradient(carry), state)


class TBPTTState(NamedTuple):
    """What one truncated-BPTT update carries to the next: ``params``, layer ``state``, the
    optimizer state and the model's ``carry`` at the end of the last chunk."""
    params: Any
    state: Any
    opt_state: Any
    carry: Any


def make_tbptt_step(model: Layer, optimizer: Optimizer, *, loss: Callable = mean_token_loss,
                    jit: bool = True) -> Callable:
    """``step(train_state, inputs, targets, key) -> (train_state, loss)``: one optimizer update
    on one chunk (batch, chunk) of a stream (`stream_batches`), starting from
    ``train_state.carry`` with the gradient stopped there, and returning the chunk's final carry
    in the new `TBPTTState` for the next chunk. ``loss(logits, targets)`` defaults to
    `mean_token_loss` (nats per token). Chain `fnn.optim.clip_by_global_norm` into ``optimizer``
    for gradient clipping."""
    def objective(params, state, carry, inputs, targets, key):
        (logits, carry), state = model.apply(params, state, (inputs, jax.lax.stop_gradient(carry)),
                                             key=key, train=True)
        return loss(logits, targets), (jax.lax.stop_gradient(carry), state)

    def step(train, inputs, targets, key):
        (value, (carry, state)), grads = jax.value_and_grad(objective, has_aux=True)(
            train.params, train.state, train.carry, inputs, targets, key)
        updates, opt_state = optimizer.update(grads, train.opt_state, train.params)
        return TBPTTState(apply_updates(train.params, updates), state, opt_state, carry), value

    return jax.jit(step) if jit else step


def evaluate_stream(model: Layer, params, state, carry, inputs, targets, *,
                    loss: Callable = mean_token_loss):
    """The mean loss (a 0-d array) over all chunks of a stream (inputs, targets each
    (num_chunks, batch, chunk), `stream_batches`), the carry passed from chunk to chunk, in eval
    mode: for a language model, the validation loss in nats per token. Traceable (jit it)."""
    def body(carry, chunk):
        x, y = chunk
        (logits, carry), _ = model.apply(params, state, (x, carry))
        return carry, loss(logits, y)

    _, losses = jax.lax.scan(body, carry, (jnp.asarray(inputs), jnp.asarray(targets)))
    return jnp.mean(losses)


def sample(key, logits, temperature: float = 1.0):
    """Token ids drawn from ``softmax(logits / temperature)`` along the last axis; logits
    (..., vocab) -> ids (...). ``temperature`` 0 gives the argmax (greedy); below 1 sharpens the
    distribution, above 1 flattens it."""
    check_nonnegative("sample", "temperature", temperature)
    if temperature == 0:
        return jnp.argmax(logits, axis=-1)
    return jax.random.categorical(key, logits / temperature, axis=-1)


def generate(model: Layer, params, state, carry, prime, length: int, key, *,
             temperature: float = 1.0):
    """``(ids, carry)``: ``length`` tokens sampled one at a time from a model ``(x, carry) ->
    (logits, carry)``, each fed back as the next input, after reading the priming ids ``prime``
    (batch, p ≥ 1). Step i draws with ``fold_in(key, i)``, so a key gives the same text.
    ids (batch, length) int32."""
    check_int("generate", "length", length, minimum=0)
    prime = jnp.asarray(prime, jnp.int32)
    if prime.ndim != 2 or prime.shape[1] < 1:
        raise ValueError(f"generate: `prime` must be token ids of shape (batch, p >= 1); got "
                         f"shape {prime.shape}.")
    (logits, carry), _ = model.apply(params, state, (prime, carry))
    first = sample(jax.random.fold_in(key, 0), logits[:, -1], temperature)

    def body(inputs, i):
        token, carry = inputs
        (logits, carry), _ = model.apply(params, state, (token[:, None], carry))
        nxt = sample(jax.random.fold_in(key, i), logits[:, -1], temperature)
        return (nxt, carry), token

    (last, carry), ids = jax.lax.scan(body, (first, carry), jnp.arange(1, length + 1))
    return jnp.swapaxes(ids, 0, 1).astype(jnp.int32), carry


__all__ = ["TBPTTState", "chunked_loss", "evaluate_stream", "generate", "make_tbptt_step",
           "mean_token_loss", "sample", "stream_batches"]


def zero_carry(carry_shape, batch: int, dtype=jnp.float32):
    """Zeros of a carry's shape as init reports it (e.g. the second output shape of
    ``StackedRNN(..., return_state=True)``: a tuple of NamedTuples of ``(None, N)`` shapes),
    the unknown batch axis set to ``batch``; NamedTuples keep their class."""
    if isinstance(carry_shape, tuple) and all(d is None or isinstance(d, int)
                                              for d in carry_shape) and not hasattr(
            carry_shape, "_fields"):
        return jnp.zeros(tuple(batch if d is None else d for d in carry_shape), dtype)
    parts = [zero_carry(s, batch, dtype) for s in carry_shape]
    return type(carry_shape)(*parts) if hasattr(carry_shape, "_fields") else tuple(parts)


__all__ += ["zero_carry"]
