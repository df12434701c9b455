"""Binary output coding: known codes, widths, round trips (hypothesis), noisy decoding, errors."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fnn.data.coding import binary_code, decode_binary_code, num_bits


def test_known_codes_most_significant_bit_first():
    np.testing.assert_array_equal(binary_code([0, 1, 5, 7], 8),
                                  [[0, 0, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1]])
    np.testing.assert_array_equal(binary_code([0, 1], 2), [[0], [1]])
    assert binary_code([3], 10, dtype=jnp.int8).dtype == jnp.int8


@pytest.mark.parametrize("num_classes", [2, 3, 4, 5, 8, 9, 10, 16, 17, 1000])
def test_width_is_ceil_log2(num_classes):
    assert num_bits(num_classes) == math.ceil(math.log2(num_classes))
    assert binary_code(jnp.zeros(2, jnp.int32), num_classes).shape == (2, num_bits(num_classes))


@st.composite
def code_cases(draw):
    """(labels in 0..C−1, C); few shapes and sizes, as each new one compiles."""
    num_classes = draw(st.sampled_from([2, 10]))
    shape = draw(st.sampled_from([(), (2, 1, 3)]))
    return draw(hnp.arrays(np.int32, shape, elements=st.integers(0, num_classes - 1))), num_classes


@settings(max_examples=30, deadline=None)
@given(code_cases(), st.floats(0.0, 0.49))
def test_round_trip_also_through_noise(case, noise):
    labels, num_classes = case
    codes = binary_code(labels, num_classes)
    assert codes.shape == labels.shape + (num_bits(num_classes),)
    weights = 2 ** np.arange(codes.shape[-1] - 1, -1, -1)
    np.testing.assert_array_equal(np.sum(np.asarray(codes) * weights, axis=-1), labels)
    decoded = decode_binary_code(codes, num_classes)
    assert decoded.dtype == jnp.int32
    np.testing.assert_array_equal(decoded, labels)
    # Outputs within `noise` < ½ of every bit still decode to the label.
    noisy = np.abs(np.asarray(codes) - noise)
    np.testing.assert_array_equal(decode_binary_code(noisy, num_classes), labels)


def test_invalid_codes_clip_and_a_half_is_off():
    # 10 classes use 4 bits; codes 10..15 belong to no class and decode to 9.
    np.testing.assert_array_equal(decode_binary_code([[1, 1, 1, 1], [1, 0, 1, 0.]], 10), [9, 9])
    np.testing.assert_array_equal(decode_binary_code([[0.5, 0.5, 0.51, 0.5]], 10), [2])
    np.testing.assert_array_equal(binary_code([-3, 12], 10), binary_code([0, 9], 10))  # clipped


def test_composes_under_an_outer_jit():
    labels = jnp.array([[0, 3], [2, 1]])
    round_trip = jax.jit(lambda x: decode_binary_code(binary_code(x, 4) * 0.8 + 0.1, 4))
    np.testing.assert_array_equal(round_trip(labels), labels)


@pytest.mark.parametrize("call, message", [
    (lambda: binary_code([0], 1), r"binary_code: `num_classes` must be an integer >= 2; got 1"),
    (lambda: num_bits(2.0), r"num_bits: `num_classes` must be an integer >= 2; got 2.0"),
    (lambda: decode_binary_code([[0, 1]], 10),
     r"decode_binary_code: 10 classes need codes of shape \(..., 4\); got \(1, 2\)"),
    (lambda: decode_binary_code(1.0, 2),
     r"decode_binary_code: 2 classes need codes of shape \(..., 1\); got \(\)"),
])
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
