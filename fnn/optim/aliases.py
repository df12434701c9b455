"""User-facing optimizers: each chains ``scale_by_*`` pieces (``fnn.optim.rules``) with the
learning-rate scaling ``u = −η d``; ``learning_rate`` is a float or a schedule of the step count
everywhere except ``rprop``. Defaults follow the papers; flags reproduce PyTorch's numbers:

    alias     defaults (paper)                           PyTorch's numbers
    sgd       v ← γv + ηg, θ ← θ − v   (form="classic")  form="pytorch"
    adagrad   η .01, G₀ = 0, ε 1e-10 outside √           same (TF: initial_accumulator_value=0.1)
    adadelta  η 1, ρ .95, ε 1e-6 inside both RMS         rho=0.9
    rmsprop   η .001, ρ .9, ε 1e-8 inside √              0.01, decay=0.99, eps_inside_sqrt=False
    adam      η .001, β .9 / .999, ε 1e-8 outside √      same
    adamw     adam + decay λ .01, biases not decayed     mask=True
    amsgrad   adam with amsgrad=True                     same
    momentum  sgd with γ = 0.9 (config name)             form="pytorch" via sgd
    nesterov  sgd with γ = 0.9, nesterov=True            form="pytorch" via sgd
    adamax    η .002, ε 1e-8 added to u                  eps_inside_max=True
    nadam     η .002, momentum schedule ψ .004           same
    nadamw    nadam + decoupled decay λ .01              mask=True
    radam     η .001, rectified when ρ_t > 5             same (the paper: ρ_t > 4)
    rprop     iRprop−: Δ₀ .01, ×1.2 / ×0.5, [1e-6, 50]   same
    sign_sgd  θ ← θ − η sign(g)                          (none)

Every alias takes ``maximize=False``: with True it climbs the objective (``θ ← θ + ...``): the
gradients are negated first (``negate_gradients``), as PyTorch's ``maximize=True``.
"""
from __future__ import annotations

import functools
from typing import Callable, Literal, Optional

from fnn.checks import check_choice, check_in_range
from fnn.optim import rules
from fnn.optim.base import (
    Optimizer, ScalarOrSchedule, chain, check_learning_rate, scale_by_learning_rate)
from fnn.optim.transforms import add_decayed_weights, negate_gradients


def _ascend_if(maximize: bool, *pieces: Optimizer) -> Optimizer:
    """``chain(*pieces)``, after ``negate_gradients()`` if ``maximize``."""
    return chain(negate_gradients(), *pieces) if maximize else chain(*pieces)


def _descend(owner: str, learning_rate: ScalarOrSchedule, *pieces: Optimizer,
             maximize: bool = False) -> Optimizer:
    """``chain(*pieces, scale_by_learning_rate(η))``, checking η under the alias's name."""
    check_learning_rate(owner, learning_rate)
    return _ascend_if(maximize, *pieces, scale_by_learning_rate(learning_rate))


MomentumForm = Literal["classic", "pytorch", "ema"]
_MOMENTUM_FORMS = ("classic", "pytorch", "ema")


