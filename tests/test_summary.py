"""fnn.summary: the Keras-like table of a model's layers, output shapes and parameter counts."""
import re

import jax.numpy as jnp
import pytest

from fnn.core import Layer, count_params, init_shapes
from fnn.layers import Dense, Lambda, ReLU, Tanh, residual, serial
from fnn.models import mlp
from fnn.summary import summary


def table(model, input_shape):
    """(returned count, printed text, rows as {path: (kind, shape, params)})."""
    printed = []
    n = summary(model, input_shape, print_fn=printed.append)
    assert len(printed) == 1
    text = printed[0]
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if re.fullmatch(r"[- ]+", line)]
    assert len(rules) == 3, text  # above and below the header, and below the rows
    rows = {}
    for line in lines[rules[1] + 1:rules[2]]:
        path, kind, shape, params = re.split(r"\s{2,}", line.strip()) if line[0] != " " else (
            ["", *re.split(r"\s{2,}", line.strip())])
        inclusive = params.startswith("(")  # a combinator: the total of its children, negated here
        count = int(params.strip("()").replace(",", ""))
        rows[path] = (kind, shape, -count if inclusive else count)
    return n, text, rows


def test_course_mlp_has_266610_parameters():
    """784-300-100-10: 784·300+300 + 300·100+100 + 100·10+10 = 266,610 (the published count)."""
    expected = 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    assert expected == 266_610
    model = mlp([300, 100, 10])
    n, text, rows = table(model, (None, 28, 28))
    assert n == 266_610
    assert "Trainable params: 266,610" in text
    assert "Non-trainable (state): 0" in text
    assert text.splitlines()[0] == "Model: mlp  input (batch, 28, 28)"
    assert rows == {
        "flatten_0": ("Flatten()", "(batch, 784)", 0),
        "dense_0": ("Dense(300)", "(batch, 300)", 235_500),
        "relu_0": ("relu", "(batch, 300)", 0),
        "dense_1": ("Dense(100)", "(batch, 100)", 30_100),
        "relu_1": ("relu", "(batch, 100)", 0),
        "dense_2": ("Dense(10)", "(batch, 10)", 1_010),
    }
    assert list(rows) == [name for name, _ in model.layers]  # in order
    assert count_params(init_shapes(model, (None, 28, 28))[1]) == 266_610


def test_known_batch_size_is_shown():
    _, _, rows = table(mlp([300, 100, 10], flatten=False), (32, 784))
    assert rows["dense_0"][1] == "(32, 300)" and rows["dense_2"][1] == "(32, 10)"


def test_nested_serials_are_expanded_with_paths():
    model = serial(("encoder", serial(Dense(4), ReLU(), ("deep", serial(Dense(3), Tanh())))),
                   residual(Dense(3)), Dense(2), name="ae")
    n, text, rows = table(model, (None, 5))
    assert rows == {
        "encoder": ("serial", "(batch, 3)", -(5 * 4 + 4 + 4 * 3 + 3)),
        "encoder/dense_0": ("Dense(4)", "(batch, 4)", 5 * 4 + 4),
        "encoder/relu_0": ("ReLU()", "(batch, 4)", 0),
        "encoder/deep": ("serial", "(batch, 3)", -(4 * 3 + 3)),
        "encoder/deep/dense_0": ("Dense(3)", "(batch, 3)", 4 * 3 + 3),
        "encoder/deep/tanh_0": ("Tanh(beta=1.0)", "(batch, 3)", 0),
        "residual_0": ("residual", "(batch, 3)", -(3 * 3 + 3)),
        "residual_0/block": ("residual.block", "(batch, 3)", -(3 * 3 + 3)),
        "residual_0/block/dense_0": ("Dense(3)", "(batch, 3)", 3 * 3 + 3),
        "dense_0": ("Dense(2)", "(batch, 2)", 3 * 2 + 2),
    }
    assert list(rows) == sorted(rows, key=list(rows).index)  # parents before their children
    assert n == sum(r[2] for r in rows.values() if r[2] > 0) == 59
    assert text.splitlines()[0] == "Model: ae  input (batch, 5)"


def test_every_combinator_shows_its_children():
    """parallel, branch and residual (with a projection) list their inner layers, any depth."""
    from fnn.layers import Add, branch, parallel
    model = serial(parallel(Dense(2), residual(Dense(2), ReLU(), shortcut=Dense(2))),
                   branch(Add(), ("first", Lambda(lambda xs: xs[0]))), name="m")
    _, _, rows = table(model, ((None, 3), (None, 5)))
    assert [p for p in rows] == [
        "parallel_0", "parallel_0/dense_0", "parallel_0/residual_0",
        "parallel_0/residual_0/block", "parallel_0/residual_0/block/dense_0",
        "parallel_0/residual_0/block/relu_0", "parallel_0/residual_0/shortcut",
        "branch_0", "branch_0/add_0", "branch_0/first"]
    assert rows["parallel_0/residual_0/shortcut"] == ("Dense(2)", "(batch, 2)", 12)
    assert rows["parallel_0"][1] == "((batch, 2), (batch, 2))"


def test_single_layer_model():
    n, _, rows = table(Dense(3, use_bias=False), (None, 5))
    assert n == 15
    assert rows == {"": ("Dense(3)", "(batch, 3)", 15)}


def Counter():
    """A layer with state (a step count): state is listed apart from trainable params."""
    def init(key, input_shape):
        return input_shape, {}, {"count": jnp.zeros((), jnp.int32), "seen": jnp.zeros((7,))}

    def apply(params, state, x, *, key=None, train=False):
        return x, ({"count": state["count"] + 1, "seen": state["seen"]} if train else state)

    return Layer(init, apply, "Counter()")


def test_state_is_counted_as_non_trainable():
    n, text, rows = table(serial(Dense(3), Counter()), (None, 2))
    assert n == 9
    assert "Trainable params: 9" in text and "Non-trainable (state): 8" in text
    assert rows["counter_0"] == ("Counter()", "(batch, 3)", 0)


def test_summary_computes_nothing():
    """Shapes only (jax.eval_shape): a model with 10^10 weights is summarized without memory."""
    n, _, rows = table(mlp([100_000, 10], flatten=False), (None, 100_000))
    assert n == 100_000 * 100_000 + 100_000 + 100_000 * 10 + 10
    assert rows["dense_0"][2] == 10_000_100_000


def test_summary_reports_a_wrong_input_shape():
    with pytest.raises(ValueError, match=re.escape(
            "Dense(3) in `dense_0` expects inputs of shape (batch, features); got (5,).")):
        summary(serial(Dense(3)), (5,), print_fn=lambda s: None)
