"""Training and evaluation: a pure, jitted train step and a plain-Python `fit` loop around it.

The step is ``(params, state, opt_state, batch, key) -> (params, state, opt_state, metrics)``.
Every batch has the same shape: the last, smaller one is padded with repeated examples whose
``mask`` is 0, so the step compiles once per run and padded examples count for nothing.
"""
from __future__ import annotations

import functools
import math
import os
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import checkpoint, losses, parallel
from fnn.core import Context, Layer
from fnn.checks import check_int
from fnn.data.splits import batch_indices, batches, num_examples, resolve_batch_size
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
    per-step (B, T, ...) quantity are real: the example mask, times the sequence mask when
    ``shape`` starts with (B, T) and the batch's ``seq_mask`` is one (B, T) array, or a dict of
    masks whose ``"target"`` entry is one (the steps of the targets, as in a seq2seq batch
    ``{"source": ..., "target": ...}``)."""
    mask = jnp.ones(shape[:1]) if batch.mask is None else jnp.asarray(batch.mask)
    weights = mask.reshape(mask.shape + (1,) * (len(shape) - 1))
    seq = batch.seq_mask
    if isinstance(seq, dict):
        seq = seq.get("target")
    if len(shape) >= 2 and seq is not None and tuple(seq.shape) == tuple(shape[:2]):
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


def _cast_floats(tree, dtype):
    """``tree`` with its floating-point arrays cast to ``dtype`` (integers, e.g. labels, kept)."""
    return jax.tree_util.tree_map(
        lambda a: a.astype(dtype) if jnp.issubdtype(jnp.result_type(a), jnp.floating) else a,
        tree)


COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def _check_compute_dtype(where: str, compute_dtype):
    if compute_dtype is None:
        return None
    if str(jnp.dtype(compute_dtype)) not in COMPUTE_DTYPES:
        raise ValueError(f"{where}: `compute_dtype` must be one of {COMPUTE_DTYPES} (or None: "
                         f"the parameters' own); got {compute_dtype!r}.")
    return jnp.dtype(compute_dtype)


def _objective(model, loss_fn, metrics_fn, penalty, train, compute_dtype=None, loss_scale=1.0):
    """``(params, state, batch, key) -> (loss, (new_state, metrics))`` for `jax.value_and_grad`.

    The model gets the batch's masks as ``context``; the loss is the mean of the per-example
    (B,) or per-step (B, T) losses over the real entries (`entry_weights`). With
    ``compute_dtype`` the model runs on copies of the parameters and inputs in that dtype (mixed
    precision: the gradient still reaches the float32 master parameters through the cast) and
    its outputs are cast back to float32 for the loss; the returned loss is multiplied by
    ``loss_scale`` (the metrics keep the unscaled loss). The auxiliary output ends with the sums
    of the loss's and the metrics' entry weights, which `_sliced_gradients` combines slices by."""

    def objective(params, state, batch, key):
        context = Context(batch.mask, batch.seq_mask)
        inputs, run_params = batch.inputs, params
        if compute_dtype is not None:
            inputs, run_params = _cast_floats(inputs, compute_dtype), _cast_floats(params, compute_dtype)
        outputs, new_state = model.apply(run_params, state, inputs, key=key, train=train,
                                         context=context)
        if compute_dtype is not None:
            outputs = _cast_floats(outputs, jnp.float32)
            new_state = jax.tree_util.tree_map(lambda new, old: new.astype(jnp.result_type(old)),
                                               new_state, state)
        values = loss_fn(outputs, batch.targets)
        weights = entry_weights(batch, values.shape)
        loss = masked_mean(values, weights)
        label_shape = outputs.shape[:-1] if hasattr(outputs, "shape") else values.shape[:1]
        label_weights = entry_weights(batch, label_shape)
        metrics = {"loss": loss, **metrics_fn(outputs, batch.targets, label_weights)}
        total = loss if penalty is None else loss + penalty(params)
        return total * loss_scale, (new_state, metrics, (jnp.sum(weights), jnp.sum(label_weights)))

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
                    compute_dtype=None, loss_scale: float = 1.0, microbatches: int = 1,
                    jit: bool = True):
    """The pure train step ``(params, state, opt_state, batch, key) -> (params, state, opt_state,
    metrics)``: one gradient step on the masked mean loss (+ ``penalty(params)`` if given).
    ``batch`` is a `Batch` (pytrees of inputs and targets, masks); the model gets its masks as
    ``context``. The optimizer also gets the mini-batch loss, ``update(..., loss=loss)``, for
    loss-driven rules. ``augment(key, inputs) -> inputs`` (e.g. from `fnn.data.augment`)
    transforms each batch first, with its own key ``fold_in(key, 1)``; the model then gets
    ``fold_in(key, 0)``.

    Mixed precision: ``compute_dtype="bfloat16"`` (or ``"float16"``) runs the forward and
    backward pass in that dtype on a cast copy of the float32 parameters, which stay the ones the
    optimizer updates; ``loss_scale`` S multiplies the loss before differentiation and divides
    the gradients after it, so that float16 gradients do not underflow (bfloat16 needs none).

    ``microbatches=K`` cuts the batch (B rows, B a multiple of K) into K interleaved slices
    (rows k, k + K, k + 2K, ...) that run forward and backward as K independent computations,
    which XLA can run side by side on several CPU cores; their gradients and metrics are combined
    by the slices' entry weights, ``g = Σ_k W_k·g_k / Σ_k W_k`` (W_k the slice's real entries),
    the gradient of the whole batch's masked mean loss, up to float rounding. Slice k's model
    key is ``fold_in(key, k)``. Layers with batch statistics (BatchNorm) see each slice as a
    batch of its own and update their running averages once per slice, as in gradient
    accumulation. Memory is not saved: the slices are one program."""
    optimizer = _check_optimizer("make_train_step", optimizer)
    compute_dtype = _check_compute_dtype("make_train_step", compute_dtype)
    if not (isinstance(loss_scale, (int, float)) and loss_scale > 0):
        raise ValueError(f"make_train_step: `loss_scale` must be a number > 0; got {loss_scale!r}.")
    microbatches = check_int("make_train_step", "microbatches", microbatches)
    objective = _objective(model, losses.get(loss), metrics,
                           penalty if microbatches == 1 else None, train=True,
                           compute_dtype=compute_dtype, loss_scale=float(loss_scale))

    def gradients(params, state, batch, key):
        if microbatches == 1:
            grads, (state, batch_metrics, _) = jax.grad(objective, has_aux=True)(
                params, state, batch, key)
            return grads, state, batch_metrics
        grads, state, batch_metrics = _sliced_gradients(objective, microbatches, params, state,
                                                        batch, key)
        if penalty is not None:
            grads = jax.tree_util.tree_map(
                jnp.add, grads, jax.grad(lambda p: penalty(p) * loss_scale)(params))
        return grads, state, batch_metrics

    def step(params, state, opt_state, batch: Batch, key):
        if augment is not None:
            batch = batch._replace(inputs=augment(jax.random.fold_in(key, 1), batch.inputs))
            key = jax.random.fold_in(key, 0)
        grads, state, batch_metrics = gradients(params, state, batch, key)
        if loss_scale != 1.0:
            grads = jax.tree_util.tree_map(lambda g: g / loss_scale, grads)
        updates, opt_state = optimizer.update(grads, opt_state, params, loss=batch_metrics["loss"])
        return apply_updates(params, updates), state, opt_state, batch_metrics

    return jax.jit(step) if jit else step


def _sliced_gradients(objective, slices: int, params, state, batch: Batch, key):
    """`make_train_step`'s ``microbatches``: the gradient of ``objective`` (a masked mean, from
    `_objective`, without penalty) over ``batch``, computed on ``slices`` interleaved slices.
    Slice k's mean is Σ w·v / max(W_k, 1), so max(W_k, 1)/max(W, 1) turns its gradient and metrics
    into its share of the whole batch's (W = Σ_k W_k; the labels' weights for the metrics other
    than the loss). The state passes from slice to slice."""
    rows = jax.tree_util.tree_leaves(batch.targets)[0].shape[0]
    if rows % slices:
        raise ValueError(f"make_train_step: a batch of {rows} examples does not split into "
                         f"`microbatches`={slices} equal slices; use a batch size that is a "
                         f"multiple of {slices}.")
    parts = []
    for k in range(slices):
        part = jax.tree_util.tree_map(lambda a: a[k::slices], batch)
        grads, (state, metrics, weights) = jax.grad(objective, has_aux=True)(
            params, state, part, jax.random.fold_in(key, k))
        parts.append((grads, metrics, weights))
    total_loss, total_labels = (sum(p[2][i] for p in parts) for i in (0, 1))

    def share(weight, total):
        return jnp.maximum(weight, 1) / jnp.maximum(total, 1)

    loss_shares = [share(p[2][0], total_loss) for p in parts]
    label_shares = [share(p[2][1], total_labels) for p in parts]
    grads = jax.tree_util.tree_map(
        lambda *g: sum(gk * wk for gk, wk in zip(g, loss_shares)), *[p[0] for p in parts])
    metrics = {name: sum(p[1][name] * (loss_shares if name == "loss" else label_shares)[k]
                         for k, p in enumerate(parts))
               for name in parts[0][1]}
    return grads, state, metrics


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


# The batch size of evaluation: `evaluate`'s and `predict`'s default, and of `fit`'s validation
# (unless the training batch is larger), so that validating during `fit` and testing afterwards
# run one compiled program.
EVAL_BATCH_SIZE = 1024


def evaluate(model: Layer, params, state, data, *, loss, batch_size=EVAL_BATCH_SIZE,
             metrics: Callable = classification_metrics) -> Dict[str, float]:
    """Mean loss and metrics of the model in eval mode over ``data``: an ``(inputs, targets)``
    pair of pytrees or a `Batch`, its integer class labels checked first (`check_labels`).
    Compiled once per model, loss, metrics and batch shape."""
    data = as_batch(data, "data")
    if num_examples(data, "data") == 0:
        raise ValueError("evaluate: `data` holds no examples.")
    check_labels("evaluate", model, params, state, data)
    return _evaluate(model, params, state, data, loss=loss, batch_size=batch_size,
                     metrics=metrics)


def _evaluate(model: Layer, params, state, data: Batch, *, loss, batch_size,
              metrics: Callable) -> Dict[str, float]:
    step = make_eval_step(model, loss, metrics=metrics)
    mean = _Mean()
    for batch, mask in batches(data, batch_size, pad=True):
        batch = _padded(batch, mask)
        mean.add(step(params, state, batch), float(np.sum(batch.mask)))
    return mean.result()


@functools.partial(jax.jit, static_argnames=("model",))
def _predict_batch(params, state, inputs, context, *, model):
    return model.apply(params, state, inputs, train=False, context=context)[0]


def predict(model: Layer, params, state, inputs, *, batch_size=EVAL_BATCH_SIZE, seq_mask=None):
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

DEVICE_DATA_LIMIT = 1 << 30
"""Bytes of training data `fit` copies to the device once and batches there (larger host data is
batched on the host, a few steps per call); data already on the device always stays there."""

HOST_CHUNK_BYTES = 64 << 20
"""Bytes of host batches `fit` stacks into one call when it batches on the host."""


def progress_bar(total: int, desc: str = "", enabled: bool = True, unit: str = "it",
                 leave: bool = True):
    """A tqdm progress bar over ``total`` units, or None when disabled or tqdm (the optional
    ``viz`` extra) is missing; callers skip their bar updates on None."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, mininterval=0.5,
                leave=leave)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; the message names the epoch and batch."""


def _check_finite(sums, chunk_losses, epoch: int, first_batch: int, batches_per_epoch: int,
                  checkpoint_path) -> None:
    """Raise `TrainingDiverged` if the epoch's running loss is not finite (one device read)."""
    if sums is None or np.isfinite(float(sums["loss"])):
        return
    values = np.concatenate([np.asarray(losses_) for losses_ in chunk_losses])
    bad = first_batch + int(np.argmin(np.isfinite(values)))
    kept = (f" The checkpoint {checkpoint_path} keeps the last state saved before it."
            if checkpoint_path and os.path.exists(checkpoint_path) else "")
    raise TrainingDiverged(
        f"fit: the training loss became {values[bad - first_batch]} at epoch {epoch + 1}, batch "
        f"{bad + 1} of {batches_per_epoch}; the parameters are no longer finite.{kept} Lower the "
        "learning rate, or check the inputs and targets for NaN or infinite values "
        "(check_finite=False trains on regardless).")


