"""Every optimizer rule against its update equations, step by step, in float64.

The references below are plain NumPy loops written from the papers' and PyTorch's published
algorithms, independently of fnn.optim: each takes the gradient sequence and the initial
parameters and returns the updates ``θ_t − θ_{t−1}``.

Compile time: a `jnp` call outside `jax.jit` compiles a program per new (shape, dtype), so test
inputs are NumPy arrays put on the device with `jax.device_put` (which compiles nothing).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import optim

# Hand-made gradients: 4 steps on a scalar (a sign flip, then equal signs) and on a 3-vector
# (flips, a zero gradient, equal signs).
SCALAR_GRADS = np.array([1.0, -2.0, 0.5, 0.25])
VECTOR_GRADS = np.array([[1.0, -2.0, 0.5], [-2.0, 0.5, 0.5], [0.5, 0.25, 0.0], [0.25, 1.0, -1.0]])
SCALAR_PARAMS = np.array(0.3)
VECTOR_PARAMS = np.array([0.3, -0.7, 1.1])


# --- references ----------------------------------------------------------------------------------

def ref_sgd(grads, theta, lr):
    return [-lr(t) * g for t, g in enumerate(grads)]


def ref_classic_momentum(grads, theta, lr, gamma, nesterov=False):
    """Course: v = γv + ηg, θ −= v; Nesterov on the look-ahead parameters: θ −= γv + ηg."""
    v, out = 0.0 * theta, []
    for t, g in enumerate(grads):
        v = gamma * v + lr(t) * g
        out.append(-(gamma * v + lr(t) * g) if nesterov else -v)
    return out


def ref_torch_sgd(grads, theta, lr, gamma, dampening=0.0, nesterov=False):
    """torch.optim.SGD: b = g at the first step, then b = γb + (1 − dampening)g; θ −= η(g + γb)
    with nesterov, else θ −= ηb."""
    b, out = None, []
    for t, g in enumerate(grads):
        b = g.copy() if b is None else gamma * b + (1 - dampening) * g
        out.append(-lr(t) * (g + gamma * b if nesterov else b))
    return out


def ref_ema_momentum(grads, theta, lr, gamma):
    """The EMA form: v = γv + (1 − γ)g, θ −= ηv."""
    v, out = 0.0 * theta, []
    for g in grads:
        v = gamma * v + (1 - gamma) * g
        out.append(-lr * v)
    return out


def ref_adagrad(grads, theta, lr, initial=0.0, eps=1e-10):
    total, out = np.full_like(theta, initial), []
    for g in grads:
        total = total + g ** 2
        out.append(-lr * g / (np.sqrt(total) + eps))
    return out


def ref_adadelta(grads, theta, lr, rho, eps):
    """torch.optim.Adadelta (lr = 1 is Zeiler's Algorithm 1)."""
    square_avg, acc_delta, out = 0.0 * theta, 0.0 * theta, []
    for g in grads:
        square_avg = rho * square_avg + (1 - rho) * g * g
        delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * g
        acc_delta = rho * acc_delta + (1 - rho) * delta * delta
        out.append(-lr * delta)
    return out


def ref_course_rmsprop(grads, theta, lr, decay, eps):
    """Course: E = ρE + (1 − ρ)g², θ −= ηg/√(E + ε)."""
    mean_square, out = 0.0 * theta, []
    for g in grads:
        mean_square = decay * mean_square + (1 - decay) * g * g
        out.append(-lr * g / np.sqrt(mean_square + eps))
    return out


def ref_torch_rmsprop(grads, theta, lr, alpha, eps, centered=False, momentum=0.0):
    """torch.optim.RMSprop."""
    v, g_avg, b, out = 0.0 * theta, 0.0 * theta, 0.0 * theta, []
    for g in grads:
        v = alpha * v + (1 - alpha) * g * g
        denominator_square = v
        if centered:
            g_avg = alpha * g_avg + (1 - alpha) * g
            denominator_square = v - g_avg ** 2
        step = g / (np.sqrt(denominator_square) + eps)
        if momentum > 0:
            b = momentum * b + step
            step = b
        out.append(-lr * step)
    return out


def ref_graves_rmsprop(grads, theta, lr, decay, eps, momentum):
    """Graves 2013: centred, ε inside the root, Δ = μΔ − ηg/√(n − m² + ε), θ += Δ."""
    n, m, delta, out = 0.0 * theta, 0.0 * theta, 0.0 * theta, []
    for g in grads:
        n = decay * n + (1 - decay) * g * g
        m = decay * m + (1 - decay) * g
        delta = momentum * delta - lr * g / np.sqrt(n - m * m + eps)
        out.append(delta)
    return out


def ref_adam(grads, theta, lr, b1, b2, eps, weight_decay=0.0):
    """Kingma & Ba, Algorithm 1; with weight_decay, torch.optim.AdamW (θ ← θ(1 − ηλ) first)."""
    m, v, out = 0.0 * theta, 0.0 * theta, []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        decayed = theta * (1 - lr * weight_decay)
        new_theta = decayed - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(new_theta - theta)
        theta = new_theta
    return out


def ref_adamax(grads, theta, lr, b1, b2, eps, torch_style):
    """Kingma & Ba, Algorithm 2, with ε added to u (Keras) or inside the max (torch)."""
    m, u, out = 0.0 * theta, 0.0 * theta, []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        if torch_style:
            u = np.maximum(b2 * u, np.abs(g) + eps)
            out.append(-lr / (1 - b1 ** t) * m / u)
        else:
            u = np.maximum(b2 * u, np.abs(g))
            out.append(-lr / (1 - b1 ** t) * m / (u + eps))
    return out


def ref_nadam(grads, theta, lr, b1, b2, eps, psi, weight_decay=0.0, decoupled=False):
    """torch.optim.NAdam (Dozat 2016 with the μ_t schedule); psi=None: μ_t = β1. weight_decay λ:
    g ← g + λθ, or with decoupled (NAdamW) θ ← θ(1 − ηλ) before the step."""
    def mu(t):
        return b1 if psi is None else b1 * (1 - 0.5 * 0.96 ** (t * psi))
    m, v, mu_product, out = 0.0 * theta, 0.0 * theta, 1.0, []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            new_theta = theta * (1 - lr * weight_decay)
        else:
            g, new_theta = g + weight_decay * theta, theta
        mu_product *= mu(t)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        denominator = np.sqrt(v / (1 - b2 ** t)) + eps
        new_theta = (new_theta - lr * (1 - mu(t)) / (1 - mu_product) * g / denominator
                     - lr * mu(t + 1) / (1 - mu_product * mu(t + 1)) * m / denominator)
        out.append(new_theta - theta)
        theta = new_theta
    return out


def ref_amsgrad(grads, theta, lr, b1, b2, eps):
    """torch.optim.Adam(amsgrad=True): v_max = max(v_max, v), θ −= η m̂ / (√(v_max/(1 − β2^t)) + ε)."""
    m, v, v_max, out = 0.0 * theta, 0.0 * theta, 0.0 * theta, []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_max = np.maximum(v_max, v)
        out.append(-lr * m / (1 - b1 ** t) / (np.sqrt(v_max) / np.sqrt(1 - b2 ** t) + eps))
    return out


def ref_radam(grads, theta, lr, b1, b2, eps):
    """Liu et al. 2020, Algorithm 2, with torch.optim.RAdam's threshold 5 and ε."""
    rho_inf = 2 / (1 - b2) - 1
    m, v, out = 0.0 * theta, 0.0 * theta, []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        rho = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
        if rho > 5:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            out.append(-lr * m_hat * r * np.sqrt(1 - b2 ** t) / (np.sqrt(v) + eps))
        else:
            out.append(-lr * m_hat)
    return out


def ref_rprop(grads, theta, lr, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0)):
    """torch.optim.Rprop."""
    prev, step_size, out = 0.0 * theta, np.full_like(theta, lr), []
    for g in grads:
        g = np.array(g, dtype=float)
        product = g * prev
        factor = np.where(product > 0, etas[1], np.where(product < 0, etas[0], 1.0))
        step_size = np.clip(step_size * factor, *step_sizes)
        g = np.where(product < 0, 0.0, g)
        out.append(-np.sign(g) * step_size)
        prev = g
    return out


