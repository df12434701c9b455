"""The restricted Boltzmann machine (lecture 9): binary (Bernoulli–Bernoulli), trained by
contrastive divergence, as pure functions over
``{"w": (n_v, n_h), "visible": {"b": (n_v,)}, "hidden": {"b": (n_h,)}}``.

Visible units v ∈ {0,1}^n_v, hidden units h ∈ {0,1}^n_h, no connections within a layer:

* energy ``E(v, h) = −vᵀb_v − hᵀb_h − vᵀW h``; ``p(v, h) = exp(−E(v, h)) / Z``;
* conditionals ``p(h_j = 1 | v) = σ(b_h,j + (vᵀW)_j)``, ``p(v_i = 1 | h) = σ(b_v,i + (W h)_i)``;
* free energy ``F(v) = −vᵀb_v − Σ_j softplus(b_h,j + (vᵀW)_j)``, ``p(v) = exp(−F(v)) / Z``;
* log-likelihood gradient ``∂ log p(v)/∂W = ⟨v p(h|v)ᵀ⟩_data − ⟨v p(h|v)ᵀ⟩_model`` (and
  ``⟨v⟩_data − ⟨v⟩_model``, ``⟨p(h|v)⟩_data − ⟨p(h|v)⟩_model`` for the biases).

Contrastive divergence CD-k replaces the model average by the end of a k-step Gibbs chain
started at the data (``h ~ p(h|v)``, ``v ~ p(v|h)``, k times; binary samples throughout);
persistent CD (PCD) keeps the chains' end from one update to the next instead of restarting at
the data. The update is ``θ ← θ + η (⟨·⟩_data − ⟨·⟩_k)`` (`cd_update`), or any ``fnn.optim``
optimizer on the negated estimate (`train_rbm`). Every random draw takes an explicit key.
"""
from __future__ import annotations

import itertools
from typing import Dict, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn.checks import check_int
from fnn.classic.checks import check_binary, check_patterns
from fnn.optim import Optimizer, apply_updates, sgd
from fnn.train import progress_bar

Params = Dict
MAX_ENUMERATED_UNITS = 20  # `log_partition` sums over 2^min(n_v, n_h) states


def init_rbm(key, n_visible: int, n_hidden: int, *, std: float = 0.01, data_mean=None,
             dtype=jnp.float32) -> Params:
    """``w ~ N(0, std²)``, hidden biases 0, visible biases 0 or, given the data's mean activity
    p_i (n_v,), ``log(p_i / (1 − p_i))`` (Hinton's practical guide; p clipped to [0.01, 0.99])."""
    check_int("init_rbm", "n_visible", n_visible)
    check_int("init_rbm", "n_hidden", n_hidden)
    b_v = jnp.zeros((n_visible,), dtype)
    if data_mean is not None:
        p = jnp.clip(jnp.asarray(data_mean, dtype), 0.01, 0.99)
        if p.shape != (n_visible,):
            raise ValueError(f"init_rbm: `data_mean` must have shape ({n_visible},); "
                             f"got {p.shape}.")
        b_v = jnp.log(p / (1 - p))
    return {"w": std * jax.random.normal(key, (n_visible, n_hidden), dtype),
            "visible": {"b": b_v}, "hidden": {"b": jnp.zeros((n_hidden,), dtype)}}


def _row(b, like):
    """A bias (n,) broadcast explicitly over the leading axes of ``like`` (..., n)."""
    return jnp.expand_dims(b, tuple(range(like.ndim - 1)))


def hidden_probabilities(params: Params, v) -> jax.Array:
    """``p(h = 1 | v) = σ(vᵀW + b_h)``: v (..., n_v) -> (..., n_h)."""
    z = v @ params["w"]
    return jax.nn.sigmoid(z + _row(params["hidden"]["b"], z))


def visible_probabilities(params: Params, h) -> jax.Array:
    """``p(v = 1 | h) = σ(W h + b_v)``: h (..., n_h) -> (..., n_v)."""
    z = h @ params["w"].T
    return jax.nn.sigmoid(z + _row(params["visible"]["b"], z))


def sample_bernoulli(key, p) -> jax.Array:
    """Binary samples ``1[u < p]``, ``u ~ U(0, 1)``, in the dtype of p."""
    return (jax.random.uniform(key, p.shape, p.dtype) < p).astype(p.dtype)


def gibbs_step(key, params: Params, v) -> Tuple[jax.Array, jax.Array]:
    """One Gibbs sweep ``h ~ p(h|v)``, ``v' ~ p(v|h)``: ``(v', p(v'=1|h))``, both like v."""
    h_key, v_key = jax.random.split(key)
    h = sample_bernoulli(h_key, hidden_probabilities(params, v))
    p_v = visible_probabilities(params, h)
    return sample_bernoulli(v_key, p_v), p_v