def check_labels(where: str, model: Layer, params, state, data: Batch) -> None:
    """Raise a ValueError naming the offending values unless integer class labels fit the model.

    Checked when the model's output is class scores (B, ..., C), C >= 2, and ``data.targets`` is
    one integer array (B, ...) of the shape the scores have without C: every label must lie in
    ``[0, C)``; per-step targets (B, T, ...) may also hold `fnn.losses.PADDING_LABEL` (−1), the
    label of padded steps. Other outputs and targets (one-hot, regression) are not checked.
    """
    targets = data.targets
    if not (hasattr(targets, "dtype") and np.issubdtype(targets.dtype, np.integer)) \
            or num_examples(data, where) == 0:
        return
    one = jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct((1, *np.shape(a)[1:]), a.dtype), data.inputs)
    outputs = jax.eval_shape(lambda p, s, x: model.apply(p, s, x, train=False)[0],
                             params, state, one)
    if not (hasattr(outputs, "shape") and len(outputs.shape) >= 2
            and outputs.shape[-1] >= 2 and tuple(outputs.shape[1:-1]) == targets.shape[1:]):
        return
    classes = outputs.shape[-1]
    labels = np.asarray(targets)
    allowed = (labels >= 0) & (labels < classes)
    if labels.ndim >= 2:
        allowed |= labels == losses.PADDING_LABEL
    if allowed.all():
        return
    bad = np.unique(labels[~allowed])
    shown = ", ".join(str(v) for v in bad[:10]) + (", ..." if len(bad) > 10 else "")
    padding = (f" or {losses.PADDING_LABEL} (a padded step)" if labels.ndim >= 2 else "")
    raise ValueError(
        f"{where}: class labels must be integers in [0, {classes}){padding} for a model with "
        f"{classes} outputs; {int((~allowed).sum())} of {labels.size} labels are not: {shown}.")


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


