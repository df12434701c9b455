"""Training and evaluation: a pure, jitted train step and a plain-Python `fit` loop around it.

The step is ``(params, state, opt_state, batch, key) -> (params, state, opt_state, metrics)``.
Every batch has the same shape: the last, smaller one is padded with repeated examples whose
``mask`` is 0, so the step compiles once per run and padded examples count for nothing.
"""
from __future__ import annotations

import functools
import math
import os
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import checkpoint, losses
from fnn.core import Context, Layer
from fnn.checks import check_int
from fnn.data.splits import batches, num_examples, resolve_batch_size
from fnn.optim import Optimizer, apply_updates


class Batch(NamedTuple):
    """A mini-batch, or a whole data set to batch.

    ``inputs`` and ``targets`` are pytrees of arrays with a common leading axis (B, ...);
    ``mask`` (B,) is 1 for real examples and 0 for padding (None: all real); ``seq_mask``
    (B, T), or a dict of such masks, is 1 for real time steps (None: all real). The model sees
    both through ``context=Context(mask, seq_mask)``.
    """

    inputs: Any
    targets: Any
    mask: Any = None
    seq_mask: Any = None


def as_batch(data, what: str = "data") -> Batch:
    """``data`` as a `Batch`: an ``(inputs, targets)`` pair, or a `Batch` (with masks)."""
    if isinstance(data, Batch):
        batch = data
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        batch = Batch(data[0], data[1])
    else:
        got = (f"a {type(data).__name__} of length {len(data)}"
               if isinstance(data, (tuple, list)) else type(data).__name__)
        raise ValueError(f"`{what}` must be an (inputs, targets) pair or an fnn.Batch(inputs, "
                         f"targets, mask=None, seq_mask=None); got {got}.")
    num_examples(batch, what)  # every array, inputs and targets alike, shares the leading axis
    return batch


def input_shape_of(inputs):
    """The model's input shape for ``inputs`` (a pytree of arrays): ``(None, *a.shape[1:])`` for
    each array, in the same structure (a tuple of shapes for a tuple of inputs)."""
    return jax.tree_util.tree_map(lambda a: (None, *np.shape(a)[1:]), inputs)


def entry_weights(batch: Batch, shape) -> jax.Array:
    """Weights of shape ``shape`` (B, ...) saying which entries of a per-example (B,) or
    per-step (B, T, ...) quantity are real: the example mask, times the sequence mask when the
    batch has one array ``seq_mask`` of shape (B, T) and ``shape`` starts with (B, T)."""
    mask = jnp.ones(shape[:1]) if batch.mask is None else jnp.asarray(batch.mask)
    weights = mask.reshape(mask.shape + (1,) * (len(shape) - 1))
    seq = batch.seq_mask
    if len(shape) >= 2 and seq is not None and not isinstance(seq, dict) \
            and tuple(seq.shape) == tuple(shape[:2]):
        weights = weights * jnp.asarray(seq, weights.dtype).reshape(
            tuple(shape[:2]) + (1,) * (len(shape) - 2))
    return jnp.broadcast_to(weights, shape)


def masked_mean(values, weights):
    """Σ w·v / Σ w over every entry (0 when the weights sum to 0)."""
    weights = jnp.broadcast_to(weights, values.shape)
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1)


def classification_metrics(outputs, targets, mask) -> Dict[str, jax.Array]:
    """Accuracy of ``argmax(outputs)`` for class scores (B, ..., C) with integer (B, ...) or
    one-hot (B, ..., C) targets, weighted by ``mask`` (B, ...); no metrics for other outputs
    (regression, several outputs)."""
    if not hasattr(outputs, "ndim") or not hasattr(targets, "ndim") or outputs.ndim < 2 \
            or outputs.shape[-1] < 2:
        return {}
    if targets.shape == outputs.shape:
        targets = jnp.argmax(targets, axis=-1)
    elif targets.shape != outputs.shape[:-1] or not jnp.issubdtype(targets.dtype, jnp.integer):
        return {}
    return {"accuracy": masked_mean(jnp.argmax(outputs, -1) == targets, mask)}


def _objective(model, loss_fn, metrics_fn, penalty, train):
    """``(params, state, batch, key) -> (loss, (new_state, metrics))`` for `jax.value_and_grad`.

    The model gets the batch's masks as ``context``; the loss is the mean of the per-example
    (B,) or per-step (B, T) losses over the real entries (`entry_weights`)."""

    def objective(params, state, batch, key):
        context = Context(batch.mask, batch.seq_mask)
        outputs, new_state = model.apply(params, state, batch.inputs, key=key, train=train,
                                         context=context)
        values = loss_fn(outputs, batch.targets)
        loss = masked_mean(values, entry_weights(batch, values.shape))
        label_shape = outputs.shape[:-1] if hasattr(outputs, "shape") else values.shape[:1]
        metrics = {"loss": loss,
                   **metrics_fn(outputs, batch.targets, entry_weights(batch, label_shape))}
        total = loss if penalty is None else loss + penalty(params)
        return total, (new_state, metrics)

    return objective


