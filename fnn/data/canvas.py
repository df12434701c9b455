"""A segmentation data set made from digits: a few digits pasted on a larger empty canvas, with
the per-pixel class mask (0: background, d + 1: a stroke of digit d).

    canvases, masks = digit_canvases(images, labels, count=2000, size=48, max_digits=2, seed=0)

``images`` (M, h, w) grey digits with values in [0, 1] (e.g. MNIST scaled by 1/255), ``labels``
(M,) integers 0..C−1. Each canvas (size × size, zeros) receives between ``min_digits`` and
``max_digits`` digits drawn at random (with replacement) from ``images``, each at a random
position wholly inside the canvas; where digits overlap the brighter pixel is kept,
``canvas = max(canvas, digit)``. The mask labels a pixel ``label + 1`` where the pasted digit's
value exceeds ``threshold`` (a later digit overwrites an earlier one there), else 0. Randomness
comes from ``seed`` only (NumPy's ``default_rng``): the same arguments give the same data.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np


def digit_canvases(images, labels, *, count: int, size: int = 48, min_digits: int = 1,
                   max_digits: int = 2, threshold: float = 0.5,
                   seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``(canvases, masks)``: float32 (count, size, size) images and int32 (count, size, size)
    class masks in ``0..C`` (0 background, ``d + 1`` digit d); see the module docstring."""
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels)
    if images.ndim != 3 or len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"digit_canvases: `images` must be (M, h, w) with M = len(labels) > 0; "
                         f"got images {images.shape} and labels {labels.shape}.")
    h, w = images.shape[1:]
    if not (isinstance(size, int) and size >= max(h, w)):
        raise ValueError(f"digit_canvases: `size` must be an int >= the digits' size "
                         f"{max(h, w)}; got {size!r}.")
    if not (isinstance(count, int) and count >= 1):
        raise ValueError(f"digit_canvases: `count` must be an int >= 1; got {count!r}.")
    if not (1 <= min_digits <= max_digits):
        raise ValueError(f"digit_canvases: need 1 <= `min_digits` <= `max_digits`; got "
                         f"{min_digits} and {max_digits}.")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"digit_canvases: `threshold` must be in [0, 1); got {threshold}.")
    rng = np.random.default_rng(seed)
    canvases = np.zeros((count, size, size), np.float32)
    masks = np.zeros((count, size, size), np.int32)
    for n in range(count):
        for _ in range(rng.integers(min_digits, max_digits + 1)):
            i = rng.integers(len(images))
            top, left = rng.integers(size - h + 1), rng.integers(size - w + 1)
            window = (n, slice(top, top + h), slice(left, left + w))
            canvases[window] = np.maximum(canvases[window], images[i])
            masks[window] = np.where(images[i] > threshold, int(labels[i]) + 1, masks[window])
    return canvases, masks


def segmentation_scores(confusion) -> dict:
    """Pixel accuracy and intersection over union from a (C, C) pixel confusion matrix
    (rows: true class, columns: predicted): ``IoU_c = TP_c / (TP_c + FP_c + FN_c)`` per class
    (None for a class absent from both truth and prediction), their mean over the other
    classes, and ``pixel_accuracy = Σ TP / Σ all``."""
    cm = np.asarray(confusion, np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    iou = [float(t / u) if u else None for t, u in zip(tp, union)]
    present = [v for v in iou if v is not None]
    return {"pixel_accuracy": float(tp.sum() / cm.sum()), "iou": iou,
            "mean_iou": float(np.mean(present)) if present else None}


__all__ = ["digit_canvases", "segmentation_scores"]