def _nbytes(tree) -> int:
    return sum(int(np.prod(np.shape(a))) * np.dtype(a.dtype).itemsize
               for a in jax.tree_util.tree_leaves(tree))


def _on_device(tree) -> bool:
    leaves = jax.tree_util.tree_leaves(tree)
    return bool(leaves) and all(isinstance(a, jax.Array) for a in leaves)


def _fresh_copy(tree):
    """Device copies of ``tree``'s arrays (same placement): what `fit` donates, so the caller's
    arrays stay valid. (`jax.device_put` copies without compiling a program per shape, as an
    eager ``a.copy()`` would.)"""
    def copy(a):
        if not isinstance(a, jax.Array):
            return jnp.array(a)
        return jax.device_put(a, a.sharding if a.committed else None, may_alias=False)

    return jax.tree_util.tree_map(copy, tree)


def _make_train_loop(model: Layer, loss, optimizer: Optimizer, *, metrics: Callable,
                     penalty: Optional[Callable], augment: Optional[Callable], gather: bool,
                     mesh=None, compute_dtype=None, loss_scale: float = 1.0,
                     microbatches: int = 1):
    """K train steps in one compiled call, and zeros for its metric sums: ``(loop, zero_sums)``,
    ``loop(carry, data, xs, epoch_key) -> (carry, losses)``, ``zero_sums(carry3, data, xs,
    epoch_key)`` with ``carry3 = (params, state, opt_state)``.

    ``carry`` is ``(params, state, opt_state, sums, count)`` (donated: the call reuses its
    buffers), ``sums`` the metrics of `make_train_step` summed with weight ``count`` = the number
    of real examples; ``xs = (rows, mask, steps)`` holds K steps: ``mask`` (K, B) the padding
    masks, ``steps`` (K,) the step numbers i (step i's key is ``fold_in(epoch_key, i)``) and, with
    ``gather``, ``rows`` (K, B) the example indices taken from ``data`` (a `Batch` on the device),
    without it ``rows`` the K batches themselves (a `Batch` of arrays (K, B, ...)). ``losses``
    (K,) are the steps' mini-batch losses. One `lax.scan` runs the K steps, so per-step keys,
    batches and metric sums cost no Python round-trip; the result equals K calls of the step.
    With a ``mesh`` each batch is split over its ``"data"`` axis (`fnn.parallel`).
    """
    step = make_train_step(model, loss, optimizer, metrics=metrics, penalty=penalty,
                           augment=augment, compute_dtype=compute_dtype, loss_scale=loss_scale,
                           microbatches=microbatches, jit=False)

    def batch_of(data, rows, mask):
        batch = _padded(jax.tree_util.tree_map(lambda a: a[rows], data) if gather else rows, mask)
        return batch if mesh is None else parallel.constrain_batch(batch, mesh)

    def loop(carry, data, xs, epoch_key):
        def body(carry, x):
            params, state, opt_state, sums, count = carry
            rows, mask, i = x
            batch = batch_of(data, rows, mask)
            params, state, opt_state, batch_metrics = step(
                params, state, opt_state, batch, jax.random.fold_in(epoch_key, i))
            real = jnp.sum(batch.mask)
            sums = {k: sums[k] + v * real for k, v in batch_metrics.items()}
            return (params, state, opt_state, sums, count + real), batch_metrics["loss"]

        if jax.tree_util.tree_leaves(xs)[0].shape[0] == 1:  # one step: no loop at all
            carry, loss = body(carry, jax.tree_util.tree_map(lambda a: a[0], xs))
            return carry, loss[None]
        return jax.lax.scan(body, carry, xs)

    forward = _objective(model, losses.get(loss), metrics, None, train=True,
                         compute_dtype=_check_compute_dtype("fit", compute_dtype))

    def zero_sums(carry3, data, xs, epoch_key):  # the shapes of a forward pass's metrics
        rows, mask, i = jax.tree_util.tree_map(lambda a: a[0], xs)
        shapes = jax.eval_shape(
            lambda c: forward(c[0], c[1], batch_of(data, rows, mask), epoch_key)[1][1], carry3)
        return {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items()}

    return jax.jit(loop, donate_argnums=(0,)), zero_sums


