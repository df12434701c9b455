"""Tests for fnn.losses: NumPy references, stability, gradients, shapes, errors and penalties.

Most tests call the losses under ``jax.jit``: one compile is much cheaper than compiling every
eager op. ``JitTest`` checks that eager calls agree.
"""
import functools
from typing import NamedTuple

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given, settings

from fnn import losses

# --------------------------------------------------------------------------------------------
# NumPy references, written from the formulas (float64, no stabilisation needed for the inputs
# they are given).


def _per_example_sum(values):
    return values.reshape(len(values), -1).sum(axis=1)


def np_half_squared_error(predictions, targets):
    return 0.5 * _per_example_sum((predictions - targets) ** 2)


def np_mean_squared_error(predictions, targets):
    return ((predictions - targets) ** 2).reshape(len(predictions), -1).mean(axis=1)


def np_binary_cross_entropy(probs, targets):
    return -_per_example_sum(targets * np.log(probs) + (1 - targets) * np.log(1 - probs))


def np_sigmoid_binary_cross_entropy(logits, targets):
    return np_binary_cross_entropy(1 / (1 + np.exp(-logits)), targets)


def np_softmax(logits):
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def np_softmax_cross_entropy(logits, targets):
    return -_per_example_sum(targets * np.log(np_softmax(logits)))


def np_hinge(scores, labels):
    return _per_example_sum(np.maximum(0, 1 - np.where(labels > 0, 1, -1) * scores))


def np_categorical_hinge(scores, one_hot):
    flat_scores = scores.reshape(-1, scores.shape[-1])
    flat_classes = one_hot.reshape(-1, scores.shape[-1]).argmax(axis=1)
    per_position = []
    for row, label in zip(flat_scores, flat_classes):
        others = np.delete(row, label)
        per_position.append(max(0.0, 1 + others.max() - row[label]))
    return _per_example_sum(np.array(per_position).reshape(scores.shape[:-1]))


# --------------------------------------------------------------------------------------------
# Random inputs per kind of loss.


def regression_inputs(rng, shape):
    return rng.normal(size=shape), rng.normal(size=shape)


def probability_inputs(rng, shape):  # soft targets, probabilities away from the clipping
    return rng.uniform(0.02, 0.98, shape), rng.uniform(0, 1, shape)


def logit_inputs(rng, shape):
    return 3 * rng.normal(size=shape), rng.uniform(0, 1, shape)


def bipolar_inputs(rng, shape):
    return 2 * rng.normal(size=shape), rng.choice([-1.0, 1.0], shape)


def class_probability_inputs(rng, shape):
    return 3 * rng.normal(size=shape), rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])


def one_hot_inputs(rng, shape):
    return 3 * rng.normal(size=shape), np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]


SAME_SHAPES = [(7,), (5, 1), (4, 3), (2, 3, 4)]
CLASS_SHAPES = [(5, 3), (2, 4, 6)]

# name -> (loss, NumPy reference, input maker, shapes)
CASES = {
    "half_squared_error": (losses.half_squared_error, np_half_squared_error,
                           regression_inputs, SAME_SHAPES),
    "mean_squared_error": (losses.mean_squared_error, np_mean_squared_error,
                           regression_inputs, SAME_SHAPES),
    "binary_cross_entropy": (losses.binary_cross_entropy, np_binary_cross_entropy,
                             probability_inputs, SAME_SHAPES),
    "sigmoid_binary_cross_entropy": (losses.sigmoid_binary_cross_entropy,
                                     np_sigmoid_binary_cross_entropy, logit_inputs, SAME_SHAPES),
    "hinge": (losses.hinge, np_hinge, bipolar_inputs, SAME_SHAPES),
    "softmax_cross_entropy": (losses.softmax_cross_entropy, np_softmax_cross_entropy,
                              class_probability_inputs, CLASS_SHAPES),
    "categorical_hinge": (losses.categorical_hinge, np_categorical_hinge,
                          one_hot_inputs, CLASS_SHAPES),
}
# (name, shape) pairs for parametrisation.
CASE_SHAPES = [(name, shape) for name, case in CASES.items() for shape in case[3]]
# The argument names each loss uses in its error messages.
ARGUMENT_NAMES = {
    "half_squared_error": ("predictions", "targets"),
    "mean_squared_error": ("predictions", "targets"),
    "binary_cross_entropy": ("probs", "targets"),
    "sigmoid_binary_cross_entropy": ("logits", "targets"),
    "hinge": ("scores", "labels"),
}


