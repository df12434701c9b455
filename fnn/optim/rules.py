"""The ``scale_by_*`` pieces: each turns gradients ``g`` into a descent direction ``d`` (same sign
as ``g``); the aliases chain a piece with ``scale_by_learning_rate``, which returns ``u = −η d``.

All arithmetic is leaf by leaf (element-wise); every state tree mirrors the parameters and keeps
their dtypes. Defaults follow the original papers; each docstring names the flag that gives the
PyTorch convention where it differs.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.tree_util import tree_map

from fnn.checks import check_in_range, check_nonnegative, check_real
from fnn.init import filled
from fnn.optim.base import (
    EmptyState, Optimizer, ScaleByLearningRateState, apply_updates, named_states, scalar_dtype)


def _check_decay(owner: str, name: str, value) -> float:
    """A decay rate or momentum coefficient: a real number in [0, 1)."""
    return check_in_range(owner, name, value, 0, 1, closed="left")


# --- shared leaf-by-leaf helpers -----------------------------------------------------------------

def _check_like_params(owner: str, grads, state_tree):
    """Gradients must have the structure of the params the state was initialized for."""
    expected, found = jax.tree_util.tree_structure(state_tree), jax.tree_util.tree_structure(grads)
    if found != expected:
        raise ValueError(f"{owner}: grads must have the structure of the params given to init;\n"
                         f"  grads: {found}\n  state: {expected}")


def _zeros_like(params):
    return tree_map(lambda p: filled(jnp.shape(p), 0, jnp.result_type(p), like=p), params)


def _moving_average(decay: float, averages, values):
    """``a ← decay · a + (1 − decay) · x`` leaf by leaf, in the averages' dtype."""
    return tree_map(lambda a, x: (decay * a + (1 - decay) * x).astype(a.dtype),
                                  averages, values)


def _squares(tree):
    return tree_map(jnp.square, tree)


def _bias_correction(decay: float, step):
    """``1 − decay^t``: the weight an average started at zero has gathered after t updates."""
    return 1 - decay ** step


def _divide_by_rms(g, mean_square, eps, eps_inside_sqrt: bool):
    """``g / √(s + ε)`` if ``eps_inside_sqrt``, else ``g / (√s + ε)``, in g's dtype."""
    rms = jnp.sqrt(mean_square + eps) if eps_inside_sqrt else jnp.sqrt(mean_square) + eps
    return (g / rms).astype(g.dtype)


# --- momentum and Nesterov -----------------------------------------------------------------------

class MomentumState(NamedTuple):
    velocity: Any  # like params


class DampedMomentumState(NamedTuple):
    step: jax.Array  # int32: updates done so far (the first one is not damped)
    velocity: Any    # like params


def scale_by_momentum(momentum: float = 0.9, *, nesterov: bool = False, ema: bool = False,
                      dampening: float = 0.0) -> Optimizer:
    """Momentum (Polyak 1964): ``v ← γ v + c g`` with ``c = 1``, or ``c = 1 − γ`` if ``ema``.

    Returns ``d = v``, or with ``nesterov`` ``d = c g + γ v`` (the new ``v``): Nesterov's look-ahead
    rewritten on the look-ahead parameters ``θ − γv`` so that no second gradient is needed
    (Sutskever et al. 2013, "On the importance of initialization and momentum in deep learning";
    PyTorch's ``nesterov=True``). Where this piece sits in a chain sets the form, see ``sgd``.

    ``dampening`` τ is PyTorch's: ``v₁ = g₁`` (the first step is not damped), then
    ``v ← γ v + (1 − τ) g``. It excludes ``ema`` (which damps every step by ``1 − γ``) and, as in
    PyTorch, ``nesterov``.
    """
    owner = "scale_by_momentum"
    _check_decay(owner, "momentum", momentum)
    dampening = check_in_range(owner, "dampening", dampening, 0, 1)
    if dampening and (ema or nesterov):
        raise ValueError(f"{owner}: dampening={dampening} excludes "
                         f"{'ema=True' if ema else 'nesterov=True'} (PyTorch's SGD: Nesterov "
                         f"momentum needs zero dampening).")
    gain = 1 - momentum if ema else 1

    if dampening:
        def init(params):
            return DampedMomentumState(jnp.zeros((), jnp.int32), _zeros_like(params))

        def update(grads, state, params=None, **extra):
            _check_like_params(owner, grads, state.velocity)
            first = state.step == 0
            velocity = tree_map(
                lambda g, v: jnp.where(first, g, momentum * v + (1 - dampening) * g).astype(v.dtype),
                grads, state.velocity)
            return velocity, DampedMomentumState(state.step + 1, velocity)

        return Optimizer(init, update)

    def init(params):
        return MomentumState(_zeros_like(params))

    def update(grads, state, params=None, **extra):
        _check_like_params(owner, grads, state.velocity)
        velocity = tree_map(lambda g, v: (momentum * v + gain * g).astype(v.dtype),
                                          grads, state.velocity)
        if not nesterov:
            return velocity, MomentumState(velocity)
        direction = tree_map(lambda g, v: (gain * g + momentum * v).astype(g.dtype),
                                           grads, velocity)
        return direction, MomentumState(velocity)

    return Optimizer(init, update)


