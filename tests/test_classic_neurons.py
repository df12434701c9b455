"""fnn.classic.neurons against direct NumPy loops of the course's equations (lecture 1):
McCulloch–Pitts gates, the perceptron rules, convergence on separable data, XOR never learned,
and Adaline's LMS reaching the least-squares solution."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import classic

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float64)
GATES = {"and": [0, 0, 0, 1], "or": [0, 1, 1, 1], "xor": [0, 1, 1, 0]}


def numpy_perceptron(x, y_d, alpha, bipolar, rule, max_epochs, w0=None):
    """The course's loop, with the bias as weight w[0] on the constant input x_0 = 1."""
    xa = np.c_[np.ones(len(x)), x]
    w = np.zeros(xa.shape[1]) if w0 is None else np.array(w0, np.float64)
    low = -1.0 if bipolar else 0.0
    weights, errors = [], []
    for _ in range(max_epochs):
        wrong = 0
        for xk, dk in zip(xa, y_d):
            y = 1.0 if w @ xk > 0 else low
            wrong += y != dk
            if rule == "error":
                w = w + alpha * xk * (dk - y)
            elif y != dk:
                w = w + alpha * xk * dk
        weights.append(w.copy())
        errors.append(wrong)
        if wrong == 0:
            break
    return np.array(weights), np.array(errors)


def test_mcculloch_pitts_gates():
    np.testing.assert_array_equal(classic.mcculloch_pitts(X, [1, 1], 1.5), GATES["and"])
    np.testing.assert_array_equal(classic.mcculloch_pitts(X, [1, 1], 0.5), GATES["or"])
    np.testing.assert_array_equal(classic.mcculloch_pitts([[0.0], [1.0]], [-1], -0.5), [1, 0])
    # the same neuron as a perceptron with b = −θ; y = 1 needs Σ > θ strictly
    params = {"w": jnp.array([1.0, 1.0]), "b": jnp.array(-2.0)}
    np.testing.assert_array_equal(classic.perceptron_output(params, X), [0, 0, 0, 0])


@pytest.mark.parametrize("bipolar, rule", [(False, "error"), (True, "error"), (True, "target")])
@pytest.mark.parametrize("gate", ["and", "or", "xor"])
def test_perceptron_matches_numpy_loop_and_learns_and_or_never_xor(x64, gate, bipolar, rule):
    y = np.array(GATES[gate], np.float64)
    y = 2 * y - 1 if bipolar else y
    start = {"w": jnp.array([0.3, -0.2]), "b": jnp.array(0.1)}
    params, history = classic.train_perceptron(start, X, y, alpha=0.5, bipolar=bipolar,
                                               rule=rule, max_epochs=30)
    weights, errors = numpy_perceptron(X, y, 0.5, bipolar, rule, 30, w0=[0.1, 0.3, -0.2])
    np.testing.assert_allclose(history.errors, errors)
    np.testing.assert_allclose(history.b, weights[:, 0])
    np.testing.assert_allclose(history.w, weights[:, 1:])
    answers = classic.perceptron_output(params, X, bipolar)
    if gate == "xor":  # not linearly separable: every epoch has an error, to the limit
        assert not history.converged and history.epochs == 30 and history.errors.min() >= 1
        assert np.any(answers != y)
    else:
        assert history.converged and history.errors[-1] == 0 and history.epochs < 30
        np.testing.assert_array_equal(answers, y)


