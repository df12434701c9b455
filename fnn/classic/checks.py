"""Checks of the data the classic models take; messages name the function and the argument.
Scalar arguments are checked with `fnn.checks`."""
from __future__ import annotations

from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np


def check_patterns(function: str, x, targets=None) -> Tuple[jax.Array, jax.Array]:
    """``x`` as a float array (P, n) and ``targets`` as (P,); else a ValueError naming the
    argument."""
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{function}: `x` must have shape (patterns, inputs); got {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    if targets is None:
        return x, None
    targets = jnp.asarray(targets, x.dtype)
    if targets.shape != x.shape[:1]:
        raise ValueError(f"{function}: `targets` must have shape ({x.shape[0]},), one per "
                         f"pattern of `x`; got {targets.shape}.")
    return x, targets


def check_binary(function: str, data) -> None:
    """Raise a ValueError naming ``function`` unless every value of ``data`` is 0 or 1."""
    data = np.asarray(data)
    if not np.all((data == 0) | (data == 1)):
        raise ValueError(f"{function}: `data` must be binary (0 or 1); got values in "
                         f"[{data.min()}, {data.max()}]. Binarize it first, e.g. x > 0.5.")
