"""fnn.classic.rbm against NumPy and against enumeration of every state of a tiny RBM: energy,
free energy, log Z, the CD gradient for fixed samples, CD-k with a long chain against the exact
log-likelihood gradient, and training lowering the reconstruction error."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import classic
from fnn.optim import sgd

# Keys made once at import, outside x64 (PRNGKey under x64 compiles its seeding again; the key
# data are the same for these small seeds). Arrays are made and inspected in NumPy: each eager
# jnp op would compile a program of its own.
KEYS = {seed: jax.random.PRNGKey(seed) for seed in (0, 2, 3, 7)}


def tiny(n_v=4, n_h=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return {"w": rng.normal(size=(n_v, n_h)).astype(dtype),
            "visible": {"b": (rng.normal(size=n_v) * 0.5).astype(dtype)},
            "hidden": {"b": (rng.normal(size=n_h) * 0.5).astype(dtype)}}


def states(n):
    return np.array(list(itertools.product((0, 1), repeat=n)), np.float64)


def numpy_energy(p, v, h):
    w, bv, bh = (np.asarray(a) for a in (p["w"], p["visible"]["b"], p["hidden"]["b"]))
    return -(v @ bv + h @ bh + v @ w @ h)


def test_energy_free_energy_and_log_partition_by_enumeration(x64):
    for n_v, n_h in ((4, 3), (2, 5)):  # log Z sums over the smaller layer: both branches
        p = tiny(n_v, n_h)
        vs, hs = states(n_v), states(n_h)
        energies = np.array([[numpy_energy(p, v, h) for h in hs] for v in vs])
        got = jax.jit(lambda p, v, h: (classic.energy(p, v[:, None, :], h[None, :, :]),
                                       classic.free_energy(p, v), classic.log_partition(p),
                                       classic.log_likelihood(p, v[:2])))(p, vs, hs)
        free = -np.log(np.exp(-energies).sum(1))  # F(v) = −log Σ_h exp(−E(v, h))
        log_z = np.log(np.exp(-energies).sum())
        for a, b in zip(got, (energies, free, log_z, np.mean(-free[:2]) - log_z)):
            np.testing.assert_allclose(a, b, rtol=1e-12)


def test_conditionals_are_the_sigmoids_of_the_course(x64):
    p = tiny()
    v, h = states(4)[5], states(3)[3]
    w, bv, bh = np.asarray(p["w"]), np.asarray(p["visible"]["b"]), np.asarray(p["hidden"]["b"])
    sig = lambda z: 1 / (1 + np.exp(-z))
    hidden, visible = jax.jit(lambda p, v, h: (  # one program, not one per eager op
        classic.hidden_probabilities(p, v), classic.visible_probabilities(p, h)))(p, v, h)
    np.testing.assert_allclose(hidden, sig(v @ w + bh))
    np.testing.assert_allclose(visible, sig(w @ h + bv))


def test_contrastive_gradient_for_fixed_samples_matches_numpy_and_free_energy_autodiff(x64):
    p = tiny()
    rng = np.random.default_rng(3)
    v_data = (rng.uniform(size=(5, 4)) < 0.5).astype(np.float64)
    v_model = (rng.uniform(size=(6, 4)) < 0.5).astype(np.float64)
    w, bh = np.asarray(p["w"]), np.asarray(p["hidden"]["b"])
    ph_d, ph_m = (1 / (1 + np.exp(-(v @ w + bh))) for v in (v_data, v_model))
    expected_w = sum(np.outer(v, q) for v, q in zip(v_data, ph_d)) / 5 \
        - sum(np.outer(v, q) for v, q in zip(v_model, ph_m)) / 6
    # both under one jit: eager ops would compile a program each
    got, by_autodiff = jax.jit(lambda p, v_data, v_model: (
        classic.contrastive_gradient(p, v_data, v_model),
        jax.grad(lambda q: -(jnp.mean(classic.free_energy(q, v_data))
                             - jnp.mean(classic.free_energy(q, v_model))))(p)))(
        p, v_data, v_model)
    np.testing.assert_allclose(got["w"], expected_w, rtol=1e-12)
    np.testing.assert_allclose(got["visible"]["b"], v_data.mean(0) - v_model.mean(0), rtol=1e-12)
    np.testing.assert_allclose(got["hidden"]["b"], ph_d.mean(0) - ph_m.mean(0), rtol=1e-12)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(by_autodiff)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_cd1_is_one_gibbs_sweep_with_the_given_key_then_the_contrastive_gradient(x64):
    p = tiny()
    v = states(4)[[1, 6, 11]]
    key = KEYS[7]

    @jax.jit  # every JAX call in one program: eager ops would compile a program each
    def sweep_and_rules(key, p, v):
        # the sweep by hand: h ~ p(h|v) with u < p, then v' ~ p(v'|h), keys split from
        # fold_in(key, 0)
        h_key, v_key = jax.random.split(jax.random.fold_in(key, 0))
        return (classic.cd_gradient(key, p, v, k=1), jax.random.uniform(h_key, (3, 3), jnp.float64),
                classic.hidden_probabilities(p, v), jax.random.uniform(v_key, (3, 4), jnp.float64),
                # the plain rule θ ← θ + η Δθ with the same key
                classic.cd_update(key, p, v, learning_rate=0.1),
                # persistent CD from chains that happen to equal the data is CD with the same key
                classic.pcd_gradient(key, p, v, v, k=1))

    (grads, v1), h_uniform, ph, v_uniform, updated, (pcd, chains) = sweep_and_rules(key, p, v)
    h = (np.asarray(h_uniform) < np.asarray(ph)).astype(np.float64)
    pv = 1 / (1 + np.exp(-(h @ np.asarray(p["w"]).T + np.asarray(p["visible"]["b"]))))
    expected_v1 = (np.asarray(v_uniform) < pv).astype(float)
    np.testing.assert_array_equal(v1, expected_v1)
    expected_grads = jax.jit(classic.contrastive_gradient)(p, v, expected_v1)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(expected_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(updated["w"], p["w"] + 0.1 * np.asarray(grads["w"]), rtol=1e-12)
    np.testing.assert_array_equal(chains, v1)
    np.testing.assert_allclose(pcd["w"], grads["w"], rtol=1e-12)


def test_cd_k_with_a_long_chain_approaches_the_exact_log_likelihood_gradient(x64):
    p = tiny(4, 3, seed=1)
    data = np.repeat(states(4)[[3, 5, 12]], 1000, axis=0)  # 3 patterns, 3000 chains
    exact = jax.jit(jax.grad(classic.log_likelihood))(p, data)
    cd, _ = jax.jit(classic.cd_gradient, static_argnames="k")(KEYS[0], p, data, k=25)
    for name, a, b in zip(["b_h", "b_v", "w"], jax.tree.leaves(cd), jax.tree.leaves(exact)):
        np.testing.assert_allclose(a, b, atol=0.04, err_msg=name)  # 3000 chains: σ ≈ 0.01
    assert np.abs(np.asarray(exact["w"])).max() > 0.1  # the comparison is not of two zeros


def test_pcd_training_lowers_the_reconstruction_error():
    """(CD training is run by tests/test_experiment_rbm.py.)"""
    patterns = np.array([[1] * 6 + [0] * 6, [0] * 6 + [1] * 6, [1, 0] * 6], np.float32)
    data = patterns[np.random.default_rng(1).integers(0, 3, 200)]
    params = jax.jit(lambda key: classic.init_rbm(key, 12, 6, std=0.1))(KEYS[2])  # one program
    before = float(jax.jit(classic.reconstruction_error)(params, data))
    params, history = classic.train_rbm(params, data, key=KEYS[3], epochs=5,
                                        batch_size=20, optimizer=sgd(0.1, momentum=0.5),
                                        persistent=True, monitor=data[:20])
    assert history.reconstruction_error.shape == (5,)
    assert np.asarray(history.reconstruction_error)[-1] < 0.3 * before, (before, history)
    assert np.all(np.abs(history.free_energy_gap) < 1.0)  # the monitor is training data


def test_init_and_train_check_their_arguments():
    p = jax.jit(lambda key: classic.init_rbm(key, 3, 2, data_mean=[0.5, 0.0, 0.9]))(KEYS[0])
    np.testing.assert_allclose(p["visible"]["b"], [0.0, np.log(0.01 / 0.99), np.log(9.0)],
                               rtol=1e-5)
    with pytest.raises(ValueError, match=r"train_rbm: `data` must be binary"):
        classic.train_rbm(p, np.full((4, 3), 0.5), key=KEYS[0], epochs=1,
                          batch_size=2)
    with pytest.raises(ValueError, match=r"train_rbm: `batch_size` must be an integer in 1\.\.4"):
        classic.train_rbm(p, np.ones((4, 3)), key=KEYS[0], epochs=1, batch_size=8)
    with pytest.raises(ValueError, match=r"log_partition: enumerates"):
        classic.log_partition(jax.jit(lambda key: classic.init_rbm(key, 30, 21))(KEYS[0]))
