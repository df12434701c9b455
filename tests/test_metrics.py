"""Metrics against a confusion matrix worked out by hand, a NumPy loop, and their invariants.

Most checks call the metrics under ``jax.jit`` (``test_jit_matches_eager`` checks that eager calls
agree): each eager op would compile a program of its own.
"""
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn import metrics

# A 3-class example worked out by hand. Rows = true class, columns = predicted class.
LABELS = [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
PREDICTIONS = [0, 0, 0, 1, 2, 1, 1, 2, 2, 0, 2]
CONFUSION = [[3, 1, 1],
             [0, 2, 2],
             [1, 0, 1]]
# class:             0                  1                  2
TP, FP, FN, TN = [3, 2, 1], [1, 1, 3], [2, 2, 1], [5, 6, 6]
PRECISION = [Fraction(3, 4), Fraction(2, 3), Fraction(1, 4)]   # TP / (TP + FP)
RECALL = [Fraction(3, 5), Fraction(2, 4), Fraction(1, 2)]      # TP / (TP + FN)
SPECIFICITY = [Fraction(5, 6), Fraction(6, 7), Fraction(6, 9)]  # TN / (TN + FP)
F1 = [Fraction(6, 9), Fraction(4, 7), Fraction(2, 6)]          # 2TP / (2TP + FP + FN)
ACCURACY = Fraction(6, 11)

PER_CLASS = [(metrics.precision, PRECISION), (metrics.recall, RECALL),
             (metrics.specificity, SPECIFICITY), (metrics.f1, F1)]


def as_floats(fractions):
    return np.array([float(f) for f in fractions], np.float32)


jitted_confusion_matrix = jax.jit(metrics.confusion_matrix, static_argnames="num_classes")
RATIOS = ("precision", "recall", "specificity", "f1")


@jax.jit
def jitted_ratios(cm, zero_division):
    ratios = {average: {name: getattr(metrics, name)(cm, average, zero_division)
                        for name in RATIOS} for average in metrics.AVERAGES}
    return ratios | {"accuracy": metrics.accuracy(cm, zero_division)}


def every_ratio(cm, zero_division=0.0):
    """{average: {name: ratio}} for every per-class ratio and average, and the accuracy (one
    compiled program per shape of ``cm``)."""
    return jax.device_get(jitted_ratios(cm, float(zero_division)))  # NumPy: indexing is free


def hand_confusion():
    return jitted_confusion_matrix(np.array(LABELS), np.array(PREDICTIONS), 3)


def test_confusion_matrix_and_counts_by_hand():
    cm = hand_confusion()
    assert cm.dtype == jnp.int32
    np.testing.assert_array_equal(cm, CONFUSION)
    np.testing.assert_array_equal(np.stack(jax.jit(metrics.counts)(cm)), [TP, FP, FN, TN])
    # Python lists and a NumPy integer count are accepted (one program: eagerly, each op compiles)
    from_lists = jax.jit(lambda: metrics.confusion_matrix(LABELS, PREDICTIONS, np.int64(3)))()
    np.testing.assert_array_equal(from_lists, CONFUSION)


@pytest.mark.parametrize("metric, expected", PER_CLASS)
def test_per_class_metrics_by_hand(metric, expected):
    ratios = every_ratio(hand_confusion())
    np.testing.assert_allclose(ratios["none"][metric.__name__], as_floats(expected), rtol=1e-6)
    np.testing.assert_allclose(ratios["macro"][metric.__name__], float(sum(expected) / 3),
                               rtol=1e-6)


def test_accuracy_and_micro_averages_by_hand():
    ratios = every_ratio(hand_confusion())
    np.testing.assert_allclose(ratios["accuracy"], float(ACCURACY), rtol=1e-6)
    # Single-label: every example is one TP or one (FP, FN) pair, so micro P = R = F1 = accuracy.
    for name in ("precision", "recall", "f1"):
        np.testing.assert_allclose(ratios["micro"][name], float(ACCURACY), rtol=1e-6)
    micro_specificity = Fraction(sum(TN), sum(TN) + sum(FP))
    np.testing.assert_allclose(ratios["micro"]["specificity"], float(micro_specificity), rtol=1e-6)
    assert metrics.sensitivity is metrics.recall


def test_mask_and_out_of_range_ids_exclude_padded_rows():
    padding_labels, padding_predictions = [2, 1, 0, 1], [0, 0, 1, 2]
    labels = np.array(LABELS + padding_labels + [-1, 5])
    predictions = np.array(PREDICTIONS + padding_predictions + [0, 1])
    mask = np.array([True] * len(LABELS) + [False] * len(padding_labels) + [True, True])
    np.testing.assert_array_equal(jitted_confusion_matrix(labels, predictions, 3, mask), CONFUSION)
    np.testing.assert_array_equal(
        jitted_confusion_matrix(labels, predictions, 3, mask.astype(jnp.int32)), CONFUSION)


def test_sequences_are_counted_like_flat_batches():
    labels = np.array(LABELS[:10]).reshape(2, 5)
    predictions = np.array(PREDICTIONS[:10]).reshape(2, 5)
    flat = jitted_confusion_matrix(labels.ravel(), predictions.ravel(), 3)
    np.testing.assert_array_equal(jitted_confusion_matrix(labels, predictions, 3), flat)


def test_jit_matches_eager():
    labels, predictions = np.array(LABELS), np.array(PREDICTIONS)
    mask = np.arange(len(LABELS)) % 4 != 0

    def evaluate(labels, predictions, mask):
        cm = metrics.confusion_matrix(labels, predictions, 3, mask)
        return cm, [metric(cm, average) for metric, _ in PER_CLASS for average in metrics.AVERAGES]

    eager = evaluate(labels, predictions, mask)
    jitted = jax.jit(evaluate)(labels, predictions, mask)
    jax.tree_util.tree_map(np.testing.assert_allclose, jitted, eager)


def test_absent_class_is_zero_not_nan():
    # Class 3 never occurs and is never predicted: its ratios are 0/0.
    cm = jitted_confusion_matrix(np.array(LABELS), np.array(PREDICTIONS), 4)
    ratios, ratios_one = every_ratio(cm), every_ratio(cm, zero_division=1.0)
    for name, expected in [("precision", 0.0), ("recall", 0.0), ("f1", 0.0),
                           ("specificity", 1.0)]:  # TN / (TN + FP) = 11 / 11
        assert ratios["none"][name][3] == expected
        assert ratios_one["none"][name][3] == 1.0
    # The macro average runs over all 4 classes, so the absent one pulls it down.
    np.testing.assert_allclose(ratios["macro"]["precision"], float(sum(PRECISION) / 4), rtol=1e-6)

    empty = np.zeros((2, 2), np.int32)
    everything, everything_one = every_ratio(empty), every_ratio(empty, zero_division=1.0)
    assert all(np.isfinite(value).all() for value in jax.tree_util.tree_leaves(everything))
    assert everything["accuracy"] == 0.0 and everything_one["accuracy"] == 1.0


def test_precision_of_a_class_never_predicted():
    cm = jitted_confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 0]), 2)
    ratios = every_ratio(cm)["none"]
    np.testing.assert_allclose(ratios["precision"], [1 / 3, 0.0], rtol=1e-6)
    np.testing.assert_allclose(ratios["recall"], [1.0, 0.0])


