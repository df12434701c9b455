"""A Keras-like table of a model: every layer at any depth, its output shape and parameter count."""
from __future__ import annotations

from fnn.core import Layer, count_params, format_shape, init_shapes, subtree, walk


def summary(model: Layer, input_shape, *, print_fn=print) -> int:
    """Print the model's layers as a table and return its number of trainable parameters.

    ``input_shape`` includes the batch axis, which may be ``None``: ``summary(mlp, (None, 784))``.
    Every sublayer of every combinator is a row, named by its path (``residual_0/block/dense_0``);
    a combinator's own row shows its output shape and, in parentheses, the parameters of all
    its children, which are listed below it. Layer state (e.g. running statistics) is counted
    apart as non-trainable. Nothing is computed: shapes come from `jax.eval_shape`.
    """
    out, params, state = init_shapes(model, input_shape)
    infos = walk(model, input_shape)
    rows = [("", model.name, format_shape(out), f"{count_params(params):,}")] if not infos else [
        ("/".join(info.path), info.layer.name, format_shape(info.output_shape),
         (f"({count_params(subtree(params, info.path)):,})" if info.layer.layers
          else f"{count_params(subtree(params, info.path)):,}"))
        for info in infos]
    table = [("Layer (path)", "Kind", "Output shape", "Params")] + rows
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
