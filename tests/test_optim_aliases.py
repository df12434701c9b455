"""Properties every optimizer shares: state structure and dtypes, zero gradients, jit = eager,
no retracing, convergence on an ill-conditioned quadratic, and checkpoint round-trips.

Compile time: a `jnp` call outside `jax.jit` compiles a program per new (shape, dtype), so test
data is made in NumPy and put on the device with `jax.device_put` (which compiles nothing)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn import checkpoint, optim
from fnn.param_masks import weights as weights_mask


def decaying(initial, rate):
    return lambda step: initial * rate ** step


# Every alias at its defaults with the learning rate a config would give, and the variants that
# flags select.
OPTIMIZERS = {name: optim.get(name)(0.01) for name in optim.ALIASES} | {
    "sgd_schedule": optim.sgd(decaying(0.1, 0.9)),
    "momentum_pytorch": optim.sgd(0.01, 0.9, form="pytorch"),
    "momentum_ema": optim.sgd(0.01, 0.9, form="ema"),
    "nesterov_pytorch": optim.sgd(0.01, 0.9, nesterov=True, form="pytorch"),
    "adagrad_tf": optim.adagrad(0.01, initial_accumulator_value=0.1),
    "rmsprop_pytorch_centered_momentum": optim.rmsprop(0.01, 0.99, centered=True, momentum=0.9,
                                                       eps_inside_sqrt=False),
    "adamax_pytorch": optim.adamax(eps_inside_max=True),
    "nadam_no_schedule": optim.nadam(momentum_decay=None),
    "momentum_dampening": optim.sgd(0.01, 0.9, form="pytorch", dampening=0.3),
    "nadam_l2": optim.nadam(weight_decay=0.1),
    "adamw_amsgrad_maximize": optim.adamw(0.01, amsgrad=True, maximize=True),
}
# Zero gradients leave the parameters alone from a fresh state, except for AdamW (its decoupled
# decay shrinks the weights). Once other gradients were seen, the rules with a velocity or a first
# moment keep moving; the others (sgd, adagrad, adadelta, rmsprop, rprop, sign_sgd) stay still.
MOVES_FROM_SCRATCH = {"adamw", "nadamw", "nadam_l2", "adamw_amsgrad_maximize"}
KEEPS_MOVING = {"momentum", "nesterov", "momentum_pytorch", "momentum_ema", "nesterov_pytorch",
                "rmsprop_pytorch_centered_momentum", "adam", "adamw", "adamax", "adamax_pytorch",
                "nadam", "nadam_no_schedule", "amsgrad", "nadamw", "radam", "momentum_dampening",
                "nadam_l2", "adamw_amsgrad_maximize"}

PARAMS = {"dense": {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3),
                    "b": jnp.array([0.5, -0.5, 0.0])},
          "scale": (jnp.full((), 2.0, jnp.float32), jnp.ones(3))}


def gradients(params, seed):
    """Random gradients shaped like ``params``, in their dtypes (drawn and cast by NumPy:
    jax.random or jnp.asarray would compile a program per leaf shape and dtype)."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda x: jax.device_put(np.asarray(rng.normal(size=x.shape), x.dtype)), params)


def steps(optimizer, params, seeds, update=None):
    """Run ``optimizer`` on random gradients; return the params, state and last updates."""
    update = update or optimizer.update
    state = optimizer.init(params)
    for seed in seeds:
        updates, state = update(gradients(params, seed), state, params)
        params = optim.apply_updates(params, updates)
    return params, state, updates


def is_still(updates) -> bool:
    return not any(np.any(np.asarray(u)) for u in jax.tree_util.tree_leaves(updates))


# --- property tests over random pytrees -----------------------------------------------------------

shapes = st.sampled_from([(), (3,), (2, 3)])  # few shapes, so eager ops hit JAX's compile caches
leaves = st.builds(lambda shape, seed: np.random.default_rng(seed).normal(size=shape),
                   shapes, st.integers(0, 2 ** 16))
