"""The benchmark table: one training step of each workload, fnn against hand-written JAX and the
peers that are installed, as ratios measured interleaved in one run.

    python benchmarks/table.py [--rounds 7] [--steps 10] [--out benchmarks/table.json]
    /work/bench-venv/bin/python benchmarks/table.py      # with the peers (see benchmarks/README.md)

Workloads: ``mlp`` (784-300-100-10 ReLU, batch 128, softmax cross-entropy, SGD) and the LSTM
and GRU character language models (vocabulary 65, embedding 64, hidden 256, T = 64, batch 32,
per-step cross-entropy, SGD). Implementations: ``fnn`` (`fnn.make_train_step`), ``jax`` (the
same model and step written by hand with `jax.numpy` and `lax.scan`), and, when importable,
``flax`` (Linen + Optax), ``equinox`` (+ Optax), ``haiku`` (+ Optax) for the MLP and
``torch`` (PyTorch eager) for every workload. ``lenet5``: LeNet-5 with max pooling and ReLU,
batch 128 of 28×28×1 (``--workloads lenet5`` runs it alone), the step of
`benchmarks/lenet5.py` (which compares fnn, hand-written JAX and PyTorch more closely), with
Flax, Equinox and Haiku too; fnn's step runs the batch as ``microbatches=2`` independent halves
(`make_train_step`), which XLA spreads over the two cores. ``word2vec``: skip-gram with 5 negative samples, vocabulary 9,002,
dimension 100 (the enwiki sample's), one "step" = one chunk of 64 SGD steps of 256 (centre,
context) pairs, the unit fnn's word2vec runs per jitted call (`make_run_steps`), against the same
closed-form updates written by hand in JAX (`lax.fori_loop`, scatter-adds) and in PyTorch eager
(`index_add_`); the table adds pairs per second. (On the same batch the three summed losses
agree to 5·10⁻⁵: fnn's drops a noise word equal to the target, as word2vec.c does.) Against
gensim on a real corpus, with quality: `benchmarks/word2vec_gensim.py`.

Each round times ``--steps`` steps of every implementation in turn (a different order each
round); a step's time is the median over rounds. For the JAX implementations the table also
gives the compile time (first call minus a step); every row gives the FLOP/s achieved, counting
the matrix products of the step (forward, and twice that for the backward pass: 3× the
forward's multiply-adds × 2), against a float32 matrix-product roofline measured in the same run
(2048³ `jnp.dot`). (XLA's own cost analysis counts a `lax.scan` body once, not T times.)
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from record import record, write

import fnn
from fnn import losses
from fnn.embeddings import word2vec
from fnn.layers import GRUCell, LSTMCell, RNN, Dense, Embedding, serial
from fnn.models import lenet5, mlp
from fnn.optim import sgd

LR = 0.01
LENET_MICROBATCHES = 2  # fnn's LeNet-5 step: two independent halves of the batch (both cores)


def step_flops(workload: str) -> float:
    """FLOPs of one training step's matrix products: 3 × 2 × the forward's multiply-adds
    (word2vec: the dot products of each pair with its target and noise words, per chunk)."""
    if workload == "word2vec":
        return 6.0 * W2V_STEPS * W2V_BATCH * (1 + W2V_NEGATIVE) * W2V_DIM
    if workload == "mlp":
        macs = 128 * (784 * 300 + 300 * 100 + 100 * 10)
    elif workload == "lenet5":  # C1, C3, C5 (multiply-adds per output × outputs), F6, output
        macs = 128 * (28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 120 * 400 + 120 * 84 + 84 * 10)
    else:
        gates = 4 if workload == "lstm" else 3
        macs = BATCH_LM * T * ((EMBED + HIDDEN) * gates * HIDDEN + HIDDEN * VOCAB)
    return 6.0 * macs
VOCAB, EMBED, HIDDEN, T, BATCH_LM = 65, 64, 256, 64, 32
# word2vec (skip-gram, negative sampling): a "step" of this workload is one chunk of W2V_STEPS
# SGD steps of W2V_BATCH (centre, context) pairs, as fnn's word2vec runs them per jitted call;
# the vocabulary and dimension of benchmarks/word2vec_gensim.py's enwiki sample
W2V_VOCAB, W2V_DIM, W2V_NEGATIVE, W2V_BATCH, W2V_STEPS, W2V_LR = 9002, 100, 5, 256, 64, 0.025


# ----------------------------------------------------------------------------- data

def mlp_batch(rng):
    return (rng.random((128, 784), np.float32), rng.integers(0, 10, 128).astype(np.int32))


def lenet_batch(rng):
    return (rng.random((128, 28, 28, 1), np.float32), rng.integers(0, 10, 128).astype(np.int32))


def w2v_batch(rng):
    """One chunk: centres (S, B), contexts (S, B), noise words (S, B, K), int32."""
    shape = (W2V_STEPS, W2V_BATCH)
    return (rng.integers(0, W2V_VOCAB, shape).astype(np.int32),
            rng.integers(0, W2V_VOCAB, shape).astype(np.int32),
            rng.integers(0, W2V_VOCAB, (*shape, W2V_NEGATIVE)).astype(np.int32))


def w2v_init():
    """word2vec.c's initialization, as `fnn.embeddings.word2vec.init_params`: (V, D) each."""
    return word2vec.init_params(jax.random.PRNGKey(0), W2V_VOCAB, W2V_DIM)