def _check_optimizer(where: str, optimizer) -> Optimizer:
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        hint = (f" (the name {optimizer!r} alone sets no learning rate: use "
                f"fnn.optim.{optimizer}(learning_rate) or fnn.optim.get({optimizer!r})(learning_rate))"
                if isinstance(optimizer, str) else "")
        raise TypeError(f"{where}: `optimizer` must be an fnn.optim optimizer such as "
                        f"fnn.optim.sgd(0.1); got {type(optimizer).__name__} {optimizer!r:.60}"
                        f"{hint}.")
    return optimizer


def make_train_step(model: Layer, loss, optimizer: Optimizer, *,
                    metrics: Callable = classification_metrics,
                    penalty: Optional[Callable] = None, augment: Optional[Callable] = None,
                    jit: bool = True):
    """The pure train step ``(params, state, opt_state, batch, key) -> (params, state, opt_state,
    metrics)``: one gradient step on the masked mean loss (+ ``penalty(params)`` if given).
    ``batch`` is a `Batch` (pytrees of inputs and targets, masks); the model gets its masks as
    ``context``. The optimizer also gets the mini-batch loss, ``update(..., loss=loss)``, for
    loss-driven rules. ``augment(key, inputs) -> inputs`` (e.g. from `fnn.data.augment`)
    transforms each batch first, with its own key ``fold_in(key, 1)``; the model then gets
    ``fold_in(key, 0)``."""
    optimizer = _check_optimizer("make_train_step", optimizer)
    objective = _objective(model, losses.get(loss), metrics, penalty, train=True)

    def step(params, state, opt_state, batch: Batch, key):
        if augment is not None:
            batch = batch._replace(inputs=augment(jax.random.fold_in(key, 1), batch.inputs))
            key = jax.random.fold_in(key, 0)
        grads, (state, batch_metrics) = jax.grad(objective, has_aux=True)(params, state, batch, key)
        updates, opt_state = optimizer.update(grads, opt_state, params, loss=batch_metrics["loss"])
        return apply_updates(params, updates), state, opt_state, batch_metrics

    return jax.jit(step) if jit else step


@functools.partial(jax.jit, static_argnames=("model", "loss_fn", "metrics"))
def _eval_metrics(params, state, batch, *, model, loss_fn, metrics):
    """One eval-mode batch's metrics; compiled once per (model, loss, metrics, shapes)."""
    return _objective(model, loss_fn, metrics, None, train=False)(params, state, batch, None)[1][1]


def make_eval_step(model: Layer, loss, *, metrics: Callable = classification_metrics):
    """``(params, state, batch) -> metrics`` in eval mode (no key, state unchanged), jitted; the
    compiled function is shared by every step made for the same model, loss and metrics."""
    return functools.partial(_eval_metrics, model=model, loss_fn=losses.get(loss), metrics=metrics)


# ----------------------------------------------------------------------------- evaluating


class _Mean:
    """Running, count-weighted means of metric dicts, accumulated on the device."""

    def __init__(self, sums=None, count=0.0):
        self.sums, self.count = sums, count

    def add(self, metrics, count):
        weighted = {k: v * count for k, v in metrics.items()}
        self.sums = weighted if self.sums is None else {k: self.sums[k] + weighted[k] for k in weighted}
        self.count = self.count + count

    def result(self) -> Dict[str, float]:
        count = float(self.count)
        return {k: float(v) / count for k, v in (self.sums or {}).items()}


def _padded(batch: Batch, mask) -> Batch:
    """A padded batch from `fnn.data.batches`: its padding mask times the data's own mask."""
    return batch._replace(mask=mask if batch.mask is None else mask * batch.mask)


def evaluate(model: Layer, params, state, data, *, loss, batch_size=1024,
             metrics: Callable = classification_metrics) -> Dict[str, float]:
    """Mean loss and metrics of the model in eval mode over ``data``: an ``(inputs, targets)``
    pair of pytrees or a `Batch`. Compiled once per model, loss, metrics and batch shape."""
    data = as_batch(data, "data")
    step = make_eval_step(model, loss, metrics=metrics)
    mean = _Mean()
    for batch, mask in batches(data, batch_size, pad=True):
        batch = _padded(batch, mask)
        mean.add(step(params, state, batch), float(np.sum(batch.mask)))
    return mean.result()