names = st.sampled_from(["w", "b", "kernel", "gamma"])
trees = st.recursive(leaves, lambda children: st.one_of(
    st.dictionaries(names, children, min_size=1, max_size=3),
    st.lists(children, min_size=1, max_size=3).map(tuple)), max_leaves=5)
param_trees = st.builds(
    lambda tree, dtype: jax.tree_util.tree_map(lambda x: jax.device_put(np.asarray(x, dtype)),
                                               tree),
    st.dictionaries(names, trees, min_size=1, max_size=2),
    st.sampled_from([jnp.float32, jnp.bfloat16]))


def per_parameter_fields(state):
    """The fields of every state piece that hold one value per parameter: all but scalars (step
    counts, learning rates), nested states, and masked sub-trees (None for unselected leaves)."""
    for piece in optim.named_states(state):
        for field, value in zip(piece._fields, piece):
            nested = isinstance(value, tuple) and hasattr(value, "_fields")
            scalar = getattr(value, "shape", None) == ()
            masked = None in jax.tree_util.tree_leaves(value, is_leaf=lambda x: x is None)
            if not (nested or scalar or masked):
                yield f"{type(piece).__name__}.{field}", value


@settings(max_examples=15, deadline=None)
@given(name=st.sampled_from(sorted(OPTIMIZERS)), params=param_trees)
def test_state_and_updates_keep_structure_and_dtypes(name, params):
    optimizer = OPTIMIZERS[name]
    initial = optimizer.init(params)
    for field, value in per_parameter_fields(initial):
        chex.assert_trees_all_equal_shapes_and_dtypes(value, params, custom_message=field)
    new_params, state, updates = steps(optimizer, params, seeds=[0, 1])
    chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_params, params)
    chex.assert_trees_all_equal_structs(state, initial)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, initial)
    chex.assert_tree_all_finite(state)


@settings(max_examples=15, deadline=None)
@given(name=st.sampled_from(sorted(OPTIMIZERS)), params=param_trees)
def test_zero_gradients(name, params):
    optimizer = OPTIMIZERS[name]
    zeros = jax.tree_util.tree_map(lambda x: jax.device_put(np.zeros(x.shape, x.dtype)), params)
    updates, _ = optimizer.update(zeros, optimizer.init(params), params)
    decays_some_weight = any(jax.tree_util.tree_leaves(weights_mask(params)))
    assert is_still(updates) == (name not in MOVES_FROM_SCRATCH or not decays_some_weight)

    params, state, _ = steps(optimizer, params, seeds=[2, 3])
    updates, _ = optimizer.update(zeros, state, params)
    assert is_still(updates) == (name not in KEEPS_MOVING)


# --- jit (one compilation per optimizer) ----------------------------------------------------------

class JitTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*sorted(OPTIMIZERS.items()))
    def test_jit_matches_eager_and_never_retraces(self, optimizer):
        traces = []

        def traced_update(*args):
            traces.append(args)
            return optimizer.update(*args)

        eager = steps(optimizer, PARAMS, seeds=[0, 1, 2])
        variant = steps(optimizer, PARAMS, seeds=[0, 1, 2], update=self.variant(traced_update))
        chex.assert_trees_all_close(variant, eager, rtol=1e-5, atol=1e-6)
        if self.variant.type is chex.ChexVariantType.WITH_JIT:
            assert len(traces) == 1, "the state changed structure, shapes or dtypes in an update"


# --- convergence ----------------------------------------------------------------------------------

# J(θ) = ½ θᵀAθ − bᵀθ in 4 dimensions, eigenvalues of A 1, 3, 10, 30 in a random basis; θ₀ = 0,
# ‖θ*‖ ≈ 2.5; float32. Each row: optimizer with its hyper-parameters, steps, tolerance on ‖θ − θ*‖.
_Q = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
A = _Q @ np.diag([1.0, 3.0, 10.0, 30.0]) @ _Q.T
B = np.array([1.0, -2.0, 0.5, 3.0])
MINIMUM = np.linalg.solve(A, B)

