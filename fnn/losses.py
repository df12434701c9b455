"""Losses and weight penalties.

Every loss is ``loss(predictions_or_logits, targets) -> (batch,)``: one value per example. The
leading axis is the batch, and each example's value is summed over all its other axes (only
``mean_squared_error`` averages). Reducing over the batch is left to the caller, so a training
loop can weight examples or mask padded ones::

    per_example = softmax_cross_entropy(logits, labels)           # (batch,)
    loss = jnp.sum(mask * per_example) / jnp.maximum(jnp.sum(mask), 1)

Shapes are checked, never broadcast: predictions and targets must have the same shape (class
losses also accept integer labels without the class axis). A silent ``(batch,)`` against
``(batch, 1)`` broadcast would turn a loss into a ``(batch, batch)`` matrix. Targets are cast to
the predictions' dtype, so the loss has the predictions' dtype.

Penalties (``l1_penalty``, ``l2_penalty``) sum over the weights of a parameter pytree and by
default skip biases and normalisation parameters, as the course prescribes.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from fnn import param_masks

Array = jax.Array
Loss = Callable[..., Array]  # loss(predictions, targets) -> (batch,)


# --------------------------------------------------------------------------------------------
# Shape and dtype checks shared by every loss.


def _float_batch(loss: str, name: str, x) -> Array:
    """``x`` as a floating array with a leading batch axis, or a clear error."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{loss}: {name} must be floating point; got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{loss}: {name} needs a leading batch axis; got a scalar")
    return x


def _same_shape(
    loss: str, predictions, targets, names: tuple[str, str] = ("predictions", "targets")
) -> tuple[Array, Array]:
    """Both as arrays of the predictions' float dtype, after checking their shapes are equal."""
    prediction_name, target_name = names
    predictions = _float_batch(loss, prediction_name, predictions)
    targets = jnp.asarray(targets)
    if targets.shape != predictions.shape:
        hint = (
            f" Reshape {target_name} to {predictions.shape}."
            if math.prod(targets.shape) == math.prod(predictions.shape)
            else ""
        )
        raise ValueError(
            f"{loss}: {prediction_name} and {target_name} must have the same shape "
            f"(nothing is broadcast); got {prediction_name} {predictions.shape} and "
            f"{target_name} {targets.shape}.{hint}"
        )
    return predictions, targets.astype(predictions.dtype)


PADDING_LABEL = -1  # the integer label of a padded position: contributes 0 to class losses


def _class_targets(loss: str, logits, labels,
                   logits_name: str = "logits") -> tuple[Array, Array, Array]:
    """Logits ``(batch, ..., classes)``, labels as per-class targets of the logits' shape, and
    ``invalid`` ``(batch, ...)``: True where an integer label is outside ``[0, classes)`` and is
    not ``PADDING_LABEL``.

    Integer labels ``(batch, ...)`` are class indices and become one-hot rows (all-zero rows for
    labels outside ``[0, classes)``); floating (or bool) labels must already have the logits'
    shape, and are never invalid.
    """
    logits = _float_batch(loss, logits_name, logits)
    labels = jnp.asarray(labels)
    if logits.ndim < 2:
        raise ValueError(
            f"{loss}: {logits_name} must have shape (batch, ..., classes); got {logits.shape}"
        )
    class_indices = jnp.issubdtype(labels.dtype, jnp.integer)
    if class_indices:
        kind, expected = "integer class labels", logits.shape[:-1]
    else:
        kind, expected = "floating (one-hot or probability) targets", logits.shape
    if labels.shape != expected:
        raise ValueError(
            f"{loss}: for {logits_name} {logits.shape}, {kind} must have shape {expected}; "
            f"got labels {labels.shape} of dtype {labels.dtype}. Pass class indices as integers "
            f"of shape {logits.shape[:-1]}, or per-class targets as floats of shape {logits.shape}."
        )
    if class_indices:
        classes = logits.shape[-1]
        invalid = (labels != PADDING_LABEL) & ((labels < 0) | (labels >= classes))
        return logits, jax.nn.one_hot(labels, classes, dtype=logits.dtype), invalid
    return logits, labels.astype(logits.dtype), jnp.zeros(logits.shape[:-1], bool)


def _per_position(values: Array, invalid: Array) -> Array:
    """Per-position class losses ``(batch, ...)`` summed per example, NaN where a label is
    invalid (so that a label outside the classes is loud, never a silent 0)."""
    return _per_example(jnp.where(invalid, jnp.nan, values))


