"""Training and evaluation: a pure, jitted train step and a plain-Python `fit` loop around it.

The step is ``(params, state, opt_state, batch, key) -> (params, state, opt_state, metrics)``.
Every batch has the same shape: the last, smaller one is padded with repeated examples whose
``mask`` is 0, so the step compiles once per run and padded examples count for nothing.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import checkpoint, losses
from fnn.core import Layer
from fnn.optim import Optimizer, apply_updates


class Batch(NamedTuple):
    """A mini-batch: inputs (B, ...), targets (B, ...) and mask (B,), 1 for real examples."""

    inputs: Any
    targets: Any
    mask: Any


def masked_mean(values, mask):
    """Σ_i m_i v_i / Σ_i m_i (0 when the mask is empty)."""
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1)


def classification_metrics(outputs, targets, mask) -> Dict[str, jax.Array]:
    """Accuracy of ``argmax(outputs)`` for multi-class outputs (B, C) with integer (B,) or
    one-hot (B, C) targets; no metrics for other outputs (e.g. regression)."""
    if outputs.ndim != 2 or outputs.shape[-1] < 2:
        return {}
    if targets.shape == outputs.shape:
        targets = jnp.argmax(targets, axis=-1)
    elif targets.shape != outputs.shape[:1] or not jnp.issubdtype(targets.dtype, jnp.integer):
        return {}
    return {"accuracy": masked_mean(jnp.argmax(outputs, -1) == targets, mask)}


def _objective(model, loss_fn, metrics_fn, penalty, train):
    """``(params, state, batch, key) -> (loss, (new_state, metrics))`` for `jax.value_and_grad`."""

    def objective(params, state, batch, key):
        outputs, new_state = model.apply(params, state, batch.inputs, key=key, train=train)
        loss = masked_mean(loss_fn(outputs, batch.targets), batch.mask)
        metrics = {"loss": loss, **metrics_fn(outputs, batch.targets, batch.mask)}
        total = loss if penalty is None else loss + penalty(params)
        return total, (new_state, metrics)

    return objective


def make_train_step(model: Layer, loss, optimizer: Optimizer, *,
                    metrics: Callable = classification_metrics,
                    penalty: Optional[Callable] = None, augment: Optional[Callable] = None,
                    jit: bool = True):
    """The pure train step ``(params, state, opt_state, batch, key) -> (params, state, opt_state,
    metrics)``: one gradient step on the masked mean loss (+ ``penalty(params)`` if given). The
    optimizer also gets the mini-batch loss, ``update(..., loss=loss)``, for loss-driven rules.
    ``augment(key, inputs) -> inputs`` (e.g. from `fnn.data.augment`) transforms each batch first,
    with its own key ``fold_in(key, 1)``; the model then gets ``fold_in(key, 0)``."""
    objective = _objective(model, losses.get(loss), metrics, penalty, train=True)

    def step(params, state, opt_state, batch: Batch, key):
        if augment is not None:
            batch = batch._replace(inputs=augment(jax.random.fold_in(key, 1), batch.inputs))
            key = jax.random.fold_in(key, 0)
        grads, (state, batch_metrics) = jax.grad(objective, has_aux=True)(params, state, batch, key)
        updates, opt_state = optimizer.update(grads, opt_state, params, loss=batch_metrics["loss"])
        return apply_updates(params, updates), state, opt_state, batch_metrics

    return jax.jit(step) if jit else step


def make_eval_step(model: Layer, loss, *, metrics: Callable = classification_metrics,
                   jit: bool = True):
    """``(params, state, batch) -> metrics`` in eval mode (no key, state unchanged)."""
    objective = _objective(model, losses.get(loss), metrics, None, train=False)

    def step(params, state, batch: Batch):
        return objective(params, state, batch, None)[1][1]

    return jax.jit(step) if jit else step


# ----------------------------------------------------------------------------- batching

def padded_batches(n: int, batch_size: int, key=None) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Index arrays of ``batch_size`` covering ``0..n-1`` once (shuffled when ``key`` is given),
    with a mask; the last batch is padded by repeating its own indices, mask 0."""
    if n < 1:
        raise ValueError(f"padded_batches: need at least one example; got n={n}.")
    order = np.arange(n) if key is None else np.asarray(jax.random.permutation(key, n))
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        mask = np.ones(batch_size, np.float32)
        mask[len(idx):] = 0.0
        yield np.resize(idx, batch_size), mask


def _as_numpy_pair(data, what: str):
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"fit: `{what}` must be an (inputs, targets) pair of arrays; "
                         f"got {type(data).__name__}.")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if len(x) != len(y):
        raise ValueError(f"fit: `{what}` has {len(x)} inputs but {len(y)} targets.")
    return x, y


def _resolve_batch_size(batch_size: Optional[int], n: int) -> int:
    if batch_size is None:
        return n  # full batch
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer or None (full batch); "
                         f"got {batch_size!r}.")
    return min(batch_size, n)


