"""Resampling generators (partitions, stratification, determinism) and cross-validation."""
import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn.validation import (CrossValidation, Split, bootstrap, cross_validate, fit_and_evaluate,
                            holdout, kfold, leave_one_out)

KEY = jax.random.PRNGKey(0)


def assert_index_array(index, n):
    assert index.dtype == np.int64 and index.ndim == 1
    assert np.all(np.diff(index) >= 0) and (index.size == 0 or 0 <= index.min() <= index.max() < n)


# Few distinct sizes: each new n compiles a permutation.
SIZES = [2, 7, 24, 61]


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(SIZES).flatmap(lambda n: st.tuples(st.just(n), st.integers(2, n))),
       st.integers(0, 2**32 - 1))
def test_kfold_test_folds_partition_the_data(n_k, seed):
    n, k = n_k
    folds = list(kfold(jax.random.fold_in(KEY, seed), n, k))
    assert len(folds) == k
    for train, test in folds:
        assert_index_array(train, n), assert_index_array(test, n)
        np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(n))
    tested = np.concatenate([test for _, test in folds])
    np.testing.assert_array_equal(np.sort(tested), np.arange(n))  # every index exactly once
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(SIZES[1:]).flatmap(lambda n: st.lists(st.integers(0, 3), min_size=n,
                                                             max_size=n)),
       st.integers(2, 7))
def test_stratified_kfold_keeps_each_class_count_within_one(labels, k):
    labels = np.array(labels)
    folds = list(kfold(KEY, len(labels), k, stratify=labels))
    np.testing.assert_array_equal(np.sort(np.concatenate([t for _, t in folds])),
                                  np.arange(len(labels)))
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1
    for c in np.unique(labels):
        per_fold = [np.sum(labels[test] == c) for _, test in folds]
        assert max(per_fold) - min(per_fold) <= 1, (c, per_fold)


def test_stratification_is_what_balances_the_classes():
    labels = np.repeat([0, 1], [90, 10])
    plain = [np.sum(labels[t] == 1) for _, t in kfold(KEY, 100, 5)]
    strat = [np.sum(labels[t] == 1) for _, t in kfold(KEY, 100, 5, stratify=labels)]
    assert strat == [2] * 5 and plain != [2] * 5


def folds_of(key, generator=kfold, *args):
    return [tuple(map(list, split)) for split in generator(key, *args)]


@pytest.mark.parametrize("generator, args", [(kfold, (30, 4)), (bootstrap, (30, 3))])
def test_generators_are_deterministic_per_key(generator, args):
    assert folds_of(KEY, generator, *args) == folds_of(KEY, generator, *args)
    assert folds_of(KEY, generator, *args) != folds_of(jax.random.PRNGKey(1), generator, *args)


def test_holdout():
    train, test = holdout(KEY, 50, 0.2)
    assert len(test) == 10 and len(train) == 40
    assert_index_array(train, 50), assert_index_array(test, 50)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(50))
    assert list(holdout(KEY, 50, 0.2).test) == list(test)
    assert list(holdout(jax.random.PRNGKey(1), 50, 0.2).test) != list(test)
    labels = np.repeat([0, 1], [40, 10])
    _, test = holdout(KEY, 50, 0.2, stratify=labels)
    assert np.sum(labels[test] == 1) == 2 and len(test) == 10


def test_leave_one_out():
    splits = list(leave_one_out(5))
    assert len(splits) == 5
    for i, (train, test) in enumerate(splits):
        np.testing.assert_array_equal(test, [i])
        np.testing.assert_array_equal(train, [j for j in range(5) if j != i])
        assert_index_array(train, 5)


def test_bootstrap_out_of_bag_is_what_was_never_drawn():
    n = 2000
    rounds = list(bootstrap(KEY, n, 4))
    for drawn, out_of_bag in rounds:
        assert len(drawn) == n and len(np.unique(drawn)) < n  # with replacement: repeats
        assert_index_array(drawn, n), assert_index_array(out_of_bag, n)
        assert np.intersect1d(drawn, out_of_bag).size == 0
        np.testing.assert_array_equal(np.union1d(drawn, out_of_bag), np.arange(n))
        assert abs(len(out_of_bag) / n - (1 - 1 / n) ** n) < 0.03  # ≈ 36.8%
    assert len({tuple(oob) for _, oob in rounds}) == 4
    # Round r does not depend on how many rounds are asked for.
    first_two = list(bootstrap(KEY, n, 2))
    for (a, b), (c, d) in zip(first_two, rounds):
        np.testing.assert_array_equal(a, c), np.testing.assert_array_equal(b, d)


