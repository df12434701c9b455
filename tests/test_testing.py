"""`fnn.testing.check_layer` catches each kind of broken layer, and says what is wrong.

Each test builds a small layer with one deliberate defect and asserts that the check meant for
it fails (with words and numbers in the report) while the layer's other properties pass. Checks
that cost compilations and are not under test are skipped, with that reason, to keep this file
fast; test_layers.py runs every check on every layer of fnn.
"""
import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import testing
from fnn.core import Layer

NOT_HERE = "not under test here"
COMPUTING = [f"{check}[{mode}]" for check in ("jit_matches_eager", "no_retrace", "state_stable",
                                              "per_example", "mask", "gradients")
             for mode in ("eval", "train")] + ["eval_mode"]


def only(*names):
    """Skip (with a reason) every computing check but ``names``; the cheap checks of shapes,
    dtypes and init always run."""
    assert set(names) <= set(COMPUTING)
    return {name: NOT_HERE for name in COMPUTING if name not in names}


def Scale(*, wrong_init_shape=False, promote=False, wrong_grad=False):
    """y = s · x with one learned scalar s; optionally broken in one way."""
    def init(key, input_shape):
        out = tuple(input_shape[:-1]) + (input_shape[-1] + 1,) if wrong_init_shape else input_shape
        return out, {"s": jnp.asarray(1.5, jnp.float32)}, {}

    @jax.custom_vjp
    def scale(s, x):
        return s * x

    def scale_fwd(s, x):
        return s * x, (s, x)

    def scale_bwd(residuals, g):
        s, x = residuals
        return jnp.sum(g * x) * 2.0, g * s  # d/ds is twice what it should be

    scale.defvjp(scale_fwd, scale_bwd)

    def apply(params, state, x, *, key=None, train=False):
        y = scale(params["s"], x) if wrong_grad else params["s"] * x
        if promote:
            y = y * np.array(2.0)  # a NumPy float64 array: float64 output when x64 is on
        return y, state

    return Layer(init, apply, "Scale()")


def test_correct_layer_passes_every_check():
    report = testing.check_layer(Scale(), (3, 2))
    assert report.ok
    assert {r.check for r in report} == set(testing.CHECKS)
    assert report["gradients[eval]"].numbers["coordinates"] == 1 + 6  # s and every input
    # the one skip: train mode computes what eval mode does, so one gradient check serves both
    assert [r.name for r in report.skips] == ["gradients[train]"]
    assert "train mode computed exactly what eval mode did" in report.skips[0].detail
    assert "all 21 checks run passed, 1 skipped" in str(report)


def test_wrong_init_shape():
    report = testing.check_layer(Scale(wrong_init_shape=True), (3, 2), abstract_only=True,
                                 raise_on_failure=False)
    assert report.failed_checks == {"init_shape", "unknown_batch"} or \
        report.failed_checks == {"init_shape"}
    assert "init says the output shape is (3, 3); apply gives (3, 2)" in str(report)
    with pytest.raises(testing.LayerCheckError, match=r"init_shape\[eval\]"):
        testing.check_layer(Scale(wrong_init_shape=True), (3, 2), abstract_only=True)


def test_dtype_promotion():
    report = testing.check_layer(Scale(promote=True), (3, 2), abstract_only=True,
                                 raise_on_failure=False)
    assert report.failed_checks == {"dtype"}
    assert ("float32 inputs and params (x64 on) give y is float64"
            in report["dtype[eval]"].detail)


def test_wrong_custom_gradient():
    report = testing.check_layer(Scale(wrong_grad=True), (3, 2), raise_on_failure=False,
                                 skip=only("gradients[eval]"))
    assert report.failed_checks == {"gradients"}
    result = report["gradients[eval]"]
    assert result.detail.startswith("d/dparams['s']: autodiff")
    assert result.numbers["at"] == "params['s']"
    np.testing.assert_allclose(result.numbers["autodiff"],
                               2 * result.numbers["finite_difference"], rtol=1e-6)


def test_python_side_counter_retraces():
    """A counter kept in Python runs at trace time: jit returns a constant, and the weakly
    typed step it puts into the state makes the second call trace again."""
    def Counting():
        calls = itertools.count()

        def init(key, input_shape):
            return input_shape, {}, {"step": jnp.zeros((), jnp.int32)}

        def apply(params, state, x, *, key=None, train=False):
            if train:
                state = {"step": jnp.asarray(next(calls))}
            return x, state

        return Layer(init, apply, "Counting()")

    skip = {**only("no_retrace[train]", "jit_matches_eager[train]"),
            "dtype": "the step is int64 under x64, another defect of this layer"}
    report = testing.check_layer(Counting(), (2, 3), raise_on_failure=False, skip=skip)
    assert report.failed_checks == {"no_retrace", "jit_matches_eager"}
    assert report["no_retrace[train]"].numbers["traces"] == 2
    assert "traced again (1 more trace(s))" in str(report)
    # the jitted step is frozen at the count of its trace; eager counts on
    assert re.search(r"state\['step'\] is \d+, expected \d+",
                     report["jit_matches_eager[train]"].detail)