def _per_example(values: Array, reduce: Callable[..., Array] = jnp.sum) -> Array:
    """``(batch, ...) -> (batch,)`` by reducing over every non-batch axis."""
    return reduce(values, axis=tuple(range(1, values.ndim)))


# --------------------------------------------------------------------------------------------
# Regression.


def half_squared_error(predictions, targets) -> Array:
    """``½ Σ (ŷ − y)²`` over the non-batch axes: the course's ``E_p``.

    ``(batch, ...)``, ``(batch, ...)`` -> ``(batch,)``. Its gradient is ``ŷ − y``.
    """
    predictions, targets = _same_shape("half_squared_error", predictions, targets)
    return 0.5 * _per_example(jnp.square(predictions - targets))


def mean_squared_error(predictions, targets) -> Array:
    """``mean (ŷ − y)²`` over the non-batch axes.

    ``(batch, ...)``, ``(batch, ...)`` -> ``(batch,)``.
    """
    predictions, targets = _same_shape("mean_squared_error", predictions, targets)
    return _per_example(jnp.square(predictions - targets), jnp.mean)


mse = mean_squared_error


# --------------------------------------------------------------------------------------------
# Binary and multi-label classification.


def binary_cross_entropy(probs, targets, eps: float | None = None) -> Array:
    """``−Σ [y ln p + (1 − y) ln(1 − p)]`` over the non-batch axes, from probabilities.

    ``probs`` are sigmoid outputs, shape ``(batch,)``, ``(batch, 1)`` or ``(batch, labels)``
    (multi-label: the per-label terms are summed); ``targets`` in [0, 1] of the same shape.
    ``probs`` are clipped to ``[eps, 1 − eps]`` (default: the dtype's machine epsilon), so the
    loss stays finite and its gradient is zero where clipping applies. Prefer
    ``sigmoid_binary_cross_entropy`` on logits: it is exact and needs no clipping.
    """
    probs, targets = _same_shape("binary_cross_entropy", probs, targets, ("probs", "targets"))
    eps = jnp.finfo(probs.dtype).eps if eps is None else eps
    probs = jnp.clip(probs, eps, 1 - eps)
    return -_per_example(targets * jnp.log(probs) + (1 - targets) * jnp.log1p(-probs))


def sigmoid_binary_cross_entropy(logits, targets) -> Array:
    """Binary cross-entropy of ``p = sigmoid(z)``, computed stably from the logits ``z``.

    Per element ``softplus(z) − z·y = max(z, 0) − z·y + log1p(exp(−|z|))``, summed over the
    non-batch axes, so it covers one output ``(batch,)`` / ``(batch, 1)`` and multi-label outputs
    ``(batch, labels)`` alike. ``targets`` in [0, 1], same shape. The gradient is
    ``sigmoid(z) − y``, the course's output delta.
    """
    logits, targets = _same_shape(
        "sigmoid_binary_cross_entropy", logits, targets, ("logits", "targets")
    )
    return _per_example(jax.nn.softplus(logits) - logits * targets)


# Multi-label classification (independent sigmoids) is the same sum over labels.
sigmoid_cross_entropy = sigmoid_binary_cross_entropy


def hinge(scores, labels) -> Array:
    """``Σ max(0, 1 − t·s)`` over the non-batch axes, with ``t = +1 if label > 0 else −1``.

    Labels may be bipolar {−1, +1} or binary {0, 1} (or bool): 0 and −1 both mean the negative
    class. ``scores`` are raw outputs (not probabilities), same shape as ``labels``.
    """
    scores, labels = _same_shape("hinge", scores, labels, ("scores", "labels"))
    signs = jnp.where(labels > 0, 1, -1).astype(scores.dtype)
    return _per_example(jax.nn.relu(1 - signs * scores))


# --------------------------------------------------------------------------------------------
# Multi-class classification.


