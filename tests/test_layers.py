"""The conformance suite: every layer of the registry (layer_registry.py) through
`fnn.testing.check_layer`, the same checks users run on their own layers.

init(key, input_shape) -> (output_shape, params, state)
apply(params, state, x, *, key=None, train=False, context=None) -> (y, new_state)

One test per case runs every check (init shape == apply shape, eval_shape(init), unknown batch
axis, deterministic init with named params, float32 params, dtypes kept, jit == eager, no
retrace, state structure stable through lax.cond, eval mode, per example, padding mask, float64
finite-difference gradients); a hypothesis sweep re-runs the shape checks (abstractly) over
random sizes.
"""
import jax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn import testing
from layer_registry import CASES, DEFAULT_SIZES, Sizes

KEY = jax.random.PRNGKey(0)
by_name = pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])


def registry_inputs(case):
    """The case's input maker in `fnn.testing`'s form ``(rng, shape, dtype)``."""
    if case.inputs is None:
        return testing.away_from_zero if case.kinks else None

    def make(rng, shape, dtype):  # the registry's makers take a PRNG key
        return case.inputs(jax.random.PRNGKey(int(rng.integers(2**31))), shape, dtype)

    return make


def options(case):
    """`check_layer` keywords for a registry case."""
    return dict(key=KEY, inputs=registry_inputs(case),
                batch_stats=case.batch_stats,
                gradients="zero" if case.zero_grad else "finite_differences")


@by_name
def test_conformance(case):
    layer, input_shape = case.build(DEFAULT_SIZES)
    report = testing.check_layer(layer, input_shape, **options(case))
    # every check ran, but for the skips check_layer decides with a stated reason: a train-mode
    # output drawn at random for the whole batch, or batch statistics, is not per example; and
    # a train mode that computes what eval mode does has the eval-mode gradients
    allowed = {"per_example[train]": ("depends on the key", "batch statistics"),
               "gradients[train]": ("train mode computed exactly what eval mode did",)}
    for result in report.skips:
        assert any(reason in result.detail for reason in allowed.get(result.name, ())), result


_SHAPES_ONLY = {"dtype": "checked at the default sizes (test_conformance)",
                "params_float32": "checked at the default sizes (test_conformance)"}


@by_name
@settings(max_examples=4, deadline=None)
@given(batch=st.integers(1, 7), features=st.integers(1, 9), units=st.integers(1, 6))
def test_shapes_over_random_sizes(case, batch, features, units):
    """init shape == apply shape, the unknown batch axis and the state structure, by abstract
    evaluation (nothing compiled) over random sizes."""
    layer, input_shape = case.build(Sizes(batch, features, units))
    report = testing.check_layer(layer, input_shape, abstract_only=True, skip=_SHAPES_ONLY,
                                 **options(case))
    assert {r.check for r in report if r.status == "passed"} == {
        "init_shape", "unknown_batch", "state_stable"}