@functools.partial(jax.jit, static_argnums=0)
def values_and_gradient(loss, predictions, targets):
    """``loss(predictions, targets)`` and the gradient of its sum w.r.t. the predictions."""
    values, pullback = jax.vjp(lambda p: loss(p, targets), predictions)
    (gradient,) = pullback(jnp.ones_like(values))
    return values, gradient


# --------------------------------------------------------------------------------------------
# Values.


def reference_case_inputs(name, shape):
    return CASES[name][2](np.random.default_rng(0), shape)


@functools.lru_cache(maxsize=None)
def every_case_value(x64_enabled):
    """Every loss on every shape of CASE_SHAPES, in ONE jitted program (one compile instead of
    one per case); keyed by the x64 flag so a value is never reused across dtypes."""
    inputs = {case: reference_case_inputs(*case) for case in CASE_SHAPES}
    return jax.device_get(jax.jit(lambda inputs: {
        case: CASES[case[0]][0](*inputs[case]) for case in CASE_SHAPES})(inputs))


@pytest.mark.parametrize("name, shape", CASE_SHAPES)
def test_matches_numpy_reference(name, shape, x64):
    _, reference, _, _ = CASES[name]
    predictions, targets = reference_case_inputs(name, shape)
    values = every_case_value(jax.config.jax_enable_x64)[name, shape]  # eager: see JitTest
    assert values.shape == (shape[0],) and values.dtype == jnp.float64
    np.testing.assert_allclose(values, reference(predictions, targets), rtol=1e-12, atol=1e-12)


def test_aliases():
    assert losses.mse is losses.mean_squared_error
    assert losses.sigmoid_cross_entropy is losses.sigmoid_binary_cross_entropy


def test_binary_losses_agree_on_probabilities_and_logits(x64):
    logits, targets = logit_inputs(np.random.default_rng(1), (6, 1))
    np.testing.assert_allclose(
        jax.jit(losses.binary_cross_entropy)(1 / (1 + np.exp(-logits)), targets),
        jax.jit(losses.sigmoid_binary_cross_entropy)(logits, targets),
        rtol=1e-12,
    )


@pytest.mark.parametrize("negative_label", [0, -1, False])
def test_hinge_accepts_binary_and_bipolar_labels(negative_label):
    scores = np.array([0.5, -2.0, 0.3, 3.0], np.float32)  # NumPy inputs: no eager compile
    labels = np.array([negative_label, True, True, negative_label])
    # per-example: max(0, 1 − t·s) with t = −1, +1, +1, −1
    np.testing.assert_allclose(jax.jit(losses.hinge)(scores, labels), [1.5, 3.0, 0.7, 4.0],
                               rtol=1e-6)


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "categorical_hinge"])
def test_integer_labels_equal_one_hot_targets(name):
    loss = CASES[name][0]
    rng = np.random.default_rng(2)
    shape = (2, 4, 6)  # (batch, time, classes)
    logits = rng.normal(size=shape).astype(np.float32)
    labels = rng.integers(0, shape[-1], shape[:-1]).astype(np.int32)
    one_hot = np.eye(shape[-1], dtype=np.float32)[labels]
    values, gradients = values_and_gradient(loss, logits, labels)
    one_hot_values, one_hot_gradients = values_and_gradient(loss, logits, one_hot)
    np.testing.assert_allclose(values, one_hot_values, rtol=1e-6)
    np.testing.assert_allclose(gradients, one_hot_gradients, rtol=1e-6)


@pytest.mark.parametrize("loss", [losses.softmax_cross_entropy, losses.categorical_hinge],
                         ids=["softmax_cross_entropy", "categorical_hinge"])
