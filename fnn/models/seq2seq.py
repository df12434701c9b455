"""An encoder–decoder (seq2seq) of recurrent networks (lecture 8; Sutskever et al. 2014, Cho et
al. 2014), trained with teacher forcing and decoded greedily.

    model = seq2seq(vocab_in=40, vocab_out=12, embed=32, hidden=128, cell="lstm")
    out_shape, params, state = model.init(key, ((None, S), (None, T)))
    logits, state = model.apply(params, state, (source, decoder_in),
                                context=Context(seq_mask={"source": source_mask}))
    tokens = greedy_decode(model, params, state, source, start=0, length=T,
                           source_mask=source_mask)

Shapes: source (batch, S) ids in ``[0, vocab_in)``, decoder_in (batch, T) ids in
``[0, vocab_out)`` -> logits (batch, T, vocab_out).

The model, children in order::

    source_embedding  Embedding(vocab_in, embed)      source ids -> (batch, S, embed)
    encoder           RNN(cell(hidden))               -> outputs (batch, S, N), final carry
    target_embedding  Embedding(vocab_out, embed)     decoder_in -> (batch, T, embed)
    decoder           RNN(cell(hidden), given carry)  starts from the encoder's final carry
    attention         LuongAttention(hidden)          only with ``attention="luong"``
    head              Dense(vocab_out)                -> logits (batch, T, vocab_out)

Teacher forcing: in training the decoder reads the target sequence shifted right behind a start
token, ``decoder_in = [start, y_1, ..., y_{T−1}]`` (`shift_right`), and step t is scored against
``y_t``; the decoder's carry at t = 0 is the encoder's carry at each source's last valid step,
the fixed-size summary of the source. `greedy_decode` runs the encoder once and then the
decoder one step at a time under `jax.lax.scan`, feeding back ``argmax`` of each step's logits.

Masks (`fnn.core.Context`): ``context.seq_mask`` is a dict ``{"source": (batch, S)}``
(optionally ``"target": (batch, T)`` too) or one (batch, S) array, which is taken as the source
mask. The encoder sees the source mask (padded source steps leave its carry unchanged, so the
carry handed to the decoder is the one at the last real character); the decoder sees the target
mask, if any; the attention never looks at padded source steps. Pad the targets of
`token_cross_entropy` with −1 (they then add 0 to the loss).
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnn import init as initializers
from fnn.checks import check_choice, check_int
from fnn.core import (
    Context, Layer, LayerError, apply_child, check_rank, child_key, format_shape, init_child,
    row_mask)
from fnn.layers import RNN, Dense, Embedding, GRUCell, LSTMCell
from fnn.losses import softmax_cross_entropy

CELLS = {"lstm": LSTMCell, "gru": GRUCell}
ATTENTION = (None, "luong")


# ----------------------------------------------------------------------------- attention


def LuongAttention(units: int, *, w_init="glorot_uniform", dtype=jnp.float32) -> Layer:
    """Luong et al. (2015)'s "general" global attention, applied to every decoder step at once.

    Inputs ``(h, memory)``: decoder outputs h (batch, T, N) and encoder outputs memory
    (batch, S, M); ``context.seq_mask`` (batch, S), when given, marks the memory's real steps::

        score_{t,s} = h_t W_a m_sᵀ,     α_{t,·} = softmax over the real s of score_{t,·}
        c_t = Σ_s α_{t,s} m_s,          h̃_t = tanh([c_t; h_t] W_c)

    Output h̃ (batch, T, ``units``). Params ``w_a`` (N, M), ``w_c`` (M + N, units):
    **NM + (M + N)·units** parameters. Each h̃_t depends on h_t and the memory only, so decoding
    one step at a time gives the same values as the whole sequence at once.
    """
    name = f"LuongAttention({units})"
    check_int(name, "units", units)
    w_init = initializers.get(w_init)

    def init(key, input_shape):
        if not (isinstance(input_shape, (tuple, list)) and len(input_shape) == 2):
            raise LayerError(name, f"expects inputs (decoder outputs, memory); got "
                                   f"{format_shape(input_shape)}.")
        h_shape, m_shape = input_shape
        check_rank(name, h_shape, 3, "(batch, T, N) decoder outputs")
        check_rank(name, m_shape, 3, "(batch, S, M) memory")
        n, m = h_shape[-1], m_shape[-1]
        ka, kc = jax.random.split(key)
        params = {"w_a": w_init(ka, (n, m), dtype), "w_c": w_init(kc, (m + n, units), dtype)}
        return tuple(h_shape[:2]) + (units,), params, {}

    def apply(params, state, inputs, *, key=None, train=False, context=None):
        h, memory = inputs
        if h.ndim != 3 or memory.ndim != 3 or h.shape[0] != memory.shape[0]:
            raise LayerError(name, f"expects decoder outputs (batch, T, N) and memory "
                                   f"(batch, S, M) with one batch; got {format_shape(h.shape)} "
                                   f"and {format_shape(memory.shape)}.")
        scores = jnp.einsum("btn,nm,bsm->bts", h, params["w_a"], memory)
        mask = None if context is None else context.seq_mask
        if mask is None:
            weights = jax.nn.softmax(scores, axis=-1)
        else:
            if tuple(mask.shape) != tuple(memory.shape[:2]):
                raise LayerError(name, f"expects a memory mask of shape "
                                       f"{format_shape(memory.shape[:2])}; got "
                                       f"{format_shape(tuple(mask.shape))}.")
            real = jnp.broadcast_to(mask[:, None, :] > 0, scores.shape)
            lowest = jnp.finfo(scores.dtype).min
            # padded steps get weight 0 (a row with no real step: all 0, not NaN)
            weights = jnp.where(real, jax.nn.softmax(jnp.where(real, scores, lowest), axis=-1),
                                0.0)
        c = jnp.einsum("bts,bsm->btm", weights, memory)
        return jnp.tanh(jnp.concatenate([c, h], axis=-1) @ params["w_c"]), state

    return Layer(init, apply, name, "luong_attention")


# ----------------------------------------------------------------------------- the model


def split_masks(where: str, context: Optional[Context]):
    """``(source_mask, target_mask)`` from ``context.seq_mask``: a dict's ``"source"`` and
    ``"target"`` entries (each may be absent: None), or one array taken as the source mask."""
    masks = None if context is None else context.seq_mask
    if masks is None:
        return None, None
    if isinstance(masks, dict):
        unknown = sorted(set(masks) - {"source", "target"})
        if unknown:
            raise LayerError(where, f"reads the sequence masks 'source' and 'target'; got "
                                    f"also {unknown}.")
        return masks.get("source"), masks.get("target")
    return masks, None


def seq2seq(vocab_in: int, vocab_out: int, *, embed: int = 32, hidden: int = 128,
            cell: str = "lstm", attention: Optional[str] = None, unroll: int = 1) -> Layer:
    """An RNN encoder–decoder (see the module docstring): ``(source, decoder_in)`` ids
    (batch, S), (batch, T) -> logits (batch, T, vocab_out).

    ``cell`` is ``"lstm"`` or ``"gru"`` (the encoder and the decoder each have their own, of
    ``hidden`` units); ``embed`` the size of both embeddings; ``attention`` None (the decoder sees
    the source only through its initial carry) or ``"luong"`` (`LuongAttention` over the
    encoder's outputs before the output layer); ``unroll`` is `lax.scan`'s. Parameters, with
    d = ``embed``, N = ``hidden``, V_in, V_out the vocabularies and G = 4 (LSTM) or 3 (GRU):
    ``V_in·d + 2·G(Nd + N² + N) + V_out·d + N·V_out + V_out``, plus ``3N²`` with attention
    (``N² + 2N·N``).
    """
    where = "seq2seq"
    check_int(where, "vocab_in", vocab_in)
    check_int(where, "vocab_out", vocab_out)
    check_int(where, "embed", embed)
    check_int(where, "hidden", hidden)
    check_choice(where, "cell", cell, tuple(CELLS))
    check_choice(where, "attention", attention, ATTENTION)
    make_cell = CELLS[cell]
    named = [("source_embedding", Embedding(vocab_in, embed)),
             ("encoder", RNN(make_cell(hidden), return_state=True, unroll=unroll,
                             name=f"encoder({make_cell(hidden).name})")),
             ("target_embedding", Embedding(vocab_out, embed)),
             ("decoder", RNN(make_cell(hidden), initial_carry="given", return_state=True,
                             unroll=unroll, name=f"decoder({make_cell(hidden).name})"))]
    if attention == "luong":
        named.append(("attention", LuongAttention(hidden)))
    named.append(("head", Dense(vocab_out)))
    name = (f"seq2seq({vocab_in} -> {vocab_out}, {cell}, hidden={hidden}"
            + (f", attention={attention!r}" if attention else "") + ")")
    named = tuple(named)

    def init(key, input_shape):
        if not (isinstance(input_shape, (tuple, list)) and len(input_shape) == 2):
            raise LayerError(name, "expects the input shape (source_shape, decoder_in_shape) "
                                   f"such as ((None, 20), (None, 10)); got {input_shape!r}.")
        source = _ids_shape(name, input_shape[0], "source")
        target = _ids_shape(name, input_shape[1], "decoder input")
        children = dict(named)
        params, state = {}, {}

        def child(i, child_name, arg):
            out, params[child_name], state[child_name] = init_child(
                child_name, children[child_name], child_key(key, i), arg)
            return out

        memory, carry = child(1, "encoder", child(0, "source_embedding", source))
        h, _ = child(3, "decoder", (child(2, "target_embedding", target), carry))
        if "attention" in children:
            h = child(4, "attention", (h, memory))
        return child(len(named) - 1, "head", h), params, state

    def apply(params, state, inputs, *, key=None, train=False, context=None):
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2):
            raise LayerError(name, "expects inputs (source ids (batch, S), decoder input ids "
                                   "(batch, T)).")
        source, decoder_in = inputs
        (memory, carry), new_state = _encode(name, named, params, state, source, key=key,
                                             train=train, context=context)
        (logits, _), new_state = _decode(name, named, params, new_state, decoder_in, carry,
                                         memory, key=key, train=train, context=context)
        return logits, new_state

    return Layer(init, apply, name, "seq2seq", named)


def _ids_shape(name: str, shape, what: str):
    if not (isinstance(shape, (tuple, list)) and len(shape) == 2
            and all(d is None or isinstance(d, int) for d in shape)):
        shown = format_shape(shape) if isinstance(shape, (tuple, list)) else repr(shape)
        raise LayerError(name, f"expects {what} token ids of shape (batch, time); got {shown}.")
    return tuple(shape)


def _check_model(where: str, model) -> None:
    if not isinstance(model, Layer) or model.kind != "seq2seq":
        got = model.name if isinstance(model, Layer) else type(model).__name__
        raise ValueError(f"{where}: `model` must be a model built by fnn.models.seq2seq; got "
                         f"{got}.")


def _child(named, child: str, params, state, x, *, key, train, context):
    """Apply the child ``child`` of ``named`` with its combinator key (its index in ``named``)."""
    names = [n for n, _ in named]
    return apply_child(child, dict(named)[child], params[child], state[child], x,
                       key=child_key(key, names.index(child)), train=train, context=context)


def _encode(name, named, params, state, source, *, key, train, context):
    source_mask, _ = split_masks(name, context)
    sub = Context(row_mask(context), source_mask)
    new_state = dict(state)
    x, new_state["source_embedding"] = _child(named, "source_embedding", params, state, source,
                                              key=key, train=train, context=sub)
    out, new_state["encoder"] = _child(named, "encoder", params, state, x, key=key, train=train,
                                       context=sub)
    return out, new_state


def _decode(name, named, params, state, decoder_in, carry, memory, *, key, train, context):
    source_mask, target_mask = split_masks(name, context)
    rows = row_mask(context)
    target = Context(rows, target_mask)
    new_state = dict(state)
    y, new_state["target_embedding"] = _child(named, "target_embedding", params, state,
                                              decoder_in, key=key, train=train, context=target)
    (h, carry), new_state["decoder"] = _child(named, "decoder", params, state, (y, carry),
                                              key=key, train=train, context=target)
    if "attention" in params:
        h, new_state["attention"] = _child(named, "attention", params, state, (h, memory),
                                           key=key, train=train,
                                           context=Context(rows, source_mask))
    logits, new_state["head"] = _child(named, "head", params, state, h, key=key, train=train,
                                       context=target)
    return (logits, carry), new_state


def encode(model: Layer, params, state, source, *, key=None, train=False, context=None):
    """``((memory, carry), new_state)``: the encoder of a `seq2seq` model on source ids
    (batch, S): memory (batch, S, N) its outputs (0 at padded steps), carry its final carry (at
    each source's last real step). ``context`` as for the model (its source mask is read)."""
    _check_model("encode", model)
    return _encode(model.name, model.layers, params, state, source, key=key, train=train,
                   context=context)


def decode(model: Layer, params, state, decoder_in, carry, memory, *, key=None, train=False,
           context=None):
    """``((logits, carry), new_state)``: the decoder of a `seq2seq` model on ids decoder_in
    (batch, T) from ``carry``; ``memory`` (batch, S, N) the encoder's outputs (read by the
    attention, if any). logits (batch, T, vocab_out); carry the decoder's carry after the last
    step, to continue from (one step at a time: T = 1)."""
    _check_model("decode", model)
    return _decode(model.name, model.layers, params, state, decoder_in, carry, memory, key=key,
                   train=train, context=context)


def greedy_decode(model: Layer, params, state, source, *, start: int, length: int,
                  source_mask=None):
    """Tokens (batch, ``length``) int32 decoded greedily: the encoder reads source (batch, S)
    once (``source_mask`` (batch, S) marks its real steps; None: all real), then the decoder runs
    one step at a time under `jax.lax.scan` from the encoder's final carry, step 0 reading the
    token ``start`` and step t > 0 the ``argmax`` of step t − 1's logits:
    ``y_t = argmax_k logits_t[k]``. Eval mode; jittable (``model``, ``start`` and ``length``
    static)."""
    _check_model("greedy_decode", model)
    check_int("greedy_decode", "length", length)
    source = jnp.asarray(source)
    if source.ndim != 2:
        raise ValueError(f"greedy_decode: `source` must be token ids of shape (batch, S); got "
                         f"shape {tuple(source.shape)}.")
    context = None if source_mask is None else Context(seq_mask={"source": source_mask})
    (memory, carry), _ = encode(model, params, state, source, context=context)
    first = jnp.full((source.shape[0],), start, jnp.int32)

    def step(inputs, _):
        token, carry = inputs
        (logits, carry), _ = decode(model, params, state, token[:, None], carry, memory,
                                    context=context)
        token = jnp.argmax(logits[:, 0], axis=-1).astype(jnp.int32)
        return (token, carry), token

    _, tokens = jax.lax.scan(step, (first, carry), None, length=length)
    return jnp.swapaxes(tokens, 0, 1)


def _namespace(*arrays):
    """NumPy for NumPy inputs (no device work, nothing to compile), else jax.numpy."""
    return np if all(isinstance(a, np.ndarray) for a in arrays) else jnp


def shift_right(targets, start: int):
    """The teacher-forcing decoder input: ``[start, y_1, ..., y_{T−1}]`` for targets (batch, T)
    (a −1 padding label becomes ``start``, a valid id the embedding can read). NumPy in, NumPy
    out; traceable on JAX arrays."""
    xp = _namespace(targets)
    targets = xp.asarray(targets)
    shifted = xp.concatenate([xp.full(targets.shape[:1] + (1,), start, targets.dtype),
                              targets[:, :-1]], axis=1)
    return xp.where(shifted < 0, start, shifted)


def token_cross_entropy(logits, targets):
    """Per-step softmax cross-entropy (batch, T) in nats for logits (batch, T, V) and integer
    targets (batch, T): ``−ln softmax(z_t)[y_t]``; a −1 target gives 0. For `fnn.fit`, whose
    loss is the mean of these per-step values."""
    return softmax_cross_entropy(logits.reshape((-1, logits.shape[-1])),
                                 targets.reshape(-1)).reshape(targets.shape)


def sequence_accuracy(predicted, targets):
    """``(exact_match, token_accuracy)`` of predicted ids against targets, each (batch, T)
    (−1 targets are padding, left out): the fraction of rows whose every real token is right,
    and the fraction of real tokens that are right. NumPy in, NumPy out; traceable on JAX
    arrays."""
    xp = _namespace(predicted, targets)
    predicted, targets = xp.asarray(predicted), xp.asarray(targets)
    if predicted.shape != targets.shape:
        raise ValueError(f"sequence_accuracy: `predicted` {tuple(predicted.shape)} and "
                         f"`targets` {tuple(targets.shape)} must have one shape (batch, T).")
    real = targets >= 0
    right = (predicted == targets) | ~real
    exact = xp.mean(xp.all(right, axis=1))
    tokens = xp.sum(right & real) / xp.maximum(xp.sum(real), 1)
    return exact, tokens


__all__ = ["LuongAttention", "decode", "encode", "greedy_decode", "seq2seq", "sequence_accuracy",
           "shift_right", "split_masks", "token_cross_entropy"]
