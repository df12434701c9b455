"""One meaning for masks over parameter trees (fnn.param_masks): the same mask selects the same
leaves for the penalties, the weight decays, masked, freeze and the monitor."""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import losses, monitor, optim, param_masks
from fnn.layers import Dense, serial


class Gates(NamedTuple):
    w: jax.Array
    b: jax.Array


def make_params():
    """Leaf values 1, 2, 3, ... (float64 under x64): a selected set of leaves has a unique sum."""
    shapes = {"dense_0": {"w": (2, 3), "b": (3,)}, "norm": {"gamma": (3,), "beta": (3,)},
              "dense_1": {"w": (3, 2), "b": (2,)}}
    leaves, treedef = jax.tree_util.tree_flatten(shapes, is_leaf=lambda x: isinstance(x, tuple))
    return treedef.unflatten([np.full(shape, 2.0 ** i) for i, shape in enumerate(leaves)])


# (mask, the (layer, leaf) pairs it selects)
MASKS = [
    (None, {("dense_0", "w"), ("dense_1", "w")}),
    (True, {("dense_0", "w"), ("dense_0", "b"), ("dense_1", "w"), ("dense_1", "b"),
            ("norm", "gamma"), ("norm", "beta")}),
    (False, set()),
    ({"dense_0": True}, {("dense_0", "w"), ("dense_0", "b")}),
    ({"dense_0": {"w": True}, "norm": True}, {("dense_0", "w"), ("norm", "gamma"),
                                               ("norm", "beta")}),
    ({"dense_0", "dense_1"}, {("dense_0", "w"), ("dense_0", "b"), ("dense_1", "w"),
                              ("dense_1", "b")}),
    (["norm"], {("norm", "gamma"), ("norm", "beta")}),
    (lambda path, leaf: leaf.ndim == 2, {("dense_0", "w"), ("dense_1", "w")}),
    (lambda path, leaf: param_masks.leaf_name(path) == "b", {("dense_0", "b"), ("dense_1", "b")}),
]
IDS = ["default", "all", "none", "prefix", "nested_prefix", "names_set", "names_list",
       "predicate", "predicate_by_name"]


def selected(params, pairs):
    return [params[layer][leaf] for layer, leaf in sorted(pairs)]


@pytest.mark.parametrize("mask, pairs", MASKS, ids=IDS)
def test_the_same_mask_selects_the_same_leaves_everywhere(x64, mask, pairs):
    params = make_params()
    expected = {(layer, leaf): (layer, leaf) in pairs for layer in params for leaf in params[layer]}
    resolved = param_masks.resolve(mask, params, where="test")
    assert {(layer, leaf): flag for layer in resolved for leaf, flag in resolved[layer].items()} \
        == expected

    chosen = selected(params, pairs)
    # penalties (l2_penalty with {"dense_0": True} raised before)
    np.testing.assert_allclose(losses.l2_penalty(params, mask),
                               0.5 * sum(np.sum(w ** 2) for w in chosen), rtol=1e-14)
    np.testing.assert_allclose(losses.l1_penalty(params, mask),
                               sum(np.sum(np.abs(w)) for w in chosen), rtol=1e-14)

    zeros = jax.tree_util.tree_map(np.zeros_like, params)
    ones = jax.tree_util.tree_map(np.ones_like, params)
    # L2 decay: u = g + λw on the selected leaves, g elsewhere
    decay = optim.add_decayed_weights(0.5, mask)
    updates, _ = decay.update(zeros, decay.init(params), params)
    # freeze: u = 0 on the selected leaves; masked(negate): −g there
    frozen, _ = optim.freeze(mask).update(ones, optim.freeze(mask).init(params), params)
    negated = optim.masked(optim.negate_gradients(), mask)
    flipped, _ = negated.update(ones, negated.init(params), params)
    for layer in params:
        for leaf, w in params[layer].items():
            chosen_leaf = (layer, leaf) in pairs
            np.testing.assert_array_equal(updates[layer][leaf], 0.5 * w if chosen_leaf else 0 * w)
            np.testing.assert_array_equal(frozen[layer][leaf], 0 * w if chosen_leaf else 1 + 0 * w)
            np.testing.assert_array_equal(flipped[layer][leaf], -1 + 0 * w if chosen_leaf
                                          else 1 + 0 * w)