class _Mean:
    """Running, count-weighted means of metric dicts, accumulated on the device."""

    def __init__(self):
        self.sums, self.count = None, 0.0

    def add(self, metrics, count):
        weighted = {k: v * count for k, v in metrics.items()}
        self.sums = weighted if self.sums is None else {k: self.sums[k] + weighted[k] for k in weighted}
        self.count = self.count + count

    def result(self) -> Dict[str, float]:
        count = float(self.count)
        return {k: float(v) / count for k, v in (self.sums or {}).items()}


def evaluate(model: Layer, params, state, data, *, loss, batch_size: Optional[int] = 1024,
             metrics: Callable = classification_metrics, eval_step=None) -> Dict[str, float]:
    """Mean loss and metrics of the model in eval mode over ``data = (inputs, targets)``."""
    x, y = _as_numpy_pair(data, "data")
    step = eval_step or make_eval_step(model, loss, metrics=metrics)
    mean = _Mean()
    for idx, mask in padded_batches(len(x), _resolve_batch_size(batch_size, len(x))):
        mean.add(step(params, state, Batch(x[idx], y[idx], mask)), mask.sum())
    return mean.result()


def predict(model: Layer, params, state, inputs, *, batch_size: Optional[int] = 1024):
    """The model's outputs in eval mode for ``inputs`` (N, ...), computed batch by batch."""
    x = np.asarray(inputs)
    apply = jax.jit(lambda p, s, xb: model.apply(p, s, xb, train=False)[0])
    size = _resolve_batch_size(batch_size, len(x))
    outputs = [apply(params, state, x[idx])[: int(mask.sum())]
               for idx, mask in padded_batches(len(x), size)]
    return jnp.concatenate(outputs)


# ----------------------------------------------------------------------------- early stopping

class EarlyStopping(NamedTuple):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs;
    with ``restore_best`` the returned parameters are those of the best epoch."""

    monitor: str = "val_loss"
    patience: int = 5
    min_delta: float = 0.0
    mode: str = "min"  # "min" for losses, "max" for accuracies
    restore_best: bool = True


class EarlyStoppingState(NamedTuple):
    """The best value seen, its epoch, the epochs since then and the best model."""

    best: float
    best_epoch: int
    wait: int
    best_params: Any
    best_state: Any


def early_stopping_init(rule: EarlyStopping, params, state) -> EarlyStoppingState:
    if rule.mode not in ("min", "max"):
        raise ValueError(f"EarlyStopping: `mode` must be 'min' or 'max'; got {rule.mode!r}.")
    worst = math.inf if rule.mode == "min" else -math.inf
    return EarlyStoppingState(worst, -1, 0, params, state)


def early_stopping_update(rule: EarlyStopping, es: EarlyStoppingState, value: float, epoch: int,
                          params, state) -> Tuple[EarlyStoppingState, bool]:
    """One epoch of the rule: ``(new_state, stop)``. Improvement means
    ``value < best − min_delta`` (mode "min") or ``value > best + min_delta`` (mode "max")."""
    sign = 1.0 if rule.mode == "min" else -1.0
    if sign * (es.best - value) > rule.min_delta:
        return EarlyStoppingState(value, epoch, 0, params, state), False
    wait = es.wait + 1
    return es._replace(wait=wait), wait >= rule.patience


# ----------------------------------------------------------------------------- fit

class TrainState(NamedTuple):
    """What a hook sees and a checkpoint stores."""

    params: Any
    state: Any
    opt_state: Any


class FitResult(NamedTuple):
    """The trained model, the metrics of every epoch, and whether (and where) it stopped early.

    ``best_epoch`` (counted from 1) is the epoch early stopping judged best, None without it.
    """

    params: Any
    state: Any
    opt_state: Any
    history: Dict[str, List[float]]
    stopped_early: bool
    best_epoch: Optional[int] = None


Hook = Callable[[int, Dict[str, float], TrainState], Optional[bool]]


def progress_bar(total: int, desc: str = "", enabled: bool = True, unit: str = "it"):
    """A tqdm progress bar over ``total`` units, or None when disabled or tqdm (the optional
    ``viz`` extra) is missing; callers skip their bar updates on None."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, mininterval=0.5)


def _train_epoch(step, train_state, data, batch_size: int, epoch_key, bar):
    """One pass over ``data`` in shuffled, padded batches: ``(*new train state, mean metrics)``."""
    params, state, opt_state = train_state
    x, y = data
    mean = _Mean()
    for i, (idx, mask) in enumerate(padded_batches(len(x), batch_size, epoch_key)):
        params, state, opt_state, batch_metrics = step(
            params, state, opt_state, Batch(x[idx], y[idx], mask), jax.random.fold_in(epoch_key, i))
        mean.add(batch_metrics, mask.sum())
        if bar is not None:
            bar.update(1)
            if i % 20 == 0:  # fetching the running means syncs with the device: not every step
                bar.set_postfix({k: f"{v:.4f}" for k, v in mean.result().items()}, refresh=False)
    return params, state, opt_state, mean.result()


