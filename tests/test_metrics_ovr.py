"""One-vs-rest multi-class ROC curves and AUC against direct computations, and no NaN."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn import metrics

N, C = 12, 3  # one shape for every property example: one compilation


def pairwise_auc(scores, positive, weight):
    """P(a positive outscores a negative), ties ½, over all pairs: the Mann–Whitney statistic."""
    pos, neg = scores[positive & weight], scores[~positive & weight]
    if len(pos) == 0 or len(neg) == 0:
        return None  # undefined
    diff = pos[:, None] - neg[None, :]
    return np.mean((diff > 0) + 0.5 * (diff == 0))


@st.composite
def multiclass_examples(draw):
    # Scores from a few values, so ties are common; labels may miss a class or include padding.
    scores = np.array(draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=N * C,
                                    max_size=N * C)), np.float32).reshape(N, C)
    labels = np.array(draw(st.lists(st.integers(-1, C - 1), min_size=N, max_size=N)), np.int32)
    mask = np.array(draw(st.lists(st.booleans(), min_size=N, max_size=N)))
    return scores, labels, mask


@jax.jit
def every_average(scores, labels, mask):
    return {average: metrics.roc_auc_ovr(scores, labels, mask, average)
            for average in metrics.AVERAGES}


@settings(max_examples=25, deadline=None)
@given(multiclass_examples())
def test_auc_matches_the_pairwise_definition(example):
    scores, labels, mask = example
    got = every_average(scores, labels, mask)
    counted = mask & (labels >= 0)  # padding labels (−1) are ignored like masked examples
    per_class = [pairwise_auc(scores[:, k], labels == k, counted) for k in range(C)]
    np.testing.assert_allclose(got["none"], [a or 0.0 for a in per_class], atol=1e-6)
    defined = [a for a in per_class if a is not None]
    np.testing.assert_allclose(got["macro"], np.mean(defined) if defined else 0.0, atol=1e-6)
    pooled = pairwise_auc(scores.ravel(), (labels[:, None] == np.arange(C)).ravel(),
                          np.repeat(counted, C))
    np.testing.assert_allclose(got["micro"], pooled or 0.0, atol=1e-6)
    assert all(np.isfinite(v).all() for v in got.values())


def test_curves_are_the_binary_curves_of_each_class():
    rng = np.random.default_rng(0)
    scores = rng.random((N, C)).astype(np.float32)
    labels = rng.integers(0, C, N).astype(np.int32)
    # NumPy results: indexing them compiles nothing
    fpr, tpr, thresholds = jax.device_get(jax.jit(metrics.roc_curve_ovr)(scores, labels))
    assert fpr.shape == tpr.shape == thresholds.shape == (C, N + 1)
    binary = jax.jit(metrics.roc_curve)
    for k in range(C):
        for got, want in zip((fpr[k], tpr[k], thresholds[k]), binary(scores[:, k], labels == k)):
            np.testing.assert_allclose(got, want)


def test_absent_class_by_hand():
    # Class 2 never occurs: its AUC is 0 (roc_auc's convention) and the macro mean skips it.
    scores = np.zeros((N, C), np.float32)
    scores[:4, :2] = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]
    labels = np.array([0, 1, 1, 0] + [-1] * (N - 4), np.int32)  # then padding
    mask = np.arange(N) < 4
    got = every_average(scores, labels, mask)
    # Class 0: positives 0.9, 0.3 vs negatives 0.2, 0.6 -> pairs won 2 + 1 of 4; class 1 alike.
    np.testing.assert_allclose(got["none"], [0.75, 0.75, 0.0])
    np.testing.assert_allclose(got["macro"], 0.75)
    everything_masked = jax.device_get(every_average(scores, labels, np.zeros(N, bool)))
    assert all(np.all(value == 0) for value in everything_masked.values())


@pytest.mark.parametrize("call, error, message", [
    # NumPy arguments: the checks fail before any computation, and nothing compiles eagerly
    (lambda: metrics.roc_auc_ovr(np.zeros(4, np.float32), np.zeros(4, np.int32)), ValueError,
     r"roc_auc_ovr: expected scores of shape \(n, C\) and labels of shape \(n,\); "
     r"got scores \(4,\)"),
    (lambda: metrics.roc_curve_ovr(np.zeros((4, 2), np.float32), np.zeros(3, np.int32)),
     ValueError,
     r"roc_curve_ovr: expected scores of shape \(n, C\) and labels of shape \(n,\)"),
    (lambda: metrics.roc_auc_ovr(np.zeros((4, 2), np.float32), np.zeros(4, np.float32)),
     TypeError,
     "roc_auc_ovr: labels must be integer class ids; got dtype float32"),
    (lambda: metrics.roc_auc_ovr(np.zeros((4, 2), np.float32), np.zeros(4, np.int32),
                                 average="mean"),
     ValueError, r"roc_auc_ovr: average must be one of \('none', 'macro', 'micro'\); got 'mean'"),
    (lambda: metrics.roc_auc_ovr(np.zeros((4, 2), np.float32), np.zeros(4, np.int32),
                                 np.ones(3, np.float32)),
     ValueError, r"roc_auc_ovr: mask must have the shape of the labels \(4,\); got \(3,\)"),
])
def test_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def exact_auc(scores, positive):
    """The AUC as an exact fraction: (2·#(pos > neg) + #(pos = neg)) / (2PN) over all pairs."""
    from fractions import Fraction
    pos, neg = scores[positive], scores[~positive]
    diff = pos[:, None] - neg[None, :]
    return Fraction(int(2 * np.sum(diff > 0) + np.sum(diff == 0)), 2 * len(pos) * len(neg))


@pytest.mark.parametrize("use_x64", [False, True], ids=["float32", "float64"])
def test_micro_auc_on_tied_scores_under_jit_is_the_exact_fraction(use_x64):
    """1,200 pooled (example, class) scores with heavy ties: the AUC, computed from integer
    counts, is the exact rational number rounded once or twice, under jit as in eager (it was
    3e-6 off under jit in float32, from summing float ratios)."""
    rng = np.random.default_rng(0)
    n, classes = 400, 3
    scores = rng.integers(0, 7, size=(n, classes)).astype(np.float32) / 7
    labels = rng.integers(0, classes, size=n).astype(np.int32)
    expected = exact_auc(scores.ravel(), (labels[:, None] == np.arange(classes)).ravel())
    with jax.enable_x64(use_x64):
        micro = jax.jit(lambda s, y: metrics.roc_auc_ovr(s, y, average="micro"))(
            scores, labels)
        eager = metrics.roc_auc_ovr(jnp.asarray(scores), jnp.asarray(labels), average="micro")
    assert micro.dtype == (jnp.float64 if use_x64 else jnp.float32)
    ulp = np.finfo(micro.dtype).eps * float(expected)
    assert abs(float(micro) - float(expected)) <= 2 * ulp
    assert float(micro) == float(eager)


def test_every_ratio_follows_the_float64_default(x64):
    """Counts are int32, ratios float64 under x64 (int32 / int32 was float32)."""
    labels, predictions = np.array([0, 1, 2, 2, 1]), np.array([0, 2, 2, 1, 1])  # no compile

    @jax.jit  # one program for all (eager ops would compile one each); dtypes are the same
    def counts_and_ratios(labels, predictions):
        cm = metrics.confusion_matrix(labels, predictions, 3)
        return cm, [metrics.accuracy(cm), metrics.precision(cm), metrics.recall(cm, "micro"),
                    metrics.specificity(cm, "macro"), metrics.f1(cm),
                    metrics.accuracy_from_logits(jax.nn.one_hot(predictions, 3), labels),
                    *metrics.roc_curve(jnp.arange(5.0), labels == 1)[:2],
                    metrics.roc_auc(jnp.arange(5.0), labels == 1),
                    metrics.roc_auc_ovr(jax.nn.one_hot(predictions, 3), labels, average="macro")]

    cm, ratios = counts_and_ratios(labels, predictions)
    assert cm.dtype == jnp.int32
    assert [r.dtype for r in ratios] == [jnp.float64] * len(ratios)
    np.testing.assert_array_equal(ratios[1], [1.0, 1 / 2, 1 / 2])
