"""Codings: known codes, round trips over random shapes (hypothesis), noisy decoding, errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fnn.data import decode_one_hot, decode_thermometer, one_hot, thermometer


def test_known_codes():
    np.testing.assert_array_equal(one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(thermometer([0, 2, 3], 4), [[0, 0, 0], [1, 1, 0], [1, 1, 1]])
    assert one_hot([1], 2, dtype=jnp.int8).dtype == jnp.int8


def test_out_of_range_values():
    np.testing.assert_array_equal(one_hot([-1, 3], 3), np.zeros((2, 3)))
    np.testing.assert_array_equal(thermometer([-2, 9], 3), [[0, 0], [1, 1]])  # clipped


@st.composite
def code_cases(draw):
    """(values in 0..size−1, size); few shapes and sizes, as each new one compiles."""
    size = draw(st.sampled_from([2, 7]))
    shape = draw(st.sampled_from([(), (5,), (2, 1, 3)]))
    return draw(hnp.arrays(np.int32, shape, elements=st.integers(0, size - 1))), size


@settings(max_examples=30, deadline=None)
@given(code_cases())
def test_one_hot_round_trip(case):
    labels, num_classes = case
    codes = np.asarray(one_hot(labels, num_classes))  # checked in NumPy: eager ops compile
    assert codes.shape == labels.shape + (num_classes,)
    np.testing.assert_array_equal(codes.sum(-1), 1)
    decoded = decode_one_hot(codes)
    assert decoded.dtype == jnp.int32
    np.testing.assert_array_equal(decoded, labels)


@settings(max_examples=30, deadline=None)
@given(code_cases())
def test_thermometer_round_trip(case):
    values, num_levels = case
    codes = np.asarray(thermometer(values, num_levels))  # checked in NumPy: eager ops compile
    assert codes.shape == values.shape + (num_levels - 1,)
    np.testing.assert_array_equal(codes.sum(-1), values)  # k units on ...
    np.testing.assert_array_equal(np.diff(codes, axis=-1) <= 0, True)  # ... and they come first
    np.testing.assert_array_equal(decode_thermometer(codes), values)


def test_thermometer_decodes_noisy_outputs_to_the_nearest_code():
    # L1 distances to levels 0..4: row 0: 2.2 1.4 1.6 1.0 1.8; row 1: 1.7 0.9 1.7 1.5 2.3
    outputs = np.array([[0.9, 0.4, 0.8, 0.1],  # not the leading run (1) nor the count > ½ (2)
                        [0.9, 0.1, 0.6, 0.1],
                        [0.4, 0.4, 0.4, 0.4],  # all below ½: level 0
                        [0.5, 0.5, 0.5, 0.5]])  # all tied: the lowest level
    np.testing.assert_array_equal(decode_thermometer(outputs), [3, 1, 0, 0])


def test_jitted_matches_eager():
    labels = np.array([[0, 3], [2, 1]], np.int32)  # NumPy: no eager compile
    encode_decode = lambda x: (decode_one_hot(one_hot(x, 4)), decode_thermometer(thermometer(x, 5)))
    with jax.disable_jit():
        expected = encode_decode(labels)
    for got, want in zip(jax.jit(encode_decode)(labels), expected):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, labels)


@pytest.mark.parametrize("encode, arg, value, message", [
    (one_hot, "num_classes", 0, "a positive integer"),
    (one_hot, "num_classes", 2.0, "a positive integer"),
    (thermometer, "num_levels", 1, "an integer >= 2"),
])
def test_size_errors(encode, arg, value, message):
    with pytest.raises(ValueError, match=rf"{encode.__name__}: `{arg}` must be {message}; "
                                         rf"got {value!r}"):
        encode([0], value)