def test_metrics_follow_the_float64_default(x64):
    ratios = every_ratio(hand_confusion())["none"]
    assert ratios["precision"].dtype == jnp.float64
    np.testing.assert_array_equal(ratios["f1"], [float(f) for f in F1])


def test_accuracy_from_logits():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [9.0, 0.0, 0.0]])
    labels = np.array([0, 2, 2, 1])   # correct, wrong, correct, wrong

    @jax.jit
    def accuracies(logits, labels):
        return (metrics.accuracy_from_logits(logits, labels),
                metrics.accuracy_from_logits(logits, labels, mask=np.array([1, 0, 1, 0])),
                metrics.accuracy_from_logits(logits, labels, mask=jnp.zeros(4, bool)),
                metrics.accuracy_from_logits(logits.reshape(2, 2, 3), labels.reshape(2, 2)),
                metrics.accuracy_from_logits(logits, labels, np.array([1, 1, 1, 0])))

    unmasked, masked, all_masked, sequences, three_of_four = accuracies(logits, labels)
    assert unmasked == 0.5
    assert masked == 1.0
    assert all_masked == 0.0
    assert sequences == 0.5
    np.testing.assert_allclose(three_of_four, 2 / 3, rtol=1e-6)


def test_classification_report():
    report = metrics.classification_report(hand_confusion(), class_names=["cat", "dog", "bird"], digits=4)
    lines = report.splitlines()
    assert lines[0].split() == ["precision", "recall", "specificity", "f1", "support"]
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.strip()}
    assert rows["cat"] == ["0.7500", "0.6000", "0.8333", "0.6667", "5"]
    assert rows["bird"] == ["0.2500", "0.5000", "0.6667", "0.3333", "2"]
    assert rows["macro"][1:] == [f"{float(sum(column) / 3):.4f}" for _, column in PER_CLASS] + ["11"]
    assert rows["accuracy"] == [f"{float(ACCURACY):.4f}", "11"]
    default_names = [line.split()[0] for line in metrics.classification_report(hand_confusion()).splitlines()[2:5]]
    assert default_names == ["0", "1", "2"]


