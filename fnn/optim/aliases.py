"""User-facing optimizers: each chains ``scale_by_*`` pieces (``fnn.optim.rules``) with the
learning-rate scaling ``u = −η d``; ``learning_rate`` is a float or a schedule of the step count
everywhere except ``rprop``. Defaults follow the papers; flags reproduce PyTorch's numbers:

    alias     defaults (paper)                           PyTorch's numbers
    sgd       v ← γv + ηg, θ ← θ − v   (form="classic")  form="pytorch"
    adagrad   η .01, G₀ = 0, ε 1e-10 outside √           same (TF: initial_accumulator_value=0.1)
    adadelta  η 1, ρ .95, ε 1e-6 inside both RMS         rho=0.9
    rmsprop   η .001, ρ .9, ε 1e-8 inside √              0.01, decay=0.99, eps_inside_sqrt=False
    adam      η .001, β .9 / .999, ε 1e-8 outside √      same
    adamw     adam + decay λ .01, biases not decayed     mask=lambda path, leaf: True
    momentum  sgd with γ = 0.9 (config name)             form="pytorch" via sgd
    nesterov  sgd with γ = 0.9, nesterov=True            form="pytorch" via sgd
    adamax    η .002, ε 1e-8 added to u                  eps_inside_max=True
    nadam     η .002, momentum schedule ψ .004           same
    rprop     iRprop−: Δ₀ .01, ×1.2 / ×0.5, [1e-6, 50]   same
    sign_sgd  θ ← θ − η sign(g)                          (none)
"""
from __future__ import annotations

import functools
from typing import Callable, Literal, Optional

from fnn.optim import rules
from fnn.optim.base import (
    Optimizer, ScalarOrSchedule, chain, check_decay, check_learning_rate, scale_by_learning_rate)
from fnn.optim.transforms import add_decayed_weights


def _descend(owner: str, learning_rate: ScalarOrSchedule, *pieces: Optimizer) -> Optimizer:
    """``chain(*pieces, scale_by_learning_rate(η))``, checking η under the alias's name."""
    check_learning_rate(owner, learning_rate)
    return chain(*pieces, scale_by_learning_rate(learning_rate))


MomentumForm = Literal["classic", "pytorch", "ema"]
_MOMENTUM_FORMS = ("classic", "pytorch", "ema")


def sgd(learning_rate: ScalarOrSchedule, momentum: float = 0.0, *, nesterov: bool = False,
        form: MomentumForm = "classic") -> Optimizer:
    """Gradient descent ``θ ← θ − η ∇J(θ)`` (batch, stochastic or mini-batch: the caller's batch
    decides), with optional momentum γ. The three forms, by where η sits:

        form="classic"  v ← γ v + η g,        θ ← θ − v      (Polyak 1964; the course; Keras)
        form="pytorch"  v ← γ v + g,          θ ← θ − η v    (torch.optim.SGD)
        form="ema"      v ← γ v + (1 − γ) g,  θ ← θ − η v

    v starts at 0. With a constant η, "classic" and "pytorch" take identical steps, and "ema" with
    η equals "pytorch" with η(1 − γ); with a schedule, "classic" keeps each gradient at the η of
    its step. torch.optim.SGD's ``dampening=γ`` is "ema" except for its first step, which it does
    not damp (its buffer starts at g₁).

    ``nesterov=True`` (Nesterov 1983): the course's ``v ← γv + η∇J(θ − γv)``, ``θ ← θ − v``,
    rewritten on the look-ahead parameters ``θ − γv`` so that it needs one gradient per step
    (Sutskever et al. 2013): ``θ ← θ − (γ v + η g)`` with the new ``v`` (PyTorch:
    ``θ ← θ − η(g + γ v)``). To evaluate the gradient at the look-ahead point yourself, use
    ``sgd(η, γ)`` with ``nesterov_lookahead``.
    """
    check_learning_rate("sgd", learning_rate)
    if form not in _MOMENTUM_FORMS:
        raise ValueError(f"sgd: form must be one of {_MOMENTUM_FORMS}; got {form!r}.")
    check_decay("sgd", "momentum", momentum)
    if momentum == 0:
        if nesterov:
            raise ValueError("sgd: nesterov=True needs a momentum in (0, 1); got momentum=0.")
        return scale_by_learning_rate(learning_rate)
    velocity = rules.scale_by_momentum(momentum, nesterov=nesterov, ema=form == "ema")
    if form == "classic":
        return chain(scale_by_learning_rate(learning_rate), velocity)
    return chain(velocity, scale_by_learning_rate(learning_rate))