@functools.partial(jax.jit, static_argnames=("model",))
def _predict_batch(params, state, inputs, context, *, model):
    return model.apply(params, state, inputs, train=False, context=context)[0]


def predict(model: Layer, params, state, inputs, *, batch_size=1024, seq_mask=None):
    """The model's outputs in eval mode for ``inputs`` (a pytree of arrays (N, ...)), computed
    batch by batch; the outputs keep the model's output structure. ``seq_mask`` (N, T), when
    given, reaches the model as ``context.seq_mask``. Compiled once per model and batch shape."""
    outputs = []
    for (xb, sb), mask in batches((inputs, seq_mask), batch_size, pad=True):
        real = int(mask.sum())
        y = _predict_batch(params, state, xb, Context(mask, sb), model=model)
        outputs.append(jax.tree_util.tree_map(lambda a: a[:real], y))
    return jax.tree_util.tree_map(lambda *parts: jnp.concatenate(parts), *outputs)


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


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; the message names the epoch and batch."""


def _check_finite(mean: _Mean, step_losses, epoch: int, first_batch: int, batches_per_epoch: int,
                  checkpoint_path) -> None:
    """Raise `TrainingDiverged` if the epoch's running loss is not finite (one device read)."""
    if mean.sums is None or np.isfinite(float(mean.sums["loss"])):
        return
    values = np.asarray(jnp.stack(step_losses))
    bad = first_batch + int(np.argmin(np.isfinite(values)))
    kept = (f" The checkpoint {checkpoint_path} keeps the last state saved before it."
            if checkpoint_path else "")
    raise TrainingDiverged(
        f"fit: the training loss became {values[bad - first_batch]} at epoch {epoch + 1}, batch "
        f"{bad + 1} of {batches_per_epoch}; the parameters are no longer finite.{kept} Lower the "
        "learning rate, or check the inputs and targets for NaN or infinite values "
        "(check_finite=False trains on regardless).")


def _checkpoint_tree(train_state: "TrainState", key, es, progress: Dict[str, Any]):
    """What `fit` saves: the train state, the key, early stopping, and the run's progress."""
    return {"params": train_state.params, "state": train_state.state,
            "opt_state": train_state.opt_state, "key": key, "early_stopping": es,
            "progress": progress}


def _checkpoint_template(train_state: "TrainState", key, es):
    """``like=`` for `checkpoint.load`: the live structure (so NamedTuple classes come from the
    running code, not from imports named in the file); the progress record as saved."""
    if es is not None:
        es = es._replace(best=checkpoint.AS_SAVED, best_epoch=checkpoint.AS_SAVED,
                         wait=checkpoint.AS_SAVED)
    return _checkpoint_tree(train_state, key, es, checkpoint.AS_SAVED)