def ref_sign_sgd(grads, theta, lr):
    return [-lr * np.sign(g) for g in grads]


def device(x):
    """``x`` as a device array, like ``jnp.asarray(x)`` without compiling a conversion."""
    return jax.device_put(np.asarray(x))


def constant(value):
    return lambda t: value


def rising(t):
    return 0.1 * (t + 1)  # a schedule, to check that update t uses η(t), t = 0, 1, ...


# --- the table: (id, optimizer, reference) ------------------------------------------------------

CASES = [
    ("sgd", optim.sgd(0.1), lambda g, p: ref_sgd(g, p, constant(0.1))),
    ("sgd_schedule", optim.sgd(rising), lambda g, p: ref_sgd(g, p, rising)),
    ("momentum_classic", optim.sgd(0.1, 0.9),
     lambda g, p: ref_classic_momentum(g, p, constant(0.1), 0.9)),
    ("momentum_classic_schedule", optim.sgd(rising, 0.9),
     lambda g, p: ref_classic_momentum(g, p, rising, 0.9)),
    ("momentum_pytorch", optim.sgd(0.1, 0.9, form="pytorch"),
     lambda g, p: ref_torch_sgd(g, p, constant(0.1), 0.9)),
    ("momentum_pytorch_schedule", optim.sgd(rising, 0.9, form="pytorch"),
     lambda g, p: ref_torch_sgd(g, p, rising, 0.9)),
    ("momentum_ema", optim.sgd(0.1, 0.8, form="ema"),
     lambda g, p: ref_ema_momentum(g, p, 0.1, 0.8)),
    ("nesterov_classic", optim.sgd(0.1, 0.9, nesterov=True),
     lambda g, p: ref_classic_momentum(g, p, constant(0.1), 0.9, nesterov=True)),
    ("nesterov_pytorch", optim.sgd(rising, 0.9, nesterov=True, form="pytorch"),
     lambda g, p: ref_torch_sgd(g, p, rising, 0.9, nesterov=True)),
    ("adagrad", optim.adagrad(0.1), lambda g, p: ref_adagrad(g, p, 0.1)),
    ("adagrad_tf_accumulator", optim.adagrad(0.1, initial_accumulator_value=0.1, eps=1e-7),
     lambda g, p: ref_adagrad(g, p, 0.1, initial=0.1, eps=1e-7)),
    ("adadelta_paper", optim.adadelta(), lambda g, p: ref_adadelta(g, p, 1.0, 0.95, 1e-6)),
    ("adadelta_pytorch", optim.adadelta(0.5, rho=0.9),
     lambda g, p: ref_adadelta(g, p, 0.5, 0.9, 1e-6)),
    ("rmsprop_course", optim.rmsprop(), lambda g, p: ref_course_rmsprop(g, p, 0.001, 0.9, 1e-8)),
    ("rmsprop_pytorch", optim.rmsprop(0.01, decay=0.99, eps_inside_sqrt=False),
     lambda g, p: ref_torch_rmsprop(g, p, 0.01, 0.99, 1e-8)),
    ("rmsprop_pytorch_centered_momentum",
     optim.rmsprop(0.01, decay=0.99, eps=1e-3, centered=True, momentum=0.9, eps_inside_sqrt=False),
     lambda g, p: ref_torch_rmsprop(g, p, 0.01, 0.99, 1e-3, centered=True, momentum=0.9)),
    ("rmsprop_graves", optim.rmsprop(0.01, decay=0.95, eps=1e-4, centered=True, momentum=0.9),
     lambda g, p: ref_graves_rmsprop(g, p, 0.01, 0.95, 1e-4, 0.9)),
    ("adam", optim.adam(0.01), lambda g, p: ref_adam(g, p, 0.01, 0.9, 0.999, 1e-8)),
    ("adam_eps", optim.adam(0.01, 0.8, 0.9, eps=0.1),
     lambda g, p: ref_adam(g, p, 0.01, 0.8, 0.9, 0.1)),
    ("adamw", optim.adamw(0.01, weight_decay=0.1),
     lambda g, p: ref_adam(g, p, 0.01, 0.9, 0.999, 1e-8, weight_decay=0.1)),
    ("adamax", optim.adamax(), lambda g, p: ref_adamax(g, p, 0.002, 0.9, 0.999, 1e-8, False)),
    ("adamax_pytorch", optim.adamax(eps=0.1, eps_inside_max=True),
     lambda g, p: ref_adamax(g, p, 0.002, 0.9, 0.999, 0.1, True)),
    ("nadam", optim.nadam(), lambda g, p: ref_nadam(g, p, 0.002, 0.9, 0.999, 1e-8, 0.004)),
    ("nadam_fast_schedule", optim.nadam(0.01, momentum_decay=0.5),
     lambda g, p: ref_nadam(g, p, 0.01, 0.9, 0.999, 1e-8, 0.5)),
    ("nadam_no_schedule", optim.nadam(0.01, momentum_decay=None),
     lambda g, p: ref_nadam(g, p, 0.01, 0.9, 0.999, 1e-8, None)),
    ("nadam_l2", optim.nadam(0.01, weight_decay=0.1, mask=True),
     lambda g, p: ref_nadam(g, p, 0.01, 0.9, 0.999, 1e-8, 0.004, weight_decay=0.1)),
    ("nadamw", optim.nadamw(0.01, weight_decay=0.1, mask=True),
     lambda g, p: ref_nadam(g, p, 0.01, 0.9, 0.999, 1e-8, 0.004, 0.1, decoupled=True)),
    ("amsgrad", optim.adam(0.01, 0.8, 0.9, amsgrad=True),
     lambda g, p: ref_amsgrad(g, p, 0.01, 0.8, 0.9, 1e-8)),
    ("radam", optim.radam(0.01), lambda g, p: ref_radam(g, p, 0.01, 0.9, 0.999, 1e-8)),
    ("momentum_pytorch_dampening", optim.sgd(rising, 0.9, form="pytorch", dampening=0.3),
     lambda g, p: ref_torch_sgd(g, p, rising, 0.9, dampening=0.3)),
    ("momentum_classic_dampening", optim.sgd(0.1, 0.9, dampening=0.3),
     lambda g, p: ref_torch_sgd(g, p, constant(0.1), 0.9, dampening=0.3)),
    ("rprop", optim.rprop(), lambda g, p: ref_rprop(g, p, 0.01)),
    ("sign_sgd", optim.sign_sgd(0.1), lambda g, p: ref_sign_sgd(g, p, 0.1)),
]