def test_roc_curve_by_hand():
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.1, 0.7])
    labels = np.array([1, 0, 1, 0, 1, 0])
    mask = np.array([1, 1, 1, 1, 1, 0])   # the 0.7 negative is padding
    (fpr, tpr, thresholds), auc = jax.jit(
        lambda *args: (metrics.roc_curve(*args), metrics.roc_auc(*args)))(scores, labels, mask)
    # Thresholds 0.9, 0.8 (tie: both counted), 0.8, 0.7 (masked: no move), 0.3, 0.1.
    np.testing.assert_allclose(fpr, [0, 0, 1 / 2, 1 / 2, 1 / 2, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3, 1], rtol=1e-6)
    np.testing.assert_allclose(thresholds, [np.inf, 0.9, 0.8, 0.8, 0.7, 0.3, 0.1])
    # Pairs (positive, negative): 0.9 beats both; 0.8 ties one and beats one; 0.1 loses both.
    np.testing.assert_allclose(auc, (2 + 1.5 + 0) / 6, rtol=1e-6)


def test_roc_auc_with_one_class_absent_is_zero():
    assert jax.jit(metrics.roc_auc)(np.array([0.2, 0.4]), np.array([1, 1])) == 0.0


# --- properties -------------------------------------------------------------------------------

BATCH = 8  # every batch is padded to this size and masked, as a training loop does


@st.composite
def labelled_predictions(draw, max_examples=3 * BATCH):
    num_classes = draw(st.integers(1, 4))
    size = draw(st.integers(0, max_examples))
    ids = st.lists(st.integers(0, num_classes - 1), min_size=size, max_size=size)
    return num_classes, np.array(draw(ids), np.int32), np.array(draw(ids), np.int32)


def numpy_confusion(labels, predictions, num_classes):
    cm = np.zeros((num_classes, num_classes), np.int64)
    for true, predicted in zip(labels, predictions):
        cm[true, predicted] += 1
    return cm


def ratio(numerator, denominator):
    return numerator / denominator if denominator else 0.0


def pad_to_batch(values, fill, size=BATCH):
    return np.pad(values, (0, size - len(values)), constant_values=fill)


@settings(max_examples=20, deadline=None)
@given(labelled_predictions())
def test_batches_add_up_to_one_big_batch(example):
    num_classes, labels, predictions = example
    total = np.zeros((num_classes, num_classes), np.int32)
    for start in range(0, len(labels), BATCH):
        batch_labels, batch_predictions = labels[start:start + BATCH], predictions[start:start + BATCH]
        mask = np.arange(BATCH) < len(batch_labels)
        # Padding holds valid class ids, so only the mask keeps it out of the counts.
        total += np.asarray(jitted_confusion_matrix(  # NumPy sum: no eager add to compile
            pad_to_batch(batch_labels, num_classes - 1), pad_to_batch(batch_predictions, 0),
            num_classes, mask))
    one_batch = jitted_confusion_matrix(pad_to_batch(labels, -1, 3 * BATCH), pad_to_batch(predictions, -1, 3 * BATCH),
                                        num_classes)
    np.testing.assert_array_equal(total, one_batch)
    np.testing.assert_array_equal(total, numpy_confusion(labels, predictions, num_classes))