def lm_batch(rng):
    ids = rng.integers(0, VOCAB, (BATCH_LM, T + 1)).astype(np.int32)
    return ids[:, :-1], ids[:, 1:]


# ----------------------------------------------------------------------------- fnn

def fnn_step(workload, batch):
    if workload == "word2vec":  # fnn.embeddings.word2vec's jitted chunk of SGD steps
        settings = word2vec.Word2VecSettings(dim=W2V_DIM, negative=W2V_NEGATIVE,
                                             batch_size=W2V_BATCH, steps_per_call=W2V_STEPS,
                                             learning_rate=W2V_LR, min_learning_rate=W2V_LR)
        run_steps = word2vec.make_run_steps(settings, total_tokens=1)
        centres, contexts, noise = batch
        arrays = (jnp.asarray(centres[..., None]), jnp.ones((*centres.shape, 1), jnp.float32),
                  jnp.asarray(contexts), jnp.asarray(noise),
                  jnp.zeros(W2V_STEPS, jnp.int32))
        carry = [w2v_init()]

        def run_w2v():
            carry[0], total, _ = run_steps(carry[0], arrays, W2V_STEPS)
            return total

        return run_w2v, (run_steps, (carry[0], arrays, W2V_STEPS))
    if workload == "mlp":
        model = mlp([300, 100, 10])
        shape = (None, 784)
    elif workload == "lenet5":
        model = lenet5(pool="max", activation="relu", padding=2)
        shape = (None, 28, 28, 1)
    else:
        cell = LSTMCell(HIDDEN) if workload == "lstm" else GRUCell(HIDDEN, reset_after=True)
        model = serial(Embedding(VOCAB, EMBED), RNN(cell), Dense(VOCAB))
        shape = (None, T)
    _, params, state = model.init(jax.random.PRNGKey(0), shape)
    optimizer = sgd(LR)
    step = fnn.make_train_step(model, "softmax_cross_entropy", optimizer,
                               microbatches=LENET_MICROBATCHES if workload == "lenet5" else 1)
    opt_state = optimizer.init(params)
    fb = fnn.Batch(jnp.asarray(batch[0]), jnp.asarray(batch[1]))
    key = jax.random.PRNGKey(1)
    carry = [params, state, opt_state]

    def run():
        carry[0], carry[1], carry[2], m = step(carry[0], carry[1], carry[2], fb, key)
        return m["loss"]

    return run, (step, (params, state, opt_state, fb, key))


# ----------------------------------------------------------------------------- hand-written JAX

def _dense_init(key, n_in, n_out):
    bound = np.sqrt(6 / (n_in + n_out))
    return {"w": jax.random.uniform(key, (n_in, n_out), minval=-bound, maxval=bound),
            "b": jnp.zeros(n_out)}