def run(optimizer, grads, params):
    """The updates of ``optimizer`` along the hand-made gradient sequence."""
    state, updates = optimizer.init(params), []
    for g in grads:
        u, state = optimizer.update(device(g), state, params)
        params = optim.apply_updates(params, u)
        updates.append(np.asarray(u))
    return updates


@pytest.mark.parametrize("grads, params",
                         [(SCALAR_GRADS, SCALAR_PARAMS), (VECTOR_GRADS, VECTOR_PARAMS)],
                         ids=["scalar", "vector"])
@pytest.mark.parametrize("name, optimizer, reference", CASES, ids=[case[0] for case in CASES])
def test_rule_matches_its_equations(x64, name, optimizer, reference, grads, params):
    expected = reference(grads, params)
    got = run(optimizer, grads, jnp.asarray(params))
    for step, (u, e) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(u, e, rtol=1e-14, atol=1e-15, err_msg=f"{name}, step {step}")


def test_radam_switches_to_the_rectified_step_at_pytorchs_threshold(x64):
    """ρ_1 = 1 and ρ_t grows by about 1 per step: with β2 = 0.9 the first 5 steps are plain
    momentum (ρ_t <= 5) and the rest rectified; the reference takes both branches."""
    grads = np.random.default_rng(3).normal(size=(9, 3))
    rho_inf = 2 / 0.1 - 1
    rho = [rho_inf - 2 * t * 0.9 ** t / (1 - 0.9 ** t) for t in range(1, 10)]
    assert sum(r > 5 for r in rho) == 4
    expected = ref_radam(grads, VECTOR_PARAMS, 0.01, 0.8, 0.9, 1e-3)
    got = run(optim.radam(0.01, 0.8, 0.9, eps=1e-3), grads, jnp.asarray(VECTOR_PARAMS))
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop",
                                  "adam", "amsgrad", "adamw", "adamax", "nadam", "nadamw",
                                  "radam", "rprop", "sign_sgd"])
