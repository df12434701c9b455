"""The first neuron models of the course (lecture 1): McCulloch–Pitts, the perceptron, Adaline.

Every model is a single neuron over inputs ``x`` of shape (n,) (one pattern) or (batch, n).
Parameters are a dict ``{"w": (n,), "b": ()}``: ``b`` is the weight ``w_0`` on the constant
input ``x_0 = 1`` (the threshold θ moved into the sum, ``b = −θ``), so every rule updates it
exactly like a weight whose input is 1. The net input is ``z = Σ_i w_i x_i + b``.

* McCulloch–Pitts: ``y = 1 if Σ w_i x_i > θ else 0`` (fixed weights, no learning).
* Perceptron, unipolar ``y ∈ {0, 1}`` or bipolar ``y ∈ {−1, 1}``: ``y = step(z)`` with
  ``step(z) = 1 if z > 0`` else 0 (unipolar) or −1 (bipolar). Rule applied after each pattern:
  ``Δw_i = α x_i (y_d − y)``, ``Δb = α (y_d − y)`` (``rule="error"``). The variant ``Δw_i = α x_i
  y_d`` (``rule="target"``) is applied after each *wrong* answer only (on a right one it would
  grow the weights forever) and needs bipolar targets (with ``y_d = 0`` it could never lower a
  weight); it is Rosenblatt's ``w ← w + α y_d x`` and equals the error rule with α/2.
  Training repeats epochs (one pass over the patterns in order) until an epoch has no error, or
  ``max_epochs`` is reached.
* Adaline: bipolar output ``y = step(z)``; the LMS (Widrow–Hoff) rule on the *linear* output,
  one pattern at a time: ``ε_k = d_k − z_k``, ``w ← w + 2μ ε_k x_k``, ``b ← b + 2μ ε_k``.

The update functions are pure, jit-able and the bodies of ``lax.scan`` over patterns; the
training functions scan over epochs as well and return ``(params, history)``.
"""
from __future__ import annotations

from functools import partial
from typing import Dict, NamedTuple, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn.checks import check_in_range, check_int
from fnn.classic.checks import check_patterns

Params = Dict[str, jax.Array]
RULES = ("error", "target")


def init_neuron(n_inputs: int, dtype=jnp.float32, key=None, scale: float = 0.0) -> Params:
    """``{"w": (n_inputs,), "b": ()}``: zeros, or uniform in ``[−scale, scale]`` drawn with
    ``key``."""
    check_int("init_neuron", "n_inputs", n_inputs)
    if key is None:
        return {"w": jnp.zeros((n_inputs,), dtype), "b": jnp.zeros((), dtype)}
    w_key, b_key = jax.random.split(key)
    return {"w": jax.random.uniform(w_key, (n_inputs,), dtype, -scale, scale),
            "b": jax.random.uniform(b_key, (), dtype, -scale, scale)}


def net_input(params: Params, x) -> jax.Array:
    """``z = Σ_i w_i x_i + b``: x (..., n) -> z (...)."""
    return x @ params["w"] + params["b"]


def step(z, bipolar: bool = False) -> jax.Array:
    """The threshold activation: 1 where ``z > 0``, else 0 (unipolar) or −1 (bipolar)."""
    return jnp.where(z > 0, jnp.ones_like(z), -jnp.ones_like(z) if bipolar else jnp.zeros_like(z))


def mcculloch_pitts(x, w, threshold) -> jax.Array:
    """McCulloch–Pitts neuron: ``y = 1 if Σ_i w_i x_i > θ else 0``; x (..., n), w (n,) -> y (...).

    ``w = (1, 1)`` with ``θ = 1.5`` is AND, with ``θ = 0.5`` OR; ``w = (−1,)``, ``θ = −0.5`` is NOT.
    The same neuron as a perceptron: ``params = {"w": w, "b": −θ}``.
    """
    x = jnp.asarray(x)
    x = x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)
    return step(x @ jnp.asarray(w, x.dtype) - threshold)


def perceptron_output(params: Params, x, bipolar: bool = False) -> jax.Array:
    """``y = step(Σ w_i x_i + b)``: x (..., n) -> y (...) in {0, 1} or {−1, 1}."""
    return step(net_input(params, x), bipolar)


