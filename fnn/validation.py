"""Estimating generalization: resampling index generators and cross-validation.

Each resampling scheme yields `Split` pairs ``(train, test)`` of int64 NumPy index arrays into
``range(n)``, sorted; randomness comes only from an explicit JAX key, so a key
always gives the same splits::

    folds = kfold(key, len(x), 5, stratify=y)
    result = cross_validate(fit_fn, (x, y), folds)      # fit_fn(train, test) -> {"accuracy": ..}
    print(result)                                       # accuracy 0.9731 ± 0.0042 (5 splits)

=============  =================================  ======================================
scheme         train                              test
=============  =================================  ======================================
holdout        a random (1 − f) of the examples   the other f
kfold          the other k − 1 folds              fold i, for i = 0 … k − 1
leave_one_out  every example but i                example i, for i = 0 … n − 1
bootstrap      n draws with replacement           the out-of-bag examples (never drawn)
=============  =================================  ======================================
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional

import jax
import numpy as np

from fnn.checks import check_int
from fnn.data.splits import num_examples, split_indices, take
from fnn.train import classification_metrics, evaluate, fit


class Split(NamedTuple):
    """Index arrays (int64, increasing) of the training and the test examples."""

    train: np.ndarray
    test: np.ndarray


def holdout(key, n: int, test_fraction: float, *, stratify=None) -> Split:
    """One random split: ``round(test_fraction · n)`` test examples, the rest for training.

    With ``stratify`` (labels, shape (n,)) the fraction is applied within each class, so both
    parts keep the class proportions (see `fnn.data.split_indices`).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"holdout: `test_fraction` must lie strictly between 0 and 1; "
                         f"got {test_fraction!r}.")
    train, test = split_indices(key, n, (1 - test_fraction, test_fraction), stratify=stratify)
    return Split(np.sort(train), np.sort(test))


def kfold(key, n: int, k: int, *, stratify=None) -> Iterator[Split]:
    """``k`` splits whose test folds partition ``range(n)``: every index is tested exactly once.

    Fold sizes differ by at most 1. With ``stratify`` (labels, shape (n,)) each class is also
    spread over the folds so that its count per fold differs by at most 1: the folds keep the
    class proportions. Arguments are checked here, not at the first ``next``.
    """
    n = check_int("kfold", "n", n)
    k = check_int("kfold", "k", k, minimum=2)
    if k > n:
        raise ValueError(f"kfold: `k` must be at most the number of examples n={n}; got k={k}.")
    labels = np.zeros(n, np.int64) if stratify is None else np.asarray(stratify)
    if labels.shape != (n,):
        raise ValueError(f"kfold: `stratify` must hold one label per example, shape ({n},); "
                         f"got shape {labels.shape}.")
    # Shuffle, group by class (keeping the shuffled order within a class), then deal the
    # examples round-robin: position p goes to fold p mod k. Any run of consecutive positions
    # (the whole data, or one class) is then split into counts that differ by at most 1.
    order = np.asarray(jax.random.permutation(key, n), np.int64)
    order = order[np.argsort(labels[order], kind="stable")]
    fold = np.empty(n, np.int64)
    fold[order] = np.arange(n) % k

    def generate():
        for i in range(k):
            yield Split(np.flatnonzero(fold != i), np.flatnonzero(fold == i))

    return generate()


def leave_one_out(n: int) -> Iterator[Split]:
    """``n`` splits, the i-th testing on example i alone and training on the other n − 1.

    This is `kfold` with k = n, without randomness (nothing is left to shuffle).
    """
    n = check_int("leave_one_out", "n", n, minimum=2)
    everything = np.arange(n, dtype=np.int64)

    def generate():
        for i in range(n):
            yield Split(np.delete(everything, i), everything[i:i + 1])

    return generate()


def bootstrap(key, n: int, rounds: int) -> Iterator[Split]:
    """``rounds`` bootstrap samples: train on n examples drawn with replacement (repeats kept),
    test on the out-of-bag ones that were never drawn (on average (1 − 1/n)ⁿ ≈ 36.8% of them).

    Round r draws with ``fold_in(key, r)``, so it does not depend on ``rounds``. The out-of-bag
    set is empty only with probability n!/nⁿ (e.g. 4e-4 for n = 10).
    """
    n = check_int("bootstrap", "n", n)
    rounds = check_int("bootstrap", "rounds", rounds)

    def generate():
        for r in range(rounds):
            drawn = np.asarray(jax.random.randint(jax.random.fold_in(key, r), (n,), 0, n), np.int64)
            out_of_bag = np.ones(n, bool)
            out_of_bag[drawn] = False
            yield Split(np.sort(drawn), np.flatnonzero(out_of_bag))

    return generate()