class _Report:
    """What `fit` shows: a bar within each epoch (on a terminal) and one line per epoch."""

    def __init__(self, progress, epochs: int, steps: int, log: Callable):
        if progress not in (True, False, "bar", "lines"):
            raise ValueError(f"fit: `progress` must be True (a bar on a terminal, and a line per "
                             f"epoch), 'lines' (a line per epoch) or False (nothing); got "
                             f"{progress!r}.")
        self.lines = progress is not False
        self.bar_wanted = progress == "bar" or (progress is True and sys.stderr.isatty())
        self.epochs, self.steps, self.log, self.bar = epochs, steps, log, None

    def start_epoch(self, epoch: int, done: int) -> None:
        self.started = time.perf_counter()
        if self.bar_wanted:
            self.bar = progress_bar(self.steps, f"epoch {epoch + 1}/{self.epochs}", unit="step",
                                    leave=False)
            if self.bar is not None and done:
                self.bar.update(done)

    def advance(self, steps: int, running: Callable[[], Dict[str, float]]) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in running().items()}, refresh=False)
            self.bar.update(steps)

    def end_epoch(self, epoch: int, logs: Dict[str, float], note: str = "") -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.lines:
            seconds = time.perf_counter() - self.started
            values = " - ".join(f"{k} {v:.4f}" for k, v in logs.items())
            self.log(f"epoch {epoch + 1}/{self.epochs} - {seconds:.1f}s - {values}"
                     + (f" - {note}" if note else ""))

    def say(self, text: str) -> None:
        if self.lines:
            self.log(text)