def gibbs_chain(key, params: Params, v, k: int) -> Tuple[jax.Array, jax.Array]:
    """``k`` Gibbs sweeps from v (..., n_v), step i with key ``fold_in(key, i)`` (a ``lax.scan``):
    ``(v_k, p(v_k = 1 | h_{k−1}))``."""
    def body(carry, i):
        v, _ = carry
        return gibbs_step(jax.random.fold_in(key, i), params, v), None

    (v, p_v), _ = jax.lax.scan(body, (v, jnp.zeros_like(v)), jnp.arange(k))
    return v, p_v


def energy(params: Params, v, h) -> jax.Array:
    """``E(v, h) = −vᵀb_v − hᵀb_h − vᵀW h``: v (..., n_v), h (..., n_h) -> (...)."""
    return -(v @ params["visible"]["b"] + h @ params["hidden"]["b"]
             + jnp.sum((v @ params["w"]) * h, -1))


def free_energy(params: Params, v) -> jax.Array:
    """``F(v) = −vᵀb_v − Σ_j softplus(b_h,j + (vᵀW)_j)``: v (..., n_v) -> (...)."""
    z = v @ params["w"]
    return -(v @ params["visible"]["b"]
             + jnp.sum(jax.nn.softplus(z + _row(params["hidden"]["b"], z)), -1))


def contrastive_gradient(params: Params, v_data, v_model) -> Params:
    """The log-likelihood ascent direction estimated from two batches (B, n_v) and (B', n_v):
    ``ΔW = ⟨v p(h|v)ᵀ⟩_data − ⟨v p(h|v)ᵀ⟩_model``, ``Δb_v = ⟨v⟩_data − ⟨v⟩_model``,
    ``Δb_h = ⟨p(h|v)⟩_data − ⟨p(h|v)⟩_model`` (means over each batch); a params-shaped dict.
    It equals ``−∇_θ (mean F(v_data) − mean F(v_model))`` with both batches held fixed."""
    p_data = hidden_probabilities(params, v_data)
    p_model = hidden_probabilities(params, v_model)
    return {"w": v_data.T @ p_data / v_data.shape[0] - v_model.T @ p_model / v_model.shape[0],
            "visible": {"b": v_data.mean(0) - v_model.mean(0)},
            "hidden": {"b": p_data.mean(0) - p_model.mean(0)}}


def cd_gradient(key, params: Params, v_data, k: int = 1) -> Tuple[Params, jax.Array]:
    """CD-k: `contrastive_gradient` with the model batch the end of a k-step `gibbs_chain` from
    v_data (B, n_v). Returns ``(ascent direction, v_k)``."""
    v_model, _ = gibbs_chain(key, params, v_data, k)
    return contrastive_gradient(params, v_data, v_model), v_model


def pcd_gradient(key, params: Params, v_data, chains, k: int = 1) -> Tuple[Params, jax.Array]:
    """Persistent CD: the model batch is the persistent ``chains`` (C, n_v) run k more Gibbs
    sweeps. Returns ``(ascent direction, new chains)``."""
    chains, _ = gibbs_chain(key, params, chains, k)
    return contrastive_gradient(params, v_data, chains), chains


def cd_update(key, params: Params, v_data, *, learning_rate, k: int = 1) -> Params:
    """The plain CD-k rule ``θ ← θ + η (⟨·⟩_data − ⟨·⟩_k)`` on one batch v_data (B, n_v)."""
    grads, _ = cd_gradient(key, params, v_data, k)
    return jax.tree_util.tree_map(lambda p, g: p + learning_rate * g, params, grads)


def reconstruction_error(params: Params, v) -> jax.Array:
    """Mean over the batch of ``Σ_i (v_i − p(v_i = 1 | h = p(h|v)))²`` (a mean-field up-down
    pass, no sampling): v (B, n_v) -> scalar."""
    return jnp.mean(jnp.sum((v - reconstruct(params, v)) ** 2, -1))


def reconstruct(params: Params, v) -> jax.Array:
    """The mean-field reconstruction ``p(v' = 1 | h = p(h|v))``: v (..., n_v) -> (..., n_v)."""
    return visible_probabilities(params, hidden_probabilities(params, v))


def _all_states(n: int, dtype) -> jax.Array:
    return jnp.asarray(list(itertools.product((0, 1), repeat=n)), dtype)


def log_partition(params: Params) -> jax.Array:
    """``log Z`` exactly, by summing over the 2^min(n_v, n_h) states of the smaller layer (tiny
    models only: at most 2^20 states)."""
    n_v, n_h = params["w"].shape
    if min(n_v, n_h) > MAX_ENUMERATED_UNITS:
        raise ValueError(f"log_partition: enumerates 2^min(n_v, n_h) states; got n_v = {n_v}, "
                         f"n_h = {n_h} (at most {MAX_ENUMERATED_UNITS} allowed).")
    dtype = params["w"].dtype
    if n_v <= n_h:
        return jax.nn.logsumexp(-free_energy(params, _all_states(n_v, dtype)))
    swapped = {"w": params["w"].T, "visible": params["hidden"], "hidden": params["visible"]}
    return jax.nn.logsumexp(-free_energy(swapped, _all_states(n_h, dtype)))


