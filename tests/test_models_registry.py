"""`[model]` by name: every registry kind builds from a config, builder arguments are checked
against the signature, unknown kinds, layer types and arguments are `ConfigError`s naming the
key, and a generic `[[model.layers]]` list builds the same network as the builder.

Shapes are found with `init_shapes` (jax.eval_shape: nothing is computed), so the large
architectures cost only their tracing.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.config import ConfigError, from_dict
from fnn.core import count_params, init_shapes, walk
from fnn.experiment import build, check
from fnn.models import mlp, registry

# kind -> (options, input shape (batch, ...)): traced (jax.eval_shape) at a small size; the
# large ImageNet architectures are only built here (their shapes and parameter counts at full
# size are tested in test_models_cnn.py), to keep the tracing time small
SMALL = {
    "lenet5": ({"padding": 2}, (2, 28, 28)),
    "keras_cnn": ({}, (2, 28, 28)),
    # `hidden` is also an MLP key of [model]: a builder argument of that name goes in options
    "vgg": ({"depth": 11, "options": {"hidden": 16}}, (2, 32, 32, 3)),
    "resnet": ({"depth": 18, "widths": [4, 4, 4, 4], "stem": "small"}, (2, 16, 16)),
    "densenet": ({"blocks": [1, 1], "growth_rate": 4, "init_features": 8}, (2, 32, 32)),
    "fcn": ({"widths": [4, 8]}, (2, 16, 16)),
    "deconvnet": ({"widths": [4, 8]}, (2, 16, 16)),
}
BUILT_ONLY = {
    "alexnet": {"drop_rate": 0.1}, "vgg11": {"options": {"hidden": 16}},
    "vgg16": {"options": {"hidden": 16}}, "resnet18": {"widths": [4, 4, 4, 4]},
    "resnet34": {"stem": "small"}, "resnet50": {}, "googlenet": {"large_kernel": 3},
    "densenet121": {"growth_rate": 2}, "mobilenet_v1": {"alpha": 0.25},
    "mobilenet_v2": {"alpha": 0.35}, "xception": {"middle_blocks": 1},
}


def run_config(model):
    return from_dict({"model": model})


def test_every_registry_kind_is_covered_here():
    assert set(SMALL) | set(BUILT_ONLY) == set(registry.MODELS)
    assert not set(SMALL) & set(BUILT_ONLY)


@pytest.mark.parametrize("kind", sorted(BUILT_ONLY))
def test_every_large_kind_builds_from_a_config_with_its_options(kind):
    config = run_config({"kind": kind, **BUILT_ONLY[kind]})
    check(config)
    model = build(config, 10)
    assert [name for name, _ in model.layers] == ["input", "model"]
    assert model.name == kind and model.layers[1][1].name == kind  # the builder's own network


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_every_kind_builds_from_a_config_with_its_options(kind):
    options, shape = SMALL[kind]
    config = run_config({"kind": kind, **options})
    check(config)
    model = build(config, 10)
    out, params, _ = init_shapes(model, shape)
    segmentation = kind in ("fcn", "deconvnet")
    assert out == ((2, *shape[1:3], 10) if segmentation else (2, 10)), kind
    assert set(params) == {"input", "model"} and params["input"] == {}
    assert count_params(params) > 0


def kinds(model, shape):
    return [info.layer.kind for info in walk(model, shape)]


def test_builder_options_reach_the_builder():
    default = kinds(build(run_config({"kind": "lenet5", "padding": 2}), 10), (1, 28, 28))
    assert "avg_pool2d" in default and "max_pool2d" not in default
    # at the top of [model] or in [model.options]; `activation` is an MLP key: options only
    mx = build(run_config({"kind": "lenet5", "pool": "max",
                           "options": {"padding": 2, "activation": "relu"}}), 10)
    got = kinds(mx, (1, 28, 28))
    assert "max_pool2d" in got and "avg_pool2d" not in got and "relu" in got
    # keyword arguments forwarded by resnet18(**kwargs) to resnet(): `stem`
    small = build(run_config({"kind": "resnet18", "stem": "small", "widths": [2, 2, 2, 2]}), 3)
    assert init_shapes(small, (1, 8, 8))[0] == (1, 3)
    with pytest.raises(ConfigError, match="unknown config key `model.depth`: resnet18 takes"):
        check(run_config({"kind": "resnet18", "depth": 34}))
    # a list from TOML reaches the builder as a tuple: two stages of fcn halve twice
    fcn3 = build(run_config({"kind": "fcn", "widths": [4, 4, 4]}), 3)
    assert init_shapes(fcn3, (1, 16, 16))[0] == (1, 16, 16, 3)


@pytest.mark.parametrize("model, message", [
    ({"kind": "lenet6"}, "`model.kind`: unknown model 'lenet6'; expected one of: alexnet"),
    ({"kind": "lenet5", "poool": "max"}, "unknown config key `model.poool`: lenet5 takes"),
    ({"kind": "lenet5", "num_classes": 3}, "unknown config key `model.num_classes`"),
    ({"kind": "lenet5", "padding": "two"}, "`model.padding` must be int"),
    ({"kind": "keras_cnn", "hidden": [10]}, "`model.hidden` is for kind 'mlp'"),
    # written, it is refused even when equal to the MLP's default (it would be ignored)
    ({"kind": "keras_cnn", "activation": "relu"}, "`model.activation` is for kind 'mlp'; "
                                                  "arguments of 'keras_cnn' go in"),
    ({"kind": "resnet", "depth": 19}, "depth"),  # the builder's own check, under `model`
    ({"kind": "mlp", "hiden": [10]}, "unknown config key `model.hiden`: the mlp takes hidden"),
    ({"kind": "lenet5", "layers": [{"type": "relu"}]}, "`model.layers` needs `model.kind`"),
    ({"kind": "layers"}, "`model.layers` must list at least one layer table"),
    ({"kind": "layers", "layers": [{"type": "flatten"}, {"type": "conv9d"}]},
     "`model.layers[1].type`: unknown layer type 'conv9d'; expected one of:"),
    ({"kind": "layers", "layers": [{"type": "conv2d", "featurs": 3, "kernel_size": 3}]},
     "unknown config key `model.layers[0].featurs`: conv2d takes features, kernel_size"),
    ({"kind": "layers", "layers": [{"type": "conv2d", "features": 3}]},
     "`model.layers[0].kernel_size` is required by conv2d"),
    ({"kind": "layers", "layers": [{"kernel_size": 3}]}, "`model.layers[0].type` is required"),
    ({"kind": "layers", "layers": [{"type": "dense", "units": 3, "use_bias": 1}]},
     "`model.layers[0].use_bias` must be bool"),
    ({"kind": "layers", "layers": [{"type": "dense", "units": 3, "name": "my layer"}]},
     "`model.layers[0].name` must be an identifier"),
])
def test_bad_model_configs_are_rejected_naming_the_key(model, message):
    with pytest.raises(ConfigError) as error:  # reading the table, checking or building it
        config = run_config(model)
        check(config)
        build(config, 10)
    assert message in str(error.value)


LENET5_LAYERS = [
    {"type": "conv2d", "name": "c1", "features": 6, "kernel_size": 5, "padding": 2},
    {"type": "activation", "name": "c1_act", "fn": "tanh"},
    {"type": "avg_pool2d", "name": "s2", "window": 2},
    {"type": "conv2d", "name": "c3", "features": 16, "kernel_size": [5, 5]},
    {"type": "activation", "name": "c3_act", "fn": "tanh"},
    {"type": "avg_pool2d", "name": "s4", "window": 2},
    {"type": "conv2d", "name": "c5", "features": 120, "kernel_size": 5},
    {"type": "activation", "name": "c5_act", "fn": "tanh"},
    {"type": "flatten", "name": "flatten"},
    {"type": "dense", "name": "f6", "units": 84},
    {"type": "activation", "name": "f6_act", "fn": "tanh"},
    {"type": "dense", "name": "output", "units": 10},
]


def random_params(model, shape, seed=0):
    """Parameters of ``model``'s structure filled with NumPy normals (eager `init` would compile
    a random-number kernel per parameter shape: seconds)."""
    _, params, state = init_shapes(model, shape)
    rng = np.random.default_rng(seed)
    fill = lambda s: jnp.asarray(0.2 * rng.standard_normal(s.shape), s.dtype)
    return jax.tree_util.tree_map(fill, params), jax.tree_util.tree_map(fill, state)


def test_a_generic_layer_list_builds_the_same_network_as_the_builder():
    listed = run_config({"kind": "layers", "layers": LENET5_LAYERS})
    check(listed)
    by_list = build(listed, 10)
    by_builder = build(run_config({"kind": "lenet5", "padding": 2}), 10)
    x = jnp.asarray(np.random.default_rng(4).uniform(size=(2, 28, 28)), jnp.float32)
    # the same parameter tree: names, shapes, and the published count
    shapes = [init_shapes(m, x.shape)[1:] for m in (by_list, by_builder)]
    assert jax.tree_util.tree_structure(shapes[0]) == jax.tree_util.tree_structure(shapes[1])
    assert jax.tree_util.tree_leaves(shapes[0]) == jax.tree_util.tree_leaves(shapes[1])
    assert count_params(shapes[0][0]) == 61_706
    # and the same function: equal outputs from the same parameters
    params, state = random_params(by_builder, x.shape)
    # both networks in one compiled function (eagerly, each op would compile on its own)
    y_list, y_builder = jax.jit(lambda p, s, x: (by_list.apply(p, s, x)[0],
                                                 by_builder.apply(p, s, x)[0]))(params, state, x)
    assert y_list.shape == (2, 10)
    np.testing.assert_allclose(y_list, y_builder, rtol=1e-6, atol=1e-6)
    # by hand: the NumPy value of the first convolution's first output pixel
    w, b = np.asarray(params["model"]["c1"]["w"]), np.asarray(params["model"]["c1"]["b"])
    first = registry.build_layers(LENET5_LAYERS[:1])
    y1, _ = first.apply({"input": {}, "model": {"c1": {"w": w, "b": b}}},
                        {"input": {}, "model": {"c1": {}}}, x)
    padded = np.pad(np.asarray(x), ((0, 0), (2, 2), (2, 2)))
    expected = np.einsum("hw,hwf->f", padded[0, :5, :5], w[:, :, 0, :]) + b
    np.testing.assert_allclose(np.asarray(y1)[0, 0, 0], expected, rtol=1e-5, atol=1e-5)


def test_unnamed_layers_get_the_combinators_kind_names():
    model = registry.build_layers([{"type": "flatten"}, {"type": "dense", "units": 4},
                                   {"type": "relu"}, {"type": "dense", "units": 2}])
    _, params, _ = init_shapes(model, (1, 3, 3))
    assert sorted(params["model"]) == ["dense_0", "dense_1", "flatten_0", "relu_0"]


def test_image_input_adds_a_channel_axis_to_grey_images_only():
    layer = registry.ImageInput()
    assert layer.init(None, (None, 28, 28))[0] == (None, 28, 28, 1)
    assert layer.init(None, (None, 8, 8, 3))[0] == (None, 8, 8, 3)
    x = jnp.arange(8.0).reshape(2, 2, 2)
    np.testing.assert_array_equal(layer.apply({}, {}, x)[0], x[..., None])


def test_the_mlp_kind_is_unchanged_by_the_registry():
    config = from_dict({"model": {"hidden": [5], "activation": "tanh"}})
    check(config)
    model = build(config, 3)
    direct = mlp([5, 3], activation="tanh")
    x = jnp.ones((2, 4, 4))
    assert model.name == direct.name and model.layers == () or \
        [n for n, _ in model.layers] == [n for n, _ in direct.layers]
    params, state = random_params(direct, x.shape)
    np.testing.assert_array_equal(model.apply(params, state, x)[0],
                                  direct.apply(params, state, x)[0])
    assert config.model.options == {} and config.model.layers == []


def test_registry_lookups_name_the_unknown_name():
    with pytest.raises(ValueError, match="unknown model 'vgg99'; expected one of: alexnet"):
        registry.model_builder("vgg99")
    with pytest.raises(ValueError, match="unknown layer type 'Conv2D'"):
        registry.layer_factory("Conv2D")
    with pytest.raises(ValueError, match=r"model layer 0 \(dense\)"):
        registry.build_layers([{"type": "dense", "unit": 3}])