def sgd(learning_rate: ScalarOrSchedule, momentum: float = 0.0, *, nesterov: bool = False,
        form: MomentumForm = "classic", dampening: float = 0.0,
        maximize: bool = False) -> Optimizer:
    """Gradient descent ``θ ← θ − η ∇J(θ)`` (batch, stochastic or mini-batch: the caller's batch
    decides), with optional momentum γ. The three forms, by where η sits:

        form="classic"  v ← γ v + η g,        θ ← θ − v      (Polyak 1964; the course; Keras)
        form="pytorch"  v ← γ v + g,          θ ← θ − η v    (torch.optim.SGD)
        form="ema"      v ← γ v + (1 − γ) g,  θ ← θ − η v

    v starts at 0. With a constant η, "classic" and "pytorch" take identical steps, and "ema" with
    η equals "pytorch" with η(1 − γ); with a schedule, "classic" keeps each gradient at the η of
    its step.

    ``dampening`` τ (PyTorch's): ``v₁ = g₁``, then ``v ← γ v + (1 − τ) g`` (η inside as in the
    form: classic ``v ← γ v + (1 − τ) η g``). With ``form="pytorch"`` it is torch.optim.SGD's
    ``dampening``, number for number. ``form="ema"`` is ``dampening=γ`` except for the first
    step, which PyTorch does not damp; it takes no ``dampening``, nor does ``nesterov``.

    ``nesterov=True`` (Nesterov 1983): the course's ``v ← γv + η∇J(θ − γv)``, ``θ ← θ − v``,
    rewritten on the look-ahead parameters ``θ − γv`` so that it needs one gradient per step
    (Sutskever et al. 2013): ``θ ← θ − (γ v + η g)`` with the new ``v`` (PyTorch:
    ``θ ← θ − η(g + γ v)``). To evaluate the gradient at the look-ahead point yourself, use
    ``sgd(η, γ)`` with ``nesterov_lookahead``.

    ``maximize=True``: gradient ascent ``θ ← θ + η ∇J(θ)`` (same velocity, of −g).
    """
    check_learning_rate("sgd", learning_rate)
    check_choice("sgd", "form", form, _MOMENTUM_FORMS)
    check_in_range("sgd", "momentum", momentum, 0, 1, closed="left")
    check_in_range("sgd", "dampening", dampening, 0, 1)
    if momentum == 0:
        if nesterov:
            raise ValueError("sgd: nesterov=True needs a momentum in (0, 1); got momentum=0.")
        return _ascend_if(maximize, scale_by_learning_rate(learning_rate))
    if dampening and (nesterov or form == "ema"):
        raise ValueError(f"sgd: dampening={dampening} excludes "
                         f"{'nesterov=True' if nesterov else 'form=ema'}; see the docstring.")
    velocity = rules.scale_by_momentum(momentum, nesterov=nesterov, ema=form == "ema",
                                       dampening=dampening)
    if form == "classic":
        return _ascend_if(maximize, scale_by_learning_rate(learning_rate), velocity)
    return _ascend_if(maximize, velocity, scale_by_learning_rate(learning_rate))


def adagrad(learning_rate: ScalarOrSchedule = 0.01, initial_accumulator_value: float = 0.0,
            eps: float = 1e-10, *, maximize: bool = False) -> Optimizer:
    """Adagrad (Duchi et al. 2011): ``G ← G + g²``, ``θ ← θ − η g / (√G + ε)``; see
    ``scale_by_adagrad``. PyTorch's ``lr_decay`` is the schedule ``η / (1 + t · lr_decay)``."""
    return _descend("adagrad", learning_rate,
                    rules.scale_by_adagrad(initial_accumulator_value, eps), maximize=maximize)


def adadelta(learning_rate: ScalarOrSchedule = 1.0, rho: float = 0.95,
             eps: float = 1e-6, *, maximize: bool = False) -> Optimizer:
    """Adadelta (Zeiler 2012): ``θ ← θ − η · RMS[Δ]_{t−1} / RMS[g]_t · g``; the paper has no
    learning rate (η = 1, the default); PyTorch multiplies by ``lr`` and uses ρ = 0.9. See
    ``scale_by_adadelta``."""
    return _descend("adadelta", learning_rate, rules.scale_by_adadelta(rho, eps),
                    maximize=maximize)


def rmsprop(learning_rate: ScalarOrSchedule = 0.001, decay: float = 0.9, eps: float = 1e-8, *,
            centered: bool = False, momentum: float = 0.0,
            eps_inside_sqrt: bool = True, maximize: bool = False) -> Optimizer:
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
    return _ascend_if(maximize, *pieces)