def nesterov_lookahead(params, opt_state, momentum: float):
    """Nesterov's look-ahead point ``θ − γv`` (course form ``v ← γv + η∇J(θ − γv)``, ``θ ← θ − v``).

    For a caller who evaluates the gradient there: with ``opt = sgd(η, momentum=γ)`` (classic
    form, no ``nesterov`` flag), the loop

        g = ∇J(nesterov_lookahead(θ, s, γ));  u, s = opt.update(g, s);  θ = apply_updates(θ, u)

    is exactly Nesterov's method. The classic form's stored velocity is ``−v`` (it accumulates
    updates, in parameter units), hence ``θ − γv = θ + γ·velocity``.
    """
    states = named_states(opt_state)
    positions = [i for i, s in enumerate(states)
                 if isinstance(s, (MomentumState, DampedMomentumState))]
    if len(positions) != 1:
        raise ValueError(f"nesterov_lookahead: opt_state must hold exactly one MomentumState; "
                         f"found {len(positions)} in {jax.tree_util.tree_structure(opt_state)}.")
    if not any(isinstance(s, ScaleByLearningRateState) for s in states[:positions[0]]):
        raise ValueError(
            "nesterov_lookahead: needs the classic momentum form, whose velocity holds updates "
            "(learning rate inside: sgd(..., form='classic')); this opt_state's velocity holds "
            "gradients (the learning rate is applied after the momentum).")
    velocity = states[positions[0]].velocity
    return apply_updates(params, tree_map(lambda v: momentum * v, velocity))


# --- per-weight adaptive rates -------------------------------------------------------------------

class AdagradState(NamedTuple):
    sum_of_squares: Any  # like params


