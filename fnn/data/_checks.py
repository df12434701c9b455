"""Argument checks shared by the data modules; messages name the function and the argument."""
from __future__ import annotations

import numbers


def check_int(where: str, arg: str, value, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer ``>= minimum``, else raise a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{where}: `{arg}` must be {kind}; got {value!r}.")
    return int(value)


def check_nonnegative(where: str, arg: str, value) -> float:
    """Return ``value`` as a float if it is a real number ``>= 0``, else raise a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"{where}: `{arg}` must be a real number >= 0; got {value!r}.")
    return float(value)
