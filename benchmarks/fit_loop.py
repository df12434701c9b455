"""`fnn.fit` against a hand-written JAX training loop, as ratios of epoch times in one run.

    python benchmarks/fit_loop.py [--repeats 3] [--epochs 4] [--batch-sizes 64 128] [--out FILE]

The model is the 784-300-100-10 ReLU MLP with plain SGD (η = 0.1) on MNIST's 60,000 training
digits (random stand-in digits of the same shape when MNIST is absent; the speed does not depend
on the pixels). Three loops train it for ``--epochs`` epochs, one after the other, ``--repeats``
times (interleaved, so a change in the machine's load touches all of them):

- ``hand``: the minimal loop a JAX user writes: a jitted step ``(params, x, y) -> (params, loss)``
  and, per step, the shuffled batch gathered with NumPy on the host and passed to the step;
- ``hand_scan``: the same step scanned over a whole epoch of batches gathered on the device;
- ``fit``: ``fnn.fit`` with its defaults (no progress bar: the output is not a terminal).

Each loop's time per epoch is the median over the epochs after its first (which compiles) and
over the repeats; the table gives each loop's ratio to ``hand`` (< 1: faster than ``hand``).
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
from fnn.models import mlp
from fnn.optim import sgd

LEARNING_RATE = 0.1


def load_digits():
    """MNIST's training digits as (60000, 784) float32 in [0, 1] and int32 labels; random
    stand-ins of that shape when MNIST is not available (stated in the output)."""
    try:
        x, y = fnn.data.load_mnist("train", download=False)
        return np.asarray(x, np.float32).reshape(len(x), -1) / 255.0, np.asarray(y, np.int32), "MNIST"
    except Exception as error:  # noqa: BLE001 - any failure falls back to stand-in data
        rng = np.random.default_rng(0)
        return (rng.random((60000, 784), np.float32), rng.integers(0, 10, 60000).astype(np.int32),
                f"random stand-in digits ({type(error).__name__})")


def hand_step(model, state):
    """The hand-written step: SGD on the mean softmax cross-entropy of one batch."""

    def loss_fn(params, x, y):
        logits, _ = model.apply(params, state, x)
        return jnp.mean(losses.softmax_cross_entropy(logits, y))

    @jax.jit
    def step(params, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - LEARNING_RATE * g, params, grads), loss

    return step


def time_hand(model, params, state, x, y, batch_size, epochs, key):
    step = hand_step(model, state)
    n = len(x) - len(x) % batch_size
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), len(x)))[:n]
        for rows in order.reshape(-1, batch_size):
            params, loss = step(params, x[rows], y[rows])
        jax.block_until_ready(params)
        times.append(time.perf_counter() - start)
    return times


def time_hand_scan(model, params, state, x, y, batch_size, epochs, key):
    step = hand_step(model, state).__wrapped__
    xd, yd = jax.device_put(x), jax.device_put(y)
    n = len(x) - len(x) % batch_size

    @jax.jit
    def epoch_fn(params, order):
        def body(params, rows):
            params, loss = step(params, xd[rows], yd[rows])
            return params, loss
        return jax.lax.scan(body, params, order.reshape(-1, batch_size))

    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        order = jax.random.permutation(jax.random.fold_in(key, epoch), len(x))[:n]
        params, _ = epoch_fn(params, order)
        jax.block_until_ready(params)
        times.append(time.perf_counter() - start)
    return times


def time_fit(model, params, state, x, y, batch_size, epochs, key):
    stamps = [time.perf_counter()]

    def stamp(epoch, logs, train_state):
        jax.block_until_ready(train_state.params)
        stamps.append(time.perf_counter())

    fnn.fit(model, params, state, (x, y), loss="softmax_cross_entropy", optimizer=sgd(LEARNING_RATE),
            key=key, epochs=epochs, batch_size=batch_size, hooks=[stamp], progress=False)
    return list(np.diff(stamps))


LOOPS = {"hand": time_hand, "hand_scan": time_hand_scan, "fit": time_fit}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--out", default="benchmarks/fit_loop.json")
    args = parser.parse_args(argv)

    x, y, source = load_digits()
    model = mlp([300, 100, 10], w_init="he_normal")
    _, params, state = model.init(jax.random.PRNGKey(0), (None, 784))
    key = jax.random.PRNGKey(1)
    print(f"data: {source}; {args.repeats} repeats of {args.epochs} epochs per loop")
    results = {}
    for batch_size in args.batch_sizes:
        per_loop = {name: [] for name in LOOPS}
        for repeat in range(args.repeats):
            for name, loop in LOOPS.items():
                times = loop(model, params, state, x, y, batch_size, args.epochs, key)
                per_loop[name].extend(times[1:])  # the first epoch compiles
        medians = {name: float(np.median(t)) for name, t in per_loop.items()}
        results[batch_size] = {"seconds_per_epoch": medians,
                               "ratio_to_hand": {k: v / medians["hand"] for k, v in medians.items()}}
        print(f"batch {batch_size}: " + ", ".join(
            f"{name} {medians[name]:.3f} s/epoch ({medians[name] / medians['hand']:.2f}x hand)"
            for name in LOOPS))
    return write(record(data=source, repeats=args.repeats, epochs=args.epochs, results=results),
                 args.out)


if __name__ == "__main__":
    main()