def adam(learning_rate: ScalarOrSchedule = 0.001, beta1: float = 0.9, beta2: float = 0.999,
         eps: float = 1e-8, *, amsgrad: bool = False, maximize: bool = False) -> Optimizer:
    """Adam (Kingma & Ba 2015): ``θ ← θ − η m̂ / (√v̂ + ε)``; ``amsgrad=True`` divides by the
    largest ``v̂`` so far (Reddi et al. 2018, PyTorch's numbers). See ``scale_by_adam``."""
    return _descend("adam", learning_rate, rules.scale_by_adam(beta1, beta2, eps, amsgrad=amsgrad),
                    maximize=maximize)


def adamw(learning_rate: ScalarOrSchedule = 0.001, beta1: float = 0.9, beta2: float = 0.999,
          eps: float = 1e-8, weight_decay: ScalarOrSchedule = 0.01, mask=None, *,
          amsgrad: bool = False, maximize: bool = False) -> Optimizer:
    """AdamW (Loshchilov & Hutter 2019): ``θ ← θ − η (m̂ / (√v̂ + ε) + λ θ)``, λ = 0.01.

    The decay is decoupled from the adaptive scaling (added to Adam's direction, not to the
    gradient) and, as in PyTorch, scaled by the learning rate η (the paper's schedule multiplier
    η_t times a fixed λ). ``mask`` selects the decayed leaves (``fnn.param_masks``): by default
    every leaf but biases and normalization parameters. PyTorch decays every parameter it is
    given: ``mask=True``.
    """
    return _descend("adamw", learning_rate,
                    rules.scale_by_adam(beta1, beta2, eps, amsgrad=amsgrad),
                    add_decayed_weights(weight_decay, mask), maximize=maximize)


def radam(learning_rate: ScalarOrSchedule = 0.001, beta1: float = 0.9, beta2: float = 0.999,
          eps: float = 1e-8, *, maximize: bool = False) -> Optimizer:
    """RAdam (Liu et al. 2020): Adam with its adaptive rate rectified by ``r_t``, and plain
    momentum ``θ ← θ − η m̂`` in the first steps (while ``ρ_t <= 5``); PyTorch's ``RAdam``. See
    ``scale_by_radam``."""
    return _descend("radam", learning_rate, rules.scale_by_radam(beta1, beta2, eps),
                    maximize=maximize)


def adamax(learning_rate: ScalarOrSchedule = 0.002, beta1: float = 0.9, beta2: float = 0.999,
           eps: float = 1e-8, *, eps_inside_max: bool = False,
           maximize: bool = False) -> Optimizer:
    """Adamax (Kingma & Ba 2015): ``θ ← θ − η m / ((1 − β1^t)(u + ε))``, ``u = max(β2 u, |g|)``;
    PyTorch: ``eps_inside_max=True``. See ``scale_by_adamax``."""
    return _descend("adamax", learning_rate,
                    rules.scale_by_adamax(beta1, beta2, eps, eps_inside_max=eps_inside_max),
                    maximize=maximize)


def nadam(learning_rate: ScalarOrSchedule = 0.002, beta1: float = 0.9, beta2: float = 0.999,
          eps: float = 1e-8, momentum_decay: Optional[float] = 0.004, *,
          weight_decay: ScalarOrSchedule = 0.0, decoupled_weight_decay: bool = False, mask=None,
          maximize: bool = False) -> Optimizer:
    """Nadam (Dozat 2016) with the paper's momentum schedule, as PyTorch's ``NAdam``; see
    ``scale_by_nadam``.

    ``weight_decay`` λ, as PyTorch's: by default L2 on the gradient, ``g ← g + λ θ`` before the
    moments (``add_decayed_weights`` first in the chain); with ``decoupled_weight_decay=True``
    (NAdamW, as in AdamW) ``θ ← θ − η (d + λ θ)``, the decay added to Nadam's direction.
    ``mask`` selects the decayed leaves (``fnn.param_masks``; default: not biases; PyTorch's:
    ``mask=True``).
    """
    nadam_rule = rules.scale_by_nadam(beta1, beta2, eps, momentum_decay)
    if callable(weight_decay) or weight_decay != 0:
        decay = add_decayed_weights(weight_decay, mask)
        pieces = (nadam_rule, decay) if decoupled_weight_decay else (decay, nadam_rule)
        return _descend("nadam", learning_rate, *pieces, maximize=maximize)
    return _descend("nadam", learning_rate, nadam_rule, maximize=maximize)