@settings(max_examples=20, deadline=None)
@given(labelled_predictions())
def test_metrics_match_a_numpy_loop(example):
    num_classes, labels, predictions = example
    cm = numpy_confusion(labels, predictions, num_classes)
    expected = {name: [] for name in ("precision", "recall", "specificity", "f1")}
    for k in range(num_classes):
        tp = cm[k, k]
        fp = sum(cm[j, k] for j in range(num_classes) if j != k)
        fn = sum(cm[k, j] for j in range(num_classes) if j != k)
        tn = cm.sum() - tp - fp - fn
        expected["precision"].append(ratio(tp, tp + fp))
        expected["recall"].append(ratio(tp, tp + fn))
        expected["specificity"].append(ratio(tn, tn + fp))
        expected["f1"].append(ratio(2 * tp, 2 * tp + fp + fn))
    ratios = every_ratio(cm)
    for name, values in expected.items():
        np.testing.assert_allclose(ratios["none"][name], values, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(ratios["macro"][name], np.mean(values), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ratios["accuracy"], ratio(np.trace(cm), cm.sum()), rtol=1e-6)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=1, max_size=BATCH))
def test_roc_auc_is_the_mann_whitney_statistic(examples):
    scores = np.array([score for score, _ in examples], np.float32)  # small integers: many ties
    labels = np.array([label for _, label in examples])
    positives, negatives = scores[labels], scores[~labels]
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    expected = wins / (len(positives) * len(negatives)) if len(positives) and len(negatives) else 0.0
    mask = np.arange(BATCH) < len(examples)  # padded to one size: one compilation
    auc = jax.jit(metrics.roc_auc)(pad_to_batch(scores, 2.0), pad_to_batch(labels, True), mask)
    np.testing.assert_allclose(auc, expected, rtol=1e-6, atol=1e-7)


# --- errors -----------------------------------------------------------------------------------


IDS = np.zeros(4, np.int32)
ERRORS = [
    (lambda: metrics.confusion_matrix(IDS, np.zeros((4, 3)), 3), ValueError,
     r"confusion_matrix: predictions has shape \(4, 3\), which looks like scores .*jnp.argmax\(logits, axis=-1\)"),
    (lambda: metrics.confusion_matrix(IDS, np.zeros(5, np.int32), 3), ValueError,
     r"confusion_matrix: labels and predictions must have the same shape; got labels \(4,\) and predictions \(5,\)"),
    (lambda: metrics.confusion_matrix(IDS, np.zeros(4, np.float32), 3), TypeError,
     r"confusion_matrix: predictions must be integer class ids; got dtype float32"),
    (lambda: metrics.confusion_matrix(IDS, IDS, 0), ValueError,
     r"confusion_matrix: num_classes must be a positive Python int; got 0"),
    (lambda: metrics.confusion_matrix(IDS, IDS, 3.0), ValueError,
     r"confusion_matrix: num_classes must be a positive Python int; got 3.0"),
    (lambda: metrics.confusion_matrix(IDS, IDS, 3, mask=np.ones(3, bool)), ValueError,
     r"confusion_matrix: mask must have the shape of the labels \(4,\); got \(3,\)"),
    (lambda: metrics.precision(np.eye(3, dtype=np.int32), average="mean"), ValueError,
     r"precision: average must be one of \('none', 'macro', 'micro'\); got 'mean'"),
    (lambda: metrics.f1(np.zeros((2, 3), np.int32)), ValueError,
     r"f1: expected a square confusion matrix of shape \(C, C\); got shape \(2, 3\)"),
    (lambda: metrics.accuracy_from_logits(np.zeros((4, 3)), np.zeros(5, np.int32)), ValueError,
     r"accuracy_from_logits: expected logits of shape .* got logits \(4, 3\) and labels \(5,\)"),
    (lambda: metrics.classification_report(np.eye(3, dtype=np.int32), class_names=["a", "b"]), ValueError,
     r"classification_report: got 2 class_names for a confusion matrix of 3 classes"),
    (lambda: metrics.roc_curve(np.zeros((3, 2)), np.zeros(3)), ValueError,
     r"roc_curve: expected scores and labels of the same shape \(n,\); got scores \(3, 2\) and labels \(3,\)"),
]


@pytest.mark.parametrize("call, error, message", ERRORS)
def test_errors_say_what_was_expected(call, error, message):
    with pytest.raises(error, match=message):
        call()