def _has_convolutions(layer: Layer) -> bool:
    """Whether ``layer`` or any of its children is a convolution. On XLA:CPU a convolution
    inside a loop (`lax.scan`) runs several times slower than the same step called once per
    batch (measured: a CNN's 20 steps 8.3 s in a scan, 2.2 s as 20 calls, 1.5 s unrolled), so
    `fit` runs such models one step per call."""
    return "conv" in layer.kind or any(_has_convolutions(child)
                                       for _, child in (layer.layers or ()))


def _chunk_bounds(first: int, steps: int, size: int, global_start: int,
                  every: Optional[int]) -> List[int]:
    """Where an epoch's steps ``first..steps`` are cut into calls: every ``size`` steps and at
    each mid-epoch checkpoint (global step a multiple of ``every``)."""
    cuts = {first, steps, *range(first - first % size + size, steps, size)}
    if every:
        cuts |= {j for j in range(first + 1, steps) if (global_start + j) % every == 0}
    return sorted(cuts)


def _check_processes(mesh, shard_params: bool, n: int, size: int) -> int:
    """For a multi-process run: check the mesh and the shards; return this process's batch size
    (the global ``size`` split over the processes; ``"full"`` is every process's whole shard)."""
    from jax.experimental import multihost_utils

    if mesh is None:
        raise ValueError(f"fit: {jax.process_count()} processes train together "
                         "(jax.distributed), so `mesh` is required: fnn.parallel.mesh().")
    if shard_params:
        raise ValueError("fit: `shard_params` is not supported across processes yet; the "
                         "parameters are replicated.")
    counts = [int(c) for c in np.ravel(multihost_utils.process_allgather(np.int32(n)))]
    if len(set(counts)) > 1:
        raise ValueError(f"fit: every process must pass a shard of the same number of training "
                         f"examples (fnn.parallel.process_shard); got {counts}.")
    return min(math.ceil(size / jax.process_count()), n)


