"""Shared test settings: strict rank promotion, float64 on request, shared data location."""
import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "FNN_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["FNN_DATA"] = str(SHARED_DATA)


@pytest.fixture
def x64():
    """Run the test with float64 enabled (finite differences need it)."""
    with jax.enable_x64(True):
        yield
