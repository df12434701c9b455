"""Splits partition exactly and deterministically; batches cover every example once per pass."""
import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn.data import batches, split, split_indices

KEY = jax.random.key(0)


@st.composite
def fractions(draw):
    weights = draw(st.lists(st.integers(0, 10), min_size=1, max_size=4).filter(any))
    return tuple(w / sum(weights) for w in weights)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([0, 1, 2, 7, 10, 99]), fractions(), st.integers(0, 2**31 - 1))
def test_parts_partition_the_indices(n, fracs, seed):
    parts = split_indices(jax.random.key(seed), n, fracs)
    assert len(parts) == len(fracs)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(n))
    bounds = np.round(np.cumsum(fracs) * n)
    assert [len(p) for p in parts] == np.diff(bounds, prepend=0).astype(int).tolist()


def test_deterministic_per_key_and_different_across_keys():
    first = split_indices(KEY, 100, (0.7, 0.3))
    again = split_indices(jax.random.key(0), 100, (0.7, 0.3))
    other = split_indices(jax.random.key(1), 100, (0.7, 0.3))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[0], np.sort(first[0]))  # shuffled within the part


def test_stratified_parts_keep_class_proportions():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    parts = split_indices(KEY, 100, (0.6, 0.2, 0.2), stratify=labels)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(100))
    counts = [np.bincount(labels[p], minlength=3).tolist() for p in parts]
    assert counts == [[30, 18, 12], [10, 6, 4], [10, 6, 4]]
    assert not np.array_equal(parts[0], np.sort(parts[0]))  # classes are not left in blocks


def test_split_keeps_the_pytree_structure():
    x, y = np.arange(20).reshape(10, 2), np.arange(10) * 10
    (x_a, y_a), (x_b, y_b) = split(KEY, (x, y), (0.8, 0.2))
    assert x_a.shape == (8, 2) and y_b.shape == (2,)
    np.testing.assert_array_equal(x_a[:, 0] * 5, y_a)  # rows stay paired
    parts = split(KEY, {"x": x}, (0.5, 0.5))
    assert [set(p) for p in parts] == [{"x"}, {"x"}]


@pytest.mark.parametrize("fracs", [(0.5, 0.4), (1.2, -0.2), ()])
def test_bad_fractions(fracs):
    with pytest.raises(ValueError, match=r"split: `fractions` must be non-negative numbers that "
                                         r"sum to 1, such as \(0\.8, 0\.1, 0\.1\); got "):
        split_indices(KEY, 10, fracs)


def test_bad_stratify_and_n():
    with pytest.raises(ValueError, match=r"split_indices: `stratify` must hold one label per "
                                         r"example, shape \(10,\); got shape \(9,\)"):
        split_indices(KEY, 10, (0.5, 0.5), stratify=np.zeros(9))
    with pytest.raises(ValueError, match=r"split_indices: `n` must be an integer >= 0; got -1"):
        split_indices(KEY, -1, (1.0,))


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([0, 1, 9, 24, 50]), st.integers(1, 12), st.booleans(), st.booleans())
def test_batches_cover_every_example_once(n, batch_size, shuffle, drop_last):
    x, y = np.arange(n * 3).reshape(n, 3), np.arange(n)
    key = KEY if shuffle else None
    seen = list(batches((x, y), batch_size, key=key, drop_last=drop_last))
    full, rest = divmod(n, batch_size)
    assert len(seen) == full + (rest > 0 and not drop_last)
    assert all(len(yb) == batch_size for _, yb in seen[:full])
    for xb, yb in seen:
        np.testing.assert_array_equal(xb[:, 0], 3 * yb)  # rows stay paired
    order = np.concatenate([yb for _, yb in seen]) if seen else np.zeros(0, int)
    assert len(set(order.tolist())) == len(order) == (full * batch_size if drop_last else n)
    if not shuffle:
        np.testing.assert_array_equal(order, np.arange(len(order)))


def test_shuffled_batches_follow_the_key():
    x = np.arange(64)
    order = lambda key: np.concatenate(list(batches(x, 10, key=key)))
    np.testing.assert_array_equal(order(KEY), order(jax.random.key(0)))
    assert not np.array_equal(order(KEY), x)
    assert not np.array_equal(order(KEY), order(jax.random.fold_in(KEY, 1)))


def test_batches_accept_dicts_and_jax_arrays():
    (batch,) = batches({"x": jax.numpy.ones((4, 2)), "y": np.zeros(4)}, 8)
    assert set(batch) == {"x", "y"} and isinstance(batch["x"], np.ndarray)


@pytest.mark.parametrize("data, batch_size, message", [
    ((np.zeros(5), np.zeros(4)), 2, r"batches: every array needs the same number of examples "
                                    r"\(leading axis\); got \[0\]: 5, \[1\]: 4"),
    ({"x": np.zeros(3), "y": np.float32(1)}, 2, r"batches: every array needs a leading example "
                                                r"axis; \['y'\] is a scalar"),
    ((), 2, r"batches: `data` must hold at least one array; got \(\)"),
    (np.zeros(5), 0, r"batches: `batch_size` must be a positive integer; got 0\. For one batch"),
    (np.zeros(5), 2.5, r"batches: `batch_size` must be a positive integer; got 2\.5\. For one batch"),
])
def test_batches_errors_are_raised_at_the_call(data, batch_size, message):
    with pytest.raises(ValueError, match=message):
        batches(data, batch_size)  # no next(): the checks are not deferred