def hand_params(workload):
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    if workload == "mlp":
        return [_dense_init(k, a, b) for k, (a, b) in zip(keys, [(784, 300), (300, 100), (100, 10)])]
    gates = 4 if workload == "lstm" else 3
    return {"embed": jax.random.normal(keys[0], (VOCAB, EMBED)) * 0.1,
            "wx": _dense_init(keys[1], EMBED, gates * HIDDEN)["w"],
            "wh": _dense_init(keys[2], HIDDEN, gates * HIDDEN)["w"],
            "b": jnp.zeros(gates * HIDDEN), "b_hn": jnp.zeros(HIDDEN),
            "head": _dense_init(keys[3], HIDDEN, VOCAB)}


def hand_loss(workload):
    if workload == "mlp":
        def loss(params, x, y):
            h = x
            for layer in params[:-1]:
                h = jax.nn.relu(h @ layer["w"] + layer["b"])
            logits = h @ params[-1]["w"] + params[-1]["b"]
            return jnp.mean(losses.softmax_cross_entropy(logits, y))
        return loss

    def cell(params, carry, x):
        if workload == "lstm":
            h, c = carry
            z = x @ params["wx"] + h @ params["wh"] + params["b"]
            i, f, g, o = jnp.split(z, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h
        (h,) = carry
        zx = x @ params["wx"] + params["b"]
        zh = h @ params["wh"]
        rx, ux, nx = jnp.split(zx, 3, axis=-1)
        rh, uh, nh = jnp.split(zh, 3, axis=-1)
        r, u = jax.nn.sigmoid(rx + rh), jax.nn.sigmoid(ux + uh)
        n = jnp.tanh(nx + r * (nh + params["b_hn"]))
        h = (1 - u) * n + u * h
        return (h,), h

    def loss(params, ids, targets):
        xs = jnp.swapaxes(params["embed"][ids], 0, 1)  # (T, B, E)
        zeros = jnp.zeros((ids.shape[0], HIDDEN))
        carry = (zeros, zeros) if workload == "lstm" else (zeros,)
        _, hs = jax.lax.scan(lambda c, x: cell(params, c, x), carry, xs)
        logits = jnp.swapaxes(hs, 0, 1) @ params["head"]["w"] + params["head"]["b"]
        return jnp.mean(losses.softmax_cross_entropy(logits, targets))

    return loss


def w2v_jax_step(batch):
    """Skip-gram with negative sampling written by hand: per step, h = W[c], scores of the
    target and noise words, the gradients of −log σ(u_o·h) − Σ log σ(−u_k·h) in closed form,
    scatter-added into both tables (as word2vec.c)."""
    centres, contexts, noise = (jnp.asarray(a) for a in batch)

    @jax.jit
    def run(params, centres, contexts, noise):
        def body(t, carry):
            w_in, w_out, total = carry
            c, words = centres[t], jnp.concatenate([contexts[t][:, None], noise[t]], axis=1)
            h, u = w_in[c], w_out[words]  # (B, D), (B, 1+K, D)
            labels = (jnp.arange(1 + W2V_NEGATIVE) == 0).astype(h.dtype)
            scores = jnp.einsum("bd,bkd->bk", h, u)
            g = jax.nn.sigmoid(scores) - labels  # ∂L/∂score
            total = total - jnp.sum(jax.nn.log_sigmoid(jnp.where(labels > 0, scores, -scores)))
            w_out = w_out.at[words.reshape(-1)].add(
                -W2V_LR * (g[:, :, None] * h[:, None, :]).reshape(-1, W2V_DIM))
            w_in = w_in.at[c].add(-W2V_LR * jnp.einsum("bk,bkd->bd", g, u))
            return w_in, w_out, total
        w_in, w_out, total = jax.lax.fori_loop(
            0, W2V_STEPS, body, (params["input"], params["output"], jnp.zeros(())))
        return {"input": w_in, "output": w_out}, total

    carry = [w2v_init()]

    def run_w2v():
        carry[0], total = run(carry[0], centres, contexts, noise)
        return total

    return run_w2v, (run, (carry[0], centres, contexts, noise))


def jax_step(workload, batch):
    if workload == "word2vec":
        return w2v_jax_step(batch)
    if workload == "lenet5":
        return lenet_jax_step(batch)
    loss = hand_loss(workload)

    @jax.jit
    def step(params, x, y):
        value, grads = jax.value_and_grad(loss)(params, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads), value

    params = [hand_params(workload)]
    x, y = jnp.asarray(batch[0]), jnp.asarray(batch[1])

    def run():
        params[0], value = step(params[0], x, y)
        return value

    return run, (step, (params[0], x, y))


def lenet_jax_step(batch):
    """LeNet-5 (max-relu) by hand with `lax.conv_general_dilated` / `lax.reduce_window`: the
    step of `benchmarks/lenet5.py`, from fnn's initial parameters."""
    from lenet5 import jax_step as lenet5_plain_step  # benchmarks/ is the script's directory

    step = lenet5_plain_step("max", "relu")
    _, params, _ = lenet5(pool="max", activation="relu", padding=2).init(
        jax.random.PRNGKey(0), (None, 28, 28, 1))
    carry = [params]
    x, y = jnp.asarray(batch[0]), jnp.asarray(batch[1])

    def run():
        carry[0] = step(carry[0], x, y)
        return carry[0]["output"]["b"]

    return run, (step, (params, x, y))


# ----------------------------------------------------------------------------- peers (optional)

def flax_step(workload, batch):
    import flax.linen as nn
    import optax

    if workload == "lenet5":
        class LeNet(nn.Module):
            @nn.compact
            def __call__(self, x):
                x = nn.max_pool(nn.relu(nn.Conv(6, (5, 5), padding=2)(x)), (2, 2), (2, 2))
                x = nn.max_pool(nn.relu(nn.Conv(16, (5, 5), padding="VALID")(x)), (2, 2), (2, 2))
                x = nn.relu(nn.Conv(120, (5, 5), padding="VALID")(x)).reshape(x.shape[0], -1)
                return nn.Dense(10)(nn.relu(nn.Dense(84)(x)))

        return _optax_step(LeNet().init(jax.random.PRNGKey(0), batch[0])["params"],
                           lambda p, x: LeNet().apply({"params": p}, x), batch, optax)

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Dense(300)(x))
            x = nn.relu(nn.Dense(100)(x))
            return nn.Dense(10)(x)

    return _optax_step(MLP().init(jax.random.PRNGKey(0), batch[0])["params"],
                       lambda p, x: MLP().apply({"params": p}, x), batch, optax)