def test_the_monitor_measures_the_leaves_of_the_default_mask():
    """weight_var is Var(W) over the leaves the default mask selects: the kernel, not the bias."""
    model = serial(Dense(3, b_init="ones"), Dense(2))
    _, params, state = model.init(jax.random.PRNGKey(0), (4, 5))
    stats = monitor.layer_stats(model, params, state, (jnp.ones((4, 5)), jnp.ones((4, 2))),
                                loss="mse")
    for name in params:
        kernel = param_masks.selected_leaves(None, params[name], where="test")
        assert len(kernel) == 1 and kernel[0] is params[name]["w"]
        np.testing.assert_allclose(stats[name]["weight_var"], np.var(params[name]["w"]),
                                   rtol=1e-6)


def test_default_mask_skips_biases_and_normalisation():
    params = {"conv": {"w": 1.0, "b": 2.0}, "norm": {"gamma": 3.0, "beta": 4.0},
              "layers": [{"w": 5.0, "bias": 6.0}, {"w": 7.0}], "gates": Gates(w=8.0, b=9.0)}
    assert param_masks.weights(params) == param_masks.resolve(None, params, where="t") == {
        "conv": {"w": True, "b": False},
        "norm": {"gamma": False, "beta": False},
        "layers": [{"w": True, "bias": False}, {"w": True}],
        "gates": Gates(w=True, b=False),
    }
    assert param_masks.weights({"w": 1.0, "b": 2.0, "embedding": 3.0}, skip=("embedding",)) == \
        {"w": True, "b": True, "embedding": False}


def test_prefix_masks_reach_into_lists_and_named_tuples():
    params = {"layers": [{"w": 1.0}, {"w": 2.0}], "gates": Gates(w=3.0, b=4.0)}
    mask = {"layers": [False, True], "gates": Gates(w=True, b=False)}
    assert param_masks.resolve(mask, params, where="t") == {
        "layers": [{"w": False}, {"w": True}], "gates": Gates(w=True, b=False)}


def test_masks_are_static_under_jit():
    params = {"dense_0": {"w": jnp.ones(2), "b": jnp.ones(2)}, "dense_1": {"w": jnp.ones(2)}}
    penalty = jax.jit(lambda p: losses.l2_penalty(p, {"dense_0": True}))
    assert float(penalty(params)) == 2.0


@pytest.mark.parametrize("mask, error, message", [
    ({"dense_9": True}, ValueError,
     r"l2_penalty: mask names \['dense_9'\], which params does not have; its keys are "
     r"\['dense_0', 'dense_1'\]"),
    ({"dense_0": {"kernel": True}}, ValueError,
     r"l2_penalty: mask\['dense_0'\] names \['kernel'\], which params\['dense_0'\] does not have"),
    ({"dense_0": [True, False]}, ValueError,
     r"(?s)l2_penalty: mask\['dense_0'\] must be a bool, or a tree of bools shaped like "
     r"params\['dense_0'\].*mask: .*params: "),
    ({"dense_0": 1}, TypeError,
     r"l2_penalty: mask entries must be Python bools \(masks are static\); got 1 of type int "
     r"at mask\['dense_0'\]"),
    ({"dense_7", "dense_0"}, ValueError, r"l2_penalty: mask names \['dense_7'\]"),
    (lambda path, leaf: jnp.sum(leaf) > 0, TypeError,
     r"l2_penalty: mask entries must be Python bools \(masks are static\); got .*Array"),
])
def test_bad_masks_name_the_function_and_the_mismatch(mask, error, message):
    params = {"dense_0": {"w": jnp.ones(2), "b": jnp.ones(2)}, "dense_1": {"w": jnp.ones(2)}}
    with pytest.raises(error, match=message):
        losses.l2_penalty(params, mask)


def test_weights_rejects_a_string_of_names():
    with pytest.raises(TypeError, match=r"weights: `skip` must be a collection of names such as "
                                        r"\('b', 'bias'\); got the string 'b'"):
        param_masks.weights({"w": 1.0}, skip="b")


def test_optim_no_longer_imports_losses_for_its_masks():
    import fnn.optim.transforms as transforms
    import inspect
    source = inspect.getsource(transforms)
    assert "fnn.losses" not in source.replace("``fnn.losses.l2_penalty``", "")