def fit(model: Layer, params, state, train_data, *, loss, optimizer: Optimizer, key,
        epochs: int, batch_size=32, validation_data=None,
        early_stopping: Optional[EarlyStopping] = None, opt_state=None,
        metrics: Callable = classification_metrics, penalty: Optional[Callable] = None,
        augment: Optional[Callable] = None, hooks: Sequence[Hook] = (),
        checkpoint_path: Optional[str] = None, checkpoint_every: Optional[int] = None,
        resume: bool = False, check_finite: bool = True, steps_per_call: Optional[int] = None,
        mesh=None, shard_params: bool = False, compute_dtype=None, loss_scale: float = 1.0,
        microbatches: int = 1, progress=True, log: Callable = print) -> FitResult:
    """Train for ``epochs`` epochs of shuffled mini-batches; returns a `FitResult`.

    ``train_data`` (and ``validation_data``) is an ``(inputs, targets)`` pair of pytrees of
    arrays with a common leading axis (``((x_a, x_b), y)`` trains a two-input model), or a
    `Batch` carrying an example mask and a sequence mask as well. ``batch_size``: 1 is online
    learning, ``"full"`` full-batch. Every batch has the same shape: the last one is padded by
    repeating examples, with ``context.mask`` 0 for the repeats, so the step compiles once and
    padded rows count for nothing (in the loss, the metrics and the statistics of layers such
    as BatchNorm, which read the mask). Integer class labels are checked against the model's
    outputs first (`check_labels`).

    Epoch ``e`` shuffles with ``fold_in(key, e)`` (`fnn.data.batch_indices`) and its batch ``i``
    gets the step key ``fold_in(fold_in(key, e), i)``. Training data up to `DEVICE_DATA_LIMIT`
    bytes (and any data already on the device) is copied to the device once and batched there;
    ``steps_per_call`` steps run in one compiled `lax.scan`: by default a
    whole epoch, or a twentieth of one when a progress bar is shown, and one step per call for
    models with convolutions (which XLA:CPU runs slowly inside a loop). The parameters, state and
    optimizer state are donated to each call (the arrays passed in are copied first and stay
    valid). The results do not depend on ``steps_per_call``.

    With ``mesh`` (`fnn.parallel.mesh()`) training is data-parallel over the mesh's ``"data"``
    axis: each batch is split over the devices (a batch size that is not a multiple of their
    number is padded with masked rows), the parameters, state and optimizer state replicated, or
    with ``shard_params`` large kernels split over the ``"model"`` axis; see `fnn.parallel`.
    Across several processes (`fnn.parallel.initialize`), each passes its own shard of the
    training data (the same number of examples each) and the same validation data;
    ``batch_size`` is the global batch, shared out over the processes, and process 0 writes the
    checkpoint.
    ``compute_dtype`` and ``loss_scale`` train in mixed precision, and ``microbatches=K`` runs
    each batch as K independent slices that XLA can spread over CPU cores (`make_train_step`;
    the batch size must be a multiple of K); wrap a block in `fnn.layers.remat` to recompute
    its activations in the backward pass instead of storing them.

    With ``checkpoint_path`` the run is saved atomically at the end of every epoch and, with
    ``checkpoint_every=N``, after every N steps; ``resume=True`` continues from that file
    (restored into the structure of the given params, state and optimizer state), mid-epoch if
    need be, and gives exactly the result of an uninterrupted run. Each hook is called as
    ``hook(epoch, logs, train_state)`` after every epoch; entries it adds to ``logs`` join the
    history, and returning ``True`` (exactly: not merely a truthy value) stops training.
    ``penalty(params)`` is added to the loss (e.g. an L2 term) and ``augment(key, inputs)``
    transforms each training batch.

    ``progress``: True shows a bar within each epoch on a terminal and, always, one line per
    epoch (time, metrics, the early-stopping decision) through ``log``; ``"lines"`` only the
    lines; False nothing. A loss that becomes NaN or infinite stops training with a
    `TrainingDiverged` error naming the epoch and the first bad batch, checked at every epoch end
    and before every save, so the checkpoint keeps the last finite state; ``check_finite=False``
    trains on regardless.
    """
    data = as_batch(train_data, "train_data")
    val = None if validation_data is None else as_batch(validation_data, "validation_data")
    n = num_examples(data, "train_data")
    if n == 0:
        raise ValueError("fit: `train_data` holds no examples.")
    processes = jax.process_count()  # several processes: ``batch_size`` is the global batch
    size = resolve_batch_size("fit", batch_size, n * processes)
    if checkpoint_every is not None:
        checkpoint_every = check_int("fit", "checkpoint_every", checkpoint_every)
        if not checkpoint_path:
            raise ValueError("fit: `checkpoint_every` needs a `checkpoint_path` to save to.")
    if steps_per_call is not None:
        steps_per_call = check_int("fit", "steps_per_call", steps_per_call)
    microbatches = check_int("fit", "microbatches", microbatches)
    if min(size, n * processes) % microbatches:
        raise ValueError(f"fit: `microbatches`={microbatches} must divide the batch size "
                         f"{min(size, n * processes)} (`batch_size`={batch_size!r}).")
    if mesh is not None:
        mesh = parallel.check_mesh("fit", mesh)
    if early_stopping is not None and early_stopping.monitor.startswith("val_") and val is None:
        raise ValueError(f"fit: early stopping monitors {early_stopping.monitor!r} but no "
                         "`validation_data` was given.")
    optimizer = _check_optimizer("fit", optimizer)
    check_labels("fit: train_data", model, params, state, data)
    if val is not None:
        check_labels("fit: validation_data", model, params, state, val)
    opt_state = optimizer.init(params) if opt_state is None else opt_state
    es = None if early_stopping is None else early_stopping_init(early_stopping, params, state)
    history: Dict[str, List[float]] = {}
    first_epoch, first_batch, stopped = 0, 0, False
    sums, count = None, 0.0

    if resume and checkpoint_path and os.path.exists(checkpoint_path):
        like = _checkpoint_template(TrainState(params, state, opt_state), key, es)
        saved = checkpoint.load(checkpoint_path, like=like)
        params, state, opt_state = saved["params"], saved["state"], saved["opt_state"]
        key, es, done = saved["key"], saved["early_stopping"], saved["progress"]
        history = {k: [float(v) for v in np.atleast_1d(values)]
                   for k, values in done["history"].items()}
        stopped = bool(done["stopped"])
        first_epoch, first_batch = int(done["epoch"]), int(done["batch"])
        sums, count = done["sums"], float(done["count"])
        where = f"epoch {first_epoch}" + (f", batch {first_batch}" if first_batch else "")
        log(f"resumed from {checkpoint_path} after {where}")

    def save(epoch, batch, running_sums, running_count):
        progress_record = {"epoch": epoch, "batch": batch, "sums": running_sums,
                           "count": float(running_count),
                           "history": {k: np.asarray(v, np.float64) for k, v in history.items()},
                           "stopped": stopped}
        if jax.process_index() == 0:  # one writer when several processes train together
            checkpoint.save(checkpoint_path, _checkpoint_tree(
                TrainState(params, state, opt_state), key, es, progress_record))

    size = _check_processes(mesh, shard_params, n, size) if processes > 1 else min(size, n)
    gather = processes == 1 and (_on_device(data) or _nbytes(data) <= DEVICE_DATA_LIMIT)
    device_data = (jax.device_put(data, None if mesh is None else parallel.replicated(mesh))
                   if gather else None)  # batches are gathered from it inside the loop
    host = None if gather else jax.tree_util.tree_map(np.asarray, data)
    loop, zero_sums_of = _make_train_loop(model, loss, optimizer, metrics=metrics,
                                          penalty=penalty, augment=augment, gather=gather,
                                          mesh=mesh, compute_dtype=compute_dtype,
                                          loss_scale=loss_scale, microbatches=microbatches)
    batches_per_epoch = math.ceil(n / size)
    report = _Report(progress, epochs, batches_per_epoch, log)
    if steps_per_call is None:
        steps_per_call = (1 if _has_convolutions(model) else
                          max(1, math.ceil(batches_per_epoch / 20)) if report.bar_wanted
                          else batches_per_epoch)
    if not gather:
        per_step = max(1, _nbytes(data) * size // n)
        steps_per_call = max(1, min(steps_per_call, HOST_CHUNK_BYTES // per_step))

    carry = _fresh_copy((params, state, opt_state))
    if mesh is not None:
        carry = parallel.place(carry, (
            parallel.param_sharding(params, mesh, shard_params=shard_params),
            parallel.replicated(mesh), parallel.replicated(mesh)))

    def plan(epoch_key):
        """The epoch's padded batches as indices (S, B) and masks, split evenly over a mesh."""
        index, mask = batch_indices(n, size, key=epoch_key)
        columns = index.shape[1]
        extra = 0 if mesh is None else (
            parallel.padded_batch_size(columns * processes, mesh) // processes - columns)
        if extra:
            index = np.concatenate([index, np.repeat(index[:, :1], extra, axis=1)], axis=1)
            mask = np.concatenate([mask, np.zeros((len(mask), extra), mask.dtype)], axis=1)
        return index, mask

    zero_sums = None
    remaining = 0 if stopped else max(epochs - first_epoch, 0)
    for epoch in range(first_epoch, first_epoch + remaining):
        epoch_key = jax.random.fold_in(key, epoch)
        index, mask = plan(epoch_key)
        report.start_epoch(epoch, first_batch)
        chunk_losses = []  # device arrays: read only if the epoch's loss is not finite
        bounds = _chunk_bounds(first_batch, batches_per_epoch, steps_per_call,
                               epoch * batches_per_epoch, checkpoint_every)
        for a, b in zip(bounds[:-1], bounds[1:]):
            steps = np.arange(a, b, dtype=np.int32)
            rows = index[a:b] if gather else jax.tree_util.tree_map(lambda x: x[index[a:b]], host)
            xs = (rows, mask[a:b], steps)
            if processes > 1:  # this process's rows of the global batches
                xs = parallel.global_steps(xs, mesh)
            if zero_sums is None:
                zero_sums = zero_sums_of(carry, device_data, xs, epoch_key)
            running = _fresh_copy(zero_sums if sums is None else dict(sums))
            (params, state, opt_state, sums, count_array), step_losses = loop(
                (*carry, running, jnp.asarray(count, jnp.float32)),
                device_data, xs, epoch_key)
            carry = (params, state, opt_state)
            count = count_array
            chunk_losses.append(step_losses)
            report.advance(b - a, lambda: {k: float(v) / float(count) for k, v in sums.items()})
            if checkpoint_every and b < batches_per_epoch \
                    and (epoch * batches_per_epoch + b) % checkpoint_every == 0:
                if check_finite:
                    _check_finite(sums, chunk_losses, epoch, first_batch, batches_per_epoch,
                                  checkpoint_path)
                save(epoch, b, sums, count)
                carry = (params, state, opt_state)
        if check_finite:
            _check_finite(sums, chunk_losses, epoch, first_batch, batches_per_epoch,
                          checkpoint_path)
        first_batch = 0
        real = float(count)
        logs = {k: float(v) / real for k, v in sums.items()}
        sums, count = None, 0.0
        if val is not None:
            val_logs = _evaluate(model, params, state, val, loss=loss,
                                 batch_size=max(size, EVAL_BATCH_SIZE), metrics=metrics)
            logs.update({f"val_{k}": v for k, v in val_logs.items()})
        train_state = TrainState(params, state, opt_state)
        stop_requested = any([hook(epoch, logs, train_state) is True for hook in hooks])
        for k, v in logs.items():  # after the hooks, which may add entries of their own
            history.setdefault(k, []).append(v)

        note = ""
        if es is not None:
            if early_stopping.monitor not in logs:
                raise ValueError(f"fit: early stopping monitors {early_stopping.monitor!r}, "
                                 f"which is not among the logged metrics {sorted(logs)}.")
            es, stopped = early_stopping_update(early_stopping, es, logs[early_stopping.monitor],
                                                epoch, params, state)
            note = (f"{early_stopping.monitor} improved" if es.wait == 0 else
                    f"{early_stopping.monitor} did not improve for {es.wait} of "
                    f"{early_stopping.patience} epochs")
        report.end_epoch(epoch, logs, note)
        stopped = stopped or stop_requested
        if checkpoint_path:
            save(epoch + 1, 0, None, 0.0)
        if stopped:
            break
        if hooks or es is not None:  # they may hold these arrays; the next call donates its own
            carry = _fresh_copy(carry)

    best_epoch = None if es is None or es.best_epoch < 0 else es.best_epoch + 1
    if stopped:
        why = (f"{early_stopping.monitor} did not improve for {early_stopping.patience} epochs"
               if es is not None and es.wait >= early_stopping.patience else "a hook asked to stop")
        report.say(f"stopped early after epoch {len(history['loss'])}: {why}")
    if best_epoch is not None and early_stopping.restore_best:
        params, state = es.best_params, es.best_state
        report.say(f"restored the weights of epoch {best_epoch}, the best {early_stopping.monitor} "
                   f"({es.best:.4f})")
    return FitResult(params, state, opt_state, history, stopped, best_epoch)