def perceptron_update(params: Params, x, y_d, *, alpha, bipolar: bool = False,
                      rule: str = "error") -> Tuple[Params, jax.Array]:
    """One pattern ``x`` (n,) with desired output ``y_d`` (scalar): ``(new params, wrong)``.

    ``rule="error"``: ``Δw_i = α x_i (y_d − y)``, ``Δb = α (y_d − y)``.
    ``rule="target"``: ``Δw_i = α x_i y_d``, ``Δb = α y_d`` when ``y ≠ y_d``, else no change
    (bipolar only). ``wrong`` is 1.0 when the neuron's answer ``y`` was not ``y_d``, else 0.0.
    """
    if rule not in RULES:
        raise ValueError(f"perceptron_update: `rule` must be one of {RULES}; got {rule!r}.")
    if rule == "target" and not bipolar:
        raise ValueError("perceptron_update: rule='target' (Δw = α x y_d) needs bipolar=True: "
                         "with unipolar targets y_d = 0 it could never lower a weight.")
    y = perceptron_output(params, x, bipolar)
    wrong = (y != y_d).astype(x.dtype)
    delta = alpha * ((y_d - y) if rule == "error" else wrong * y_d)
    return {"w": params["w"] + delta * x, "b": params["b"] + delta}, wrong


def perceptron_epoch(params: Params, x, y_d, *, alpha, bipolar: bool = False,
                     rule: str = "error") -> Tuple[Params, jax.Array]:
    """One epoch: `perceptron_update` on each pattern of x (P, n) in order (a ``lax.scan``);
    returns ``(params, errors)``, errors the number of patterns answered wrongly during it."""
    def body(p, pattern):
        p, wrong = perceptron_update(p, pattern[0], pattern[1], alpha=alpha, bipolar=bipolar,
                                     rule=rule)
        return p, wrong

    params, wrong = jax.lax.scan(body, params, (x, y_d))
    return params, wrong.sum()


class NeuronHistory(NamedTuple):
    """Per epoch of a training run (epoch e = index e, counted from 0), as NumPy arrays.

    ``w`` (E, n) and ``b`` (E,) after the epoch; ``errors`` (E,) patterns answered wrongly
    during the epoch (online); ``mse`` (E,) the mean of ``(d − z)²`` after the epoch (Adaline;
    for the perceptron the mean of ``(y_d − y)²``). ``converged``: the last epoch had no error.
    """

    w: np.ndarray
    b: np.ndarray
    errors: np.ndarray
    mse: np.ndarray
    converged: bool

    @property
    def epochs(self) -> int:
        return len(self.errors)


def scan_epochs(epoch_fn, score_fn, params: Params, max_epochs: int, stop_when_clean: bool):
    """``lax.scan`` of ``epoch_fn(params) -> (params, errors)`` over ``max_epochs`` epochs, frozen
    after the first error-free epoch when ``stop_when_clean`` (jit-able). Returns
    ``(params, (w, b, errors, score, skipped))``, arrays over all ``max_epochs`` epochs;
    ``skipped[e]`` marks the epochs after the stop. `neuron_history` trims them."""
    def body(carry, _):
        p, done = carry
        # after the stop an epoch is skipped (``lax.cond`` runs one branch), not computed
        new_p, errors = jax.lax.cond(done, lambda q: (q, jnp.zeros((), q["w"].dtype)),
                                     epoch_fn, p)
        record = (new_p["w"], new_p["b"], errors, score_fn(new_p), done)
        return (new_p, done | (stop_when_clean & (errors == 0))), record

    (params, _), records = jax.lax.scan(body, (params, jnp.asarray(False)), None,
                                        length=max_epochs)
    return params, records


def neuron_history(records) -> NeuronHistory:
    """The records of `scan_epochs` as a `NeuronHistory` of the epochs that ran (on the host)."""
    w, b, errors, mse, skipped = (np.asarray(r) for r in records)
    ran = int(len(skipped) - skipped.sum())
    return NeuronHistory(w[:ran], b[:ran], errors[:ran], mse[:ran],
                         bool(ran and errors[ran - 1] == 0))