def test_maximize_climbs_as_descent_on_the_negated_gradient(x64, name):
    """maximize=True (PyTorch's) is the same rule on −g: its updates on g are those on −g."""
    ascent = optim.get(name)(0.01, maximize=True)
    descent = optim.get(name)(0.01)
    params = jnp.asarray(VECTOR_PARAMS)
    np.testing.assert_array_equal(run(ascent, VECTOR_GRADS, params),
                                  run(descent, -VECTOR_GRADS, params))


def test_every_state_follows_the_parameters_dtype(x64):
    """In a float64 run every float in every optimizer state is float64 (Nadam's running product
    of momenta was float32, costing 2e-9 against PyTorch from the first step)."""
    params = {"w": device(VECTOR_PARAMS), "b": device(np.zeros(2))}
    grads = {"w": device(VECTOR_GRADS[0]), "b": device(np.ones(2))}
    pieces = [optim.get(name)(0.01) for name in optim.ALIASES] + [
        optim.sgd(0.1, 0.9, dampening=0.5), optim.adam(amsgrad=True),
        optim.chain(optim.clip_by_global_norm(1.0), optim.scale_by_learning_rate(0.1),
                    optim.scale_by_bold_driver(), optim.reduce_on_plateau()),
        optim.accumulate_gradients(optim.adam(), every_k=2)]
    for optimizer in pieces:

        def two_updates(params, grads):
            state = optimizer.init(params)
            for _ in range(2):
                _, state = optimizer.update(grads, state, params, loss=jnp.asarray(1.0))
            return state

        # Traced, not compiled (eager ops would compile one program each): dtypes are the same.
        state = jax.eval_shape(two_updates, params, grads)
        floats = [x.dtype for x in jax.tree_util.tree_leaves(state)
                  if jnp.issubdtype(x.dtype, jnp.floating)]
        assert floats and set(floats) == {jnp.dtype("float64")}, (optimizer, state)