def equinox_step(workload, batch):
    import equinox as eqx
    import optax

    if workload == "lenet5":  # Equinox layers take one CHW image; vmapped over the batch
        k = jax.random.split(jax.random.PRNGKey(0), 5)
        model = [eqx.nn.Conv2d(1, 6, 5, padding=2, key=k[0]), eqx.nn.Conv2d(6, 16, 5, key=k[1]),
                 eqx.nn.Conv2d(16, 120, 5, key=k[2]), eqx.nn.Linear(120, 84, key=k[3]),
                 eqx.nn.Linear(84, 10, key=k[4])]
        pool = eqx.nn.MaxPool2d(2, 2)

        def image(m, img):
            h = pool(jax.nn.relu(m[0](jnp.transpose(img, (2, 0, 1)))))
            h = pool(jax.nn.relu(m[1](h)))
            h = jax.nn.relu(m[2](h)).reshape(-1)
            return m[4](jax.nn.relu(m[3](h)))

        return _optax_step(model, lambda m, x: jax.vmap(lambda i: image(m, i))(x), batch, optax)

    model = eqx.nn.MLP(784, 10, 300, 1, key=jax.random.PRNGKey(0))  # replaced below: 300-100
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    model = [eqx.nn.Linear(784, 300, key=keys[0]), eqx.nn.Linear(300, 100, key=keys[1]),
             eqx.nn.Linear(100, 10, key=keys[2])]

    def apply(m, x):
        h = x
        for layer in m[:-1]:
            h = jax.nn.relu(jax.vmap(layer)(h))
        return jax.vmap(m[-1])(h)

    return _optax_step(model, apply, batch, optax)


