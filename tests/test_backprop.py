"""Backpropagation by hand (COURSE.md §2–3), in NumPy, against jax.grad on fnn models (float64).

The course writes column vectors, z^l = W^l a^{l−1} + b^l with W^l of shape (n_out, n_in):

    δ^L = ∂C/∂a^L ⊙ f'(z^L)
    δ^l = ((W^{l+1})ᵀ δ^{l+1}) ⊙ f'(z^l)
    ∂C/∂W^l = δ^l (a^{l−1})ᵀ,   ∂C/∂b^l = δ^l

fnn stores batches as rows, z = x W + b with W of shape (n_in, n_out), i.e. W_fnn = (W^l)ᵀ. In
that layout, for a batch of m rows: δ^l = (δ^{l+1} W_fnn^{l+1}ᵀ) ⊙ f'(z^l) and
∂C/∂W_fnn^l = (a^{l−1})ᵀ δ^l (the course's outer product, transposed and summed over examples).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import losses
from fnn.layers import Dense, Sigmoid, Tanh, serial
from fnn.models import mlp

SIZES = [4, 5, 3, 2]  # n_in, two hidden layers, n_out
BATCH = 6


def sigmoid(z, beta=1.0):
    return 1 / (1 + np.exp(-beta * z))


def random_params(model, n_in, seed=0):
    """Float64 params with the model's structure; biases non-zero so they are exercised too."""
    _, params, state = model.init(jax.random.PRNGKey(seed), (None, n_in))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda p: rng.normal(size=p.shape), params), state


def dense_params(params):
    """[(W, b), ...] of the Dense layers in order, as NumPy arrays."""
    names = sorted((k for k in params if k.startswith("dense_")), key=lambda k: int(k[6:]))
    return [(np.asarray(params[k]["w"]), np.asarray(params[k]["b"])) for k in names]


def forward(layers, x, f):
    """Course forward pass: lists z^l and a^l (a^0 = x); f is the activation of every layer
    (None on the last one for logits)."""
    zs, acts = [], [x]
    for i, (w, b) in enumerate(layers):
        z = acts[-1] @ w + b
        zs.append(z)
        last = i == len(layers) - 1
        acts.append(z if (last and f[-1] is None) else (f[-1] if last else f[0])(z))
    return zs, acts


def backward(layers, zs, acts, delta_out, f_prime):
    """Hidden deltas δ^l = (δ^{l+1} W^{l+1}ᵀ) ⊙ f'(z^l) and grads (a^{l−1})ᵀ δ^l, Σ δ^l."""
    deltas = [delta_out]
    for l in range(len(layers) - 2, -1, -1):
        w_next = layers[l + 1][0]
        deltas.insert(0, (deltas[0] @ w_next.T) * f_prime(zs[l]))
    return [(acts[l].T @ deltas[l], deltas[l].sum(axis=0)) for l in range(len(layers))], deltas


def jax_grads(model, params, state, x, loss_fn):
    def mean_loss(params):
        y, _ = model.apply(params, state, x)
        return jnp.mean(loss_fn(y))

    return jax.jit(jax.grad(mean_loss))(params)


def assert_grads_match(manual, grads):
    for (dw, db), (gw, gb) in zip(manual, dense_params(grads)):
        assert gw.dtype == np.float64
        np.testing.assert_allclose(gw, dw, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(gb, db, rtol=1e-10, atol=1e-13)


HIDDEN = [
    # (name, layer, f, f' written with f as the course does)
    ("sigmoid", lambda: Sigmoid(), sigmoid, lambda z: sigmoid(z) * (1 - sigmoid(z))),
    ("sigmoid_beta2", lambda: Sigmoid(beta=2.0), lambda z: sigmoid(z, 2.0),
     lambda z: 2.0 * sigmoid(z, 2.0) * (1 - sigmoid(z, 2.0))),
    ("tanh", lambda: Tanh(), np.tanh, lambda z: 1 - np.tanh(z) ** 2),
]


@pytest.mark.parametrize("name,layer,f,f_prime", HIDDEN, ids=[h[0] for h in HIDDEN])
def test_squared_error_deltas(name, layer, f, f_prime, x64):
    """C = 1/m Σ_x ½‖a^L − y‖² with the activation on every layer, output included."""
    model = serial(*[item for n in SIZES[1:] for item in (Dense(n), layer())])
    params, state = random_params(model, SIZES[0])
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(BATCH, SIZES[0])), rng.uniform(size=(BATCH, SIZES[-1]))

    layers = dense_params(params)
    zs, acts = forward(layers, x, [f, f])
    delta_out = (acts[-1] - y) * f_prime(zs[-1]) / BATCH  # ∂C/∂a^L ⊙ f'(z^L), C a batch mean
    manual, _ = backward(layers, zs, acts, delta_out, f_prime)

    grads = jax_grads(model, params, state, x, lambda out: losses.half_squared_error(out, y))
    assert_grads_match(manual, grads)