def softmax_cross_entropy(logits, labels) -> Array:
    """``−Σ_k y_k ln softmax(z)_k``, computed stably with log-softmax.

    ``logits`` ``(batch, ..., classes)``; ``labels`` either integer class indices
    ``(batch, ...)`` or one-hot / probability targets ``(batch, ..., classes)``. Any axes
    between batch and classes (e.g. time) are summed; reshape to ``(batch·time, classes)`` for
    per-step values. With targets that sum to one, the gradient is ``softmax(z) − y``. Logits
    must be finite.

    Padding, as in every class loss here: the integer label −1 (``PADDING_LABEL``) and an
    all-zero target row contribute 0 (and no gradient); any other integer label outside
    ``[0, classes)`` gives NaN, so that labels that do not fit the model never train silently.
    """
    logits, targets, invalid = _class_targets("softmax_cross_entropy", logits, labels)
    return _per_position(-jnp.sum(targets * jax.nn.log_softmax(logits), axis=-1), invalid)


def categorical_hinge(scores, labels) -> Array:
    """Multi-class (Crammer–Singer) hinge ``max(0, 1 + max_{j≠y} s_j − s_y)``.

    ``scores`` ``(batch, ..., classes)``; ``labels`` integer classes ``(batch, ...)`` or one-hot
    floats ``(batch, ..., classes)``. Axes between batch and classes are summed. Padding as in
    ``softmax_cross_entropy``: label −1 or an all-zero target row gives 0, another label outside
    ``[0, classes)`` NaN.
    """
    scores, targets, invalid = _class_targets("categorical_hinge", scores, labels, "scores")
    true_score = jnp.sum(targets * scores, axis=-1)
    best_other = jnp.max(jnp.where(targets > 0, -jnp.inf, scores), axis=-1)
    has_class = jnp.any(targets > 0, axis=-1)
    margins = jnp.where(has_class, jax.nn.relu(1 + best_other - true_score), 0)
    return _per_position(margins, invalid)


# --------------------------------------------------------------------------------------------
# Names for configs.

_LOSSES: dict[str, Loss] = {
    "half_squared_error": half_squared_error,
    "mean_squared_error": mean_squared_error,
    "mse": mse,
    "binary_cross_entropy": binary_cross_entropy,
    "sigmoid_binary_cross_entropy": sigmoid_binary_cross_entropy,
    "sigmoid_cross_entropy": sigmoid_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
    "hinge": hinge,
    "categorical_hinge": categorical_hinge,
}


def get(name_or_loss: str | Loss) -> Loss:
    """The loss called ``name_or_loss`` (e.g. ``"softmax_cross_entropy"``, ``"mse"``).

    A callable is returned as is.
    """
    if callable(name_or_loss):
        return name_or_loss
    if not isinstance(name_or_loss, str):
        raise TypeError(
            f"get: expected a loss name or a loss function; got {type(name_or_loss).__name__}"
        )
    try:
        return _LOSSES[name_or_loss]
    except KeyError:
        raise ValueError(
            f"get: unknown loss {name_or_loss!r}; valid names: {', '.join(sorted(_LOSSES))}"
        ) from None


# --------------------------------------------------------------------------------------------
# Weight penalties.

def _penalty(name: str, per_leaf: Callable[[Array], Array], params, mask) -> Array:
    terms = [per_leaf(leaf) for leaf in param_masks.selected_leaves(mask, params, where=name)]
    return jnp.asarray(sum(terms, 0.0))


def l2_penalty(params, mask=None) -> Array:
    """``½ Σ w²`` over the masked leaves of ``params``; a scalar.

    ``mask`` selects the leaves as everywhere in fnn (``fnn.param_masks``): None (the weights:
    every leaf not named as in ``param_masks.NOT_WEIGHTS``, i.e. not biases), a bool, a prefix
    tree of bools (``{"dense_0": True}``), a collection of layer names, or a predicate
    ``(path, leaf) -> bool``.
    The course's weight decay ``C = C0 + λ/(2P) Σ w²`` (P training patterns) is
    ``C0 + (λ / P) * l2_penalty(params)``.
    """
    return _penalty("l2_penalty", lambda w: 0.5 * jnp.sum(jnp.square(w)), params, mask)


def l1_penalty(params, mask=None) -> Array:
    """``Σ |w|`` over the masked leaves of ``params``; a scalar. ``mask`` as in ``l2_penalty``.

    The course's ``C = C0 + λ/P Σ|w|`` is ``C0 + (λ / P) * l1_penalty(params)``. The gradient
    is ``sign(w)``, zero at ``w = 0``.
    """
    # sign(w)·w == |w|, but its gradient is sign(w) with sign(0) = 0, whereas jax's |w| has
    # gradient 1 at 0, which would push exactly-zero weights around.
    return _penalty("l1_penalty", lambda w: jnp.sum(jnp.sign(w) * w), params, mask)