def test_cross_validate_matches_numpy_and_passes_the_right_examples():
    x = np.arange(20, dtype=np.float32)[:, None] * 10
    y = np.arange(20)
    seen = []

    def fit_fn(train, test):
        (x_tr, y_tr), (x_te, y_te) = train, test
        np.testing.assert_array_equal(x_tr[:, 0], 10 * y_tr)  # inputs and targets stay paired
        seen.append(y_te)
        return {"mean": y_te.mean(), "n_train": np.float32(len(y_tr))}

    splits = list(kfold(KEY, 20, 3))
    result = cross_validate(fit_fn, (x, y), splits)
    expected = [y[test].mean() for _, test in splits]
    assert result.scores["mean"] == pytest.approx(expected)
    assert result.mean["mean"] == pytest.approx(np.mean(expected))
    assert result.std["mean"] == pytest.approx(np.std(expected))
    assert result.scores["n_train"] == [len(train) for train, _ in splits]
    assert all(isinstance(v, float) for v in result.scores["mean"])
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), y)
    assert str(result).startswith(f"mean {np.mean(expected):.4f} ± {np.std(expected):.4f}")
    assert str(result).endswith("(3 splits)")


def test_cross_validate_takes_a_dict_of_arrays_and_a_single_split():
    data = {"x": np.arange(10.0), "y": np.arange(10) % 2}
    split = holdout(KEY, 10, 0.3)
    result = cross_validate(lambda tr, te: {"sum": te["x"].sum()}, data, split)
    assert result.scores == {"sum": [float(data["x"][split.test].sum())]}
    assert result.std == {"sum": 0.0}
    assert isinstance(result, CrossValidation) and isinstance(split, Split)


@pytest.mark.parametrize("fit_fn, splits, error, message", [
    (lambda tr, te: 0.5, [holdout(KEY, 10, 0.5)], TypeError,
     "`fit_fn` must return a non-empty dict"),
    (lambda tr, te: {"a": np.ones(2)}, [holdout(KEY, 10, 0.5)], ValueError,
     r"score 'a' must be a scalar; got shape \(2,\)"),
    (lambda tr, te: {"a": 1.0} if len(te) == 5 else {"b": 1.0}, list(kfold(KEY, 10, 2)) + [
        holdout(KEY, 10, 0.3)], ValueError, r"`fit_fn` returned scores \['b'\] on split 2"),
    (lambda tr, te: {"a": 1.0}, [], ValueError, "`splits` is empty"),
])
def test_cross_validate_errors(fit_fn, splits, error, message):
    with pytest.raises(error, match=f"cross_validate: {message}"):
        cross_validate(fit_fn, np.arange(10.0), splits)


@pytest.mark.parametrize("call, message", [
    (lambda: kfold(KEY, 5, 6), r"kfold: `k` must be at most the number of examples n=5; got k=6"),
    (lambda: kfold(KEY, 5, 1), r"kfold: `k` must be an integer >= 2; got 1"),
    (lambda: kfold(KEY, 5, 2, stratify=np.zeros(4)), r"kfold: `stratify` must hold one label per "
                                                     r"example, shape \(5,\); got shape \(4,\)"),
    (lambda: holdout(KEY, 5, 1.0), "holdout: `test_fraction` must lie strictly between 0 and 1"),
    (lambda: leave_one_out(1), "leave_one_out: `n` must be an integer >= 2; got 1"),
    (lambda: bootstrap(KEY, 5, 0), "bootstrap: `rounds` must be a positive integer; got 0"),
])
def test_argument_errors_are_raised_at_the_call(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_fit_and_evaluate_cross_validates_a_model():
    from fnn.models.mlp import mlp
    from fnn.optim import sgd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    fit_fn = fit_and_evaluate(mlp([2], flatten=False), loss="softmax_cross_entropy",
                              optimizer=sgd(0.5), key=KEY, epochs=5, batch_size="full")
    result = cross_validate(fit_fn, (x, y), holdout(KEY, 60, 0.5, stratify=y))
    assert set(result.scores) == {"loss", "accuracy"} and len(result.scores["accuracy"]) == 1
    assert result.mean["accuracy"] > 0.9
    with pytest.raises(ValueError, match="fit_and_evaluate: the data must be an"):
        cross_validate(fit_fn, {"x": x, "y": y}, holdout(KEY, 60, 0.5))
