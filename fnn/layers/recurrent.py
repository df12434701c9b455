"""Recurrent networks (lecture 8): cells, one step each, and the sequence layers that scan them.

A **cell** is one recurrent step, a pure function pair plus a carry constructor::

    Cell(init, init_carry, apply, name)
    init(key, input_shape)          -> (carry_shape, params)   # input_shape (..., d), per step
    init_carry(batch_shape, dtype)  -> carry                   # zeros: LSTMState(h, c), ...
    apply(params, carry, x_t)       -> (carry, y_t)            # x_t (batch, d), y_t (batch, N)

``carry_shape`` is the carry's NamedTuple with per-example shapes (``LSTMState(h=(N,), c=(N,))``).
Parameters are named: ``w_x`` (d, G·N) the input weights, ``w_h`` (N, G·N) the recurrent weights
and ``b`` (G·N,) the bias, the G gate blocks side by side in a fixed, documented order (PyTorch's:
``i, f, g, o`` for the LSTM and ``r, z, n`` for the GRU, so that `from_torch_lstm` and
`from_torch_gru` only transpose). On the plain path each step does two small products,
``x_t W_x`` and ``h_{t-1} W_h`` (under JAX's own differentiation that measured faster than
hoisting the input product out of the scan); the fused path (`scan_cell`, ``RNN(impl=...)``)
differentiates the loop by hand with the weight gradients as one large product each after it
(for the plain LSTM with both loops written out), which made the LSTM's training step about
1.5x faster (issue 10, `benchmarks/README.md`).

The **sequence layers** are layers of the usual protocol on inputs ``(batch, time, features)``:
`RNN` scans a cell over time with `jax.lax.scan`, `Bidirectional` runs one cell forward and one
over each sequence's reversed valid prefix, `StackedRNN` stacks RNNs with dropout between them,
`TimeDistributed` applies any layer at every step. Variable lengths come from the batch's
``context.seq_mask`` (`fnn.core.Context`): a padded step leaves the carry unchanged, outputs
zeros and passes no gradient, so the final carry is the one at each sequence's last valid step.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from fnn import init as initializers
from fnn.checks import check_choice, check_int, check_real
from fnn.core import (
    Context, Layer, LayerError, apply_child, check_rank, child_key, format_shape, init_child,
    row_mask)

# ----------------------------------------------------------------------------- carries


class RNNState(NamedTuple):
    """The carry of an Elman RNN or a GRU: the hidden state ``h`` (batch, N)."""
    h: Any


class JordanState(NamedTuple):
    """The carry of a Jordan network: the previous output ``y`` (batch, M), fed back."""
    y: Any


class LSTMState(NamedTuple):
    """The carry of an LSTM: the hidden state ``h`` and the cell state ``c``, each (batch, N)."""
    h: Any
    c: Any


class Cell(NamedTuple):
    """One recurrent step (see the module docstring): ``init``, ``init_carry``, ``apply`` and a
    display name such as ``"LSTMCell(128)"``.

    ``combine`` (optional) is the cell split for the fused path of `RNN` (``impl="fused"``): a
    cell whose step is ``apply(params, carry, x) = combine(rest, x W_x + b, h_{t-1} W_h, carry,
    -1)`` with params ``w_x``, ``w_h``, ``b``, the carry's field ``h`` the only one multiplied by
    a matrix, ``rest`` the other params, and ``combine(rest, z_x, z_h, carry, axis) -> (carry,
    y)`` with no matrix product, the units (and gate blocks) along ``axis``: -1 for the usual
    (batch, G·N) rows, 0 for the fused loop's feature-major (G·N, batch) columns. `ElmanCell`,
    `LSTMCell` (all variants) and ``GRUCell(reset_after=True)`` have one; None: the cell runs
    only on the plain path. ``fused_by_default``: ``RNN(impl="auto")`` takes the fused path
    (set where it measured faster: the LSTM's). ``equations``: ``"lstm"`` marks the plain
    `LSTMCell` (no peepholes, not coupled), whose fused path has its backward step written out
    by hand (`scan_cell`); None: the fused path linearizes ``combine``."""
    init: Callable
    init_carry: Callable
    apply: Callable
    name: str = "cell"
    combine: Optional[Callable] = None
    fused_by_default: bool = False
    equations: Optional[str] = None


def _zeros_carry(carry_type, shapes):
    """``init_carry(batch_shape, dtype)``: a ``carry_type`` of zeros of ``batch_shape + shape``."""
    def init_carry(batch_shape, dtype=jnp.float32):
        batch_shape = tuple(batch_shape)
        return carry_type(*[jnp.zeros(batch_shape + s, dtype) for s in shapes])
    return init_carry


def _check_step_input(cell: str, x, d: int):
    if x.ndim < 1 or x.shape[-1] != d:
        raise LayerError(cell, f"expects inputs with {d} features per step; got a step of "
                               f"shape {format_shape(tuple(x.shape))}.")


def _gate_params(key, d: int, n: int, gates: int, w_init, h_init, b_init, dtype):
    """``{"w_x": (d, G·N), "w_h": (N, G·N), "b": (G·N,)}``; each gate block of ``w_h`` is
    initialized on its own (N, N) square, so that ``orthogonal`` makes each block orthogonal."""
    kx, kh, kb = jax.random.split(key, 3)
    w_h = jnp.concatenate([h_init(k, (n, n), dtype) for k in jax.random.split(kh, gates)], 1)
    return {"w_x": w_init(kx, (d, gates * n), dtype), "w_h": w_h,
            "b": b_init(kb, (gates * n,), dtype)}


def _gated_apply(cell: str, combine):
    """``apply(params, carry, x) = combine(params, x W_x + b, h_{t-1} W_h, carry, -1)``: the two
    small products per step of the plain path (see `Cell` for ``combine``)."""
    def apply(params, carry, x):
        _check_step_input(cell, x, params["w_x"].shape[0])
        return combine(params, x @ params["w_x"] + params["b"][None, :], carry.h @ params["w_h"],
                       carry, -1)
    return apply


def _per_unit(v, axis: int):
    """A (N,) parameter broadcast against (batch, N) (``axis=-1``) or (N, batch) (``axis=0``)."""
    return v[None, :] if axis == -1 else v[:, None]


def _step_activation(cell: str, name):
    if name not in ("tanh", "sigmoid"):
        raise ValueError(f"{cell}: `activation` must be 'tanh' or 'sigmoid'; got {name!r}.")
    return jnp.tanh if name == "tanh" else jax.nn.sigmoid


# ----------------------------------------------------------------------------- cells


def ElmanCell(units: int, *, activation: str = "tanh", w_init="glorot_uniform",
              h_init="orthogonal", b_init="zeros", dtype=jnp.float32) -> Cell:
    """The vanilla (Elman) RNN step: ``h_t = φ(x_t W_x + h_{t-1} W_h + b)``, ``y_t = h_t``.

    ``φ`` is ``tanh`` or ``sigmoid`` (``activation``). The course's output layer
    ``y_t = softmax(h_t W_hy + b_y)`` is a `Dense` after the `RNN` (Dense acts on the last axis).
    Shapes: x_t (batch, d) -> h_t (batch, N). Carry `RNNState(h)`. Params ``w_x`` (d, N),
    ``w_h`` (N, N), ``b`` (N,): **Nd + N² + N** parameters, the course's count.
    """
    name = f"ElmanCell({units})"
    check_int(name, "units", units)
    phi = _step_activation(name, activation)
    w_init, h_init, b_init = map(initializers.get, (w_init, h_init, b_init))

    def init(key, input_shape):
        check_rank(name, input_shape, 1, "(..., features)")
        return RNNState((units,)), _gate_params(key, input_shape[-1], units, 1, w_init, h_init,
                                                 b_init, dtype)

    def combine(params, zx, zh, carry, axis):
        h = phi(zx + zh)
        return RNNState(h), h

    return Cell(init, _zeros_carry(RNNState, [(units,)]), _gated_apply(name, combine), name,
                combine)


def JordanCell(units: int, outputs: int, *, activation: str = "tanh",
               output_activation: str = "sigmoid", w_init="glorot_uniform",
               h_init="glorot_uniform", b_init="zeros", dtype=jnp.float32) -> Cell:
    """The Jordan network step: the previous *output* is fed back, not the hidden state.

    ``h_t = φ(x_t W_x + y_{t-1} W_y + b)``, ``y_t = ψ(h_t W_o + b_o)``, with ``φ`` =
    ``activation`` and ``ψ`` = ``output_activation`` (each ``tanh`` or ``sigmoid``; Jordan (1986)
    used logistic units). Shapes: x_t (batch, d) -> y_t (batch, M = ``outputs``). Carry
    `JordanState(y)`. Params ``w_x`` (d, N), ``w_y`` (M, N), ``b`` (N,), ``w_o`` (N, M),
    ``b_o`` (M,): **Nd + MN + N + NM + M** parameters.
    """
    name = f"JordanCell({units}, outputs={outputs})"
    check_int(name, "units", units)
    check_int(name, "outputs", outputs)
    phi = _step_activation(name, activation)
    psi = _step_activation(name, output_activation)
    w_init, h_init, b_init = map(initializers.get, (w_init, h_init, b_init))

    def init(key, input_shape):
        check_rank(name, input_shape, 1, "(..., features)")
        kx, ky, kb, ko, kbo = jax.random.split(key, 5)
        params = {"w_x": w_init(kx, (input_shape[-1], units), dtype),
                  "w_y": h_init(ky, (outputs, units), dtype), "b": b_init(kb, (units,), dtype),
                  "w_o": w_init(ko, (units, outputs), dtype),
                  "b_o": b_init(kbo, (outputs,), dtype)}
        return JordanState((outputs,)), params

    def apply(params, carry, x):
        _check_step_input(name, x, params["w_x"].shape[0])
        h = phi(x @ params["w_x"] + carry.y @ params["w_y"] + params["b"][None, :])
        y = psi(h @ params["w_o"] + params["b_o"][None, :])
        return JordanState(y), y

    return Cell(init, _zeros_carry(JordanState, [(outputs,)]), apply, name)


def LSTMCell(units: int, *, forget_bias: float = 1.0, peepholes: bool = False,
             coupled: bool = False, w_init="glorot_uniform", h_init="orthogonal",
             b_init="zeros", dtype=jnp.float32) -> Cell:
    """The LSTM step (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000)::

        i_t = σ(x_t W_xi + h_{t-1} W_hi + b_i)          input gate
        f_t = σ(x_t W_xf + h_{t-1} W_hf + b_f)          forget gate
        g_t = tanh(x_t W_xg + h_{t-1} W_hg + b_g)       candidate c̃_t
        o_t = σ(x_t W_xo + h_{t-1} W_ho + b_o)          output gate
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t,    h_t = o_t ⊙ tanh(c_t),    y_t = h_t

    Params ``w_x`` (d, 4N), ``w_h`` (N, 4N), ``b`` (4N,) with the gate blocks in the order
    ``i, f, g, o`` (PyTorch's): **4(Nd + N² + N)** parameters, the course's count.
    ``forget_bias`` is the initial value of ``b_f`` (1 keeps the cell state at the start of
    training, Jozefowicz et al. 2015); PyTorch starts it at 0.

    Variants (they combine):

    - ``peepholes=True`` (Gers & Schmidhuber 2000): the gates see the cell state through
      diagonal weights, ``i_t, f_t`` get ``+ p_i ⊙ c_{t-1}``, ``+ p_f ⊙ c_{t-1}`` and ``o_t`` gets
      ``+ p_o ⊙ c_t``; extra params ``p_i, p_f, p_o`` (N,) each (zeros at init):
      **4(Nd + N² + N) + 3N** parameters.
    - ``coupled=True`` (CIFG, Greff et al. 2017): no forget gate, ``f_t = 1 − i_t``; blocks
      ``i, g, o``: **3(Nd + N² + N)** parameters (plus 2N with peepholes: ``p_i, p_o``). Here
      ``forget_bias`` initializes ``b_i`` to ``−forget_bias``, so ``f_t`` starts as in the plain
      LSTM.

    Shapes: x_t (batch, d) -> h_t (batch, N). Carry `LSTMState(h, c)`.
    """
    name = ("CoupledLSTMCell" if coupled else "LSTMCell") + f"({units}" + (
        ", peepholes" if peepholes else "") + ")"
    check_int(name, "units", units)
    check_real(name, "forget_bias", forget_bias)
    w_init, h_init, b_init = map(initializers.get, (w_init, h_init, b_init))
    gates = 3 if coupled else 4
    n = units

    def init(key, input_shape):
        check_rank(name, input_shape, 1, "(..., features)")
        params = _gate_params(key, input_shape[-1], n, gates, w_init, h_init, b_init, dtype)
        if coupled:  # b_i = -forget_bias: f = 1 - i starts at σ(forget_bias)
            params["b"] = params["b"].at[:n].add(-forget_bias)
        else:
            params["b"] = params["b"].at[n:2 * n].add(forget_bias)
        if peepholes:
            for gate in ("p_i",) + (() if coupled else ("p_f",)) + ("p_o",):
                params[gate] = jnp.zeros((n,), dtype)
        return LSTMState((n,), (n,)), params

    def combine(params, zx, zh, carry, axis):
        c_prev = carry.c
        if coupled:
            zi, zg, zo = jnp.split(zx + zh, 3, axis)
        else:
            zi, zf, zg, zo = jnp.split(zx + zh, 4, axis)
        if peepholes:
            zi = zi + _per_unit(params["p_i"], axis) * c_prev
            if not coupled:
                zf = zf + _per_unit(params["p_f"], axis) * c_prev
        i = jax.nn.sigmoid(zi)
        f = 1 - i if coupled else jax.nn.sigmoid(zf)
        c = f * c_prev + i * jnp.tanh(zg)
        if peepholes:
            zo = zo + _per_unit(params["p_o"], axis) * c
        h = jax.nn.sigmoid(zo) * jnp.tanh(c)
        return LSTMState(h, c), h

    return Cell(init, _zeros_carry(LSTMState, [(n,), (n,)]), _gated_apply(name, combine), name,
                combine, fused_by_default=True,
                equations=None if peepholes or coupled else "lstm")


def GRUCell(units: int, *, reset_after: bool = False, w_init="glorot_uniform",
            h_init="orthogonal", b_init="zeros", dtype=jnp.float32) -> Cell:
    """The GRU step (Cho et al. 2014). Gate blocks in the order ``r, z, n`` (PyTorch's).

    The course's formulation (``reset_after=False``), the reset gate applied *before* the
    recurrent product::

        r_t = σ(x_t W_xr + h_{t-1} W_hr + b_r)
        z_t = σ(x_t W_xz + h_{t-1} W_hz + b_z)
        h̃_t = tanh(x_t W_xn + (r_t ⊙ h_{t-1}) W_hn + b_n)
        h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t

    Params ``w_x`` (d, 3N), ``w_h`` (N, 3N), ``b`` (3N,): **3(Nd + N² + N)** parameters.

    PyTorch's ``nn.GRU`` (``reset_after=True``; also cuDNN's), the reset gate applied *after* the
    recurrent product, which has its own bias ``b_hn`` (N,), and ``z`` weighing the old state::

        n_t = tanh(x_t W_xn + b_n + r_t ⊙ (h_{t-1} W_hn + b_hn))
        h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    **3(Nd + N² + N) + N** parameters; `from_torch_gru` converts PyTorch's weights, and then this
    cell gives PyTorch's outputs. Shapes: x_t (batch, d) -> h_t (batch, N). Carry `RNNState(h)`.
    """
    name = f"GRUCell({units}" + (", reset_after" if reset_after else "") + ")"
    check_int(name, "units", units)
    w_init, h_init, b_init = map(initializers.get, (w_init, h_init, b_init))
    n = units

    def init(key, input_shape):
        check_rank(name, input_shape, 1, "(..., features)")
        params = _gate_params(key, input_shape[-1], n, 3, w_init, h_init, b_init, dtype)
        if reset_after:
            params["b_hn"] = b_init(jax.random.fold_in(key, 3), (n,), dtype)
        return RNNState((n,)), params

    def combine(params, zx, zh, carry, axis):  # reset_after: everything but the products
        h_prev = carry.h
        (xr, xz, xn), (hr, hz, hn) = jnp.split(zx, 3, axis), jnp.split(zh, 3, axis)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        cand = jnp.tanh(xn + r * (hn + _per_unit(params["b_hn"], axis)))
        h = (1 - z) * cand + z * h_prev
        return RNNState(h), h

    def apply(params, carry, x):  # the course's form: (r ⊙ h) W_hn needs r first
        _check_step_input(name, x, params["w_x"].shape[0])
        h_prev = carry.h
        zx = x @ params["w_x"] + params["b"][None, :]
        w_h = params["w_h"]
        zh = h_prev @ w_h[:, :2 * n]
        r = jax.nn.sigmoid(zx[:, :n] + zh[:, :n])
        z = jax.nn.sigmoid(zx[:, n:2 * n] + zh[:, n:])
        cand = jnp.tanh(zx[:, 2 * n:] + (r * h_prev) @ w_h[:, 2 * n:])
        h = (1 - z) * h_prev + z * cand
        return RNNState(h), h

    if reset_after:
        return Cell(init, _zeros_carry(RNNState, [(n,)]), _gated_apply(name, combine), name,
                    combine)
    return Cell(init, _zeros_carry(RNNState, [(n,)]), apply, name)


def from_torch_lstm(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> dict:
    """`LSTMCell` params from one layer of PyTorch's ``nn.LSTM`` (arrays, e.g. ``.numpy()``).

    PyTorch: ``weight_ih`` (4N, d), ``weight_hh`` (4N, N), biases (4N,), gates ``i, f, g, o``.
    Returns ``{"w_x": weight_ihᵀ, "w_h": weight_hhᵀ, "b": bias_ih + bias_hh}``.
    """
    weight_ih, weight_hh = jnp.asarray(weight_ih), jnp.asarray(weight_hh)
    b = jnp.zeros(weight_ih.shape[0], weight_ih.dtype)
    for bias in (bias_ih, bias_hh):
        if bias is not None:
            b = b + jnp.asarray(bias)
    return {"w_x": weight_ih.T, "w_h": weight_hh.T, "b": b}


def from_torch_gru(weight_ih, weight_hh, bias_ih, bias_hh) -> dict:
    """``GRUCell(reset_after=True)`` params from one layer of PyTorch's ``nn.GRU``.

    PyTorch: ``weight_ih`` (3N, d), ``weight_hh`` (3N, N), ``bias_ih``, ``bias_hh`` (3N,), gates
    ``r, z, n``. The r and z biases add up; ``b_hn`` (inside ``r ⊙ (·)``) stays apart.
    """
    bias_ih, bias_hh = jnp.asarray(bias_ih), jnp.asarray(bias_hh)
    n = bias_ih.shape[0] // 3
    b = jnp.concatenate([bias_ih[:2 * n] + bias_hh[:2 * n], bias_ih[2 * n:]])
    return {"w_x": jnp.asarray(weight_ih).T, "w_h": jnp.asarray(weight_hh).T, "b": b,
            "b_hn": bias_hh[2 * n:]}


# ----------------------------------------------------------------------------- masks


def select_seq_mask(layer: str, context: Optional[Context], which: Optional[str]):
    """The (batch, time) sequence mask a layer reads from ``context`` (None: every step real).

    ``context.seq_mask`` may be one mask or a dict of named masks; a layer built with
    ``seq_mask="source"`` reads ``context.seq_mask["source"]`` and needs the dict.
    """
    masks = None if context is None else context.seq_mask
    if masks is None:
        return None
    if isinstance(masks, dict):
        if which is None:
            raise LayerError(layer, f"got a dict of sequence masks {sorted(masks)} but was not "
                                    "told which one it reads: build it with seq_mask=NAME.")
        if which not in masks:
            raise LayerError(layer, f"reads the sequence mask {which!r}; the context has "
                                    f"{sorted(masks)}.")
        return masks[which]
    return masks


def valid_reversal(mask):
    """Indices (batch, time) that reverse each row's valid steps among themselves.

    For a prefix mask of length L: ``t -> L − 1 − t`` for ``t < L`` and ``t -> t`` after it. In
    general the k-th valid step trades places with the k-th valid step from the end; padded steps
    stay. The map is its own inverse: gathering with it twice gives back the original order.
    """
    mask = mask > 0
    time = mask.shape[1]
    positions = jnp.argsort(~mask, axis=1, stable=True)  # valid steps first, in order
    rank = jnp.cumsum(mask, axis=1) - 1  # index of each valid step among the valid ones
    count = mask.sum(axis=1, keepdims=True)
    partner = jnp.take_along_axis(positions, jnp.clip(count - 1 - rank, 0, time - 1), axis=1)
    return jnp.where(mask, partner, jnp.arange(time)[None, :])


def _gather_time(x, index):
    """``x[b, index[b, t], ...]`` for x (batch, time, ...)."""
    index = index.reshape(index.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, index, axis=1)


def last_valid(ys, mask):
    """``ys[b, t_b]`` at each row's last valid step t_b (zeros for a row with none);
    ys (batch, time, ...), mask (batch, time)."""
    mask = mask > 0
    time = mask.shape[1]
    last = time - 1 - jnp.argmax(mask[:, ::-1], axis=1)
    y = _gather_time(ys, last[:, None])[:, 0]
    keep = mask.any(axis=1).reshape((-1,) + (1,) * (y.ndim - 1))
    return jnp.where(keep, y, jnp.zeros_like(y))


# ----------------------------------------------------------------------------- sequence layers


def _carry_from(cell_name: str, layer: str, template, carry):
    """``carry`` as the cell's carry NamedTuple (a plain tuple or a dict is accepted)."""
    kind = type(template)
    if isinstance(carry, dict):
        carry = kind(**carry)
    elif isinstance(carry, (tuple, list)) and not isinstance(carry, kind):
        carry = kind(*carry)
    if not isinstance(carry, kind) or any(
            jnp.shape(a) != jnp.shape(b) for a, b in zip(carry, template)):
        got = jax.tree_util.tree_map(jnp.shape, carry)
        want = jax.tree_util.tree_map(jnp.shape, template)
        raise LayerError(layer, f"expects an initial carry {want} for {cell_name}; got {got}.")
    return carry


def RNN(cell: Cell, *, return_sequences: bool = True, return_state: bool = False,
        initial_carry: str = "zeros", reverse: bool = False, unroll: int = 1,
        time_major: bool = False, seq_mask: Optional[str] = None,
        name: Optional[str] = None, impl: str = "auto") -> Layer:
    """Run ``cell`` over time with `jax.lax.scan` (backpropagation through time is its gradient).

    Shapes: x (batch, time, d) (``(time, batch, d)`` with ``time_major=True``) -> y
    (batch, time, N) with ``return_sequences`` (each step's output), else (batch, N) (the output
    at each sequence's last valid step). With ``return_state`` the output is ``(y, carry)``, the
    final carry a NamedTuple of (batch, ...) arrays.

    ``initial_carry``: ``"zeros"``; ``"given"``, the input is then ``(x, carry)`` (truncated BPTT,
    encoder–decoder); or ``"learned"``, params ``carry0`` hold one initial carry for every row
    (a dict of the carry's fields). ``unroll`` is `lax.scan`'s.

    ``impl``: ``"scan"`` the plain path (``cell.apply`` per step, BPTT by JAX), ``"fused"`` a
    hand-written backward pass whose weight gradients are one large product each after the
    loop (`scan_cell`; the plain `LSTMCell`'s loops are written out entirely; for `ElmanCell`,
    `LSTMCell` and ``GRUCell(reset_after=True)``, other cells fall back to ``"scan"``;
    reverse-mode differentiation only), ``"auto"`` (default) ``"fused"`` for the LSTMs, where
    it measured faster, ``"scan"`` for the others (`resolve_impl`). Same results up to float
    rounding, with masks, ``reverse``, and every ``initial_carry``.

    Variable lengths: ``context.seq_mask`` (batch, time) marks the real steps (or a dict of masks,
    this layer reading ``seq_mask=NAME``). At a padded step the carry is left unchanged and the
    output is 0, with no gradient reaching the cell, so the final carry is the one at each
    sequence's last valid step. ``reverse=True`` runs over each sequence's valid steps backwards
    (`valid_reversal`) and returns the outputs in forward time order.
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"RNN: `cell` must be a Cell (e.g. LSTMCell(128)); got "
                        f"{type(cell).__name__}.")
    check_choice("RNN", "initial_carry", initial_carry, ("zeros", "given", "learned"))
    check_int("RNN", "unroll", unroll)
    check_choice("RNN", "impl", impl, IMPLS)
    name = name or f"RNN({cell.name})"

    def split_input(inputs):
        if initial_carry != "given":
            return inputs, None
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2):
            raise LayerError(name, "was built with initial_carry='given' and expects inputs "
                                   "(x, carry).")
        return inputs[0], inputs[1]

    def init(key, input_shape):
        x_shape = input_shape
        if initial_carry == "given":
            if _is_one_shape(input_shape) or len(input_shape) != 2:
                raise LayerError(name, "was built with initial_carry='given' and expects inputs "
                                       f"(x, carry); got {format_shape(input_shape)}.")
            x_shape = input_shape[0]
        check_rank(name, x_shape, 3, "(time, batch, features)" if time_major
                   else "(batch, time, features)")
        x_shape = tuple(x_shape)
        batch, time = (x_shape[1], x_shape[0]) if time_major else x_shape[:2]
        carry_shape, params = cell.init(key, x_shape[2:])
        if initial_carry == "learned":
            params["carry0"] = {f: jnp.zeros(s, _dtype_of(params)) for f, s in
                                carry_shape._asdict().items()}
        step_shape = jax.eval_shape(
            lambda p: cell.apply(p, cell.init_carry((1,), _dtype_of(p)),
                                 jnp.zeros((1, x_shape[-1]), _dtype_of(p))), params)[1].shape[1:]
        out = (time, batch) + step_shape if time_major else (batch, time) + step_shape
        if not return_sequences:
            out = (batch,) + step_shape
        if return_state:
            out = (out, type(carry_shape)(*[(batch,) + tuple(s) for s in carry_shape]))
        return out, params, {}

    def apply(params, state, inputs, *, key=None, train=False, context=None):
        x, carry = split_input(inputs)
        if x.ndim != 3:
            raise LayerError(name, f"expects inputs of shape (batch, time, features); got "
                                   f"{format_shape(tuple(x.shape))}.")
        if time_major:
            x = jnp.swapaxes(x, 0, 1)
        batch, time = x.shape[:2]
        cell_params = {k: v for k, v in params.items() if k != "carry0"}
        template = cell.init_carry((batch,), x.dtype)
        if initial_carry == "given":
            carry = _carry_from(cell.name, name, template, carry)
        elif initial_carry == "learned":
            carry = type(template)(*[jnp.broadcast_to(params["carry0"][f], t.shape)
                                     for f, t in template._asdict().items()])
        else:
            carry = template
        mask = select_seq_mask(name, context, seq_mask)
        if mask is not None and tuple(mask.shape) != (batch, time):
            raise LayerError(name, f"expects a sequence mask of shape ({batch}, {time}); got "
                                   f"{format_shape(tuple(mask.shape))}.")
        order = None
        if reverse:
            order = (valid_reversal(mask) if mask is not None
                     else jnp.broadcast_to(jnp.arange(time)[::-1][None, :], (batch, time)))
            x = _gather_time(x, order)
        carry, ys = scan_cell(cell, cell_params, carry, x, mask, unroll=unroll, impl=impl)
        if return_sequences:
            y = ys if order is None else _gather_time(ys, order)
            if time_major:
                y = jnp.swapaxes(y, 0, 1)
        else:  # the last step processed (for reverse: the first valid step in forward order)
            y = ys[:, -1] if mask is None else last_valid(ys, mask)
        return ((y, carry) if return_state else y), state

    return Layer(init, apply, name, "rnn")


def _is_one_shape(shape) -> bool:
    return isinstance(shape, (tuple, list)) and all(d is None or isinstance(d, int) for d in shape)


def _dtype_of(params):
    leaves = jax.tree_util.tree_leaves(params)
    return leaves[0].dtype if leaves else jnp.float32


def _masked_step(m_t, carry, new_carry, y_t, batch_axis: int = 0):
    """Where ``m_t`` (batch,) is 0: the old carry and a zero output (`jnp.where`: no gradient
    reaches the step there); ``m_t`` None: the step's own. The batch is axis 0 of every array
    (``batch_axis=0``) or the last axis (``-1``, the fused loop's feature-major layout)."""
    if m_t is None:
        return new_carry, y_t
    keep = m_t > 0

    def where(new, old):
        shape = (-1,) + (1,) * (new.ndim - 1) if batch_axis == 0 else (1,) * (new.ndim - 1) + (-1,)
        return jnp.where(keep.reshape(shape), new, old)

    return (jax.tree_util.tree_map(where, new_carry, carry), where(y_t, jnp.zeros_like(y_t)))


IMPLS = ("auto", "scan", "fused")


def resolve_impl(cell: Cell, impl: str) -> str:
    """The path `scan_cell` takes: ``"auto"`` is ``"fused"`` for cells with
    ``fused_by_default`` (the LSTMs: the plain LSTM's training step measured about 0.6x the
    plain path's time fused, see `benchmarks/README.md`) and ``"scan"`` for the others (the
    GRU's fused step, generic or written out, measured no faster); ``"fused"`` for a cell
    without a ``combine`` falls back to ``"scan"``."""
    check_choice("scan_cell", "impl", impl, IMPLS)
    if impl == "auto":
        return "fused" if cell.fused_by_default and cell.combine is not None else "scan"
    return "fused" if impl == "fused" and cell.combine is not None else "scan"


def scan_cell(cell: Cell, params, carry, xs, mask=None, *, unroll: int = 1,
              impl: str = "auto"):
    """``(final_carry, ys)``: ``cell`` applied along axis 1 of xs (batch, time, d) by
    `jax.lax.scan`; ys (batch, time, N). Where ``mask`` (batch, time) is 0 the carry is kept and
    the output is 0 (`jnp.where`, so no gradient reaches the cell from those steps).

    ``impl="scan"``: the plain path, ``cell.apply`` per step, differentiated by JAX (BPTT).
    ``impl="fused"`` (cells with a ``combine``, see `Cell`; others fall back to the plain path):
    the input products of all steps as one ``(batch·time, d) × (d, G·N)`` product before the
    loop, one ``h_{t-1} W_h`` per step inside it (computed feature-major, ``W_hᵀ h_{t-1}ᵀ``, the
    faster orientation on XLA:CPU), each step's elementwise part linearized there (`jax.vjp`, so
    its gate values are saved, not recomputed), and a `jax.custom_vjp` whose backward loop only
    carries ``∂/∂carry`` and stacks the per-step pre-activation gradients ``dZ_x, dZ_h`` (one
    stack when they are equal, as in the LSTM); after it ``dW_h = H_prevᵀ dZ_h``,
    ``dW_x = Xᵀ dZ_x``, ``db = Σ dZ_x`` and ``dX = dZ_x W_xᵀ`` are one large product (or sum)
    each, as fused LSTM kernels do. The plain `LSTMCell` (``cell.equations == "lstm"``: no
    peepholes, not coupled; ``params`` only ``w_x, w_h, b``) has both loops written out
    instead (`_lstm_forward`, `_lstm_scan_bwd`): per step one product
    ``[W_x; W_h]ᵀ [x_tᵀ; h_{t-1}ᵀ]`` (no (T, 4N, batch) array of input products to build and
    read back), one elementwise pass, only the four gate activations and ``c_t`` saved, and the
    backward step's elementwise part as the LSTM's equations (no saved linearization);
    every stack is feature-major along its leading axis. Same results up to float rounding;
    reverse-mode only (a `custom_vjp`: ``jax.jvp``/``jacfwd`` need ``impl="scan"``).
    ``"auto"``: ``"fused"`` for the LSTMs, ``"scan"`` otherwise (`resolve_impl`)."""
    masks = None if mask is None else jnp.swapaxes(mask, 0, 1).astype(xs.dtype)
    if resolve_impl(cell, impl) == "fused":
        if cell.equations == "lstm" and set(params) == set(_PRODUCT_PARAMS):
            return _lstm_scan(unroll, params, carry, xs, masks)
        return _fused_scan(cell.combine, unroll, params, carry, xs, masks)

    def step(carry, inputs):
        x_t, m_t = inputs
        new_carry, y_t = cell.apply(params, carry, x_t)
        return _masked_step(m_t, carry, new_carry, y_t)

    carry, ys = jax.lax.scan(step, carry, (jnp.swapaxes(xs, 0, 1), masks), unroll=unroll)
    return carry, jnp.swapaxes(ys, 0, 1)


_PRODUCT_PARAMS = ("w_x", "w_h", "b")


def _transposed(carry):
    return jax.tree_util.tree_map(lambda a: a.T, carry)


def _materialized_t(a):
    """``a.T`` copied to row-major (an `optimization_barrier` keeps XLA from folding the
    transpose into the next product): ``(K, M)^T (M, N)`` as a row-major ``(K, M) x (M, N)``
    product measured 1.4x faster on XLA:CPU than with the contraction over ``a``'s major axis."""
    return jax.lax.optimization_barrier((a.T,))[0]


def _fused_forward(combine, unroll, params, carry, xs, masks, save):
    """The fused forward pass: xs (batch, T, d), carry (batch, ...), masks (T, batch) or None ->
    ``(final, ys)``, ys (batch, T, N); with ``save`` also the residuals of the backward pass:
    each step's pullback of ``combine`` (stacked by the scan: the saved gate values) and h_{t-1}.

    Inside the loop everything is feature-major, (units, batch): ``Z_h^T = W_h^T h^T`` measured
    about 1.8x faster on XLA:CPU than ``h W_h`` for (32, 256) x (256, 1024), and the backward
    ``W_h dZ_h^T`` 1.5x faster than ``dZ_h W_h^T``."""
    w_h_t = params["w_h"].T  # (G·N, N)
    rest = {k: v for k, v in params.items() if k not in _PRODUCT_PARAMS}
    xs = jnp.swapaxes(xs, 0, 1)  # (T, batch, d)
    time, batch, d = xs.shape
    zx = (xs.reshape(time * batch, d) @ params["w_x"] + params["b"][None, :]).reshape(
        time, batch, -1)

    def step(c, inputs):
        zx_t, m_t = inputs
        zh_t = w_h_t @ c.h

        def one(r, a, b, c):
            new, y_t = combine(r, a, b, c, 0)
            return _masked_step(m_t, c, new, y_t, -1)

        if not save:
            new, y_t = one(rest, zx_t.T, zh_t, c)
            return new, y_t.T
        (new, y_t), pullback = jax.vjp(one, rest, zx_t.T, zh_t, c)
        return new, (y_t.T, pullback, c.h)

    final, out = jax.lax.scan(step, _transposed(carry), (zx, masks), unroll=unroll)
    ys = out[0] if save else out
    result = (_transposed(final), jnp.swapaxes(ys, 0, 1))
    if not save:
        return result
    return result, (params, xs, out[1], out[2])


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _fused_scan(combine, unroll, params, carry, xs, masks):
    return _fused_forward(combine, unroll, params, carry, xs, masks, save=False)


def _fused_scan_fwd(combine, unroll, params, carry, xs, masks):
    return _fused_forward(combine, unroll, params, carry, xs, masks, save=True)


def _fused_scan_bwd(combine, unroll, residuals, cotangents):
    """The backward loop applies each step's saved pullback and carries only ``∂/∂carry`` (and
    the sums of the small ``rest`` params' gradients); the weight gradients are one product each
    after it. The mask gets no gradient (None)."""
    params, xs, pullbacks, h_prev = residuals
    d_final, dys = cotangents
    w_h = params["w_h"]
    rest = {k: v for k, v in params.items() if k not in _PRODUCT_PARAMS}

    def step(acc, inputs):
        dc, d_rest = acc
        pullback, dy_t = inputs
        dr, dzx_t, dzh_t, dc_prev = pullback((dc, dy_t))
        dc_prev = dc_prev._replace(h=dc_prev.h + w_h @ dzh_t)
        # an additive cell (z = z_x + z_h, the LSTM's) gets one cotangent object for both
        stacked = (dzx_t.T,) if dzx_t is dzh_t else (dzx_t.T, dzh_t.T)
        return (dc_prev, jax.tree_util.tree_map(jnp.add, d_rest, dr)), stacked

    zero_rest = jax.tree_util.tree_map(jnp.zeros_like, rest)
    (d_carry, d_rest), dz = jax.lax.scan(
        step, (_transposed(d_final), zero_rest),
        (pullbacks, jnp.transpose(dys, (1, 2, 0))), reverse=True, unroll=unroll)
    time, batch, d = xs.shape  # time-major here, dz (T, batch, G·N), carries (T, N, batch)
    rows = time * batch
    dzx, dzh = dz[0].reshape(rows, -1), dz[-1].reshape(rows, -1)
    grads = dict(d_rest)
    grads["w_x"] = _materialized_t(xs.reshape(rows, d)) @ dzx
    grads["b"] = dzx.sum(0)
    grads["w_h"] = jnp.transpose(h_prev, (1, 0, 2)).reshape(-1, rows) @ dzh
    d_xs = jnp.swapaxes((dzx @ _materialized_t(params["w_x"])).reshape(time, batch, d), 0, 1)
    return grads, _transposed(d_carry), d_xs, None


_fused_scan.defvjp(_fused_scan_fwd, _fused_scan_bwd)


def _lstm_forward(unroll, params, carry, xs, masks, save):
    """The plain LSTM's fused forward pass (`LSTMCell` without peepholes or coupling): xs
    (batch, T, d), carry `LSTMState` of (batch, N), masks (T, batch) or None -> ``(final, ys)``;
    with ``save`` also the residuals: the gate activations ``[i; f; g; o]`` of each step
    (T, 4N, batch), the carried ``h`` and ``c`` (T + 1, N, batch, index 0 the initial carry)
    and the inputs feature-major (d, T·batch).

    Each step is one product ``z = [W_x; W_h]ᵀ [x_tᵀ; h_{t-1}ᵀ] + b`` (4N, batch) and one
    elementwise pass. Measured on XLA:CPU (T = 64, N = 256, batch 32, one core; see
    `benchmarks/README.md`): hoisting ``X W_x`` out of the loop instead costs more than it saves,
    because building the (T, 4N, batch) array of input products (a product and two transposing
    copies of 8 MB, fresh memory each call) took ~28 ms against ~4 ms for the larger per-step
    product; and every stack is feature-major along its *leading* axis, so that each step reads
    and writes contiguous (·, batch) blocks (stacked along a middle axis, the backward loop
    measured 1.6x slower)."""
    w_x, w_h, b = params["w_x"], params["w_h"], params["b"]
    batch, time, d = xs.shape
    n = w_h.shape[0]
    dtype = jnp.result_type(xs, w_x, w_h, b, *carry)
    xs_t = jnp.transpose(xs, (1, 2, 0)).astype(dtype)  # (T, d, batch)
    w_t = _materialized_t(jnp.concatenate([w_x, w_h], 0).astype(dtype))  # (4N, d + N)
    b = b.astype(dtype)[:, None]
    h0, c0 = carry.h.T.astype(dtype), carry.c.T.astype(dtype)
    hs = jnp.zeros((time + 1, n, batch), dtype).at[0].set(h0)
    cs = jnp.zeros((time + 1 if save else 1, n, batch), dtype).at[0].set(c0)
    gates = jnp.zeros((time if save else 1, 4 * n, batch), dtype)

    def step(t, state):
        h, c, gates, hs, cs = state
        z = w_t @ jnp.concatenate([xs_t[t], h]) + b
        i, f, o = (jax.nn.sigmoid(z[k * n:(k + 1) * n]) for k in (0, 1, 3))
        g = jnp.tanh(z[2 * n:3 * n])
        c_new = f * c + i * g
        h_new = o * jnp.tanh(c_new)
        if masks is not None:
            keep = masks[t][None, :] > 0
            c_new, h_new = jnp.where(keep, c_new, c), jnp.where(keep, h_new, h)
        hs = hs.at[t + 1].set(h_new)
        if save:
            gates = gates.at[t].set(jnp.concatenate([i, f, g, o]))
            cs = cs.at[t + 1].set(c_new)
        return h_new, c_new, gates, hs, cs

    h, c, gates, hs, cs = jax.lax.fori_loop(0, time, step, (h0, c0, gates, hs, cs),
                                            unroll=unroll)
    ys = hs[1:] if masks is None else hs[1:] * masks[:, None, :]
    result = (LSTMState(h.T, c.T), jnp.transpose(ys, (2, 0, 1)))
    if not save:
        return result
    xt = jnp.transpose(xs, (2, 1, 0)).reshape(d, time * batch)
    return result, (params, carry, xs, xt, gates, hs, cs)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lstm_scan(unroll, params, carry, xs, masks):
    return _lstm_forward(unroll, params, carry, xs, masks, save=False)


def _lstm_scan_fwd(unroll, params, carry, xs, masks):
    result, residuals = _lstm_forward(unroll, params, carry, xs, masks, save=True)
    return result, residuals + (masks,)


def _lstm_scan_bwd(unroll, residuals, cotangents):
    """The LSTM's backward step written out, feature-major, from the saved activations::

        dh = δh_t (+ ∂L/∂y_t),  dc = δc_t + dh ⊙ o ⊙ (1 − tanh²c_t)
        dz_i = dc ⊙ g ⊙ i(1 − i),  dz_f = dc ⊙ c_{t−1} ⊙ f(1 − f),  dz_g = dc ⊙ i ⊙ (1 − g²),
        dz_o = dh ⊙ tanh c_t ⊙ o(1 − o),  δc_{t−1} = dc ⊙ f,  δh_{t−1} = W_h dz

    (at a padded step δh, δc pass unchanged and dz = 0). The loop stacks dz (T, 4N, batch);
    after it ``dW_hᵀ = DZ H_prevᵀ``, ``dW_xᵀ = DZ X``, ``db = Σ DZ`` and ``dXᵀ = W_x DZ`` are
    one product (or sum) each over the (4N, T·batch) matrix DZ."""
    params, carry, xs, xt, gates, hs, cs, masks = residuals
    d_final, dys = cotangents
    time, n4, batch = gates.shape
    n = n4 // 4
    dtype = gates.dtype
    dy = jnp.transpose(dys, (1, 2, 0)).astype(dtype)  # (T, N, batch)
    if masks is not None:
        dy = dy * masks[:, None, :]
    w_h = params["w_h"].astype(dtype)

    def step(k, state):
        t = time - 1 - k
        dh, dc, dz_all = state
        i, f, g, o = (gates[t, j * n:(j + 1) * n] for j in range(4))
        c_prev, c = cs[t], cs[t + 1]
        dh = dh + dy[t]
        if masks is not None:
            keep = masks[t][None, :] > 0
            pass_h, pass_c = jnp.where(keep, 0, dh), jnp.where(keep, 0, dc)
            dh, dc = jnp.where(keep, dh, 0), jnp.where(keep, dc, 0)
        tanh_c = jnp.tanh(c)
        dc = dc + dh * o * (1 - tanh_c * tanh_c)
        # each gate's dz written into its rows of the stack and the product reading dz_all[t]
        # back: the training step 0.93x the time of one concatenated dz with default threads,
        # equal on one core (benchmarks/README.md, issue 10 round 2)
        for j, dz_j in enumerate((dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                                  dc * i * (1 - g * g), dh * tanh_c * o * (1 - o))):
            dz_all = jax.lax.dynamic_update_slice(dz_all, dz_j[None], (t, j * n, 0))
        dh_prev, dc_prev = w_h @ dz_all[t], dc * f
        if masks is not None:
            dh_prev, dc_prev = dh_prev + pass_h, dc_prev + pass_c
        return dh_prev, dc_prev, dz_all

    dh, dc, dz = jax.lax.fori_loop(
        0, time, step, (d_final.h.T.astype(dtype), d_final.c.T.astype(dtype),
                        jnp.zeros_like(gates)), unroll=unroll)
    dz = jnp.transpose(dz, (1, 0, 2)).reshape(n4, time * batch)
    h_prev = jnp.transpose(hs[:time], (1, 0, 2)).reshape(n, time * batch)
    w_x = params["w_x"]
    grads = {"w_h": (dz @ h_prev.T).T.astype(params["w_h"].dtype),
             "w_x": (dz @ xt.T).T.astype(w_x.dtype), "b": dz.sum(1).astype(params["b"].dtype)}
    d_xs = jnp.transpose((w_x.astype(dtype) @ dz).reshape(-1, time, batch), (2, 1, 0))
    d_carry = LSTMState(dh.T.astype(carry.h.dtype), dc.T.astype(carry.c.dtype))
    return grads, d_carry, d_xs.astype(xs.dtype), None


_lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd)


class BidirectionalState(NamedTuple):
    """The final carries of a `Bidirectional` layer: ``forward`` and ``backward``."""
    forward: Any
    backward: Any


def Bidirectional(cell: Cell, backward_cell: Optional[Cell] = None, *, merge: str = "concat",
                  return_sequences: bool = True, return_state: bool = False,
                  seq_mask: Optional[str] = None, unroll: int = 1, impl: str = "auto") -> Layer:
    """A bidirectional RNN (Schuster & Paliwal 1997): ``cell`` reads each sequence forward,
    ``backward_cell`` (default: a fresh copy of ``cell``) reads its valid prefix backwards; the
    backward outputs are put back in forward time order and merged with the forward ones.

    Shapes: x (batch, time, d) -> (batch, time, M) with ``return_sequences``, else (batch, M) (the
    forward output at the last valid step merged with the backward output at the first step,
    the last each direction read). ``merge``: ``"concat"`` (M = 2N), ``"sum"`` or ``"mean"``
    (M = N). With ``return_state``: ``(y, BidirectionalState(forward, backward))``.
    Children ``forward`` and ``backward`` (each an `RNN`); masks, ``unroll`` and ``impl`` as in
    `RNN`.
    """
    check_choice("Bidirectional", "merge", merge, ("concat", "sum", "mean"))
    backward_cell = cell if backward_cell is None else backward_cell
    options = dict(return_sequences=return_sequences, return_state=True, seq_mask=seq_mask,
                   unroll=unroll, impl=impl)
    named = (("forward", RNN(cell, **options)),
             ("backward", RNN(backward_cell, reverse=True, **options)))
    name = f"Bidirectional({cell.name}, merge={merge!r})"

    def combine(a, b):
        if merge == "concat":
            return jnp.concatenate([a, b], axis=-1)
        return a + b if merge == "sum" else (a + b) / 2

    def combine_shapes(a, b):
        if merge == "concat":
            return tuple(a[:-1]) + (a[-1] + b[-1],)
        if tuple(a) != tuple(b):
            raise LayerError(name, f"merges by {merge} outputs of one shape; got "
                                   f"{format_shape(a)} and {format_shape(b)}.")
        return tuple(a)

    def init(key, input_shape):
        outs, params = [], {}
        for i, (child, layer) in enumerate(named):
            out, params[child], _ = init_child(child, layer, child_key(key, i), input_shape)
            outs.append(out)
        y = combine_shapes(outs[0][0], outs[1][0])
        return ((y, BidirectionalState(outs[0][1], outs[1][1])) if return_state else y,
                params, {"forward": {}, "backward": {}})

    def apply(params, state, x, *, key=None, train=False, context=None):
        results = [apply_child(child, layer, params[child], state[child], x,
                               key=child_key(key, i), train=train, context=context)[0]
                   for i, (child, layer) in enumerate(named)]
        (yf, cf), (yb, cb) = results
        y = combine(yf, yb)
        return ((y, BidirectionalState(cf, cb)) if return_state else y), state

    return Layer(init, apply, name, "bidirectional", named)


def StackedRNN(*cells: Cell, dropout: float = 0.0, return_sequences: bool = True,
               return_state: bool = False, initial_carry: str = "zeros",
               seq_mask: Optional[str] = None, unroll: int = 1, impl: str = "auto") -> Layer:
    """A deep RNN: ``RNN(cells[0]) -> Dropout -> RNN(cells[1]) -> ...``, each layer reading
    the sequence of outputs of the one below, with dropout (rate ``dropout``, train mode only)
    between layers (Zaremba et al. 2014).

    Written out because the carries of all layers travel together: with
    ``initial_carry="given"`` the input is ``(x, carries)`` and with ``return_state`` the output
    is ``(y, carries)``, ``carries`` a tuple with one carry per layer, so truncated BPTT can pass
    them between chunks (`fnn.sequence`). Without either it equals
    ``serial(RNN(c_1), Dropout(p), RNN(c_2), ...)``. Children ``rnn_0, dropout_0, rnn_1, ...``.
    Shapes: x (batch, time, d) -> (batch, time, N_last) (or (batch, N_last)). ``unroll`` and
    ``impl`` as in `RNN`.
    """
    from fnn.layers.dropout import Dropout  # a sibling module; imported here to keep load order

    if not cells:
        raise ValueError("StackedRNN: give at least one cell.")
    check_choice("StackedRNN", "initial_carry", initial_carry, ("zeros", "given", "learned"))
    depth = len(cells)
    named = []
    for i, cell in enumerate(cells):
        last = i == depth - 1
        named.append((f"rnn_{i}", RNN(cell, return_sequences=return_sequences or not last,
                                      return_state=True, initial_carry=initial_carry,
                                      seq_mask=seq_mask, unroll=unroll, impl=impl)))
        if dropout and not last:
            named.append((f"dropout_{i}", Dropout(dropout)))
    named = tuple(named)
    name = "StackedRNN(" + ", ".join(c.name for c in cells) + ")"

    def init(key, input_shape):
        if initial_carry == "given":
            shape, carry_shapes = input_shape[0], input_shape[1]
        else:
            shape, carry_shapes = input_shape, None
        params, state, finals, layer_index = {}, {}, [], 0
        for i, (child, layer) in enumerate(named):
            if child.startswith("rnn_"):
                arg = shape
                if initial_carry == "given":  # the carry's shape is not read (None is fine)
                    arg = (shape, None if carry_shapes is None else carry_shapes[layer_index])
                (shape, final), params[child], state[child] = init_child(
                    child, layer, child_key(key, i), arg)
                finals.append(final)
                layer_index += 1
            else:
                shape, params[child], state[child] = init_child(child, layer, child_key(key, i),
                                                                shape)
        return ((shape, tuple(finals)) if return_state else shape), params, state

    def apply(params, state, inputs, *, key=None, train=False, context=None):
        if initial_carry == "given":
            x, carries = inputs
            if len(carries) != depth:
                raise LayerError(name, f"expects one initial carry per layer ({depth}); got "
                                       f"{len(carries)}.")
        else:
            x, carries = inputs, None
        new_state, finals, layer_index = {}, [], 0
        for i, (child, layer) in enumerate(named):
            arg = x
            if child.startswith("rnn_") and carries is not None:
                arg = (x, carries[layer_index])
            out, new_state[child] = apply_child(child, layer, params[child], state[child], arg,
                                                key=child_key(key, i), train=train,
                                                context=context)
            if child.startswith("rnn_"):
                x, final = out
                finals.append(final)
                layer_index += 1
            else:
                x = out
        return ((x, tuple(finals)) if return_state else x), new_state

    return Layer(init, apply, name, "stacked_rnn", named)


def TimeDistributed(layer: Layer) -> Layer:
    """Apply ``layer`` at every time step: (batch, time, ...) -> (batch, time, ...'), by folding
    time into the batch axis. (A `Dense` needs no wrapper: it already acts on the last axis.)

    The child sees ``batch·time`` rows; its context's row mask is the batch's row mask times
    the sequence mask, flattened the same way, so a BatchNorm inside ignores padded steps.
    Child ``layer``.
    """
    name = f"TimeDistributed({layer.name})"

    def init(key, input_shape):
        check_rank(name, input_shape, 3, "(batch, time, ...)")
        batch, time = input_shape[:2]
        inner = (None if batch is None else batch * time,) + tuple(input_shape[2:])
        out, params, state = init_child("layer", layer, key, inner)
        if not _is_one_shape(out) or len(out) < 1:
            raise LayerError(name, f"needs its layer to return one array; it returns "
                                   f"{format_shape(out)}.")
        return (batch, time) + tuple(out[1:]), params, state

    def apply(params, state, x, *, key=None, train=False, context=None):
        batch, time = x.shape[:2]
        inner_context = None
        if context is not None:
            rows, steps = row_mask(context), context.seq_mask
            m = jnp.ones((batch, time), x.dtype)
            if rows is not None:
                m = m * jnp.asarray(rows, x.dtype)[:, None]
            if steps is not None and not isinstance(steps, dict):
                m = m * jnp.asarray(steps, x.dtype)
            inner_context = Context(mask=m.reshape(batch * time))
        y, new_state = apply_child("layer", layer, params, state,
                                   x.reshape((batch * time,) + x.shape[2:]), key=key,
                                   train=train, context=inner_context)
        return y.reshape((batch, time) + y.shape[1:]), new_state

    return Layer(init, apply, name, "time_distributed", (("layer", layer),))


__all__ = ["Bidirectional", "BidirectionalState", "Cell", "ElmanCell", "GRUCell", "JordanState",
           "JordanCell", "LSTMCell", "LSTMState", "RNN", "RNNState", "StackedRNN",
           "TimeDistributed", "from_torch_gru", "from_torch_lstm", "last_valid", "scan_cell",
           "select_seq_mask", "valid_reversal"]
