"""The course's checklist for debugging a network, as tools.

    monitor = Monitor(model, "softmax_cross_entropy", (x[:256], y[:256]), optimizer)
    result = fit(model, params, state, (x, y), ..., optimizer=optimizer, hooks=[monitor])
    print("\\n".join(monitor.warnings()))      # "dense_2: update/weight ratio 3.0e-06 < 1e-04: ..."
    monitor.plot("monitor.png")                 # each statistic over training, one line per layer

    print(overfit_check(model, params, state, (x, y), loss=..., optimizer=sgd(0.1), key=key))

Statistics, per layer, on a fixed probe batch ``(inputs, targets)`` in eval mode (no dropout):

==============  ==========================================================================
grad_norm       ``‖∂L/∂W‖₂``, L the mean loss on the probe batch; ≈ 0: the layer stopped learning
update_ratio    ``‖u‖₂ / ‖W‖₂``, u the optimizer's next update for the probe gradient; healthy
                near 1e-3, below 1e-4 the learning rate is too low, above 1e-2 too high
weight_var      ``Var(W)`` over all of the layer's weights
act_var         ``Var(a)`` of the layer's output over the probe batch, by depth
dead_fraction   for element-wise activation layers: the fraction of units (last axis) whose
                output is 0 for every probe example (and position): dead ReLUs
==============  ==========================================================================

W is a layer's weights: its parameter leaves not named like a bias or a normalization parameter
(the default mask of `fnn.param_masks`, as for penalties and weight decay); layers without
weights get no parameter statistics. A *layer* is a leaf of the model (a layer without
children) at any depth, named by its path (``dense_0``, ``residual_0/block/dense_0``; see
`layers_of`), in the order the model applies them; every combinator exposes its children, so a
residual block shows its inner layers.

The update ratio uses the update the optimizer would make from its current state (momentum,
Adam moments, schedule) for the probe gradient and loss, computed and not applied. Unlike the change in
the parameters over an epoch, it is a per-step quantity whatever the number of steps per epoch,
and it is defined at the first call.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnn import losses, param_masks
from fnn.checks import check_int
from fnn.core import Layer, LayerInfo, capture_outputs, init_shapes, subtree, walk
from fnn.optim import Optimizer, apply_updates
from fnn.train import input_shape_of

STATS = ("grad_norm", "update_ratio", "weight_var", "act_var", "dead_fraction")

Stats = Dict[str, Dict[str, Any]]  # layer name -> statistic name -> value


# ----------------------------------------------------------------------------- statistics

def layers_of(model: Layer, input_shape) -> List[LayerInfo]:
    """The leaf layers of ``model`` (those without children), at any depth, in the order they are
    applied; the model itself when it has no children. Names are ``"/".join(info.path)``."""
    leaves = [info for info in walk(model, input_shape) if not info.layer.layers]
    return leaves or [LayerInfo((), model, input_shape, init_shapes(model, input_shape)[0])]


def layer_name(info: LayerInfo) -> str:
    """A leaf layer's name in the statistics: its path (``residual_0/block/dense_0``), or
    ``"params"`` for a model without children."""
    return "/".join(info.path) or "params"


def layer_outputs(model: Layer, params, state, inputs) -> Dict[str, jax.Array]:
    """Each leaf layer's output in eval mode, at any depth, in order: ``{name: a}`` (see
    `layer_name`). For a `serial` model the last value is the model's output."""
    _, captured = capture_outputs(model, params, state, inputs)
    infos = layers_of(model, input_shape_of(inputs))
    if not infos[0].path:
        return {"params": model.apply(params, state, inputs, train=False)[0]}
    return {layer_name(info): captured[info.path] for info in infos}


def _weights(tree, like) -> List[jax.Array]:
    """The leaves of ``tree`` at the weight positions of ``like`` (a tree of the same shape)."""
    return param_masks.selected_leaves(None, like, where="monitor", tree=tree)


def _norm(leaves) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in leaves))


