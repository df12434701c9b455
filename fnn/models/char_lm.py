"""The character-level language model of lab 4: ids -> Embedding -> stacked LSTM/GRU -> Dense.

    model = char_lm(vocab=65, embed=64, hidden=(512,), cell="lstm", dropout=0.0)
    out_shape, params, state = model.init(key, ((None, 100), None))
    carry = fnn.sequence.zero_carry(out_shape[1], batch)
    (logits, carry), state = model.apply(params, state, (ids, carry), key=key, train=True)

Shapes: ids (batch, time) int -> logits (batch, time, vocab); ``carry`` is a tuple with one carry
per recurrent layer (`LSTMState(h, c)` or `RNNState(h)`), passed between chunks by truncated BPTT
(`fnn.sequence.make_tbptt_step`) and between steps by `fnn.sequence.generate`. The carry's shape
in ``input_shape`` is not read (give None). Children ``embedding``, ``rnn`` (a `StackedRNN`,
dropout between its layers), ``dropout`` (before the output layer, if ``dropout`` > 0), ``head``.
"""
from __future__ import annotations

from typing import Sequence

from fnn.checks import check_choice, check_int
from fnn.core import Layer, LayerError, apply_child, child_key, init_child
from fnn.layers import Dense, Dropout, Embedding, GRUCell, LSTMCell, StackedRNN

CELLS = {"lstm": LSTMCell, "gru": GRUCell}


def char_lm(vocab: int, *, embed: int = 64, hidden: Sequence[int] = (512,), cell: str = "lstm",
            dropout: float = 0.0, unroll: int = 1) -> Layer:
    """A character-level language model (see the module docstring); ``cell`` is ``"lstm"``
    or ``"gru"``, ``hidden`` the sizes of the stacked recurrent layers, ``dropout`` the rate
    between them and before the output layer."""
    check_int("char_lm", "vocab", vocab)
    check_int("char_lm", "embed", embed)
    check_choice("char_lm", "cell", cell, tuple(CELLS))
    if not hidden:
        raise ValueError("char_lm: `hidden` must list at least one layer size; got ().")
    cells = [CELLS[cell](check_int("char_lm", "hidden", n)) for n in hidden]
    named = [("embedding", Embedding(vocab, embed)),
             ("rnn", StackedRNN(*cells, dropout=dropout, initial_carry="given",
                                return_state=True, unroll=unroll))]
    if dropout:
        named.append(("dropout", Dropout(dropout)))
    named.append(("head", Dense(vocab)))
    named = tuple(named)
    name = f"char_lm({vocab}, {cell}, hidden={tuple(hidden)})"

    def init(key, input_shape):
        if not (isinstance(input_shape, (tuple, list)) and len(input_shape) == 2
                and isinstance(input_shape[0], (tuple, list))):
            raise LayerError(name, f"expects the input shape (ids_shape, carry_shape) such as "
                                   f"((None, 100), None); got {input_shape!r}.")
        ids_shape = tuple(input_shape[0])
        params, state = {}, {}
        shape = ids_shape
        carry = None
        for i, (child, layer) in enumerate(named):
            arg = (shape, [None] * len(cells)) if child == "rnn" else shape
            out, params[child], state[child] = init_child(child, layer, child_key(key, i), arg)
            shape, carry = out if child == "rnn" else (out, carry)
        return (shape, carry), params, state

    def apply(params, state, inputs, *, key=None, train=False, context=None):
        ids, carry = inputs
        new_state, x = {}, ids
        for i, (child, layer) in enumerate(named):
            arg = (x, carry) if child == "rnn" else x
            out, new_state[child] = apply_child(child, layer, params[child], state[child], arg,
                                                key=child_key(key, i), train=train,
                                                context=context)
            x, carry = out if child == "rnn" else (out, carry)
        return (x, carry), new_state

    return Layer(init, apply, name, "char_lm", named)


__all__ = ["char_lm"]