def test_ema_momentum_is_pytorch_dampening(x64):
    """form="ema" is torch.optim.SGD with dampening=γ but for torch's undamped first step: its
    buffer starts at g₁, ours at (1 − γ)g₁, and the difference γg₁ then decays by γ per step."""
    damped = ref_torch_sgd(VECTOR_GRADS, VECTOR_PARAMS, constant(0.1), 0.8, dampening=0.8)
    ours = run(optim.sgd(0.1, 0.8, form="ema"), VECTOR_GRADS, jnp.asarray(VECTOR_PARAMS))
    for t, (u, d) in enumerate(zip(ours, damped)):
        np.testing.assert_allclose(u, d + 0.1 * 0.8 ** (t + 1) * VECTOR_GRADS[0], rtol=1e-12)


# --- equivalences between forms ------------------------------------------------------------------

A = np.array([[3.0, 1.0], [1.0, 0.5]])  # a convex quadratic J(θ) = ½ θᵀAθ − bᵀθ
B = np.array([1.0, -1.0])


def quadratic_grad(theta):
    return device(A @ np.asarray(theta) - B)  # NumPy: no eager matmul to compile


def test_nesterov_reformulation_equals_lookahead_gradient(x64):
    """(a) sgd(nesterov=True) stores the look-ahead parameters φ = θ − γv and needs one gradient;
    (b) plain momentum with the gradient taken at nesterov_lookahead(θ) is the course's Nesterov:
    v = γv + η∇J(θ − γv), θ −= v. Their trajectories are the same: φ_t = θ_t − γv_t."""
    lr, gamma = 0.05, 0.9
    reformulated, lookahead = optim.sgd(lr, gamma, nesterov=True), optim.sgd(lr, gamma)
    phi = theta = device([2.0, -1.0])
    state_a, state_b = reformulated.init(phi), lookahead.init(theta)
    course_theta, course_v = np.array([2.0, -1.0]), np.zeros(2)
    for _ in range(30):
        u, state_a = reformulated.update(quadratic_grad(phi), state_a)
        phi = optim.apply_updates(phi, u)

        g = quadratic_grad(optim.nesterov_lookahead(theta, state_b, gamma))
        u, state_b = lookahead.update(g, state_b)
        theta = optim.apply_updates(theta, u)

        course_v = gamma * course_v + lr * (A @ (course_theta - gamma * course_v) - B)
        course_theta = course_theta - course_v

        np.testing.assert_allclose(theta, course_theta, rtol=1e-12)
        np.testing.assert_allclose(optim.nesterov_lookahead(theta, state_b, gamma),
                                   course_theta - gamma * course_v, rtol=1e-12)
        np.testing.assert_allclose(phi, course_theta - gamma * course_v, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_forms_agree_for_a_constant_learning_rate(x64, nesterov):
    """classic (η inside v) = pytorch (η outside); ema with η = pytorch with η(1 − γ)."""
    lr, gamma = 0.1, 0.8
    classic = run(optim.sgd(lr, gamma, nesterov=nesterov), VECTOR_GRADS, jnp.asarray(VECTOR_PARAMS))
    torch = run(optim.sgd(lr, gamma, nesterov=nesterov, form="pytorch"), VECTOR_GRADS,
                jnp.asarray(VECTOR_PARAMS))
    ema = run(optim.sgd(lr / (1 - gamma), gamma, nesterov=nesterov, form="ema"), VECTOR_GRADS,
              jnp.asarray(VECTOR_PARAMS))
    np.testing.assert_allclose(classic, torch, rtol=1e-12)
    np.testing.assert_allclose(ema, torch, rtol=1e-12)


def test_rprop_step_sizes_stay_within_their_bounds(x64):
    grow = optim.rprop(0.01, max_step_size=0.015)
    assert np.allclose(run(grow, np.ones(4), device(0.0)), [-0.01, -0.012, -0.0144, -0.015])
    # Alternating signs: neutral, flip (shrink, no step), neutral, flip, ...: 0.01 → 0.005 → 0.004.
    shrink = optim.rprop(0.01, min_step_size=0.004)
    assert np.allclose(run(shrink, [1.0, -1.0, 1.0, -1.0, 1.0], device(0.0)),
                       [-0.01, 0.0, -0.005, 0.0, -0.004])


def test_adamw_never_decays_biases_by_default(x64):
    params = {"dense": {"w": device([1.0, -2.0]), "b": device([3.0, 4.0])}}
    zero = jax.tree_util.tree_map(lambda x: device(np.zeros(x.shape, x.dtype)), params)
    opt = optim.adamw(0.1, weight_decay=0.5)
    updates, _ = opt.update(zero, opt.init(params), params)
    np.testing.assert_array_equal(updates["dense"]["b"], [0.0, 0.0])
    np.testing.assert_allclose(updates["dense"]["w"], [-0.05, 0.1])
    everything = optim.adamw(0.1, weight_decay=0.5, mask=lambda path, leaf: True)
    updates, _ = everything.update(zero, everything.init(params), params)
    np.testing.assert_allclose(updates["dense"]["b"], [-0.15, -0.2])


# --- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: optim.sgd("fast"), r"sgd: `learning_rate` must be a real number >= 0 or a schedule"),
    (lambda: optim.sgd(-0.1), r"sgd: `learning_rate` must be a real number >= 0 .*got -0.1"),
    (lambda: optim.sgd(0.1, 0.9, form="keras"),
     r"sgd: `form` must be one of \('classic', 'pytorch', 'ema'\); got 'keras'"),
    (lambda: optim.sgd(0.1, nesterov=True), r"sgd: nesterov=True needs a momentum in \(0, 1\)"),
    (lambda: optim.sgd(0.1, 1.0), r"sgd: `momentum` must be a real number in \[0, 1\); got 1.0"),
    (lambda: optim.adam(beta1=1.0), r"scale_by_adam: `beta1` must be a real number in \[0, 1\); got 1.0"),
    (lambda: optim.adam(beta1="0.9"), r"scale_by_adam: `beta1` must be a real number .*got '0.9'"),
    (lambda: optim.adam(beta2=-0.1), r"scale_by_adam: `beta2` must be a real number in \[0, 1\)"),
    (lambda: optim.adam(eps=-1e-8), r"scale_by_adam: `eps` must be a real number >= 0"),
    (lambda: optim.adagrad(initial_accumulator_value=-1),
     r"scale_by_adagrad: `initial_accumulator_value` must be a real number >= 0"),
    (lambda: optim.adadelta(rho=1.5), r"scale_by_adadelta: `rho` must be a real number in \[0, 1\)"),
    (lambda: optim.rmsprop(decay=None), r"scale_by_rms: `decay` must be a real number .*got None"),
    (lambda: optim.rmsprop(momentum=2.0), r"scale_by_momentum: `momentum` must be a real number in"),
    (lambda: optim.nadam(momentum_decay=-1.0), r"scale_by_nadam: `momentum_decay` must be a real number"),
    (lambda: optim.rprop(decrease=1.5), r"scale_by_rprop: `decrease` must be a real number in \(0, 1\)"),
    (lambda: optim.rprop(increase=0.9), r"scale_by_rprop: `increase` must be a real number > 1"),
    (lambda: optim.rprop(min_step_size=1.0, max_step_size=0.5),
     r"scale_by_rprop: `max_step_size` must be a real number >= min_step_size = 1.0; got 0.5"),
    (lambda: optim.rprop(lambda t: 0.01), r"rprop: learning_rate is the initial per-weight step"),
    (lambda: optim.sgd(0.1, 0.9, dampening=1.5),
     r"sgd: `dampening` must be a real number in \[0, 1\]; got 1.5"),
    (lambda: optim.sgd(0.1, 0.9, nesterov=True, dampening=0.1),
     r"sgd: dampening=0.1 excludes nesterov=True"),
    (lambda: optim.scale_by_momentum(0.9, ema=True, dampening=0.1),
     r"scale_by_momentum: dampening=0.1 excludes ema=True"),
    (lambda: optim.radam(beta2=1.0), r"scale_by_radam: `beta2` must be a real number in \[0, 1\)"),
    (lambda: optim.get("adamm"), r"unknown optimizer 'adamm'; expected one of \['adadelta', "),
])
def test_bad_hyperparameters_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_grads_with_the_wrong_structure_print_both_structures():
    opt = optim.adam()
    state = opt.init({"w": device(np.ones(2))})
    message = (r"(?s)scale_by_adam: grads must have the structure of the params given to init;"
               r"\n  grads: .*'v'.*\n  state: .*'w'")
    with pytest.raises(ValueError, match=message):
        opt.update({"v": device(np.ones(2))}, state)