def fit(model: Layer, params, state, train_data, *, loss, optimizer: Optimizer, key,
        epochs: int, batch_size=32, validation_data=None,
        early_stopping: Optional[EarlyStopping] = None, opt_state=None,
        metrics: Callable = classification_metrics, penalty: Optional[Callable] = None,
        augment: Optional[Callable] = None, hooks: Sequence[Hook] = (),
        checkpoint_path: Optional[str] = None, checkpoint_every: Optional[int] = None,
        resume: bool = False, check_finite: bool = True, progress: bool = True,
        log: Callable = print) -> FitResult:
    """Train for ``epochs`` epochs of shuffled mini-batches; returns a `FitResult`.

    ``train_data`` (and ``validation_data``) is an ``(inputs, targets)`` pair of pytrees of
    arrays with a common leading axis (``((x_a, x_b), y)`` trains a two-input model), or a
    `Batch` carrying an example mask and a sequence mask as well. ``batch_size``: 1 is online
    learning, ``"full"`` full-batch. Every batch has the same shape: the last one is padded by
    repeating examples, with ``context.mask`` 0 for the repeats, so the step compiles once and
    padded rows count for nothing (in the loss, the metrics and the statistics of layers such
    as BatchNorm, which read the mask).

    Epoch ``e`` shuffles with ``fold_in(key, e)`` and its batch ``i`` gets the step key
    ``fold_in(fold_in(key, e), i)``. With ``checkpoint_path`` the run is saved atomically at the
    end of every epoch and, with ``checkpoint_every=N``, after every N steps; ``resume=True``
    continues from that file (restored into the structure of the given params, state and
    optimizer state), mid-epoch if need be, and gives exactly the result of an uninterrupted run.
    Each hook is called as ``hook(epoch, logs, train_state)`` after every epoch; entries it adds
    to ``logs`` join the history, and returning ``True`` (exactly: not merely a truthy value)
    stops training. ``penalty(params)`` is added to the loss (e.g. an L2 term) and
    ``augment(key, inputs)`` transforms each training batch.

    A loss that becomes NaN or infinite stops training with a `TrainingDiverged` error naming
    the epoch and the first bad batch, checked at every epoch end and before every save, so the
    checkpoint keeps the last finite state; ``check_finite=False`` trains on regardless.
    """
    data = as_batch(train_data, "train_data")
    val = None if validation_data is None else as_batch(validation_data, "validation_data")
    n = num_examples(data, "train_data")
    size = resolve_batch_size("fit", batch_size, n)
    if checkpoint_every is not None:
        checkpoint_every = check_int("fit", "checkpoint_every", checkpoint_every)
        if not checkpoint_path:
            raise ValueError("fit: `checkpoint_every` needs a `checkpoint_path` to save to.")
    if early_stopping is not None and early_stopping.monitor.startswith("val_") and val is None:
        raise ValueError(f"fit: early stopping monitors {early_stopping.monitor!r} but no "
                         "`validation_data` was given.")
    optimizer = _check_optimizer("fit", optimizer)
    step = make_train_step(model, loss, optimizer, metrics=metrics, penalty=penalty,
                           augment=augment)
    opt_state = optimizer.init(params) if opt_state is None else opt_state
    es = None if early_stopping is None else early_stopping_init(early_stopping, params, state)
    history: Dict[str, List[float]] = {}
    first_epoch, first_batch, stopped, mean = 0, 0, False, _Mean()

    if resume and checkpoint_path and os.path.exists(checkpoint_path):
        like = _checkpoint_template(TrainState(params, state, opt_state), key, es)
        saved = checkpoint.load(checkpoint_path, like=like)
        params, state, opt_state = saved["params"], saved["state"], saved["opt_state"]
        key, es, done = saved["key"], saved["early_stopping"], saved["progress"]
        history, stopped = done["history"], done["stopped"]
        first_epoch, first_batch = done["epoch"], done["batch"]
        mean = _Mean(done["sums"], done["count"])
        where = f"epoch {first_epoch}" + (f", batch {first_batch}" if first_batch else "")
        log(f"resumed from {checkpoint_path} after {where}")

    def save(epoch, batch, running: _Mean):
        progress_record = {"epoch": epoch, "batch": batch, "sums": running.sums,
                           "count": float(running.count), "history": history,
                           "stopped": stopped}
        checkpoint.save(checkpoint_path, _checkpoint_tree(
            TrainState(params, state, opt_state), key, es, progress_record))

    batches_per_epoch = math.ceil(n / size)
    remaining = 0 if stopped else max(epochs - first_epoch, 0)
    bar = progress_bar(remaining * batches_per_epoch - first_batch, "train", progress,
                       unit="batch")
    for epoch in range(first_epoch, first_epoch + remaining):
        epoch_key = jax.random.fold_in(key, epoch)
        if bar is not None:
            bar.set_description(f"epoch {epoch + 1}/{epochs}")
        step_losses = []  # device scalars: read only if the epoch's loss is not finite
        for i, (batch, mask) in enumerate(
                batches(data, size, key=epoch_key, pad=True, skip=first_batch), first_batch):
            batch = _padded(batch, mask)
            params, state, opt_state, batch_metrics = step(
                params, state, opt_state, batch, jax.random.fold_in(epoch_key, i))
            mean.add(batch_metrics, float(np.sum(batch.mask)))
            step_losses.append(batch_metrics["loss"])
            if bar is not None:
                bar.update(1)
                if i % 20 == 0:  # fetching the running means syncs with the device: not every step
                    bar.set_postfix({k: f"{v:.4f}" for k, v in mean.result().items()},
                                    refresh=False)
            global_step = epoch * batches_per_epoch + i + 1
            if checkpoint_every and global_step % checkpoint_every == 0 \
                    and i + 1 < batches_per_epoch:  # the epoch's end is saved below
                if check_finite:
                    _check_finite(mean, step_losses, epoch, first_batch, batches_per_epoch,
                                  checkpoint_path)
                save(epoch, i + 1, mean)
        if check_finite:
            _check_finite(mean, step_losses, epoch, first_batch, batches_per_epoch,
                          checkpoint_path)
        first_batch = 0
        logs, mean = mean.result(), _Mean()
        if val is not None:
            val_logs = evaluate(model, params, state, val, loss=loss, batch_size=max(size, 256),
                                metrics=metrics)
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
            save(epoch + 1, 0, mean)
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
