"""A Keras-like table of a model: each layer, its output shape and its parameter count."""
from __future__ import annotations

from fnn.core import Layer, count_params, format_shape, init_shapes


def _rows(layer: Layer, input_shape, params, state, prefix=""):
    """(path, kind, output shape, #params) for each child of a `serial`, nested serials expanded."""
    shape = input_shape
    for name, child in layer.layers:
        out, _, _ = init_shapes(child, shape)
        path = prefix + name
        if child.layers:
            yield from _rows(child, shape, params[name], state[name], path + "/")
        else:
            yield path, child.name, out, count_params(params[name]), count_params(state[name])
        shape = out


def summary(model: Layer, input_shape, *, print_fn=print) -> int:
    """Print the model's layers as a table and return its number of trainable parameters.

    ``input_shape`` includes the batch axis, which may be ``None``: ``summary(mlp, (None, 784))``.
    Layer state (e.g. running statistics) is counted apart as non-trainable.
    """
    out, params, state = init_shapes(model, input_shape)
    rows = list(_rows(model, input_shape, params, state)) if model.layers else [
        ("", model.name, out, count_params(params), count_params(state))]
    table = [("Layer (path)", "Kind", "Output shape", "Params")] + [
        (path, kind, format_shape(shape), f"{n:,}") for path, kind, shape, n, _ in rows]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    line = "  ".join("-" * w for w in widths)

    def fmt(r):
        return "  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].ljust(widths[2]),
                          r[3].rjust(widths[3])])

    trainable, non_trainable = count_params(params), count_params(state)
    print_fn("\n".join([f"Model: {model.name}  input {format_shape(input_shape)}", line,
                        fmt(table[0]), line, *map(fmt, table[1:]), line,
                        f"Trainable params: {trainable:,}",
                        f"Non-trainable (state): {non_trainable:,}"]))
    return trainable