# ----------------------------------------------------------------------------- cross-validation

class CrossValidation(NamedTuple):
    """Scores per split, and their mean and standard deviation over the splits.

    ``scores[name][i]`` is score ``name`` on split i; ``std`` is the spread of the split scores,
    ``sqrt(mean((s − mean)²))`` (NumPy's default ``ddof=0``; 0 for a single split).
    """

    scores: Dict[str, List[float]]
    mean: Dict[str, float]
    std: Dict[str, float]

    def __str__(self) -> str:
        """``accuracy 0.9731 ± 0.0042, loss 0.0912 ± 0.0050 (5 splits)``."""
        splits = len(next(iter(self.scores.values()), []))
        scores = ", ".join(f"{name} {self.mean[name]:.4f} ± {self.std[name]:.4f}"
                           for name in self.scores)
        return f"{scores} ({splits} split{'s' * (splits != 1)})"


ScoreFn = Callable[[object, object], Mapping[str, float]]


def cross_validate(fit_fn: ScoreFn, data, splits: Iterable[Split]) -> CrossValidation:
    """Train and score on every split: ``fit_fn(train_data, test_data) -> {name: score}``.

    ``data`` is a pytree of arrays with a leading example axis, e.g. ``(x, y)``; ``train_data``
    and ``test_data`` have its structure, holding the examples indexed by each split. Every call
    must return the same score names, each a scalar. A single `Split` (from `holdout`) is
    accepted as one split. See `fit_and_evaluate` to make ``fit_fn`` from a model.
    """
    num_examples(data, "cross_validate")  # checks the arrays share their leading axis

    scores: Dict[str, List[float]] = {}
    for i, (train, test) in enumerate([splits] if isinstance(splits, Split) else splits):
        result = fit_fn(take(data, np.asarray(train)), take(data, np.asarray(test)))
        if not isinstance(result, Mapping) or not result:
            raise TypeError(f"cross_validate: `fit_fn` must return a non-empty dict of scores "
                            f"such as {{'accuracy': 0.97}}; got {result!r:.80} on split {i}.")
        if i and set(result) != set(scores):
            raise ValueError(f"cross_validate: `fit_fn` returned scores {sorted(result)} on split "
                             f"{i} but {sorted(scores)} before; every split needs the same names.")
        for name, value in result.items():
            if np.ndim(value) != 0:
                raise ValueError(f"cross_validate: score {name!r} must be a scalar; got shape "
                                 f"{np.shape(value)} on split {i}.")
            scores.setdefault(name, []).append(float(value))
    if not scores:
        raise ValueError("cross_validate: `splits` is empty; pass e.g. kfold(key, n, 5).")
    return CrossValidation(scores, {name: float(np.mean(s)) for name, s in scores.items()},
                           {name: float(np.std(s)) for name, s in scores.items()})


def fit_and_evaluate(model, *, loss, optimizer, key, epochs: int, batch_size: Optional[int] = 32,
                     **fit_options) -> ScoreFn:
    """A ``fit_fn`` for `cross_validate`: train ``model`` with `fnn.fit` on the training part,
    return `fnn.evaluate` on the test part (``{"loss": .., "accuracy": ..}`` for classifiers).

    ``data`` must be an ``(inputs, targets)`` pair. Every split starts from the same
    initialization, ``model.init(fold_in(key, 0), (None, *inputs.shape[1:]))``, and trains with
    ``fold_in(key, 1)``, so splits differ only by their data. ``fit_options`` go to `fnn.fit`
    (``metrics`` also to `fnn.evaluate`); the test part is never shown to `fit`.
    """
    epochs = check_int("fit_and_evaluate", "epochs", epochs)
    fit_options = {"progress": False, **fit_options}
    metrics = fit_options.get("metrics", classification_metrics)

    def fit_fn(train, test):
        if not isinstance(train, (tuple, list)) or len(train) != 2:
            raise ValueError(f"fit_and_evaluate: the data must be an (inputs, targets) pair; "
                             f"got {type(train).__name__}.")
        _, params, state = model.init(jax.random.fold_in(key, 0), (None, *np.shape(train[0])[1:]))
        result = fit(model, params, state, train, loss=loss, optimizer=optimizer,
                     key=jax.random.fold_in(key, 1), epochs=epochs, batch_size=batch_size,
                     **fit_options)
        return evaluate(model, result.params, result.state, test, loss=loss, metrics=metrics)

    return fit_fn


__all__ = ["Split", "holdout", "kfold", "leave_one_out", "bootstrap", "CrossValidation",
           "cross_validate", "fit_and_evaluate"]