def test_weak_type_drift_retraces():
    """Only the trace count sees this one: the state keeps its shape and dtype (int32 ()), but
    starts weakly typed (from a Python 0) and comes back strongly typed."""
    def Steps():
        def init(key, input_shape):
            return input_shape, {}, {"step": jnp.asarray(0)}

        def apply(params, state, x, *, key=None, train=False):
            if train:
                state = {"step": state["step"] + jnp.ones((), jnp.int32)}
            return x, state

        return Layer(init, apply, "Steps()")

    skip = {**only("no_retrace[train]", "state_stable[train]", "jit_matches_eager[train]"),
            "dtype": "the step is int64 under x64, another defect of this layer"}
    report = testing.check_layer(Steps(), (2, 3), raise_on_failure=False, skip=skip)
    assert report.failed_checks == {"no_retrace"}
    assert report["no_retrace[train]"].status == "failed"
    assert report["state_stable[train]"].status == "passed"


def running_sum(*, in_eval=False):
    """y = x; state ``total`` += Σ x over the real rows, in train mode (and, broken, in eval)."""
    def init(key, input_shape):
        return input_shape, {}, {"total": jnp.zeros(input_shape[-1:], jnp.float32)}

    def apply(params, state, x, *, key=None, train=False, context=None):
        if train or in_eval:
            m = jnp.ones(x.shape[:1], x.dtype) if context is None else context.mask
            total = state["total"] + (m[:, None] * x).sum(0)
            state = {"total": total.astype(state["total"].dtype)}
        return x, state

    return Layer(init, apply, "RunningSum()")


def test_eval_mode_changing_state():
    report = testing.check_layer(running_sum(in_eval=True), (2, 3), raise_on_failure=False,
                                 skip=only("eval_mode", "state_stable[eval]"))
    assert report.failed_checks == {"eval_mode"}
    assert "eval mode changed the state: state['total']" in str(report)
    assert testing.check_layer(running_sum(), (2, 3), skip=only("eval_mode")).ok


def mixing(batch_stats_honour_mask=False):
    """y = x − mean over the batch (of the rows with mask 1 if told to honour the mask)."""
    def init(key, input_shape):
        return input_shape, {}, {}

    def apply(params, state, x, *, key=None, train=False, context=None):
        m = jnp.ones(x.shape[:1], x.dtype)
        if batch_stats_honour_mask and context is not None:
            m = context.mask.astype(x.dtype)
        mean = (m[:, None] * x).sum(0, keepdims=True) / m.sum()
        return x - mean, state

    return Layer(init, apply, "Centre()")


def test_mixing_rows():
    report = testing.check_layer(mixing(), (3, 2), raise_on_failure=False,
                                 skip=only("per_example[eval]", "mask[eval]"))
    assert report.failed_checks == {"per_example", "mask"}
    text = str(report)
    assert "applying each example alone (vmap) differs from the batch" in text
    assert "changing the padded rows (mask [1, 1, 0]) changes the real rows' outputs" in text


def test_batch_stats_layer_must_leave_padding_out():
    """batch_stats=True excuses the mixing in train mode only if padded rows stay out."""
    skip = only("per_example[train]", "mask[train]")
    ok = testing.check_layer(mixing(batch_stats_honour_mask=True), (3, 2), batch_stats=True,
                             skip=skip)
    assert ok["per_example[train]"].status == "skipped"
    assert "batch statistics" in ok["per_example[train]"].detail
    assert ok["mask[train]"].status == "passed"
    bad = testing.check_layer(mixing(), (3, 2), batch_stats=True, raise_on_failure=False,
                              skip=skip)
    assert bad.failed_checks == {"mask"}
    assert "changes the real rows' outputs" in bad["mask[train]"].detail


def test_skips_state_their_reason_and_arguments_are_checked():
    report = testing.check_layer(Scale(), (3, 2), abstract_only=True,
                                 skip={"dtype": "this layer is float32 only"})
    assert report["dtype"].status == "skipped"
    assert "skipped dtype: this layer is float32 only" in str(report)
    with pytest.raises(ValueError, match="check_layer: `skip` names unknown checks"):
        testing.check_layer(Scale(), (3, 2), skip={"speed": "slow"})
    with pytest.raises(ValueError, match="check_layer: `skip` names unknown checks"):
        testing.check_layer(Scale(), (3, 2), skip={"eval_mode[train]": "no such mode"})
    with pytest.raises(ValueError, match="reason"):
        testing.check_layer(Scale(), (3, 2), skip={"dtype": ""})
    with pytest.raises(ValueError, match="`gradients`"):
        testing.check_layer(Scale(), (3, 2), gradients="maybe")
    with pytest.raises(ValueError, match="`layer` must be an fnn.core.Layer"):
        testing.check_layer(lambda x: x, (3, 2))


def test_large_leaves_are_sampled():
    def Wide():
        def init(key, input_shape):
            return input_shape, {"w": jnp.linspace(0.5, 1.5, input_shape[-1])}, {}

        def apply(params, state, x, *, key=None, train=False):
            return x * params["w"][None], state

        return Layer(init, apply, "Wide()")

    report = testing.check_layer(Wide(), (2, 40), max_grad_coordinates=8,
                                 skip=only("gradients[eval]"))
    numbers = report["gradients[eval]"].numbers
    assert numbers["coordinates"] == 8 + 8 and numbers["sampled"]