CONVERGENCE = [
    ("sgd", optim.sgd(0.06), 300, 1e-4),
    ("momentum", optim.sgd(0.02, 0.9), 300, 1e-4),
    ("momentum_pytorch", optim.sgd(0.02, 0.9, form="pytorch"), 300, 1e-4),
    ("momentum_ema", optim.sgd(0.2, 0.9, form="ema"), 300, 1e-4),
    ("nesterov", optim.sgd(0.02, 0.9, nesterov=True), 300, 1e-4),
    ("adagrad", optim.adagrad(1.0), 1000, 1e-4),
    # Near θ* Adadelta's step tends to the raw gradient (RMS[Δ]/RMS[g] → 1): the paper's η = 1 is
    # unstable along curvature 30, so this row uses PyTorch's multiplier η < 2/30 (and a larger ε).
    ("adadelta", optim.adadelta(0.05, eps=1e-3), 1000, 1e-4),
    ("rmsprop", optim.rmsprop(decaying(0.05, 0.99)), 1000, 1e-4),
    ("rmsprop_centered_momentum", optim.rmsprop(decaying(0.05, 0.99), centered=True, momentum=0.5),
     1000, 1e-4),
    ("adam", optim.adam(decaying(0.1, 0.995)), 1000, 1e-4),
    # The decoupled decay moves the fixed point to ∇J = −λθ·√v̂: O(λ) from θ*.
    ("adamw", optim.adamw(decaying(0.1, 0.995), weight_decay=1e-3), 1000, 2e-3),
    ("adamax", optim.adamax(decaying(0.1, 0.995)), 1000, 1e-4),
    ("nadam", optim.nadam(decaying(0.1, 0.995)), 1000, 1e-4),
    ("amsgrad", optim.adam(decaying(0.1, 0.995), amsgrad=True), 1000, 1e-4),
    ("nadamw", optim.nadamw(decaying(0.1, 0.995), weight_decay=1e-3), 1000, 2e-3),
    ("radam", optim.radam(decaying(0.1, 0.995)), 1000, 1e-4),
    ("rprop", optim.rprop(), 200, 1e-4),
    ("sign_sgd", optim.sign_sgd(decaying(0.1, 0.99)), 1000, 1e-4),
]


def test_convergence_table_covers_every_alias():
    assert set(optim.ALIASES) <= {row[0] for row in CONVERGENCE}


@pytest.mark.parametrize("name, optimizer, num_steps, tolerance", CONVERGENCE,
                         ids=[row[0] for row in CONVERGENCE])
def test_minimizes_an_ill_conditioned_quadratic(name, optimizer, num_steps, tolerance):
    a, b = A.astype(np.float32), B.astype(np.float32)
    grad = jax.grad(lambda params: 0.5 * params["w"] @ a @ params["w"] - b @ params["w"])

    def step(carry, _):
        params, state = carry
        updates, state = optimizer.update(grad(params), state, params)
        return (optim.apply_updates(params, updates), state), None

    run = jax.jit(lambda params: jax.lax.scan(step, (params, optimizer.init(params)), None,
                                              length=num_steps))
    (params, _), _ = run({"w": np.zeros(4, np.float32)})
    assert np.linalg.norm(np.asarray(params["w"]) - MINIMUM) < tolerance


# --- checkpoints ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_survives_a_checkpoint_and_resumes_identically(name, tmp_path):
    optimizer = OPTIMIZERS[name]
    params, state, _ = steps(optimizer, PARAMS, seeds=[0, 1])
    path = checkpoint.save(tmp_path / "opt.npz", {"params": params, "opt_state": state})
    for like in (None, {"params": params, "opt_state": optimizer.init(PARAMS)}):
        restored = checkpoint.load(path, like=like)
        chex.assert_trees_all_equal_structs(restored["opt_state"], state)
        chex.assert_trees_all_equal(restored["opt_state"], state)
        for seed in (2, 3):
            grads = gradients(PARAMS, seed)
            expected, state_expected = optimizer.update(grads, state, params)
            got, restored_state = optimizer.update(grads, restored["opt_state"], restored["params"])
            chex.assert_trees_all_equal((got, restored_state), (expected, state_expected))