def train_perceptron(params: Params, x, y_d, *, alpha: float = 1.0, bipolar: bool = False,
                     rule: str = "error", max_epochs: int = 100) -> Tuple[Params, NeuronHistory]:
    """The course's perceptron training: epochs of `perceptron_epoch` (patterns in the order of
    x (P, n)) until an epoch has no error, at most ``max_epochs``. Returns the final params and a
    `NeuronHistory` (``history.converged`` is False when the limit was reached, e.g. on XOR)."""
    check_in_range("train_perceptron", "alpha", alpha, 0, closed="neither")
    check_int("train_perceptron", "max_epochs", max_epochs)
    x, y_d = check_patterns("train_perceptron", x, y_d)
    allowed = (-1.0, 1.0) if bipolar else (0.0, 1.0)
    if not bool(jnp.all((y_d == allowed[0]) | (y_d == allowed[1]))):
        raise ValueError(f"train_perceptron: `y_d` must hold only {allowed} "
                         f"(bipolar={bipolar}); got values {np.unique(np.asarray(y_d))}.")
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, x.dtype), params)

    params, records = _perceptron_run(params, x, y_d, alpha, bipolar, rule, max_epochs)
    return params, neuron_history(records)


@partial(jax.jit, static_argnames=("bipolar", "rule", "max_epochs"))
def _perceptron_run(params, x, y_d, alpha, bipolar, rule, max_epochs):
    return scan_epochs(
        lambda q: perceptron_epoch(q, x, y_d, alpha=alpha, bipolar=bipolar, rule=rule),
        lambda q: jnp.mean((y_d - perceptron_output(q, x, bipolar)) ** 2),
        params, max_epochs, True)


def adaline_output(params: Params, x) -> jax.Array:
    """Adaline's bipolar answer ``y = step(z)`` in {−1, 1}: x (..., n) -> y (...)."""
    return step(net_input(params, x), bipolar=True)


def lms_update(params: Params, x, d, *, mu) -> Tuple[Params, jax.Array]:
    """The LMS rule on one pattern x (n,) with target d: ``ε = d − (wᵀx + b)``,
    ``w ← w + 2μ ε x``, ``b ← b + 2μ ε``. Returns ``(new params, ε)``."""
    error = d - net_input(params, x)
    return {"w": params["w"] + 2 * mu * error * x, "b": params["b"] + 2 * mu * error}, error


def adaline_epoch(params: Params, x, d, *, mu) -> Tuple[Params, jax.Array]:
    """One epoch of `lms_update` over x (P, n) in order (a ``lax.scan``): ``(params, errors)``,
    errors the number of patterns whose bipolar answer was not ``sign(d)`` before their update."""
    def body(p, pattern):
        wrong = (adaline_output(p, pattern[0]) != step(pattern[1], bipolar=True))
        p, _ = lms_update(p, pattern[0], pattern[1], mu=mu)
        return p, wrong.astype(x.dtype)

    params, wrong = jax.lax.scan(body, params, (x, d))
    return params, wrong.sum()


def train_adaline(params: Params, x, d, *, mu: float = 0.01, epochs: int = 50,
                  stop_when_clean: bool = False) -> Tuple[Params, NeuronHistory]:
    """Adaline trained by the LMS rule for ``epochs`` epochs over x (P, n) in order (or until an
    epoch classifies every pattern right, with ``stop_when_clean``). ``history.mse`` is the mean
    squared error of the linear output, ``mean (d − z)²``, after each epoch: the error curve.

    LMS is stochastic steepest descent on the MSE; with a small μ (``μ < 1/λ_max`` of the input
    correlation matrix ``E[x xᵀ]`` for stability) it settles near the least-squares solution.
    """
    check_in_range("train_adaline", "mu", mu, 0, closed="neither")
    check_int("train_adaline", "epochs", epochs)
    x, d = check_patterns("train_adaline", x, d)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, x.dtype), params)

    params, records = _adaline_run(params, x, d, mu, epochs, stop_when_clean)
    return params, neuron_history(records)


@partial(jax.jit, static_argnames=("epochs", "stop_when_clean"))
def _adaline_run(params, x, d, mu, epochs, stop_when_clean):
    return scan_epochs(lambda q: adaline_epoch(q, x, d, mu=mu),
                       lambda q: jnp.mean((d - net_input(q, x)) ** 2),
                       params, epochs, stop_when_clean)
