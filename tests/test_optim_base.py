"""The optimizer protocol: chain, extra per-step information, schedules, reading the state."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import optim

PARAMS = {"dense": {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}}


def recorder(calls):
    """A piece that records what ``update`` receives and passes the gradients on."""

    def update(grads, state, params=None, **extra):
        calls.append((params, extra))
        return grads, state

    return optim.Optimizer(lambda params: optim.EmptyState(), update)


def test_chain_hands_params_and_extra_to_every_piece():
    calls = []
    opt = optim.chain(recorder(calls), optim.scale_by_learning_rate(0.1), recorder(calls))
    opt.update(PARAMS, opt.init(PARAMS), PARAMS, loss=jnp.array(2.5))
    assert [params for params, _ in calls] == [PARAMS, PARAMS]
    assert [extra for _, extra in calls] == [{"loss": 2.5}, {"loss": 2.5}]


def test_every_optimizer_ignores_a_loss_it_does_not_need():
    opt = optim.adam(0.1)
    with_loss, _ = opt.update(PARAMS, opt.init(PARAMS), PARAMS, loss=1.0)
    without, _ = opt.update(PARAMS, opt.init(PARAMS), PARAMS)
    np.testing.assert_array_equal(with_loss["dense"]["w"], without["dense"]["w"])


def test_a_loss_driven_piece_chains_with_a_rule_under_jit():
    opt = optim.chain(optim.scale_by_adam(), optim.scale_by_learning_rate(0.1),
                      optim.scale_by_bold_driver())
    update = jax.jit(opt.update)
    state = opt.init(PARAMS)
    for loss in (1.0, 0.5):  # the loss fell: the bold driver raises the rate by 5%
        _, state = update(PARAMS, state, PARAMS, loss=loss)
    assert optim.step_count(state) == 2
    np.testing.assert_allclose(optim.learning_rate(state), 0.1 * 1.05, rtol=1e-6)


def test_chain_rejects_a_state_it_did_not_make():
    opt = optim.chain(optim.scale_by_learning_rate(0.1), optim.scale_by_momentum(0.9))
    with pytest.raises(ValueError, match=r"chain: expected the state made by this chain's init, "
                                         r"a tuple of 2 piece states; got "):
        opt.update(PARAMS, optim.adam().init(PARAMS)[0], PARAMS)


def test_schedules_get_the_number_of_updates_done_so_far():
    seen = []

    def schedule(step):
        seen.append(int(step))
        return 0.1 / (1 + step)

    opt = optim.sgd(schedule, 0.9)
    state = opt.init(PARAMS)
    assert optim.learning_rate(state) == pytest.approx(0.1)  # the rate the first update will use
    for _ in range(3):
        _, state = opt.update(PARAMS, state, PARAMS)
    assert seen == [0, 0, 1, 2]  # init, then one call per update
    assert optim.step_count(state) == 3
    assert optim.learning_rate(state) == pytest.approx(0.1 / 3)  # the rate of the last update


def test_step_and_rate_are_found_in_nested_states():
    opt = optim.chain(optim.masked(optim.adam(0.01), {"dense": {"w": True}}), optim.sgd(0.5))
    state = opt.init(PARAMS)
    for _ in range(2):
        _, state = opt.update(PARAMS, state, PARAMS)
    assert optim.step_count(state) == 2
    np.testing.assert_allclose(optim.learning_rate(state), 0.01 * 0.5)
    kinds = [type(s).__name__ for s in optim.named_states(state)]
    assert kinds == ["MaskedState", "AdamState", "ScaleByLearningRateState",
                     "ScaleByLearningRateState"]


def test_reading_a_state_without_the_field_says_what_is_missing():
    state = optim.scale_by_sign().init(PARAMS)
    with pytest.raises(ValueError, match=r"step_count: no state inside opt_state has a field named "
                                         r"step; got .*EmptyState.*chain your "
                                         r"pieces with scale_by_learning_rate"):
        optim.step_count(state)
    with pytest.raises(ValueError, match=r"learning_rate: no state .* learning_rate or scale"):
        optim.learning_rate(state)


def test_apply_updates_keeps_each_parameters_dtype():
    params = {"w": jnp.ones(3, jnp.bfloat16), "v": jnp.ones(2, jnp.float32)}
    updates = {"w": jnp.full(3, 0.5, jnp.float32), "v": jnp.full(2, 0.25, jnp.float32)}
    new = optim.apply_updates(params, updates)
    assert new["w"].dtype == jnp.bfloat16 and new["v"].dtype == jnp.float32
    np.testing.assert_array_equal(new["w"].astype(jnp.float32), [1.5, 1.5, 1.5])


def test_get_knows_every_alias():
    assert sorted(optim.ALIASES) == ["adadelta", "adagrad", "adam", "adamax", "adamw", "amsgrad",
                                     "momentum", "nadam", "nadamw", "nesterov", "radam", "rmsprop",
                                     "rprop", "sgd", "sign_sgd"]
    for name in optim.ALIASES:
        assert isinstance(optim.get(name)(0.01), optim.Optimizer)