def layer_stats(model: Layer, params, state, probe, *, loss,
                optimizer: Optional[Optimizer] = None, opt_state=None) -> Stats:
    """The statistics of the module docstring for every layer: ``{layer: {stat: scalar}}``.

    ``probe`` is an ``(inputs, targets)`` pair; ``loss`` a name or a ``loss(outputs, targets) ->
    (batch,)`` function. ``update_ratio`` needs ``optimizer`` (its state defaults to
    ``optimizer.init(params)``). Pure and jit-able; layers come in depth order when called
    eagerly (`jax.jit` sorts dict keys, see `Monitor`).
    """
    inputs, targets = probe
    loss_fn = losses.get(loss)
    infos = layers_of(model, input_shape_of(inputs))

    def objective(p):
        y, captured = capture_outputs(model, p, state, inputs)
        return jnp.mean(loss_fn(y, targets)), captured

    (value, outputs), grads = jax.value_and_grad(objective, has_aux=True)(params)
    updates = None
    if optimizer is not None:
        opt_state = optimizer.init(params) if opt_state is None else opt_state
        updates, _ = optimizer.update(grads, opt_state, params, loss=value)

    stats = {}
    for info in infos:
        own, s = subtree(params, info.path), {}  # the layer's own params
        weights = _weights(own, own)
        if weights:
            s["grad_norm"] = _norm(_weights(subtree(grads, info.path), own))
            if updates is not None:
                s["update_ratio"] = (_norm(_weights(subtree(updates, info.path), own))
                                     / _norm(weights))
            s["weight_var"] = jnp.var(jnp.concatenate([w.ravel() for w in weights]))
        a = outputs.get(info.path)
        if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating):  # not a tuple
            s["act_var"] = jnp.var(a)
            if not weights and not jax.tree_util.tree_leaves(own) \
                    and info.input_shape == info.output_shape:  # an element-wise activation
                dead = jnp.all(a == 0, axis=tuple(range(a.ndim - 1)))
                s["dead_fraction"] = jnp.mean(dead.astype(jnp.float32))
        if s:
            stats[layer_name(info)] = s
    return stats


def diagnose(stats: Stats, *, ratio_range: Sequence[float] = (1e-4, 1e-2),
             max_dead: float = 0.5, min_grad_norm: float = 1e-7,
             max_act_var_change: float = 100.0) -> List[str]:
    """The problems the course's checklist would flag in one record of `layer_stats`, in words.

    Flags non-finite statistics, ``update_ratio`` outside ``ratio_range``, ``grad_norm`` below
    ``min_grad_norm``, ``dead_fraction`` above ``max_dead``, and an activation variance that
    grows or shrinks by more than ``max_act_var_change`` from the first activation layer to the
    last (vanishing or exploding activations). Weight variance is not flagged: it scales with
    1/fan-in by design.
    """
    low, high = ratio_range
    problems = []
    for layer, s in stats.items():
        bad = [f"{stat} is {float(v)}" for stat, v in s.items() if not np.isfinite(v)]
        if bad:
            problems.append(f"{layer}: {', '.join(bad)}: training diverged? Lower the learning "
                            "rate, check the inputs are scaled.")
            continue
        ratio, grad, dead = s.get("update_ratio"), s.get("grad_norm"), s.get("dead_fraction")
        if ratio is not None and ratio < low:
            problems.append(f"{layer}: update/weight ratio {ratio:.1e} < {low:.0e}: "
                            "learning rate too low?")
        if ratio is not None and ratio > high:
            problems.append(f"{layer}: update/weight ratio {ratio:.1e} > {high:.0e}: "
                            "learning rate too high?")
        if grad is not None and grad < min_grad_norm:
            problems.append(f"{layer}: gradient norm {grad:.1e} ≈ 0: the layer has stopped "
                            "learning (vanishing gradients or dead units?)")
        if dead is not None and dead > max_dead:
            problems.append(f"{layer}: {dead:.0%} of its units are dead (0 on every probe "
                            "example): lower the learning rate, try He initialization or "
                            "LeakyReLU?")
    variances = [(layer, s["act_var"]) for layer, s in stats.items()
                 if "dead_fraction" in s and np.isfinite(s["act_var"])]
    if len(variances) >= 2:
        (first, v0), (last, v1) = variances[0], variances[-1]
        if v0 > 0 and v1 > 0 and max(v1 / v0, v0 / v1) > max_act_var_change:
            trend = "grows" if v1 > v0 else "shrinks"
            problems.append(f"activation variance {trend} from {v0:.1e} ({first}) to {v1:.1e} "
                            f"({last}): exploding or vanishing activations; check the "
                            "initialization or add normalization.")
    return problems


# ----------------------------------------------------------------------------- the monitor