def test_squared_error_deltas_one_example_as_outer_products(x64):
    """For one pattern, ∂C/∂W^l = δ^l (a^{l−1})ᵀ in the course's (n_out, n_in) layout."""
    model = mlp(SIZES[1:], activation="sigmoid", output_activation="sigmoid", flatten=False)
    params, state = random_params(model, SIZES[0], seed=2)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(1, SIZES[0])), rng.uniform(size=(1, SIZES[-1]))
    d_sigmoid = lambda z: sigmoid(z) * (1 - sigmoid(z))  # noqa: E731

    layers = dense_params(params)
    zs, acts = forward(layers, x, [sigmoid, sigmoid])
    col = lambda v: v.reshape(-1, 1)  # noqa: E731  (course column vectors)
    delta = col((acts[-1] - y) * d_sigmoid(zs[-1]))
    course_grads = []
    for l in range(len(layers) - 1, -1, -1):
        course_grads.insert(0, (delta @ col(acts[l]).T, delta.ravel()))  # δ^l (a^{l−1})ᵀ
        if l:
            w_course = layers[l][0].T  # W^l as the course writes it: (n_out, n_in)
            delta = (w_course.T @ delta) * col(d_sigmoid(zs[l - 1]))

    grads = jax_grads(model, params, state, x, lambda out: losses.half_squared_error(out, y))
    for (dw, db), (gw, gb) in zip(course_grads, dense_params(grads)):
        np.testing.assert_allclose(gw.T, dw, rtol=1e-10, atol=1e-13)  # W_fnn = (W^l)ᵀ
        np.testing.assert_allclose(gb, db, rtol=1e-10, atol=1e-13)


def test_softmax_cross_entropy_output_delta_is_prediction_minus_target(x64):
    """Softmax + categorical cross-entropy: δ^L = ŷ − y, with sigmoid hidden layers."""
    model = mlp(SIZES[1:], activation="sigmoid", output_activation=None, flatten=False)
    params, state = random_params(model, SIZES[0], seed=4)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(BATCH, SIZES[0]))
    labels = rng.integers(0, SIZES[-1], size=BATCH)
    y = np.eye(SIZES[-1])[labels]

    layers = dense_params(params)
    zs, acts = forward(layers, x, [sigmoid, None])
    logits = acts[-1]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    y_hat = e / e.sum(axis=1, keepdims=True)

    # The same δ^L from the chain rule, through the softmax Jacobian S_i(δ_ij − S_j) and
    # ∂C/∂ŷ = −y/ŷ: the textbook simplification to ŷ − y holds.
    for s, t in zip(y_hat, y):
        jacobian = np.diag(s) - np.outer(s, s)
        np.testing.assert_allclose(jacobian.T @ (-t / s), s - t, atol=1e-12)

    delta_out = (y_hat - y) / BATCH
    manual, _ = backward(layers, zs, acts, delta_out, lambda z: sigmoid(z) * (1 - sigmoid(z)))

    for targets in [labels, y]:  # integer labels and one-hot rows alike
        grads = jax_grads(model, params, state, x,
                          lambda out: losses.softmax_cross_entropy(out, targets))
        assert_grads_match(manual, grads)


def test_sigmoid_binary_cross_entropy_output_delta(x64):
    """One sigmoid output with binary cross-entropy: δ^L = ∂C/∂a ⊙ f'(z) = ŷ − y as well."""
    model = mlp([5, 1], activation="tanh", output_activation="sigmoid", flatten=False)
    params, state = random_params(model, SIZES[0], seed=6)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(BATCH, SIZES[0]))
    y = rng.integers(0, 2, size=(BATCH, 1)).astype(float)

    layers = dense_params(params)
    zs, acts = forward(layers, x, [np.tanh, sigmoid])
    y_hat = acts[-1]
    dc_da = -(y / y_hat - (1 - y) / (1 - y_hat))
    np.testing.assert_allclose(dc_da * y_hat * (1 - y_hat), y_hat - y, atol=1e-12)
    manual, _ = backward(layers, zs, acts, (y_hat - y) / BATCH, lambda z: 1 - np.tanh(z) ** 2)

    grads = jax_grads(model, params, state, x, lambda out: losses.binary_cross_entropy(out, y))
    assert_grads_match(manual, grads)
