"""fnn.classic.som against NumPy loops of Kohonen's rules: the winner, the neighbourhood, the
online and batch updates on a tiny grid; the error measures; a 1-D map orders itself."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import classic


def numpy_online_step(w, x, positions, alpha, sigma, kind):
    """w_j ← w_j + α h_cj (x − w_j), unit by unit."""
    c = int(np.argmin([np.sum((x - wj) ** 2) for wj in w]))
    new = w.copy()
    for j in range(len(w)):
        d2 = np.sum((positions[c] - positions[j]) ** 2)
        h = math.exp(-d2 / (2 * sigma ** 2)) if kind == "gaussian" else float(d2 <= sigma ** 2)
        new[j] = w[j] + alpha * h * (x - w[j])
    return new


def test_grids_put_every_neighbour_at_distance_one():
    rect = classic.grid(2, 3)
    np.testing.assert_array_equal(rect, [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]])
    hexagonal = classic.grid(3, 3, hexagonal=True)
    d = np.sqrt(classic.grid_distances(hexagonal))
    centre = 4  # row 1, col 1 (an odd row, shifted right): six neighbours
    assert np.sum(np.isclose(d[centre], 1.0)) == 6 and np.sum(np.isclose(d[0], 1.0)) == 2


def test_neighbourhood_values():
    d2 = jnp.array([0.0, 1.0, 4.0, 9.0])
    np.testing.assert_allclose(classic.neighbourhood(d2, 2.0),
                               np.exp(-np.array([0, 1, 4, 9]) / 8), rtol=1e-6)
    np.testing.assert_array_equal(classic.neighbourhood(d2, 2.0, "bubble"), [1, 1, 1, 0])
    with pytest.raises(ValueError, match=r"neighbourhood: `kind` must be one of"):
        classic.neighbourhood(d2, 1.0, "mexican")


@pytest.mark.parametrize("kind, hexagonal", [("gaussian", False), ("bubble", True)])
def test_online_update_matches_numpy_loop_and_winner_is_nearest(x64, kind, hexagonal):
    rng = np.random.default_rng(0)
    positions = classic.grid(2, 3, hexagonal)
    w = rng.uniform(size=(6, 3))
    x = rng.uniform(size=3)
    winner = int(classic.winner({"w": jnp.asarray(w)}, jnp.asarray(x)))
    assert winner == np.argmin(np.linalg.norm(w - x, axis=1))
    got = jax.jit(lambda p, x: classic.som_update(p, x, positions=positions, learning_rate=0.3,
                                                  radius=1.2, kind=kind))({"w": jnp.asarray(w)},
                                                                          jnp.asarray(x))
    np.testing.assert_allclose(got["w"], numpy_online_step(w, x, positions, 0.3, 1.2, kind),
                               rtol=1e-12)


def test_batch_update_matches_numpy_loop(x64):
    rng = np.random.default_rng(1)
    positions = classic.grid(2, 2)
    w, data = rng.uniform(size=(4, 2)), rng.uniform(size=(7, 2))
    w[3] = [50.0, 50.0]  # a unit no input reaches under the bubble: it keeps its prototype
    expected = w.copy()
    winners = [int(np.argmin(np.sum((w - x) ** 2, 1))) for x in data]
    for j in range(4):
        h = [float(np.sum((positions[c] - positions[j]) ** 2) <= 0.5 ** 2) for c in winners]
        if sum(h) > 0:
            expected[j] = np.sum([hi * x for hi, x in zip(h, data)], 0) / sum(h)
    got = jax.jit(lambda p, data: classic.som_batch_update(  # one program, not one per op
        p, data, positions=positions, radius=0.5, kind="bubble"))({"w": jnp.asarray(w)},
                                                                  jnp.asarray(data))
    np.testing.assert_allclose(got["w"], expected, rtol=1e-12)


def test_quantization_and_topographic_error_against_numpy(x64):
    rng = np.random.default_rng(2)
    positions = classic.grid(2, 3)
    w, data = rng.uniform(size=(6, 2)), rng.uniform(size=(20, 2))
    dist = np.linalg.norm(data[:, None] - w[None], axis=-1)
    qe = dist.min(1).mean()
    best, second = np.argsort(dist, 1)[:, 0], np.argsort(dist, 1)[:, 1]
    te = np.mean(np.linalg.norm(positions[best] - positions[second], axis=1) > 1.0 + 1e-6)
    params = {"w": jnp.asarray(w)}
    quantization, topographic = jax.jit(lambda params, data: (  # one program
        classic.quantization_error(params, data),
        classic.topographic_error(params, data, positions)))(params, jnp.asarray(data))
    np.testing.assert_allclose(quantization, qe, rtol=1e-12)
    np.testing.assert_allclose(topographic, te)
    u = classic.u_matrix(params, positions)
    assert u[0] == pytest.approx((np.linalg.norm(w[0] - w[1]) + np.linalg.norm(w[0] - w[3])) / 2)


def test_decay_schedule_goes_from_start_to_end():
    decay = classic.kohonen_decay(0.5, 0.01, 100)
    np.testing.assert_allclose([decay(0), decay(50), decay(100)],
                               [0.5, 0.5 * math.sqrt(0.02), 0.01], rtol=1e-5)


def test_a_1d_map_on_1d_data_orders_itself_and_its_error_falls():
    key = jax.random.PRNGKey(0)
    data = jax.random.uniform(key, (200, 1))
    positions = classic.grid(1, 10)
    params = classic.init_som(jax.random.PRNGKey(3), 10, dim=1)
    steps = 15 * 200
    params, history = classic.train_som(
        params, data, positions=positions, key=key, epochs=15,
        learning_rate=classic.kohonen_decay(0.5, 0.02, steps),
        radius=classic.kohonen_decay(3.0, 0.3, steps))
    w = np.asarray(params["w"])[:, 0]
    steps_along = np.diff(w)
    assert np.all(steps_along > 0) or np.all(steps_along < 0), w  # monotone: the map is ordered
    assert w.min() < 0.15 and w.max() > 0.85  # and spread over [0, 1]
    assert history.quantization_error[-1] < 0.5 * history.quantization_error[0]
    assert history.topographic_error[-1] == 0.0
    assert history.radius[-1] == pytest.approx(0.3, rel=0.01)


def test_label_units_takes_the_majority_and_marks_empty_units():
    params = {"w": jnp.array([[0.0], [1.0], [5.0]])}
    labels, hits = classic.label_units(params, [[0.1], [0.2], [-0.1], [0.9]], [2, 2, 1, 0], 3)
    np.testing.assert_array_equal(labels, [2, 0, -1])
    np.testing.assert_array_equal(hits, [3, 1, 0])


def test_train_som_checks_positions():
    with pytest.raises(ValueError, match=r"train_som: `positions` must have shape \(4, 2\)"):
        classic.train_som({"w": jnp.zeros((4, 2))}, np.zeros((5, 2)), positions=classic.grid(1, 3),
                          key=jax.random.PRNGKey(0), epochs=1, learning_rate=0.1, radius=1.0)