def fit(model: Layer, params, state, train_data, *, loss, optimizer: Optimizer, key,
        epochs: int, batch_size: Optional[int] = 32, validation_data=None,
        early_stopping: Optional[EarlyStopping] = None, opt_state=None,
        metrics: Callable = classification_metrics, penalty: Optional[Callable] = None,
        augment: Optional[Callable] = None, hooks: Sequence[Hook] = (),
        checkpoint_path: Optional[str] = None, resume: bool = False, progress: bool = True,
        log: Callable = print) -> FitResult:
    """Train for ``epochs`` epochs of shuffled mini-batches; returns a `FitResult`.

    ``batch_size``: 1 is online learning, ``None`` full-batch. Epoch ``e`` shuffles with
    ``fold_in(key, e)`` and batch ``i`` gets the step key ``fold_in(fold_in(key, e), i)``, so a run
    resumed from ``checkpoint_path`` (saved after every epoch, atomically) matches an
    uninterrupted one. Each hook is called as ``hook(epoch, logs, train_state)`` after every
    epoch; entries it adds to ``logs`` join the history, and returning ``True`` (exactly: not
    merely a truthy value) stops training. ``penalty(params)`` is added to the loss
    (e.g. an L2 term) and ``augment(key, inputs)`` transforms each training batch.
    """
    x, y = _as_numpy_pair(train_data, "train_data")
    val = None if validation_data is None else _as_numpy_pair(validation_data, "validation_data")
    size = _resolve_batch_size(batch_size, len(x))
    if early_stopping is not None and early_stopping.monitor.startswith("val_") and val is None:
        raise ValueError(f"fit: early stopping monitors {early_stopping.monitor!r} but no "
                         "`validation_data` was given.")
    step = make_train_step(model, loss, optimizer, metrics=metrics, penalty=penalty,
                           augment=augment)
    eval_step = make_eval_step(model, loss, metrics=metrics)
    opt_state = optimizer.init(params) if opt_state is None else opt_state
    es = None if early_stopping is None else early_stopping_init(early_stopping, params, state)
    history: Dict[str, List[float]] = {}
    first_epoch, stopped = 0, False

    if resume and checkpoint_path and os.path.exists(checkpoint_path):
        saved = checkpoint.load(checkpoint_path)
        params, state, opt_state = saved["params"], saved["state"], saved["opt_state"]
        key, es, history = saved["key"], saved["early_stopping"], saved["history"]
        first_epoch, stopped = saved["epoch"] + 1, saved["stopped"]
        log(f"resumed from {checkpoint_path} after epoch {first_epoch}")

    batches_per_epoch = math.ceil(len(x) / size)
    remaining = 0 if stopped else max(epochs - first_epoch, 0)
    bar = progress_bar(remaining * batches_per_epoch, "train", progress, unit="batch")
    for epoch in range(first_epoch, first_epoch + remaining):
        epoch_key = jax.random.fold_in(key, epoch)
        if bar is not None:
            bar.set_description(f"epoch {epoch + 1}/{epochs}")
        params, state, opt_state, logs = _train_epoch(step, (params, state, opt_state), (x, y),
                                                      size, epoch_key, bar)
        if val is not None:
            val_logs = evaluate(model, params, state, val, loss=loss, batch_size=max(size, 256),
                                eval_step=eval_step)
            logs.update({f"val_{k}": v for k, v in val_logs.items()})
        train_state = TrainState(params, state, opt_state)
        stop_requested = any([hook(epoch, logs, train_state) is True for hook in hooks])
        for k, v in logs.items():  # after the hooks, which may add entries of their own
            history.setdefault(k, []).append(v)
        if bar is not None:
            bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
        elif progress:
            log(f"epoch {epoch + 1}/{epochs} " + " ".join(f"{k}={v:.4f}" for k, v in logs.items()))

        if es is not None:
            if early_stopping.monitor not in logs:
                raise ValueError(f"fit: early stopping monitors {early_stopping.monitor!r}, "
                                 f"which is not among the logged metrics {sorted(logs)}.")
            es, stopped = early_stopping_update(early_stopping, es, logs[early_stopping.monitor],
                                                epoch, params, state)
        stopped = stopped or stop_requested
        if checkpoint_path:
            checkpoint.save(checkpoint_path, {
                "params": params, "state": state, "opt_state": opt_state, "key": key,
                "epoch": epoch, "stopped": stopped, "early_stopping": es, "history": history})
        if stopped:
            break
    if bar is not None:
        bar.close()
    if stopped and progress:
        log(f"stopped early after epoch {len(history['loss'])}")

    best_epoch = None if es is None or es.best_epoch < 0 else es.best_epoch + 1
    if best_epoch is not None and early_stopping.restore_best:
        params, state = es.best_params, es.best_state
    return FitResult(params, state, opt_state, history, stopped, best_epoch)