def test_padding_label_gives_zero_and_other_out_of_range_labels_nan(loss):
    """One convention for the class losses: −1 pads (0, no gradient), as does an all-zero
    one-hot row; a label >= C or < −1 is NaN, never a silent 0 (it was 0 for softmax
    cross-entropy and 3.0 for categorical_hinge with −1)."""
    scores = np.array([[2.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0],
                       [1.0, 0.0, 0.0, 0.0]], np.float32)

    @jax.jit  # every call in one program: one compile instead of one per eager op
    def outputs(scores):
        return (loss(scores, jnp.array([-1, 4, 2, -2])), loss(scores[2:3], jnp.array([2])),
                loss(scores[:1], jnp.zeros((1, 4))),
                jax.grad(lambda s: loss(s, jnp.array([-1, 2, 2, 2]))[0])(scores),
                # per position along a time axis: only the padded step drops out
                loss(scores[None], jnp.array([[-1, 1, 2, 0]])),
                loss(scores[1:], jnp.array([1, 2, 0])).sum(keepdims=True))

    values, third_alone, all_zero_row, gradient, per_step, unpadded = jax.device_get(
        outputs(scores))  # NumPy results: the comparisons below compile nothing
    assert values[0] == 0.0 and np.isnan(values[1]) and np.isnan(values[3])
    assert np.isfinite(values[2]) and values[2] == third_alone[0]
    np.testing.assert_array_equal(all_zero_row, [0.0])
    np.testing.assert_array_equal(gradient, np.zeros((4, 4)))
    np.testing.assert_allclose(per_step, unpadded, rtol=1e-6)