def adagrad(learning_rate: ScalarOrSchedule = 0.01, initial_accumulator_value: float = 0.0,
            eps: float = 1e-10) -> Optimizer:
    """Adagrad (Duchi et al. 2011): ``G ← G + g²``, ``θ ← θ − η g / (√G + ε)``; see
    ``scale_by_adagrad``. PyTorch's ``lr_decay`` is the schedule ``η / (1 + t · lr_decay)``."""
    return _descend("adagrad", learning_rate,
                    rules.scale_by_adagrad(initial_accumulator_value, eps))


def adadelta(learning_rate: ScalarOrSchedule = 1.0, rho: float = 0.95,
             eps: float = 1e-6) -> Optimizer:
    """Adadelta (Zeiler 2012): ``θ ← θ − η · RMS[Δ]_{t−1} / RMS[g]_t · g``; the paper has no
    learning rate (η = 1, the default); PyTorch multiplies by ``lr`` and uses ρ = 0.9. See
    ``scale_by_adadelta``."""
    return _descend("adadelta", learning_rate, rules.scale_by_adadelta(rho, eps))


def rmsprop(learning_rate: ScalarOrSchedule = 0.001, decay: float = 0.9, eps: float = 1e-8, *,
            centered: bool = False, momentum: float = 0.0,
            eps_inside_sqrt: bool = True) -> Optimizer:
    """RMSprop (Tieleman & Hinton 2012): ``E[g²] ← ρ E[g²] + (1 − ρ) g²``,
    ``θ ← θ − η g / √(E[g²] + ε)``, the course's η = 0.001, ρ = 0.9.

    ``centered`` divides by ``√(E[g²] − E[g]² + ε)`` (Graves 2013). ``momentum`` μ:
    ``b ← μ b + η g / √(...)``, ``θ ← θ − b`` (Graves 2013; for a constant η the same steps as
    PyTorch's ``b ← μ b + g / √(...)``, ``θ ← θ − η b``). PyTorch's defaults are
    ``rmsprop(0.01, decay=0.99, eps=1e-8, eps_inside_sqrt=False)`` (its ``alpha`` is ``decay``).
    """
    check_learning_rate("rmsprop", learning_rate)
    scale_by_rms = rules.scale_by_centered_rms if centered else rules.scale_by_rms
    pieces = [scale_by_rms(decay, eps, eps_inside_sqrt=eps_inside_sqrt),
              scale_by_learning_rate(learning_rate)]
    if momentum:  # after the learning rate: b ← μ b + η g / √(...)
        pieces.append(rules.scale_by_momentum(momentum))
    return chain(*pieces)


def adam(learning_rate: ScalarOrSchedule = 0.001, beta1: float = 0.9, beta2: float = 0.999,
         eps: float = 1e-8) -> Optimizer:
    """Adam (Kingma & Ba 2015): ``θ ← θ − η m̂ / (√v̂ + ε)``; see ``scale_by_adam``."""
    return _descend("adam", learning_rate, rules.scale_by_adam(beta1, beta2, eps))