def log_likelihood(params: Params, v) -> jax.Array:
    """Mean exact ``log p(v) = −F(v) − log Z`` over v (B, n_v) (tiny models: `log_partition`)."""
    return jnp.mean(-free_energy(params, v)) - log_partition(params)


class RBMHistory(NamedTuple):
    """Per epoch, NumPy arrays (E,): ``reconstruction_error`` (mean over the training data, after
    the epoch), ``free_energy`` (mean F(v) of the training data) and ``free_energy_gap`` (mean F
    of ``monitor`` minus that of the training data; grows when the RBM overfits; NaN without
    ``monitor``)."""

    reconstruction_error: np.ndarray
    free_energy: np.ndarray
    free_energy_gap: np.ndarray


def train_rbm(params: Params, data, *, key, epochs: int, batch_size: int = 100, k: int = 1,
              optimizer: Optional[Optimizer] = None, persistent: bool = False,
              monitor=None, progress: bool = False, hook=None) -> Tuple[Params, RBMHistory]:
    """Train on binary data (N, n_v) with CD-k (or PCD-k with ``persistent``) in mini-batches.

    Epoch e shuffles with ``fold_in(key, e)`` and drops the last incomplete batch; batch i draws
    its Gibbs chain with ``fold_in(fold_in(key, e), i)``. ``optimizer`` (an ``fnn.optim``
    optimizer, default ``sgd(0.05, momentum=0.5)``) is applied to the *negated* CD estimate
    (a descent direction); ``sgd(η)`` is the plain rule of `cd_update`. PCD keeps ``batch_size``
    chains, started at the first batch. ``monitor`` (M, n_v), e.g. held-out data, gives the free
    energy gap. ``hook(epoch, params)`` is called after each epoch. One epoch is one jitted
    ``lax.scan`` over batches. Returns ``(params, RBMHistory)``.
    """
    check_binary("train_rbm", data)
    data = check_patterns("train_rbm", data)[0]
    n = data.shape[0]
    if not isinstance(batch_size, int) or not 1 <= batch_size <= n:
        raise ValueError(f"train_rbm: `batch_size` must be an integer in 1..{n} (the number of "
                         f"examples); got {batch_size!r}.")
    check_int("train_rbm", "epochs", epochs)
    check_int("train_rbm", "k", k)
    optimizer = sgd(0.05, momentum=0.5) if optimizer is None else optimizer
    batches = n // batch_size
    opt_state = optimizer.init(params)
    chains = data[:batch_size]

    monitor = None if monitor is None else jnp.asarray(monitor, data.dtype)

    # the data are arguments, not constants baked into the compiled programs
    @jax.jit
    def epoch_fn(params, opt_state, chains, epoch, data):
        epoch_key = jax.random.fold_in(key, epoch)
        order = jax.random.permutation(epoch_key, n)[: batches * batch_size]

        def body(carry, i):
            params, opt_state, chains = carry
            v = data[jax.lax.dynamic_slice_in_dim(order, i * batch_size, batch_size)]
            step_key = jax.random.fold_in(epoch_key, i)
            if persistent:
                ascent, chains = pcd_gradient(step_key, params, v, chains, k)
            else:
                ascent, _ = cd_gradient(step_key, params, v, k)
            descent = jax.tree_util.tree_map(jnp.negative, ascent)
            updates, opt_state = optimizer.update(descent, opt_state, params)
            return (apply_updates(params, updates), opt_state, chains), None

        (params, opt_state, chains), _ = jax.lax.scan(body, (params, opt_state, chains),
                                                      jnp.arange(batches))
        return params, opt_state, chains

    @jax.jit
    def scores(params, data, monitor):
        fe = jnp.mean(free_energy(params, data))
        gap = (jnp.mean(free_energy(params, monitor)) - fe
               if monitor is not None else jnp.asarray(jnp.nan, data.dtype))
        return reconstruction_error(params, data), fe, gap

    records = []
    bar = progress_bar(epochs, "rbm", progress, unit="epoch")
    for epoch in range(epochs):
        params, opt_state, chains = epoch_fn(params, opt_state, chains, epoch, data)
        records.append(tuple(float(s) for s in scores(params, data, monitor)))
        if bar is not None:
            bar.update(1)
            bar.set_postfix({"recon": f"{records[-1][0]:.3f}"})
        if hook is not None:
            hook(epoch, params)
    if bar is not None:
        bar.close()
    return params, RBMHistory(*(np.array(r) for r in zip(*records)))