def test_adamw_needs_params():
    opt = optim.adamw()
    with pytest.raises(ValueError, match=r"add_decayed_weights: needs the parameters"):
        opt.update({"w": device(np.ones(2))}, opt.init({"w": device(np.ones(2))}))


def test_nesterov_lookahead_explains_which_state_it_needs():
    params = {"w": device(np.ones(2))}
    torch_form = optim.sgd(0.1, 0.9, form="pytorch")
    with pytest.raises(ValueError, match=r"nesterov_lookahead: needs the classic momentum form"):
        optim.nesterov_lookahead(params, torch_form.init(params), 0.9)
    with pytest.raises(ValueError, match=r"nesterov_lookahead: opt_state must hold exactly one "
                                         r"MomentumState; found 0"):
        optim.nesterov_lookahead(params, optim.adam().init(params), 0.9)


@pytest.mark.parametrize("opt", [optim.adam(), optim.adam(amsgrad=True), optim.adamw()],
                         ids=["adam", "amsgrad", "adamw"])
def test_adam_updates_keep_bfloat16_under_jit(opt):
    # eagerly the bias corrections are weakly typed and keep bfloat16; under jit they are
    # float32 and promoted m / (1 − β1^t) to float32 (found by running the dtype check jitted)
    params = {"w": jax.device_put(np.ones(3, jnp.bfloat16))}
    grads = {"w": jax.device_put(np.full(3, 0.5, jnp.bfloat16))}
    update = jax.jit(lambda g, s, p: opt.update(g, s, p)[0])
    assert update(grads, opt.init(params), params)["w"].dtype == jnp.bfloat16