def nadamw(learning_rate: ScalarOrSchedule = 0.002, beta1: float = 0.9, beta2: float = 0.999,
           eps: float = 1e-8, momentum_decay: Optional[float] = 0.004,
           weight_decay: ScalarOrSchedule = 0.01, mask=None, *,
           maximize: bool = False) -> Optimizer:
    """Nadam with decoupled weight decay λ = 0.01 (as AdamW): ``θ ← θ − η (d + λ θ)``;
    ``nadam(..., decoupled_weight_decay=True)``, PyTorch's ``NAdam(decoupled_weight_decay=True)``
    with ``mask=True``."""
    return nadam(learning_rate, beta1, beta2, eps, momentum_decay, weight_decay=weight_decay,
                 decoupled_weight_decay=True, mask=mask, maximize=maximize)


def rprop(learning_rate: float = 0.01, increase: float = 1.2, decrease: float = 0.5,
          min_step_size: float = 1e-6, max_step_size: float = 50.0, *,
          maximize: bool = False) -> Optimizer:
    """Rprop (iRprop−, PyTorch's numbers): ``θ ← θ − Δ sign(g)`` with per-weight step sizes Δ.

    ``learning_rate`` is the initial step size Δ₀ (PyTorch's ``lr``), a float: the steps then
    adapt on their own, so the learning-rate piece is fixed at η = 1. See ``scale_by_rprop``.
    """
    if callable(learning_rate):
        raise ValueError("rprop: learning_rate is the initial per-weight step size Δ₀ and must be "
                         "a float, not a schedule: the step sizes adapt on their own.")
    step_sizes = rules.scale_by_rprop(learning_rate, increase, decrease, min_step_size,
                                      max_step_size)
    return _ascend_if(maximize, step_sizes, scale_by_learning_rate(1.0))


def sign_sgd(learning_rate: ScalarOrSchedule, *, maximize: bool = False) -> Optimizer:
    """sign-SGD (Bernstein et al. 2018): ``θ ← θ − η sign(g)``."""
    return _descend("sign_sgd", learning_rate, rules.scale_by_sign(), maximize=maximize)


ALIASES = {
    "sgd": sgd,
    "momentum": functools.partial(sgd, momentum=0.9),
    "nesterov": functools.partial(sgd, momentum=0.9, nesterov=True),
    "adagrad": adagrad,
    "adadelta": adadelta,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamw": adamw,
    "amsgrad": functools.partial(adam, amsgrad=True),
    "adamax": adamax,
    "nadam": nadam,
    "nadamw": nadamw,
    "radam": radam,
    "rprop": rprop,
    "sign_sgd": sign_sgd,
}


def get(name: str) -> Callable[..., Optimizer]:
    """The optimizer factory called ``name`` (for configs): ``get("adam")(learning_rate)``.

    ``"momentum"`` and ``"nesterov"`` are ``sgd`` with momentum 0.9 (classic form);
    ``"amsgrad"`` is ``adam`` with ``amsgrad=True``.
    """
    try:
        return ALIASES[name]
    except KeyError:
        raise ValueError(
            f"unknown optimizer {name!r}; expected one of {sorted(ALIASES)}.") from None


__all__ = ["ALIASES", "adadelta", "adagrad", "adam", "adamax", "adamw", "get", "nadam", "nadamw",
           "radam", "rmsprop", "rprop", "sgd", "sign_sgd"]
