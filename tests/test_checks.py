"""fnn.checks: the one home of argument checks, and the messages they give."""
import math
import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import checks
from fnn.core import LayerError

FNN = Path(fnn.__file__).parent


@pytest.mark.parametrize("call, expected", [
    (lambda: checks.check_int("f", "n", 3), 3),
    (lambda: checks.check_int("f", "n", np.int64(0), minimum=0), 0),
    (lambda: checks.check_real("f", "x", np.float32(0.5)), 0.5),
    (lambda: checks.check_real("f", "x", jnp.asarray(2.0)), 2.0),
    (lambda: checks.check_nonnegative("f", "x", math.inf), math.inf),
    (lambda: checks.check_in_range("f", "x", 0, 0, 1, closed="left"), 0.0),
    (lambda: checks.check_in_range("f", "x", 1, 0, 1), 1.0),
    (lambda: checks.check_choice("f", "mode", "a", ("a", "b")), "a"),
])
def test_valid_values_come_back_converted(call, expected):
    value = call()
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("call, error, message", [
    (lambda: checks.check_int("batches", "batch_size", 0), ValueError,
     "batches: `batch_size` must be a positive integer; got 0."),
    (lambda: checks.check_int("f", "n", True), ValueError, "f: `n` must be a positive integer; got True."),
    (lambda: checks.check_int("f", "n", 2.0, minimum=2), ValueError,
     "f: `n` must be an integer >= 2; got 2.0."),
    (lambda: checks.check_real("f", "x", math.nan), ValueError,
     "f: `x` must be a real number; got nan."),
    (lambda: checks.check_real("f", "x", "1"), ValueError, "f: `x` must be a real number; got '1'."),
    (lambda: checks.check_nonnegative("f", "x", -0.5), ValueError,
     "f: `x` must be a real number >= 0; got -0.5."),
    (lambda: checks.check_in_range("scale_by_adam", "beta1", 1.0, 0, 1, closed="left"), ValueError,
     "scale_by_adam: `beta1` must be a real number in [0, 1); got 1.0."),
    (lambda: checks.check_in_range("f", "x", 0.0, 0, 1, closed="right"), ValueError,
     "f: `x` must be a real number in (0, 1]; got 0.0."),
    (lambda: checks.check_in_range("f", "x", math.inf, 1), ValueError,
     "f: `x` must be a real number >= 1 (and finite); got inf."),
    (lambda: checks.check_in_range("f", "x", 0, 0, closed="neither"), ValueError,
     "f: `x` must be a real number > 0 (and finite); got 0."),
    (lambda: checks.check_in_range("f", "x", 2, high=1), ValueError,
     "f: `x` must be a real number <= 1; got 2."),
    (lambda: checks.check_choice("f", "mode", "c", ("a", "b")), ValueError,
     "f: `mode` must be one of ('a', 'b'); got 'c'."),
    (lambda: checks.check_choice("f", "n", True, (1, 2)), ValueError,
     "f: `n` must be one of (1, 2); got True."),
    (lambda: checks.check_callable("f", "schedule", 0.1, "a function step -> value"), TypeError,
     "f: `schedule` must be a function step -> value; got 0.1."),
])
def test_bad_values_name_the_function_the_argument_and_the_expectation(call, error, message):
    with pytest.raises(error, match=re.escape(message) + "$"):
        call()


def test_check_features_raises_a_layer_error():
    checks.check_features("Dense(3)", jnp.ones((2, 4)), 4)
    with pytest.raises(LayerError, match=r"Dense\(3\).*expects inputs of shape \(batch, 4\); got "
                                         r".*Did you forget a Flatten\?"):
        checks.check_features("Dense(3)", jnp.ones((2, 2, 2)), 4)


def test_one_home_for_checks_and_no_private_names_across_modules():
    """The positive-integer check lives in fnn.checks alone, fnn.data._checks is gone, and no
    module imports a private name of another fnn module ."""
    sources = {path: path.read_text() for path in FNN.rglob("*.py")}
    in_flight = set()
    saying = [path.relative_to(FNN).as_posix() for path, text in sources.items()
              if "a positive integer" in text]
    assert sorted(set(saying) - in_flight) == ["checks.py"], saying
    assert not (FNN / "data" / "_checks.py").exists()
    private = re.compile(r"^from fnn\.[\w.]+ import .*\b_(?!_)\w+", re.MULTILINE)
    offenders = {path.relative_to(FNN).as_posix(): private.findall(text)
                 for path, text in sources.items() if private.search(text)}
    assert offenders == {}


def test_optim_evaluate_is_renamed_and_not_star_exported():
    from fnn import optim
    assert not hasattr(optim, "evaluate") and "evaluate" not in optim.__all__
    assert optim.base.value_at(lambda step: 2 * step, 3) == 6
