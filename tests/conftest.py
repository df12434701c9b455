"""Shared test settings: strict rank promotion, float64 on request, shared data location, JAX's
persistent compilation cache, long tests first."""
import os
from pathlib import Path

# Most of the suite's time is XLA compiling small functions, and the tests' arrays have a few
# elements: the tests compile for compile speed, not run speed. LLVM's optimization passes
# (level 0: a third less compile time), XLA:CPU's newer MLIR fusion emitters (the older emitters
# compile a training step ~3x faster) and the splitting of each program into parallel LLVM
# modules (no gain on two cores) are turned off; measured with the train steps of an MLP, a CNN
# and an LSTM: 3.5 s -> 0.6 s of CPU. Set before JAX starts its backend, the same for every
# program of a run (results compared between compiled programs stay comparable); a flag already
# in XLA_FLAGS wins.
_TEST_FLAGS = {"xla_backend_optimization_level": "0", "xla_cpu_use_fusion_emitters": "false",
               "xla_cpu_parallel_codegen_split_count": "1"}
_flags = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = " ".join([_flags, *(f"--{name}={value}" for name, value in
                                            _TEST_FLAGS.items() if name not in _flags)]).strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

# Most of the suite's time is XLA compiling small functions, the same ones on every run (and
# often in both xdist workers). JAX's persistent compilation cache keeps the compiled programs
# on disk between runs; it changes no result and no trace count (jit's tracing, which the
# no-retrace checks count, happens before the cache is consulted). The first run after a
# change compiles as before. FNN_TEST_JAX_CACHE=0 turns it off; =DIR puts it elsewhere.
_CACHE = os.environ.get("FNN_TEST_JAX_CACHE", "")
if _CACHE != "0":
    jax.config.update("jax_compilation_cache_dir", _CACHE or str(
        Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax_compilation_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "FNN_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["FNN_DATA"] = str(SHARED_DATA)


@pytest.fixture
def x64():
    """Run the test with float64 enabled (finite differences need it)."""
    with jax.enable_x64(True):
        yield


# Tests that take several seconds each (experiment runs, real training, the README, the scanned
# recurrent conformance cases): started first, so that with `-n 2` neither worker is left with
# a long test at the end while the other idles. Order only; every test still runs.
_LONG_FILES = ("test_experiment_", "test_readme", "test_mnist_smoke")
_LONG_IDS = ("StackedRNN", "Bidirectional", "serial_cnn", "test_bptt_", "test_the_hello_")


def _runs_long(item) -> bool:
    return (item.get_closest_marker("slow") is not None
            or item.path.name.startswith(_LONG_FILES)
            or any(part in item.nodeid for part in _LONG_IDS))


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: not _runs_long(item))  # stable: the rest keep their order