def test_perceptron_converges_on_separable_data_within_novikoff_bound():
    w_star = np.array([1.0, -2.0, 0.5])  # true (w_0, w_1, w_2) of the separating plane
    x = np.random.default_rng(0).uniform(-1, 1, (200, 2))
    xa = np.c_[np.ones(len(x)), x]
    margin_all = xa @ w_star / np.linalg.norm(w_star)
    keep = np.abs(margin_all) > 0.1  # a margin γ ≥ 0.1
    x, xa = x[keep], xa[keep]
    y = np.where(xa @ w_star > 0, 1.0, -1.0)
    params, history = classic.train_perceptron(classic.init_neuron(2), x.astype(np.float32), y,
                                               alpha=1.0, bipolar=True, max_epochs=100)
    assert history.converged
    np.testing.assert_array_equal(classic.perceptron_output(params, x, True), y)
    # Novikoff: at most (R/γ)² updates; with α = 1 and bipolar outputs each update is 2·x_k
    radius = np.linalg.norm(xa, axis=1).max()
    gamma = np.min(y * (xa @ w_star)) / np.linalg.norm(w_star)
    assert history.errors.sum() <= (radius / gamma) ** 2


def test_perceptron_update_is_scannable_and_jittable():
    params = classic.init_neuron(2)
    y = jnp.array(GATES["and"], jnp.float32)
    scanned, errors = jax.jit(lambda p: classic.perceptron_epoch(p, X.astype(np.float32), y,
                                                                 alpha=1.0))(params)
    manual = params
    for xk, dk in zip(X.astype(np.float32), y):
        manual, _ = classic.perceptron_update(manual, xk, dk, alpha=1.0)
    for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(manual)):
        np.testing.assert_allclose(a, b)
    assert float(errors) == 1.0  # only (1, 1) is answered wrongly by the zero neuron


def test_lms_matches_numpy_loop(x64):
    rng = np.random.default_rng(0)
    x, d = rng.normal(size=(10, 3)), rng.normal(size=10)
    params, history = classic.train_adaline(classic.init_neuron(3, jnp.float64), x, d,
                                            mu=0.02, epochs=4)
    w = np.zeros(4)
    xa = np.c_[np.ones(len(x)), x]
    mse = []
    for _ in range(4):
        for xk, dk in zip(xa, d):
            eps = dk - w @ xk
            w = w + 2 * 0.02 * eps * xk
        mse.append(np.mean((d - xa @ w) ** 2))
    np.testing.assert_allclose(params["b"], w[0], rtol=1e-12)
    np.testing.assert_allclose(params["w"], w[1:], rtol=1e-12)
    np.testing.assert_allclose(history.mse, mse, rtol=1e-12)


def test_adaline_reaches_the_least_squares_solution(x64):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 2))
    d = np.sign(x @ [1.0, -1.0] + 0.3 + 0.5 * rng.normal(size=40))  # bipolar, not separable
    xa = np.c_[np.ones(len(x)), x]
    w_ls = np.linalg.lstsq(xa, d, rcond=None)[0]
    mse_ls = np.mean((d - xa @ w_ls) ** 2)
    gaps = []
    for mu in (0.01, 0.001):  # online LMS with a constant μ hovers near w_LS, closer for small μ
        params, history = classic.train_adaline(classic.init_neuron(2, jnp.float64), x, d,
                                                mu=mu, epochs=1500)
        w = np.r_[params["b"], params["w"]]
        gaps.append(np.linalg.norm(w - w_ls))
        assert history.mse[-1] < history.mse[0] and history.mse[-1] >= mse_ls - 1e-12
    assert gaps[1] < 0.01 and gaps[1] < gaps[0] / 3, gaps


def test_argument_errors_name_the_function_and_argument():
    with pytest.raises(ValueError, match=r"perceptron_update: rule='target'.*bipolar=True"):
        classic.train_perceptron(classic.init_neuron(2), X, GATES["and"], rule="target")
    with pytest.raises(ValueError, match=r"train_perceptron: `y_d` must hold only \(-1.0, 1.0\)"):
        classic.train_perceptron(classic.init_neuron(2), X, GATES["and"], bipolar=True)
    with pytest.raises(ValueError, match=r"train_adaline: `targets` must have shape \(4,\)"):
        classic.train_adaline(classic.init_neuron(2), X, [1.0, -1.0])
    with pytest.raises(ValueError, match=r"train_adaline: `mu` must be a real number > 0"):
        classic.train_adaline(classic.init_neuron(2), X, [1.0, -1.0, 1.0, 1.0], mu=0)