def test_binary_cross_entropy_eps_clips_probabilities(x64):
    probs, targets = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    values = jax.jit(functools.partial(losses.binary_cross_entropy, eps=1e-3))(probs, targets)
    np.testing.assert_allclose(values, [-np.log(1e-3)] * 2, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Stability at extreme inputs (float32).


def test_sigmoid_binary_cross_entropy_is_stable():
    logits = np.array([-1000.0, -1000.0, 1000.0, 1000.0, 0.0], np.float32)
    targets = np.array([0.0, 1.0, 0.0, 1.0, 0.25], np.float32)
    values, gradient = values_and_gradient(losses.sigmoid_binary_cross_entropy, logits, targets)
    np.testing.assert_allclose(values, [0.0, 1000.0, 1000.0, 0.0, np.log(2.0)], rtol=1e-6)
    # sigmoid(z) − y, exactly 0.5 − y at z = 0 (where |z| has no derivative).
    np.testing.assert_allclose(gradient, [0.0, -1.0, 1.0, 0.0, 0.25], atol=1e-6)


@pytest.mark.parametrize("label, value", [(0, 0.0), (1, 2000.0), (2, 1000.0)])
def test_softmax_cross_entropy_is_stable(label, value):
    logits = np.array([[1000.0, -1000.0, 0.0]], np.float32)
    labels = np.array([label], np.int32)
    values, gradient = values_and_gradient(losses.softmax_cross_entropy, logits, labels)
    np.testing.assert_allclose(values, [value], rtol=1e-6)
    np.testing.assert_allclose(gradient, [[1.0, 0.0, 0.0]] - np.eye(3)[[label]], atol=1e-6)


def test_binary_cross_entropy_is_finite_at_zero_and_one():
    probs = np.array([0.0, 1.0, 0.0, 1.0], np.float32)
    targets = np.array([1.0, 0.0, 0.0, 1.0], np.float32)
    values, gradient = values_and_gradient(losses.binary_cross_entropy, probs, targets)
    assert np.all(np.isfinite(gradient))
    largest = -np.log(np.finfo(np.float32).eps)  # −ln(eps), with the default eps
    np.testing.assert_allclose(values, [largest, largest, 0, 0], atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# Gradients.


def central_differences(f, x, step=1e-6):
    """∂f/∂x by (f(x + h) − f(x − h)) / 2h, one entry at a time (float64)."""
    x = np.asarray(x, np.float64)
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        bump = np.zeros_like(x)
        bump[index] = step
        gradient[index] = (f(x + bump) - f(x - bump)) / (2 * step)
    return gradient


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_matches_finite_differences(name, x64):
    loss, _, make_inputs, shapes = CASES[name]
    rng = np.random.default_rng(3)
    predictions, targets = make_inputs(rng, shapes[-1])
    weights = rng.uniform(0.5, 2.0, shapes[-1][0])  # a different weight per example

    # the weighted total and its gradient in one program (one compile, used for both)
    total_and_gradient = jax.jit(jax.value_and_grad(lambda x: jnp.sum(weights * loss(x, targets))))

    # With this fixed seed no hinge margin lies within a step of its kink.
    analytic = total_and_gradient(predictions)[1]
    numeric = central_differences(lambda x: float(total_and_gradient(x)[0]), predictions)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("make_inputs", [class_probability_inputs, one_hot_inputs])
def test_softmax_cross_entropy_gradient_is_output_delta(make_inputs, x64):
    logits, targets = make_inputs(np.random.default_rng(4), (6, 5))
    _, gradient = values_and_gradient(losses.softmax_cross_entropy, logits, targets)
    np.testing.assert_allclose(gradient, np_softmax(logits) - targets, rtol=1e-12, atol=1e-14)


def test_sigmoid_and_squared_error_gradients_are_output_deltas(x64):
    logits, targets = logit_inputs(np.random.default_rng(5), (6, 3))
    _, gradient = values_and_gradient(losses.sigmoid_binary_cross_entropy, logits, targets)
    np.testing.assert_allclose(gradient, 1 / (1 + np.exp(-logits)) - targets, rtol=1e-12)
    _, gradient = values_and_gradient(losses.half_squared_error, logits, targets)
    np.testing.assert_allclose(gradient, logits - targets, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Shapes and dtypes over random sizes.

batch_sizes = st.sampled_from([1, 3, 5])  # few sizes: each new shape compiles
trailing_shapes = st.sampled_from([(), (1,), (4,), (2, 3)])


@settings(max_examples=8, deadline=None)  # each new shape compiles: keep this small
@given(batch=batch_sizes, trailing=trailing_shapes, name=st.sampled_from(sorted(CASES)),
       seed=st.integers(0, 2**16))
def test_one_independent_value_per_example(batch, trailing, name, seed):
    loss, _, make_inputs, shapes = CASES[name]
    if shapes is CLASS_SHAPES:
        trailing = trailing + (3,)  # a class axis
    predictions, targets = (
        np.asarray(x, np.float32)
        for x in make_inputs(np.random.default_rng(seed), (batch, *trailing))
    )
    # Example i's value depends on example i only: compare with batches of one (both in one
    # program: each new shape compiles).
    values, alone = jax.jit(lambda p, t: (loss(p, t), jax.vmap(
        lambda p, t: loss(p[None], t[None])[0])(p, t)))(predictions, targets)
    assert values.shape == (batch,) and values.dtype == jnp.float32
    assert np.all(np.asarray(values) >= 0)
    np.testing.assert_allclose(values, alone, rtol=1e-6)


@functools.lru_cache(maxsize=None)
def every_loss_on_bfloat16(x64_enabled):
    """{name: loss(bfloat16 predictions, float32 targets)} for every loss, in ONE jitted program;
    keyed by the x64 flag."""
    inputs = {}
    for name, (_, _, make_inputs, shapes) in CASES.items():
        predictions, targets = make_inputs(np.random.default_rng(6), shapes[0])
        inputs[name] = np.asarray(predictions, jnp.bfloat16), np.asarray(targets, np.float32)
    return jax.device_get(jax.jit(lambda inputs: {
        name: CASES[name][0](*inputs[name]) for name in CASES})(inputs))


@pytest.mark.parametrize("name", sorted(CASES))
def test_dtype_follows_the_predictions(name):
    values = every_loss_on_bfloat16(jax.config.jax_enable_x64)[name]
    assert values.dtype == jnp.bfloat16


class JitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*((name, name) for name in sorted(CASES)))
    def test_jit_and_eager_match_numpy(self, name):
        loss, reference, make_inputs, shapes = CASES[name]
        predictions, targets = make_inputs(np.random.default_rng(7), shapes[-1])
        predictions = predictions.astype(np.float32)
        np.testing.assert_allclose(
            self.variant(loss)(predictions, targets), reference(predictions, targets),
            rtol=1e-5, atol=1e-6,
        )


# --------------------------------------------------------------------------------------------
# Errors.


@pytest.mark.parametrize("name", sorted(ARGUMENT_NAMES))
def test_shape_mismatch_is_an_error_not_a_broadcast(name):
    prediction_name, target_name = ARGUMENT_NAMES[name]
    loss = CASES[name][0]
    with pytest.raises(
        ValueError,
        match=rf"{name}: {prediction_name} and {target_name} must have the same shape "
        rf"\(nothing is broadcast\); got {prediction_name} \(4, 1\) and {target_name} \(4,\)\. "
        rf"Reshape {target_name} to \(4, 1\)\.",
    ):
        loss(np.zeros((4, 1), np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=rf"got {prediction_name} \(4, 2\) and {target_name} "
                                         r"\(4, 3\)\.$"):  # no reshape hint when sizes differ
        loss(np.zeros((4, 2), np.float32), np.zeros((4, 3), np.float32))


@pytest.mark.parametrize(
    "name, logits_name", [("softmax_cross_entropy", "logits"), ("categorical_hinge", "scores")]
)
def test_class_label_errors(name, logits_name):
    loss = CASES[name][0]
    logits = np.zeros((8, 10), np.float32)
    with pytest.raises(
        ValueError,
        match=rf"{name}: for {logits_name} \(8, 10\), integer class labels must have shape "
        r"\(8,\); got labels \(8, 10\) of dtype int32\. Pass class indices as integers "
        r"of shape \(8,\), or per-class targets as floats of shape \(8, 10\)\.",
    ):
        loss(logits, np.zeros((8, 10), np.int32))
    with pytest.raises(
        ValueError,
        match=rf"{name}: for {logits_name} \(8, 10\), floating \(one-hot or probability\) "
        r"targets must have shape \(8, 10\); got labels \(8,\) of dtype float32",
    ):
        loss(logits, np.zeros(8, np.float32))
    with pytest.raises(
        ValueError,
        match=rf"{name}: {logits_name} must have shape \(batch, \.\.\., classes\); got \(8,\)",
    ):
        loss(np.zeros(8, np.float32), np.zeros(8, np.int32))


def test_predictions_must_be_floating_and_batched():
    with pytest.raises(TypeError, match=r"hinge: scores must be floating point; got dtype int32"):
        losses.hinge(np.ones(3, np.int32), np.ones(3, np.float32))
    with pytest.raises(
        ValueError,
        match=r"mean_squared_error: predictions needs a leading batch axis; got a scalar",
    ):
        losses.mean_squared_error(jnp.float32(1.0), jnp.float32(1.0))


def test_get():
    assert losses.get("softmax_cross_entropy") is losses.softmax_cross_entropy
    assert losses.get("mse") is losses.mean_squared_error
    assert losses.get(np_hinge) is np_hinge
    with pytest.raises(
        ValueError, match=r"get: unknown loss 'cross_entropy'; valid names: binary_cross_entropy, "
    ):
        losses.get("cross_entropy")
    with pytest.raises(TypeError, match=r"get: expected a loss name or a loss function; got int"):
        losses.get(3)


# --------------------------------------------------------------------------------------------
# Penalties.


class Gates(NamedTuple):  # a NamedTuple in the tree: its fields are attribute path entries
    w: jax.Array
    b: jax.Array


BIG = 1e6  # non-decayed leaves get huge values, so counting one by mistake is obvious


def make_params():
    rng = np.random.default_rng(8)

    def array(*shape, scale=1.0):
        return scale * rng.normal(size=shape)  # NumPy leaves: float64 under x64

    return {
        "conv": {"w": array(3, 3, 2, 4), "b": array(4, scale=BIG)},
        "norm": {"gamma": array(4, scale=BIG), "beta": array(4, scale=BIG)},
        "layers": [{"w": array(4, 3), "bias": array(3, scale=BIG)}, {"w": array(3, 2)}],
        "gates": Gates(w=array(2, 2), b=array(2, scale=BIG)),
    }


def weight_leaves(params):
    return [params["conv"]["w"], params["layers"][0]["w"], params["layers"][1]["w"],
            params["gates"].w]


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_penalties_count_weights_only(jit, x64):
    params = make_params()
    weights = weight_leaves(params)
    l2_penalty, l1_penalty = (
        (jax.jit(losses.l2_penalty), jax.jit(losses.l1_penalty))
        if jit
        else (losses.l2_penalty, losses.l1_penalty)
    )
    np.testing.assert_allclose(
        l2_penalty(params), 0.5 * sum(np.sum(w**2) for w in weights), rtol=1e-12
    )
    np.testing.assert_allclose(l1_penalty(params), sum(np.sum(np.abs(w)) for w in weights),
                               rtol=1e-12)


def test_penalty_gradients_leave_biases_alone(x64):
    params = make_params()
    params["gates"] = Gates(w=np.array([[0.0, -2.0], [3.0, 0.0]]), b=params["gates"].b)
    l2_gradient = jax.jit(jax.grad(losses.l2_penalty))(params)
    l1_gradient = jax.jit(jax.grad(losses.l1_penalty))(params)
    assert not np.any(l2_gradient["conv"]["b"]) and not np.any(l1_gradient["norm"]["gamma"])
    np.testing.assert_array_equal(l2_gradient["layers"][0]["w"], params["layers"][0]["w"])
    # sign(w), with 0 at w = 0: exactly-zero weights are not pushed around.
    np.testing.assert_array_equal(l1_gradient["gates"].w, [[0.0, -1.0], [1.0, 0.0]])


def test_penalty_mask_by_predicate(x64):
    params = make_params()

    def matrices_only(path, leaf):
        return leaf.ndim == 2

    dense_weights = [params["layers"][0]["w"], params["layers"][1]["w"], params["gates"].w]
    np.testing.assert_allclose(
        jax.jit(lambda p: losses.l2_penalty(p, matrices_only))(params),
        0.5 * sum(np.sum(w**2) for w in dense_weights), rtol=1e-12,
    )

    def only_under_layers(path, leaf):
        return path[0] == jax.tree_util.DictKey("layers")

    layer_leaves = jax.tree_util.tree_leaves(params["layers"])
    np.testing.assert_allclose(
        jax.jit(lambda p: losses.l1_penalty(p, only_under_layers))(params),
        sum(np.sum(np.abs(w)) for w in layer_leaves), rtol=1e-12,
    )


def test_penalty_mask_pytree_and_empty_mask():
    params = {"a": {"w": np.array([1.0, -2.0], np.float32)}, "b": np.array([3.0], np.float32)}
    l1, l2 = jax.jit(lambda p: (  # masks are static: both penalties in one program
        losses.l1_penalty(p, {"a": {"w": False}, "b": True}),
        losses.l2_penalty(p, lambda path, leaf: False)))(params)
    assert float(l1) == 3.0
    assert float(l2) == 0.0


def test_penalty_errors():
    ones = jax.device_put(np.ones(2, np.float32))  # a jax.Array without an eager compile
    params = {"dense": {"w": ones, "b": ones}}
    with pytest.raises(
        ValueError,
        match=r"l2_penalty: mask\['dense'\] names \['kernel'\], which params\['dense'\] does "
        r"not have; its keys are \['w', 'b'\]",
    ):
        losses.l2_penalty(params, {"dense": {"kernel": True}})
    with pytest.raises(
        TypeError, match=r"l1_penalty: mask entries must be Python bools \(masks are static\); "
        r"got .*Array"
    ):
        losses.l1_penalty(params, lambda path, leaf: leaf.sum() > 0)
