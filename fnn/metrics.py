"""Classification metrics, all derived from a confusion matrix.

A confusion matrix ``cm`` of shape ``(C, C)`` counts examples by true class (row) and predicted
class (column). Counts add up, so a whole evaluation is a sum over batches inside ``jit``::

    cm = sum(confusion_matrix(y, jnp.argmax(model(x), axis=-1), 10, mask) for x, y, mask in batches)
    print(classification_report(cm))

For class ``k`` (one class against the rest)::

    TP = cm[k, k]            FN = row k without TP       (true k, predicted another class)
    FP = column k without TP (predicted k, truly another) TN = everything else

    precision   = TP / (TP + FP)        recall (sensitivity) = TP / (TP + FN)
    specificity = TN / (TN + FP)        F1 = 2TP / (2TP + FP + FN)

Zero division: a ratio whose denominator is 0 (e.g. the precision of a class that is never
predicted) is ``zero_division`` (default 0.0, as scikit-learn's ``zero_division=0``), never NaN.

``average`` chooses what a per-class metric returns:

- ``"none"``: one value per class, shape ``(C,)``;
- ``"macro"``: the unweighted mean of the per-class values over all ``C`` classes (classes absent
  from the data count with their ``zero_division`` value);
- ``"micro"``: the ratio of the counts summed over classes. For single-label classification micro
  precision, recall and F1 all equal the accuracy.

Counts are int32: exact up to 2**31 - 1 examples.

ROC curves and their AUC work on scores rather than counts: ``roc_curve``/``roc_auc`` for a
binary score, ``roc_curve_ovr``/``roc_auc_ovr`` for multi-class scores, one class against the rest.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

AVERAGES = ("none", "macro", "micro")


class Counts(NamedTuple):
    """One-vs-rest counts per class, each of shape ``(C,)``."""

    true_positive: jnp.ndarray
    false_positive: jnp.ndarray
    false_negative: jnp.ndarray
    true_negative: jnp.ndarray


def confusion_matrix(labels, predictions, num_classes: int, mask=None):
    """Counts ``cm[t, p]`` = number of (unmasked) examples of true class ``t`` predicted as ``p``.

    Args:
      labels: integer class ids, any shape, e.g. ``(batch,)`` or ``(batch, time)``.
      predictions: integer class ids of the same shape. From scores or logits of shape
        ``(..., C)`` take ``jnp.argmax(logits, axis=-1)``.
      num_classes: ``C``, a static Python int.
      mask: optional bool or 0/1 array of the same shape; examples where it is False/0 are not
        counted (padding of the last batch).

    Returns:
      int32 array of shape ``(C, C)``, rows = true class, columns = predicted class.
      Ids outside ``[0, C)`` (e.g. a -1 padding label) are not counted, like masked examples.
    """
    labels, predictions = jnp.asarray(labels), jnp.asarray(predictions)
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"confusion_matrix: num_classes must be a positive Python int; got {num_classes!r}.")
    num_classes = int(num_classes)
    if predictions.shape == labels.shape + (num_classes,):
        raise ValueError(
            f"confusion_matrix: predictions has shape {predictions.shape}, which looks like scores "
            f"over {num_classes} classes; pass class ids of shape {labels.shape}, e.g. "
            "jnp.argmax(logits, axis=-1)."
        )
    if predictions.shape != labels.shape:
        raise ValueError(
            f"confusion_matrix: labels and predictions must have the same shape; got labels "
            f"{labels.shape} and predictions {predictions.shape}."
        )
    for name, ids in (("labels", labels), ("predictions", predictions)):
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise TypeError(f"confusion_matrix: {name} must be integer class ids; got dtype {ids.dtype}.")
    weight = _mask_weights("confusion_matrix", mask, labels.shape)
    in_range = (labels >= 0) & (labels < num_classes) & (predictions >= 0) & (predictions < num_classes)
    weight = jnp.where(in_range, weight, 0)
    # Out-of-range ids carry weight 0; send them to cell (0, 0) so negative ids never wrap around.
    rows, cols = jnp.where(in_range, labels, 0), jnp.where(in_range, predictions, 0)
    cm = jnp.zeros((num_classes, num_classes), jnp.int32)
    return cm.at[rows.ravel(), cols.ravel()].add(weight.ravel())


def counts(cm) -> Counts:
    """TP, FP, FN, TN per class (one class against the rest) from a ``(C, C)`` confusion matrix."""
    return _counts("counts", cm)


def _counts(function, cm):
    cm = _check_confusion_matrix(function, cm)
    true_positive = jnp.diagonal(cm)
    false_positive = cm.sum(axis=0) - true_positive
    false_negative = cm.sum(axis=1) - true_positive
    true_negative = cm.sum() - true_positive - false_positive - false_negative
    return Counts(true_positive, false_positive, false_negative, true_negative)


def accuracy(cm, zero_division: float = 0.0):
    """Fraction of examples on the diagonal, ``trace(cm) / sum(cm)``; a scalar."""
    cm = _check_confusion_matrix("accuracy", cm)
    return _divide(jnp.trace(cm), cm.sum(), zero_division)


def precision(cm, average: str = "none", zero_division: float = 0.0):
    """``TP / (TP + FP)``: of the examples predicted as the class, the fraction truly in it."""
    c = _counts("precision", cm)
    return _average("precision", c.true_positive, c.true_positive + c.false_positive, average, zero_division)


def recall(cm, average: str = "none", zero_division: float = 0.0):
    """``TP / (TP + FN)``: of the examples truly in the class, the fraction found (sensitivity)."""
    c = _counts("recall", cm)
    return _average("recall", c.true_positive, c.true_positive + c.false_negative, average, zero_division)


sensitivity = recall


def specificity(cm, average: str = "none", zero_division: float = 0.0):
    """``TN / (TN + FP)``: of the examples not in the class, the fraction not predicted as it."""
    c = _counts("specificity", cm)
    return _average("specificity", c.true_negative, c.true_negative + c.false_positive, average, zero_division)


def f1(cm, average: str = "none", zero_division: float = 0.0):
    """``2TP / (2TP + FP + FN)``, the harmonic mean of precision and recall."""
    c = _counts("f1", cm)
    denominator = 2 * c.true_positive + c.false_positive + c.false_negative
    return _average("f1", 2 * c.true_positive, denominator, average, zero_division)


def accuracy_from_logits(logits, labels, mask=None):
    """Fraction of unmasked examples whose argmax over the last axis equals the label.

    Shapes: ``logits (..., C)``, ``labels (...)`` integer ids, ``mask (...)`` optional bool/0-1.
    Returns a scalar; 0.0 when every example is masked.
    """
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    if logits.shape[:-1] != labels.shape:
        raise ValueError(
            f"accuracy_from_logits: expected logits of shape labels.shape + (num_classes,) = "
            f"{labels.shape} + (C,); got logits {logits.shape} and labels {labels.shape}."
        )
    weight = _mask_weights("accuracy_from_logits", mask, labels.shape)
    correct = jnp.argmax(logits, axis=-1) == labels
    return _divide(jnp.sum(jnp.where(correct, weight, 0)), jnp.sum(weight), 0.0)


def _roc_counts(function, scores, labels, mask):
    """The ROC curve as integer counts: ``(fp, tp)``, each ``(n + 1,)``, the negatives and
    positives scoring at or above each threshold (every score, from the highest down), starting
    at 0; and the sorted scores ``(n,)``."""
    scores, labels = jnp.asarray(scores), jnp.asarray(labels)
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(
            f"{function}: expected scores and labels of the same shape (n,); got scores "
            f"{scores.shape} and labels {labels.shape}."
        )
    weight = _mask_weights(function, mask, scores.shape)
    order = jnp.argsort(-scores)
    thresholds = scores[order]
    is_positive = labels[order].astype(bool)
    positives_above = jnp.cumsum(jnp.where(is_positive, weight[order], 0))
    negatives_above = jnp.cumsum(jnp.where(is_positive, 0, weight[order]))
    # Every example tied with the threshold is on the positive side: use the end of its tie group.
    group_end = jnp.searchsorted(-thresholds, -thresholds, side="right") - 1
    zero = jnp.zeros((1,), positives_above.dtype)
    tp = jnp.concatenate([zero, positives_above[group_end]])
    fp = jnp.concatenate([zero, negatives_above[group_end]])
    return fp, tp, thresholds


def roc_curve(scores, labels, mask=None):
    """ROC curve of a binary score: true-positive rate against false-positive rate.

    For each threshold ``t`` (every score, from the highest down), the examples with
    ``score >= t`` are called positive; ``TPR = TP / P`` and ``FPR = FP / N``.

    Args:
      scores: float array ``(n,)``, higher means "more positive".
      labels: ``(n,)`` bool or 0/1, the true class.
      mask: optional ``(n,)`` bool/0-1; masked examples are ignored.

    Returns:
      ``(fpr, tpr, thresholds)``, each ``(n + 1,)``, starting at ``(0, 0)`` with threshold
      ``+inf``. Fixed size, so it works under ``jit``; tied scores give repeated points. If the
      data has no positives (negatives), TPR (FPR) is 0 throughout.
    """
    fp, tp, thresholds = _roc_counts("roc_curve", scores, labels, mask)
    tpr = _divide(tp, tp[-1], 0.0)
    fpr = _divide(fp, fp[-1], 0.0)
    thresholds = jnp.concatenate([jnp.full((1,), jnp.inf, thresholds.dtype), thresholds])
    return fpr, tpr, thresholds


def _widest_int():
    """int64 when ``jax_enable_x64`` is on, else int32."""
    return jax.dtypes.canonicalize_dtype(jnp.int64)


def roc_auc(scores, labels, mask=None):
    """Area under the ROC curve (trapezoid rule): the probability that a random positive scores
    above a random negative, ties counting one half. A scalar; 0.0 if either class is absent.

    Computed from the integer counts, ``AUC = Σ_i (FP_{i+1} − FP_i)(TP_{i+1} + TP_i) / (2PN)``:
    the numerator is an exact integer sum, so jit and eager agree to the last bit and the only
    roundings are its conversion to float and the division (float64 with ``jax_enable_x64``: the
    sum is int64 and the result within an ulp or two of the exact fraction). In 32-bit mode the sum
    is exact while ``2PN < 2**31`` (e.g. 10,000 examples of 10 classes, micro-averaged) and a
    float32 sum of the same terms beyond.
    """
    fp, tp, _ = _roc_counts("roc_auc", scores, labels, mask)
    integer = _widest_int()
    fp, tp = fp.astype(integer), tp.astype(integer)
    fp_steps, tp_sums = fp[1:] - fp[:-1], tp[1:] + tp[:-1]
    numerator = jnp.sum(fp_steps * tp_sums)
    denominator = 2 * tp[-1] * fp[-1]
    if integer == jnp.int32:  # the integers may overflow: check the bound in floats
        as_float = jnp.asarray(fp_steps, float), jnp.asarray(tp_sums, float)
        float_numerator = jnp.sum(as_float[0] * as_float[1])
        float_denominator = 2 * jnp.asarray(tp[-1], float) * jnp.asarray(fp[-1], float)
        exact = float_denominator < 2.0 ** 31
        return jnp.where(exact, _divide(numerator, denominator, 0.0),
                         _divide(float_numerator, float_denominator, 0.0))
    return _divide(numerator, denominator, 0.0)


def roc_curve_ovr(scores, labels, mask=None):
    """One-vs-rest ROC curves of a multi-class score: class k's score against "label is k".

    Args:
      scores: float array ``(n, C)``, e.g. softmax probabilities or logits.
      labels: integer class ids ``(n,)``; ids outside ``[0, C)`` are ignored, like masked ones.
      mask: optional ``(n,)`` bool/0-1; masked examples are ignored.

    Returns:
      ``(fpr, tpr, thresholds)``, each ``(C, n + 1)``: row k is
      ``roc_curve(scores[:, k], labels == k, mask)``, with its conventions (ties, and TPR 0
      throughout for a class absent from the labels).
    """
    scores, labels, weight = _one_vs_rest("roc_curve_ovr", scores, labels, mask)
    is_class = labels[None, :] == jnp.arange(scores.shape[1])[:, None]  # (C, n)
    return jax.vmap(roc_curve, in_axes=(1, 0, None))(scores, is_class, weight)


def roc_auc_ovr(scores, labels, mask=None, average: str = "none"):
    """One-vs-rest AUC of a multi-class score ``(n, C)`` with integer labels ``(n,)``.

    - ``"none"``: ``(C,)``, class k's ``roc_auc(scores[:, k], labels == k, mask)``; 0.0 for a
      class that is absent from the labels or is every label (its AUC is undefined).
    - ``"macro"``: the mean over the classes whose AUC is defined (with both positive and
      negative examples); an undefined class is left out rather than counted as 0, which would
      read as "always ranked last". 0.0 if no class is defined.
    - ``"micro"``: the AUC of all ``n·C`` (example, class) pairs pooled, with the one-hot labels.

    Labels outside ``[0, C)`` and masked examples are ignored. A scalar unless ``average="none"``.
    """
    if average not in AVERAGES:
        raise ValueError(f"roc_auc_ovr: average must be one of {AVERAGES}; got {average!r}.")
    scores, labels, weight = _one_vs_rest("roc_auc_ovr", scores, labels, mask)
    num_classes = scores.shape[1]
    is_class = labels[:, None] == jnp.arange(num_classes)[None, :]  # (n, C)
    if average == "micro":
        return roc_auc(scores.ravel(), is_class.ravel(), jnp.repeat(weight, num_classes))
    per_class = jax.vmap(roc_auc, in_axes=(1, 1, None))(scores, is_class, weight)
    if average == "none":
        return per_class
    positives = jnp.sum(jnp.where(is_class, weight[:, None], 0), axis=0)
    defined = (positives > 0) & (positives < jnp.sum(weight))
    return _divide(jnp.sum(jnp.where(defined, per_class, 0)), jnp.sum(defined), 0.0)


def classification_report(cm, class_names=None, digits: int = 3) -> str:
    """A text table of precision, recall, specificity, F1 and support per class, plus the macro
    average and the accuracy. Eager only (it formats concrete numbers)."""
    cm = _check_confusion_matrix("classification_report", cm)
    num_classes = cm.shape[0]
    if class_names is None:
        class_names = [str(k) for k in range(num_classes)]
    class_names = [str(name) for name in class_names]
    if len(class_names) != num_classes:
        raise ValueError(
            f"classification_report: got {len(class_names)} class_names for a confusion matrix "
            f"of {num_classes} classes."
        )
    columns = {"precision": precision, "recall": recall, "specificity": specificity, "f1": f1}
    per_class = {name: np.asarray(metric(cm)) for name, metric in columns.items()}
    macro = {name: np.mean(values) for name, values in per_class.items()}
    support = np.asarray(cm).sum(axis=1)

    name_width = max(len(name) for name in [*class_names, "macro avg", "accuracy"])
    number_width = max(len(name) for name in [*columns, "support"]) + 1
    header = " " * name_width + "".join(f"{name:>{number_width}}" for name in [*columns, "support"])

    def row(name, values, count):
        numbers = "".join(f"{value:>{number_width}.{digits}f}" for value in values)
        return f"{name:>{name_width}}{numbers}{count:>{number_width}}"

    lines = [header, ""]
    lines += [row(name, [per_class[c][k] for c in columns], support[k]) for k, name in enumerate(class_names)]
    lines += ["", row("macro avg", macro.values(), support.sum())]
    accuracy_column = f"{float(accuracy(cm)):>{number_width * len(columns)}.{digits}f}"
    lines.append(f"{'accuracy':>{name_width}}{accuracy_column}{support.sum():>{number_width}}")
    return "\n".join(lines)


def _mask_weights(function, mask, shape):
    """int32 weights (1 = counted) from an optional bool/0-1 mask of the given shape."""
    if mask is None:
        return jnp.ones(shape, jnp.int32)
    mask = jnp.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"{function}: mask must have the shape of the labels {shape}; got {mask.shape}.")
    return mask.astype(bool).astype(jnp.int32)


def _one_vs_rest(function, scores, labels, mask):
    """Checked ``scores (n, C)``, ``labels (n,)`` and int32 weights, 0 for masked examples and
    for ids outside ``[0, C)``."""
    scores, labels = jnp.asarray(scores), jnp.asarray(labels)
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(f"{function}: expected scores of shape (n, C) and labels of shape (n,); "
                         f"got scores {scores.shape} and labels {labels.shape}.")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{function}: labels must be integer class ids; got dtype {labels.dtype}.")
    in_range = (labels >= 0) & (labels < scores.shape[1])
    return scores, labels, jnp.where(in_range, _mask_weights(function, mask, labels.shape), 0)


def _check_confusion_matrix(function, cm):
    cm = jnp.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"{function}: expected a square confusion matrix of shape (C, C); got shape {cm.shape}.")
    return cm


def _divide(numerator, denominator, zero_division):
    """``numerator / denominator`` in the default float dtype (float64 with ``jax_enable_x64``,
    also for integer counts), ``zero_division`` where the denominator is 0."""
    numerator = jnp.asarray(numerator, float)
    denominator = jnp.asarray(denominator, float)
    nonzero = denominator != 0
    ratio = numerator / jnp.where(nonzero, denominator, 1)
    return jnp.where(nonzero, ratio, jnp.asarray(zero_division, ratio.dtype))


def _average(function, numerator, denominator, average, zero_division):
    """Per-class ratio, its macro mean, or the micro ratio of summed counts."""
    if average == "none":
        return _divide(numerator, denominator, zero_division)
    if average == "macro":
        return jnp.mean(_divide(numerator, denominator, zero_division))
    if average == "micro":
        return _divide(numerator.sum(), denominator.sum(), zero_division)
    raise ValueError(f"{function}: average must be one of {AVERAGES}; got {average!r}.")