def haiku_step(workload, batch):
    import haiku as hk
    import optax

    if workload == "lenet5":
        def lenet(x):
            pool = lambda h: hk.max_pool(h, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")  # noqa: E731
            x = pool(jax.nn.relu(hk.Conv2D(6, 5, padding=((2, 2), (2, 2)))(x)))
            x = pool(jax.nn.relu(hk.Conv2D(16, 5, padding="VALID")(x)))
            x = jax.nn.relu(hk.Conv2D(120, 5, padding="VALID")(x)).reshape(x.shape[0], -1)
            return hk.Linear(10)(jax.nn.relu(hk.Linear(84)(x)))

        net = hk.without_apply_rng(hk.transform(lenet))
        return _optax_step(net.init(jax.random.PRNGKey(0), batch[0]), net.apply, batch, optax)

    net = hk.without_apply_rng(hk.transform(lambda x: hk.nets.MLP([300, 100, 10])(x)))
    return _optax_step(net.init(jax.random.PRNGKey(0), batch[0]), net.apply, batch, optax)


def _optax_step(params, apply, batch, optax):
    tx = optax.sgd(LR)

    @jax.jit
    def step(params, opt_state, x, y):
        def loss(p):
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(apply(p, x), y))
        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    carry = [params, tx.init(params)]
    x, y = jnp.asarray(batch[0]), jnp.asarray(batch[1])

    def run():
        carry[0], carry[1], value = step(carry[0], carry[1], x, y)
        return value

    return run, (step, (carry[0], carry[1], x, y))