class Monitor:
    """A `fit` hook recording `layer_stats` on a fixed probe batch every ``every`` epochs.

    ``hooks=[monitor]``; it never stops training. Give it the optimizer given to `fit` (whose
    state it reads) for the update ratio. Records are plain Python floats:
    ``monitor.records[i]`` is ``{layer: {stat: value}}`` after epoch ``monitor.epochs[i]``
    (counted from 1, as positions in fit's history); ``monitor.history`` regroups them for
    plotting. `record` can also be called by hand, e.g. before training (``epoch=0``).
    """

    def __init__(self, model: Layer, loss, probe, optimizer: Optional[Optimizer] = None, *,
                 every: int = 1):
        if not isinstance(probe, (tuple, list)) or len(probe) != 2:
            raise ValueError(f"Monitor: `probe` must be an (inputs, targets) pair of arrays; "
                             f"got {type(probe).__name__}.")
        if len(probe[0]) != len(probe[1]):
            raise ValueError(f"Monitor: `probe` has {len(probe[0])} inputs but {len(probe[1])} "
                             "targets.")
        self.model, self.every = model, check_int("Monitor", "every", every)
        self.probe = (jnp.asarray(probe[0]), jnp.asarray(probe[1]))
        self._stats = jax.jit(partial(layer_stats, model, loss=loss, optimizer=optimizer))
        self._names = [layer_name(info) for info in layers_of(model, input_shape_of(self.probe[0]))]
        self.epochs: List[int] = []
        self.records: List[Stats] = []

    def __call__(self, epoch: int, logs, train_state) -> None:
        """The hook: record after every ``every``-th epoch (``epoch`` counted from 0)."""
        if (epoch + 1) % self.every == 0:
            self.record(train_state.params, train_state.state, train_state.opt_state,
                        epoch=epoch + 1)

    def record(self, params, state, opt_state=None, *, epoch: int) -> Stats:
        """Compute, append and return the statistics for these parameters."""
        stats = jax.device_get(self._stats(params, state, self.probe, opt_state=opt_state))
        ordered = {name: {k: float(stats[name][k]) for k in STATS if k in stats[name]}
                   for name in self._names if name in stats}
        self.epochs.append(int(epoch))
        self.records.append(ordered)
        return ordered

    @property
    def history(self) -> Dict[str, Any]:
        """``{"epoch": [e, ...], stat: {layer: [value per record]}}``, for `plot_monitor`."""
        history: Dict[str, Any] = {"epoch": list(self.epochs)}
        for record in self.records:
            for layer, s in record.items():
                for stat, value in s.items():
                    history.setdefault(stat, {}).setdefault(layer, []).append(value)
        return history

    def warnings(self, **limits) -> List[str]:
        """`diagnose` on the latest record (``limits`` as in `diagnose`); [] before any record."""
        return diagnose(self.records[-1], **limits) if self.records else []

    def plot(self, path, title: str = "") -> Path:
        """Each statistic over training, one line per layer, as a PNG (needs matplotlib)."""
        from fnn.plots import plot_monitor

        return plot_monitor(self.history, path, title=title)


# ----------------------------------------------------------------------------- overfit check

class OverfitReport(NamedTuple):
    """The outcome of `overfit_check`: the loss before and after, and the whole curve."""

    initial_loss: float
    final_loss: float
    passed: bool
    losses: List[float]  # the loss before each step, then after the last: steps + 1 values
    n: int
    steps: int

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        text = (f"overfit check {verdict}: loss {self.initial_loss:.4g} -> {self.final_loss:.4g} "
                f"in {self.steps} steps on {self.n} examples")
        if not self.passed:
            text += (". A network should memorize a few examples; check the gradients, the "
                     "learning rate and that the loss matches the outputs and targets.")
        return text


def overfit_check(model: Layer, params, state, data, *, loss, optimizer: Optimizer, key,
                  n: int = 50, steps: int = 200, target_fraction: float = 0.1,
                  target_loss: float = 1e-3) -> OverfitReport:
    """Can the network memorize ``n`` examples? The course's first debugging step.

    Takes ``n`` examples of ``data = (inputs, targets)`` at random (with ``key``) and runs
    ``steps`` full-batch optimizer steps on their mean loss with regularization off: no penalty,
    and the model in eval mode (``train=False``: no dropout; pass an optimizer without weight
    decay). Passes when the final loss is below ``target_fraction`` of the initial one or below
    ``target_loss`` (for a loss that starts near 0). The trained parameters are discarded.
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"overfit_check: `data` must be an (inputs, targets) pair of arrays; "
                         f"got {type(data).__name__}.")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    n = min(check_int("overfit_check", "n", n), len(x))
    steps = check_int("overfit_check", "steps", steps)
    pick = np.asarray(jax.random.permutation(key, len(x))[:n])
    loss_fn = losses.get(loss)

    def objective(p, xb, yb):
        return jnp.mean(loss_fn(model.apply(p, state, xb, train=False)[0], yb))

    @jax.jit
    def run(p, xb, yb):
        def step(carry, _):
            p, opt_state = carry
            value, grads = jax.value_and_grad(objective)(p, xb, yb)
            updates, opt_state = optimizer.update(grads, opt_state, p, loss=value)
            return (apply_updates(p, updates), opt_state), value

        (p, _), values = jax.lax.scan(step, (p, optimizer.init(p)), None, length=steps)
        return jnp.concatenate([values, objective(p, xb, yb)[None]])

    curve = [float(v) for v in run(params, jnp.asarray(x[pick]), jnp.asarray(y[pick]))]
    initial, final = curve[0], curve[-1]
    passed = bool(final <= target_fraction * initial or final <= target_loss)
    return OverfitReport(initial, final, passed, curve, n, steps)


__all__ = ["STATS", "layer_outputs", "layer_stats", "diagnose", "Monitor", "OverfitReport",
           "overfit_check"]