def adamw(learning_rate: ScalarOrSchedule = 0.001, beta1: float = 0.9, beta2: float = 0.999,
          eps: float = 1e-8, weight_decay: ScalarOrSchedule = 0.01, mask=None) -> Optimizer:
    """AdamW (Loshchilov & Hutter 2019): ``θ ← θ − η (m̂ / (√v̂ + ε) + λ θ)``, λ = 0.01.

    The decay is decoupled from the adaptive scaling (added to Adam's direction, not to the
    gradient) and, as in PyTorch, scaled by the learning rate η (the paper's schedule multiplier
    η_t times a fixed λ). ``mask`` selects the decayed leaves, as in ``add_decayed_weights``: by
    default every leaf but biases and normalization parameters (``fnn.losses.weights_mask``).
    PyTorch decays every parameter it is given: ``mask=lambda path, leaf: True``.
    """
    return _descend("adamw", learning_rate, rules.scale_by_adam(beta1, beta2, eps),
                    add_decayed_weights(weight_decay, mask))


def adamax(learning_rate: ScalarOrSchedule = 0.002, beta1: float = 0.9, beta2: float = 0.999,
           eps: float = 1e-8, *, eps_inside_max: bool = False) -> Optimizer:
    """Adamax (Kingma & Ba 2015): ``θ ← θ − η m / ((1 − β1^t)(u + ε))``, ``u = max(β2 u, |g|)``;
    PyTorch: ``eps_inside_max=True``. See ``scale_by_adamax``."""
    return _descend("adamax", learning_rate,
                    rules.scale_by_adamax(beta1, beta2, eps, eps_inside_max=eps_inside_max))


def nadam(learning_rate: ScalarOrSchedule = 0.002, beta1: float = 0.9, beta2: float = 0.999,
          eps: float = 1e-8, momentum_decay: Optional[float] = 0.004) -> Optimizer:
    """Nadam (Dozat 2016) with the paper's momentum schedule, as PyTorch's ``NAdam``; see
    ``scale_by_nadam``."""
    return _descend("nadam", learning_rate,
                    rules.scale_by_nadam(beta1, beta2, eps, momentum_decay))


def rprop(learning_rate: float = 0.01, increase: float = 1.2, decrease: float = 0.5,
          min_step_size: float = 1e-6, max_step_size: float = 50.0) -> Optimizer:
    """Rprop (iRprop−, PyTorch's numbers): ``θ ← θ − Δ sign(g)`` with per-weight step sizes Δ.

    ``learning_rate`` is the initial step size Δ₀ (PyTorch's ``lr``), a float: the steps then
    adapt on their own, so the learning-rate piece is fixed at η = 1. See ``scale_by_rprop``.
    """
    if callable(learning_rate):
        raise ValueError("rprop: learning_rate is the initial per-weight step size Δ₀ and must be "
                         "a float, not a schedule: the step sizes adapt on their own.")
    step_sizes = rules.scale_by_rprop(learning_rate, increase, decrease, min_step_size,
                                      max_step_size)
    return chain(step_sizes, scale_by_learning_rate(1.0))


def sign_sgd(learning_rate: ScalarOrSchedule) -> Optimizer:
    """sign-SGD (Bernstein et al. 2018): ``θ ← θ − η sign(g)``."""
    return _descend("sign_sgd", learning_rate, rules.scale_by_sign())


ALIASES = {
    "sgd": sgd,
    "momentum": functools.partial(sgd, momentum=0.9),
    "nesterov": functools.partial(sgd, momentum=0.9, nesterov=True),
    "adagrad": adagrad,
    "adadelta": adadelta,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamw": adamw,
    "adamax": adamax,
    "nadam": nadam,
    "rprop": rprop,
    "sign_sgd": sign_sgd,
}


def get(name: str) -> Callable[..., Optimizer]:
    """The optimizer factory called ``name`` (for configs): ``get("adam")(learning_rate)``.

    ``"momentum"`` and ``"nesterov"`` are ``sgd`` with momentum 0.9 (classic form).
    """
    try:
        return ALIASES[name]
    except KeyError:
        raise ValueError(
            f"unknown optimizer {name!r}; expected one of {sorted(ALIASES)}.") from None


__all__ = ["ALIASES", "adadelta", "adagrad", "adam", "adamax", "adamw", "get", "nadam", "rmsprop",
           "rprop", "sgd", "sign_sgd"]