def scale_by_adagrad(initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> Optimizer:
    """Adagrad (Duchi, Hazan & Singer 2011): ``G ← G + g²``, ``d = g / (√G + ε)``, ``G₀ = G_init``.

    The paper starts the sum at 0 with ε outside the root (``δI + diag(G)^½``), as PyTorch does
    (``initial_accumulator_value=0``, ε = 1e-10); Keras/TF start at
    ``initial_accumulator_value=0.1`` (ε = 1e-7).
    """
    check_nonnegative("scale_by_adagrad", "initial_accumulator_value", initial_accumulator_value)
    check_nonnegative("scale_by_adagrad", "eps", eps)

    def init(params):
        return AdagradState(tree_map(
            lambda p: jnp.full_like(p, initial_accumulator_value), params))

    def update(grads, state, params=None, **extra):
        _check_like_params("scale_by_adagrad", grads, state.sum_of_squares)
        sums = tree_map(lambda s, g: (s + g * g).astype(s.dtype), state.sum_of_squares, grads)
        direction = tree_map(lambda g, s: _divide_by_rms(g, s, eps, False), grads, sums)
        return direction, AdagradState(sums)

    return Optimizer(init, update)


class AdadeltaState(NamedTuple):
    mean_square_grad: Any   # E[g²], like params
    mean_square_delta: Any  # E[Δ²], like params


def scale_by_adadelta(rho: float = 0.95, eps: float = 1e-6) -> Optimizer:
    """Adadelta (Zeiler 2012, Algorithm 1), with ``RMS[x] = √(E[x²] + ε)``:

        E[g²] ← ρ E[g²] + (1 − ρ) g²
        d     = RMS[Δ]_{t−1} / RMS[g]_t · g
        E[Δ²] ← ρ E[Δ²] + (1 − ρ) d²

    The paper steps ``θ ← θ − d`` (no learning rate) with ρ = 0.95, ε = 1e-6. PyTorch steps
    ``θ ← θ − η d`` (η = 1 by default) and also accumulates the unscaled ``d``; its ρ is 0.9.
    """
    _check_decay("scale_by_adadelta", "rho", rho)
    check_nonnegative("scale_by_adadelta", "eps", eps)

    def init(params):
        return AdadeltaState(_zeros_like(params), _zeros_like(params))

    def update(grads, state, params=None, **extra):
        _check_like_params("scale_by_adadelta", grads, state.mean_square_grad)
        mean_square_grad = _moving_average(rho, state.mean_square_grad, _squares(grads))
        direction = tree_map(
            lambda g, sg, sd: (jnp.sqrt(sd + eps) / jnp.sqrt(sg + eps) * g).astype(g.dtype),
            grads, mean_square_grad, state.mean_square_delta)
        mean_square_delta = _moving_average(rho, state.mean_square_delta, _squares(direction))
        return direction, AdadeltaState(mean_square_grad, mean_square_delta)

    return Optimizer(init, update)


class RmsState(NamedTuple):
    mean_square: Any  # E[g²], like params


def scale_by_rms(decay: float = 0.9, eps: float = 1e-8, *,
                 eps_inside_sqrt: bool = True) -> Optimizer:
    """RMSprop (Tieleman & Hinton 2012, Coursera lecture 6e): ``E[g²] ← ρ E[g²] + (1 − ρ) g²``,
    ``d = g / √(E[g²] + ε)``; ``E[g²]`` starts at 0.

    ``eps_inside_sqrt=False`` gives PyTorch's and Keras's ``d = g / (√E[g²] + ε)``.
    """
    _check_decay("scale_by_rms", "decay", decay)
    check_nonnegative("scale_by_rms", "eps", eps)

    def init(params):
        return RmsState(_zeros_like(params))

    def update(grads, state, params=None, **extra):
        _check_like_params("scale_by_rms", grads, state.mean_square)
        mean_square = _moving_average(decay, state.mean_square, _squares(grads))
        direction = tree_map(
            lambda g, s: _divide_by_rms(g, s, eps, eps_inside_sqrt), grads, mean_square)
        return direction, RmsState(mean_square)

    return Optimizer(init, update)


class CenteredRmsState(NamedTuple):
    mean: Any         # E[g], like params
    mean_square: Any  # E[g²], like params


def scale_by_centered_rms(decay: float = 0.9, eps: float = 1e-8, *,
                          eps_inside_sqrt: bool = True) -> Optimizer:
    """Centred RMSprop (Graves 2013, "Generating sequences with recurrent neural networks"):

        E[g]  ← ρ E[g]  + (1 − ρ) g
        E[g²] ← ρ E[g²] + (1 − ρ) g²
        d = g / √(E[g²] − E[g]² + ε)

    ``eps_inside_sqrt=False`` gives PyTorch's ``centered=True``: ``d = g / (√(E[g²] − E[g]²) + ε)``.
    """
    _check_decay("scale_by_centered_rms", "decay", decay)
    check_nonnegative("scale_by_centered_rms", "eps", eps)

    def init(params):
        return CenteredRmsState(_zeros_like(params), _zeros_like(params))

    def update(grads, state, params=None, **extra):
        _check_like_params("scale_by_centered_rms", grads, state.mean)
        mean = _moving_average(decay, state.mean, grads)
        mean_square = _moving_average(decay, state.mean_square, _squares(grads))
        direction = tree_map(lambda g, m, s: _divide_by_rms(g, s - m * m, eps, eps_inside_sqrt),
                             grads, mean, mean_square)
        return direction, CenteredRmsState(mean, mean_square)

    return Optimizer(init, update)


# --- Adam and relatives --------------------------------------------------------------------------

def _check_betas(owner: str, beta1: float, beta2: float, eps: float):
    _check_decay(owner, "beta1", beta1)
    _check_decay(owner, "beta2", beta2)
    check_nonnegative(owner, "eps", eps)


class AdamState(NamedTuple):
    step: jax.Array   # int32: updates done so far
    mean: Any         # m, like params
    mean_square: Any  # v, like params


class AmsgradState(NamedTuple):
    step: jax.Array       # int32: updates done so far
    mean: Any             # m, like params
    mean_square: Any      # v, like params
    max_mean_square: Any  # v_max = max(v_1, ..., v_t), like params


def scale_by_adam(beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, *,
                  amsgrad: bool = False) -> Optimizer:
    """Adam (Kingma & Ba 2015, Algorithm 1), at step t = 1, 2, ...:

        m ← β1 m + (1 − β1) g,    m̂ = m / (1 − β1^t)
        v ← β2 v + (1 − β2) g²,   v̂ = v / (1 − β2^t)
        d = m̂ / (√v̂ + ε)

    Same as PyTorch (Keras uses ε = 1e-7).

    ``amsgrad=True`` (Reddi, Kale & Kumar 2018, "On the convergence of Adam and beyond",
    Algorithm 2) divides by the largest second moment so far, so that the effective step never
    grows: ``v_max ← max(v_max, v)``, ``d = m̂ / (√(v_max / (1 − β2^t)) + ε)``. This is PyTorch's
    ``amsgrad=True`` (bias-corrected, ε outside the root); the paper's Algorithm 2 has neither the
    corrections nor ε: ``d = m / √v_max``.
    """
    _check_betas("scale_by_adam", beta1, beta2, eps)

    def init(params):
        step = jnp.zeros((), jnp.int32)
        if amsgrad:
            return AmsgradState(step, _zeros_like(params), _zeros_like(params),
                                _zeros_like(params))
        return AdamState(step, _zeros_like(params), _zeros_like(params))

    def update(grads, state, params=None, **extra):
        _check_like_params("scale_by_adam", grads, state.mean)
        step = state.step + 1
        mean = _moving_average(beta1, state.mean, grads)
        mean_square = _moving_average(beta2, state.mean_square, _squares(grads))
        denominator_square = mean_square
        if amsgrad:
            denominator_square = tree_map(jnp.maximum, state.max_mean_square, mean_square)
        correction1, correction2 = _bias_correction(beta1, step), _bias_correction(beta2, step)
        # in m's dtype: under jit the corrections are float32 (not weakly typed, as eagerly)
        direction = tree_map(lambda m, v: _divide_by_rms(m / correction1, v / correction2, eps,
                                                         False).astype(m.dtype),
                             mean, denominator_square)
        if amsgrad:
            return direction, AmsgradState(step, mean, mean_square, denominator_square)
        return direction, AdamState(step, mean, mean_square)

    return Optimizer(init, update)


class RadamState(NamedTuple):
    step: jax.Array   # int32: updates done so far
    mean: Any         # m, like params
    mean_square: Any  # v, like params


def scale_by_radam(beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                   threshold: float = 5.0) -> Optimizer:
    """RAdam (Liu et al. 2020, "On the variance of the adaptive learning rate and beyond",
    Algorithm 2), at step t = 1, 2, ...:

        m ← β1 m + (1 − β1) g,    m̂ = m / (1 − β1^t)
        v ← β2 v + (1 − β2) g²
        ρ∞ = 2 / (1 − β2) − 1,    ρ_t = ρ∞ − 2 t β2^t / (1 − β2^t)
        if ρ_t > threshold:  l = √(1 − β2^t) / (√v + ε)                     (adaptive)
                             r = √((ρ_t − 4)(ρ_t − 2) ρ∞ / ((ρ∞ − 4)(ρ∞ − 2) ρ_t))
                             d = r · l · m̂
        else:                d = m̂                                        (SGD with momentum)

    ρ_t estimates the degrees of freedom of the adaptive rate's variance; while it is too small
    the variance is not tractable and the step is un-adapted. The paper's threshold is 4 and its
    ``l = √((1 − β2^t) / v)`` has no ε; this is PyTorch's ``RAdam`` (threshold 5, ε outside the
    root), number for number.
    """
    owner = "scale_by_radam"
    _check_betas(owner, beta1, beta2, eps)
    check_in_range(owner, "threshold", threshold, 4, closed="left")
    rho_infinity = 2 / (1 - beta2) - 1

    def init(params):
        return RadamState(jnp.zeros((), jnp.int32), _zeros_like(params), _zeros_like(params))

    def leaf_direction(m, v, step):
        t = step.astype(m.dtype)
        power2 = jnp.asarray(beta2, m.dtype) ** t
        rho = rho_infinity - 2 * t * power2 / (1 - power2)
        rectified = rho > threshold
        safe_rho = jnp.where(rectified, rho, rho_infinity)  # no 0/0 in the branch not taken
        rectification = jnp.sqrt((safe_rho - 4) * (safe_rho - 2) * rho_infinity
                                 / ((rho_infinity - 4) * (rho_infinity - 2) * safe_rho))
        mean_hat = m / (1 - jnp.asarray(beta1, m.dtype) ** t)
        adaptive = jnp.sqrt(1 - power2) / (jnp.sqrt(v) + eps)
        return jnp.where(rectified, mean_hat * adaptive * rectification, mean_hat).astype(m.dtype)

    def update(grads, state, params=None, **extra):
        _check_like_params(owner, grads, state.mean)
        step = state.step + 1
        mean = _moving_average(beta1, state.mean, grads)
        mean_square = _moving_average(beta2, state.mean_square, _squares(grads))
        direction = tree_map(lambda m, v: leaf_direction(m, v, step), mean, mean_square)
        return direction, RadamState(step, mean, mean_square)

    return Optimizer(init, update)


class AdamaxState(NamedTuple):
    step: jax.Array  # int32: updates done so far
    mean: Any        # m, like params
    max_abs: Any     # u, the exponentially weighted infinity norm, like params


def scale_by_adamax(beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, *,
                    eps_inside_max: bool = False) -> Optimizer:
    """Adamax (Kingma & Ba 2015, Algorithm 2), at step t = 1, 2, ...:

        m ← β1 m + (1 − β1) g
        u ← max(β2 u, |g|)
        d = m / ((1 − β1^t) (u + ε))

    The paper has no ε (it divides by ``u``: 0/0 while every gradient so far was 0); ε in the
    denominator is Keras's choice. ``eps_inside_max=True`` gives PyTorch's
    ``u ← max(β2 u, |g| + ε)``, ``d = m / ((1 − β1^t) u)``.
    """
    _check_betas("scale_by_adamax", beta1, beta2, eps)
    max_eps, denominator_eps = (eps, 0.0) if eps_inside_max else (0.0, eps)

    def init(params):
        return AdamaxState(jnp.zeros((), jnp.int32), _zeros_like(params), _zeros_like(params))

    def update(grads, state, params=None, **extra):
        _check_like_params("scale_by_adamax", grads, state.mean)
        step = state.step + 1
        mean = _moving_average(beta1, state.mean, grads)
        max_abs = tree_map(
            lambda u, g: jnp.maximum(beta2 * u, jnp.abs(g) + max_eps).astype(u.dtype),
            state.max_abs, grads)
        correction1 = _bias_correction(beta1, step)
        direction = tree_map(lambda m, u: (m / (correction1 * (u + denominator_eps))).astype(m.dtype),
                             mean, max_abs)
        return direction, AdamaxState(step, mean, max_abs)

    return Optimizer(init, update)


class NadamState(NamedTuple):
    step: jax.Array              # int32: updates done so far
    momentum_product: jax.Array  # Π_{i ≤ t} μ_i, in scalar_dtype(params)
    mean: Any                    # m, like params
    mean_square: Any             # v, like params


def scale_by_nadam(beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                   momentum_decay: float | None = 0.004) -> Optimizer:
    """Nadam (Dozat 2016, "Incorporating Nesterov momentum into Adam", Algorithm 2), t = 1, 2, ...:

        μ_t = β1 (1 − ½ · 0.96^(t ψ)),  Π_t = μ_1 ⋯ μ_t          (ψ = momentum_decay)
        m ← β1 m + (1 − β1) g,        v ← β2 v + (1 − β2) g²,   v̂ = v / (1 − β2^t)
        d = [(1 − μ_t) / (1 − Π_t) · g + μ_{t+1} / (1 − Π_t μ_{t+1}) · m] / (√v̂ + ε)

    With the paper's warming schedule ψ = 0.004, as PyTorch's ``NAdam`` and Keras's ``Nadam``
    (identical numbers to PyTorch). ``momentum_decay=None`` drops the schedule (``μ_t = β1``, the
    variant optax implements).
    """
    _check_betas("scale_by_nadam", beta1, beta2, eps)
    if momentum_decay is not None:
        check_nonnegative("scale_by_nadam", "momentum_decay", momentum_decay)

    def momentum_at(step, dtype):
        if momentum_decay is None:
            return jnp.asarray(beta1, dtype)
        return beta1 * (1 - 0.5 * jnp.asarray(0.96, dtype) ** (step.astype(dtype) * momentum_decay))

    def init(params):
        return NadamState(jnp.zeros((), jnp.int32), jnp.ones((), scalar_dtype(params)),
                          _zeros_like(params), _zeros_like(params))

    def update(grads, state, params=None, **extra):
        _check_like_params("scale_by_nadam", grads, state.mean)
        step = state.step + 1
        dtype = state.momentum_product.dtype
        momentum, next_momentum = momentum_at(step, dtype), momentum_at(step + 1, dtype)
        product = state.momentum_product * momentum
        grad_weight = (1 - momentum) / (1 - product)
        mean_weight = next_momentum / (1 - product * next_momentum)
        mean = _moving_average(beta1, state.mean, grads)
        mean_square = _moving_average(beta2, state.mean_square, _squares(grads))
        correction2 = _bias_correction(beta2, step)
        direction = tree_map(
            lambda g, m, v: _divide_by_rms(grad_weight * g + mean_weight * m, v / correction2,
                                           eps, False).astype(g.dtype),
            grads, mean, mean_square)
        return direction, NadamState(step, product.astype(dtype), mean, mean_square)

    return Optimizer(init, update)


# --- sign-based rules ----------------------------------------------------------------------------

class RpropState(NamedTuple):
    step_size: Any      # Δ, per weight, like params
    previous_grad: Any  # what the next step compares signs with (0 after a flip), like params


def scale_by_rprop(initial_step_size: float = 0.01, increase: float = 1.2, decrease: float = 0.5,
                   min_step_size: float = 1e-6, max_step_size: float = 50.0) -> Optimizer:
    """Rprop, the iRprop− variant (Igel & Hüsken 2000; Rprop: Riedmiller & Braun 1993), per weight:

        s = sign(g · g_prev)
        Δ ← clip(Δ · (η+ if s > 0, η− if s < 0, 1 if s = 0), Δ_min, Δ_max)
        g ← 0 where s < 0                         (no step after a sign flip)
        d = sign(g) · Δ,     g_prev ← g

    ``Δ₀ = 0.01``, ``η+ = 1.2``, ``η− = 0.5``, ``Δ ∈ [1e-6, 50]``: this is PyTorch's ``Rprop``,
    number for number. The 1993 paper's weight-backtracking on a flip is not implemented.
    """
    owner = "scale_by_rprop"
    check_in_range(owner, "initial_step_size", initial_step_size, 0, closed="neither")
    check_in_range(owner, "increase", increase, 1, closed="neither")
    check_in_range(owner, "decrease", decrease, 0, 1, closed="neither")
    check_in_range(owner, "min_step_size", min_step_size, 0, closed="neither")
    check_real(owner, "max_step_size", max_step_size,
               expected=f"a real number >= min_step_size = {min_step_size}",
               valid=lambda v: v >= min_step_size)

    def init(params):
        return RpropState(tree_map(lambda p: jnp.full_like(p, initial_step_size), params),
                          _zeros_like(params))

    def adapt(step_size, agreement):
        factor = jnp.where(agreement > 0, increase, jnp.where(agreement < 0, decrease, 1.0))
        return jnp.clip(step_size * factor, min_step_size, max_step_size).astype(step_size.dtype)

    def update(grads, state, params=None, **extra):
        _check_like_params(owner, grads, state.previous_grad)
        agreement = tree_map(lambda g, h: jnp.sign(g * h), grads, state.previous_grad)
        step_size = tree_map(adapt, state.step_size, agreement)
        kept_grads = tree_map(lambda g, s: jnp.where(s < 0, 0, g).astype(g.dtype), grads, agreement)
        direction = tree_map(lambda g, size: (jnp.sign(g) * size).astype(g.dtype),
                             kept_grads, step_size)
        return direction, RpropState(step_size, kept_grads)

    return Optimizer(init, update)


def scale_by_sign() -> Optimizer:
    """sign-SGD (Bernstein et al. 2018, "signSGD: compressed optimisation for non-convex problems"):
    ``d = sign(g)``, element-wise, with ``sign(0) = 0``."""

    def init(params):
        return EmptyState()

    def update(grads, state, params=None, **extra):
        return tree_map(lambda g: jnp.sign(g).astype(g.dtype), grads), state

    return Optimizer(init, update)


__all__ = ["AdadeltaState", "AdagradState", "AdamState", "AdamaxState", "AmsgradState",
           "CenteredRmsState", "DampedMomentumState", "MomentumState", "NadamState", "RadamState",
           "RmsState", "RpropState", "nesterov_lookahead", "scale_by_adadelta",
           "scale_by_adagrad", "scale_by_adam", "scale_by_adamax", "scale_by_centered_rms",
           "scale_by_momentum", "scale_by_nadam", "scale_by_radam", "scale_by_rms",
           "scale_by_rprop", "scale_by_sign"]