def torch_step(workload, batch):
    import torch

    torch.manual_seed(0)
    if workload == "lenet5":  # benchmarks/lenet5.py's eager step, from fnn's initial parameters
        from lenet5 import torch_step as lenet5_torch_step

        _, params, _ = lenet5(pool="max", activation="relu", padding=2).init(
            jax.random.PRNGKey(0), (None, 28, 28, 1))
        return lenet5_torch_step(torch, "max", "relu", params, batch[0], batch[1]), None
    if workload == "word2vec":  # the same closed-form SGD steps, eager, with index_add_
        params = w2v_init()
        w_in, w_out = (torch.tensor(np.asarray(params[k])) for k in ("input", "output"))
        centres, contexts, noise = (torch.as_tensor(a.astype(np.int64)) for a in batch)
        labels = (torch.arange(1 + W2V_NEGATIVE) == 0).float()

        def run_w2v():
            total = 0.0
            for t in range(W2V_STEPS):
                words = torch.cat([contexts[t][:, None], noise[t]], dim=1)
                h, u = w_in[centres[t]], w_out[words]
                scores = torch.einsum("bd,bkd->bk", h, u)
                g = torch.sigmoid(scores) - labels
                total -= torch.nn.functional.logsigmoid(
                    torch.where(labels > 0, scores, -scores)).sum()
                w_out.index_add_(0, words.reshape(-1),
                                 (-W2V_LR * g[:, :, None] * h[:, None, :]).reshape(-1, W2V_DIM))
                w_in.index_add_(0, centres[t], -W2V_LR * torch.einsum("bk,bkd->bd", g, u))
            return total

        return run_w2v, None
    if workload == "mlp":
        model = torch.nn.Sequential(torch.nn.Linear(784, 300), torch.nn.ReLU(),
                                    torch.nn.Linear(300, 100), torch.nn.ReLU(),
                                    torch.nn.Linear(100, 10))
        forward = model
    else:
        rnn = (torch.nn.LSTM if workload == "lstm" else torch.nn.GRU)(EMBED, HIDDEN,
                                                                     batch_first=True)
        embed, head = torch.nn.Embedding(VOCAB, EMBED), torch.nn.Linear(HIDDEN, VOCAB)
        model = torch.nn.ModuleList([embed, rnn, head])

        def forward(ids):
            return head(rnn(embed(ids))[0]).reshape(-1, VOCAB)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    x = torch.as_tensor(batch[0] if workload == "mlp" else batch[0].astype(np.int64))
    y = torch.as_tensor(batch[1].astype(np.int64)).reshape(-1)

    def run():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(forward(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return run, None


IMPLEMENTATIONS = {"fnn": fnn_step, "jax": jax_step, "flax": flax_step, "equinox": equinox_step,
                   "haiku": haiku_step, "torch": torch_step}
PEERS_MLP_ONLY = ("flax", "equinox", "haiku")
PEER_WORKLOADS = ("mlp", "lenet5")  # the workloads the JAX peers (PEERS_MLP_ONLY) also run
MODULES = {"flax": "flax", "equinox": "equinox", "haiku": "haiku", "torch": "torch"}


def available(name: str) -> bool:
    if name not in MODULES:
        return True
    try:
        __import__(MODULES[name])
        import optax  # noqa: F401  (the JAX peers' optimizer)
        return True
    except ImportError:
        return name == "torch" and _importable("torch")


def _importable(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def block(value):
    return jax.block_until_ready(value) if not hasattr(value, "item") or isinstance(
        value, jax.Array) else value.item()


def roofline():
    """A function timing one 2048³ float32 matrix product; FLOP/s = 2·2048³ / its time."""
    a = jnp.ones((2048, 2048), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, a).block_until_ready()
    return lambda: _time(lambda: dot(a, a).block_until_ready())


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workloads", nargs="+",
                        default=["mlp", "lenet5", "lstm", "gru", "word2vec"])
    parser.add_argument("--out", default="benchmarks/table.json")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    matmul, matmul_times = roofline(), []
    table = {}
    for workload in args.workloads:
        batch = {"mlp": mlp_batch, "lenet5": lenet_batch,
                 "word2vec": w2v_batch}.get(workload, lm_batch)(rng)
        names = [n for n in IMPLEMENTATIONS if available(n)
                 and (workload in PEER_WORKLOADS or n not in PEERS_MLP_ONLY)]
        runs, info = {}, {}
        for name in names:
            run, compiled = IMPLEMENTATIONS[name](workload, batch)
            first = _time(lambda: block(run()))
            step_time = min(_time(lambda: block(run())) for _ in range(3))
            runs[name] = run
            info[name] = {"compile_seconds": (round(first - step_time, 3)
                                              if compiled is not None else None),
                          "flops_per_step": step_flops(workload), "times": []}
        for r in range(args.rounds):
            matmul_times.append(matmul())  # the roofline, measured in the same rounds
            # a new random order each round, and one untimed step before each timed block:
            # PyTorch's OpenMP threads keep spinning for a while after its step, which slowed
            # whichever implementation came next (in a fixed cyclic order, always the same one)
            for name in rng.permutation(names):
                run = runs[name]
                block(run())
                info[name]["times"].append(
                    _time(lambda: [block(run()) for _ in range(args.steps)]) / args.steps)
        peak = 2 * 2048 ** 3 / float(np.median(matmul_times))
        base = float(np.median(info["jax"]["times"]))
        for name in names:
            step = float(np.median(info[name]["times"]))
            if workload == "word2vec":
                info[name]["pairs_per_second"] = W2V_STEPS * W2V_BATCH / step
            info[name].update(step_ms=step * 1e3, ratio_to_jax=step / base,
                              achieved_gflops=(info[name]["flops_per_step"] / step / 1e9
                                               if info[name]["flops_per_step"] else None))
            info[name]["roofline_fraction"] = (info[name]["achieved_gflops"] * 1e9 / peak
                                               if info[name]["achieved_gflops"] else None)
        table[workload] = info
        print(f"\n{workload} (matmul roofline so far {peak / 1e9:.1f} GFLOP/s):")
        for name in names:
            i = info[name]
            extra = (f", compile {i['compile_seconds']:.2f}s" if i["compile_seconds"] is not None
                     else "") + (f", {i['achieved_gflops']:.1f} GFLOP/s "
                                 f"({100 * i['roofline_fraction']:.0f}% of the roofline)")
            print(f"  {name:8s} {i['step_ms']:8.2f} ms/step  {i['ratio_to_jax']:.2f}x jax{extra}")
    return write(record(roofline_gflops=peak / 1e9, rounds=args.rounds, steps=args.steps,
                        table={w: {n: {k: v for k, v in i.items() if k != "times"}
                                   for n, i in t.items()} for w, t in table.items()}),
                 args.out)


if __name__ == "__main__":
    main()
