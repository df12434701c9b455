"""What every benchmark writes beside its numbers, and how: the date, JAX's version, the machine
and its load average (the machine is shared: the load says how much to trust a time)."""
from __future__ import annotations

import json
import os
import platform
import time

import jax


def record(**numbers) -> dict:
    """``numbers`` with the date, JAX's version, the machine and the load average first."""
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "jax": jax.__version__,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "load_average": os.getloadavg(), **numbers}


def write(result: dict, path) -> dict:
    """``result`` as indented JSON at ``path`` (nothing when ``path`` is None); returns it."""
    if path:
        with open(path, "w") as file:
            json.dump(result, file, indent=2)
    return result
