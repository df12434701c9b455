"""Argument checks shared by every module: the one place where "must be a positive integer" is said.

Each check returns the checked value (converted: ``int``, ``float``) or raises with a message that
names the function or layer (``where``), the argument and what was expected, in one form::

    ValueError: batches: `batch_size` must be a positive integer; got 0.
    ValueError: scale_by_adam: `beta1` must be a real number in [0, 1); got 1.0.

Checks run at construction time, on Python values, so that mistakes surface before any tracing.
Layer shape problems raise ``fnn.core.LayerError`` (``check_features``).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

from fnn.core import LayerError, format_shape

__all__ = ["check_callable", "check_choice", "check_features", "check_in_range", "check_int",
           "check_nonnegative", "check_real"]


def _fail(where: str, arg: str, expected: str, value, error=ValueError):
    raise error(f"{where}: `{arg}` must be {expected}; got {value!r}.")


def check_int(where: str, arg: str, value, *, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer (not a bool) ``>= minimum``; else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        _fail(where, arg, expected, value)
    return int(value)


def _real(value) -> float | None:
    """``value`` as a float if it is a real number (Python, NumPy or a concrete 0-d array; not a
    bool or a string), else None."""
    if isinstance(value, (bool, str, bytes)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def check_real(where: str, arg: str, value, *, expected: str = "a real number",
               valid: Callable[[float], bool] = math.isfinite) -> float:
    """``value`` as a float if it is a real number for which ``valid`` holds (default: finite);
    else a ValueError saying ``expected`` (e.g. ``"a real number >= min_step_size = 1.0"``)."""
    number = _real(value)
    if number is None or not valid(number):
        _fail(where, arg, expected, value)
    return number


def check_nonnegative(where: str, arg: str, value) -> float:
    """A real number ``>= 0`` (infinity allowed), as a float."""
    return check_real(where, arg, value, expected="a real number >= 0", valid=lambda v: v >= 0)


def check_in_range(where: str, arg: str, value, low: float = -math.inf, high: float = math.inf,
                   *, closed: str = "both") -> float:
    """A real number in the interval from ``low`` to ``high``, as a float.

    ``closed`` says which ends belong to it: ``"both"`` ``[low, high]``, ``"left"``
    ``[low, high)``, ``"right"`` ``(low, high]``, ``"neither"`` ``(low, high)``. An infinite
    end is never included (so ``check_in_range(f, a, v, 0, closed="neither")`` means finite and
    ``> 0``). The message states the interval: ``in [0, 1)``, ``>= 0``, ``> 1 (and finite)``.
    """
    if closed not in ("both", "left", "right", "neither"):
        raise ValueError(f"check_in_range: `closed` must be one of ('both', 'left', 'right', "
                         f"'neither'); got {closed!r}.")
    low_in = closed in ("both", "left") and low > -math.inf
    high_in = closed in ("both", "right") and high < math.inf

    def valid(v):
        return (v >= low if low_in else v > low) and (v <= high if high_in else v < high)

    if low > -math.inf and high < math.inf:
        expected = f"in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
    elif low > -math.inf:
        expected = f"{'>=' if low_in else '>'} {low:g}"
    elif high < math.inf:
        expected = f"{'<=' if high_in else '<'} {high:g}"
    else:
        expected = "finite"
    if low > -math.inf and high == math.inf:
        expected += " (and finite)"
    return check_real(where, arg, value, expected=f"a real number {expected}", valid=valid)


def check_choice(where: str, arg: str, value, choices: Sequence):
    """``value`` if it is one of ``choices``; else a ValueError listing them."""
    if not any(value == choice and type(value) is type(choice) for choice in choices):
        _fail(where, arg, f"one of {tuple(choices)}", value)
    return value


def check_callable(where: str, arg: str, value, expected: str = "a function"):
    """``value`` if it is callable; else a TypeError saying ``expected``."""
    if not callable(value):
        _fail(where, arg, expected, value, TypeError)
    return value


def check_features(layer: str, x, n_in: int) -> None:
    """Raise ``fnn.core.LayerError`` unless ``x`` is ``(batch, ..., n_in)``: at least 2-D with
    ``n_in`` features on its last axis (the input of a Dense-like layer)."""
    if x.ndim < 2 or x.shape[-1] != n_in:
        hint = " Did you forget a Flatten?" if x.ndim > 2 else ""
        raise LayerError(layer, f"expects inputs of shape (batch, {n_in}); "
                                f"got {format_shape(tuple(x.shape))}.{hint}")
