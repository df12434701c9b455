"""Models and layers by name, for configs: ``[model] kind = "lenet5"`` or a generic layer list.

Two tables map the names a config may use to the functions that build them:

- `MODELS`: ``kind`` -> architecture builder (``lenet5``, ``keras_cnn``, ``resnet18``, ``fcn``,
  ...). Every builder takes ``num_classes``; `build_model` passes the number of classes of the
  data and the config's other keyword arguments.
- `LAYERS`: ``type`` -> layer constructor of `fnn.layers` (``conv2d``, ``max_pool2d``,
  ``batch_norm``, ``dense``, ...), and two blocks of `fnn.models` (``conv_bn``,
  ``basic_block``). `build_layers` builds a `serial` model from a list of tables such as
  ``{type = "conv2d", features = 32, kernel_size = 3, padding = "SAME"}``; a table's optional
  ``name`` names the child (its parameter key), else the combinator's ``kind_i`` is used.

Images: MNIST arrives as (N, 28, 28) grey images, but convolutions want NHWC. Every model built
here starts with `ImageInput`, which gives a (N, H, W) batch a channel axis, (N, H, W, 1), and
passes any other batch unchanged; the network proper is the child ``"model"``:
``params["model"]`` holds its parameters. TOML lists (``kernel_size = [5, 3]``) reach the
builders as tuples.

Lookups raise ``ValueError`` naming the unknown kind or type and the known ones; the config
path (`fnn.experiment`) checks keyword arguments against the signatures before building.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Mapping, Sequence

import jax.numpy as jnp

from fnn import layers as L
from fnn.core import Layer
from fnn.models import classic_cnns, densenet, inception, resnet, segmentation, separable, vgg
from fnn.models.conv_blocks import conv_bn

MODELS: Dict[str, Callable[..., Layer]] = {
    "lenet5": classic_cnns.lenet5,
    "keras_cnn": classic_cnns.keras_cnn,
    "alexnet": classic_cnns.alexnet,
    "vgg": vgg.vgg, "vgg11": vgg.vgg11, "vgg16": vgg.vgg16,
    "resnet": resnet.resnet, "resnet18": resnet.resnet18, "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
    "googlenet": inception.googlenet,
    "densenet": densenet.densenet, "densenet121": densenet.densenet121,
    "mobilenet_v1": separable.mobilenet_v1, "mobilenet_v2": separable.mobilenet_v2,
    "xception": separable.xception,
    "fcn": segmentation.fcn, "deconvnet": segmentation.deconvnet,
}

LAYERS: Dict[str, Callable[..., Layer]] = {
    "dense": L.Dense, "flatten": L.Flatten, "dropout": L.Dropout,
    "conv1d": L.Conv1D, "conv2d": L.Conv2D, "conv3d": L.Conv3D,
    "conv2d_transpose": L.Conv2DTranspose, "depthwise_conv2d": L.DepthwiseConv2D,
    "separable_conv2d": L.SeparableConv2D,
    "max_pool1d": L.MaxPool1D, "avg_pool1d": L.AvgPool1D, "min_pool1d": L.MinPool1D,
    "max_pool2d": L.MaxPool2D, "avg_pool2d": L.AvgPool2D, "min_pool2d": L.MinPool2D,
    "global_avg_pool": L.GlobalAvgPool, "global_max_pool": L.GlobalMaxPool,
    "batch_norm": L.BatchNorm, "layer_norm": L.LayerNorm,
    "activation": L.Activation, "relu": L.ReLU, "tanh": L.Tanh, "sigmoid": L.Sigmoid,
    "elu": L.ELU, "leaky_relu": L.LeakyReLU, "softplus": L.Softplus, "identity": L.Identity,
    "conv_bn": conv_bn, "basic_block": resnet.basic_block,
}

# builders that pass their **kwargs on to a generic one: (that one, the arguments they set in it)
FORWARDS: Dict[str, tuple] = {
    "vgg11": (vgg.vgg, ("depth",)), "vgg16": (vgg.vgg, ("depth",)),
    "resnet18": (resnet.resnet, ("depth",)), "resnet34": (resnet.resnet, ("depth",)),
    "resnet50": (resnet.resnet, ("depth",)), "densenet121": (densenet.densenet, ("blocks",)),
}

# arguments a config never sets: the data decides the class count; a layer table's `name` names
# the child in the model instead of the layer's display name; dtypes and kinds stay the defaults
MODEL_FIXED = ("num_classes",)
LAYER_FIXED = ("name", "kind", "dtype")


def _lookup(table: Mapping[str, Callable], what: str, name) -> Callable:
    if not isinstance(name, str) or name not in table:
        raise ValueError(f"unknown {what} {name!r}; expected one of: {', '.join(sorted(table))}.")
    return table[name]


def model_builder(kind: str) -> Callable[..., Layer]:
    """The builder `MODELS` names ``kind``; a ``ValueError`` naming it (and the known kinds)."""
    return _lookup(MODELS, "model", kind)


def model_signature(kind: str) -> inspect.Signature:
    """The keyword arguments the builder ``kind`` accepts: its own, and for a builder of
    `FORWARDS` (``resnet18(num_classes, **kwargs)``) those of the generic builder it calls,
    less the ones it sets itself (ResNet-18 sets ``depth``)."""
    builder = model_builder(kind)
    own = [p for p in inspect.signature(builder).parameters.values()
           if p.kind is not p.VAR_KEYWORD]
    if kind in FORWARDS:
        target, fixed = FORWARDS[kind]
        names = {p.name for p in own} | set(fixed)
        extra = inspect.signature(target).parameters.values()
        own += [p.replace(kind=p.KEYWORD_ONLY) for p in extra
                if p.name not in names and p.kind is not p.VAR_KEYWORD]
    return inspect.Signature(own)


def layer_factory(type_: str) -> Callable[..., Layer]:
    """The layer constructor `LAYERS` names ``type_``; a ``ValueError`` naming it."""
    return _lookup(LAYERS, "layer type", type_)


def _arguments(options: Mapping[str, Any]) -> Dict[str, Any]:
    # TOML has arrays, the builders take tuples (kernel sizes, strides, widths)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def ImageInput() -> Layer:
    """(N, H, W) -> (N, H, W, 1): grey images get a channel axis (NHWC); a batch of any other
    rank passes unchanged. No parameters."""
    return L.Lambda(lambda x: x[..., None] if jnp.ndim(x) == 3 else x, "ImageInput",
                    "image_input")


def _with_input(model: Layer, name: str) -> Layer:
    return L.serial(("input", ImageInput()), ("model", model), name=name)


def build_model(kind: str, num_classes: int, **options) -> Layer:
    """``ImageInput`` then the `MODELS` builder ``kind`` called as
    ``builder(num_classes=num_classes, **options)`` (lists in ``options`` become tuples)."""
    builder = model_builder(kind)
    try:
        model = builder(num_classes=num_classes, **_arguments(options))
    except TypeError as error:  # an argument the builder does not take
        raise ValueError(f"model {kind!r}: {error}") from None
    return _with_input(model, kind)


def layer_from_spec(spec: Mapping[str, Any], index: int = 0):
    """``(child_name, layer)`` from a table ``{"type": ..., "name": ..., **arguments}``;
    ``child_name`` is None when the table has no ``name``."""
    if "type" not in spec:
        raise ValueError(f"model layer {index} needs a `type`, one of: "
                         f"{', '.join(sorted(LAYERS))}.")
    factory = layer_factory(spec["type"])
    arguments = _arguments({k: v for k, v in spec.items() if k not in ("type", "name")})
    try:
        return spec.get("name"), factory(**arguments)
    except TypeError as error:
        raise ValueError(f"model layer {index} ({spec['type']}): {error}") from None


def build_layers(specs: Sequence[Mapping[str, Any]], *, name: str = "layers") -> Layer:
    """``ImageInput`` then ``serial`` of the layers the tables ``specs`` describe, in order
    (see `layer_from_spec`); the last one must give the class scores (e.g. ``dense`` with
    ``units`` = the number of classes)."""
    if not specs:
        raise ValueError("build_layers: `specs` must list at least one layer table.")
    children = []
    for i, spec in enumerate(specs):
        child, layer = layer_from_spec(spec, i)
        children.append(layer if child is None else (child, layer))
    return _with_input(L.serial(*children, name=name), name)


__all__ = ["FORWARDS", "LAYERS", "LAYER_FIXED", "MODELS", "MODEL_FIXED", "ImageInput",
           "build_layers", "build_model", "layer_factory", "layer_from_spec", "model_builder",
           "model_signature"]
