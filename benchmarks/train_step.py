"""Speed of the train step, as ratios measured in one run (absolute times depend on the machine).

    python benchmarks/train_step.py [--repeats N]

1. jit vs eager: the jitted step against the same step run op by op.
2. padding vs recompiling: an epoch whose last, smaller batch is padded and masked (what `fit`
   does: one compiled step) against one that compiles a second step for the smaller batch.
"""
from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from fnn.models import mlp
from fnn.optim import sgd
from fnn.train import Batch, make_train_step


def _seconds(fn, repeats: int) -> float:
    """The best wall time of ``repeats`` calls of ``fn`` (its result blocked on)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    model = mlp([300, 100, 10], w_init="he_normal")
    _, params, state = model.init(jax.random.PRNGKey(0), (None, 28, 28))
    optimizer = sgd(0.1)
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28), np.float32)
    y = rng.integers(0, 10, 64).astype(np.int32)
    key = jax.random.PRNGKey(1)

    full = Batch(x, y, np.ones(64, np.float32))
    padded_last = Batch(x, y, (np.arange(64) < 40).astype(np.float32))  # 40 real rows, 24 masked
    short_last = Batch(x[:40], y[:40], np.ones(40, np.float32))

    jitted = make_train_step(model, "softmax_cross_entropy", optimizer)
    eager = make_train_step(model, "softmax_cross_entropy", optimizer, jit=False)
    jitted(params, state, opt_state, full, key)  # compile once
    t_jit = _seconds(lambda: jitted(params, state, opt_state, full, key), args.repeats)
    t_eager = _seconds(lambda: eager(params, state, opt_state, full, key), args.repeats)
    print(f"jit vs eager, one step of the 784-300-100-10 MLP on 64 images: "
          f"{t_eager / t_jit:.1f}x faster with jit")

    def epoch(last_batch):
        step = make_train_step(model, "softmax_cross_entropy", optimizer)  # nothing compiled yet
        for b in (full, full, last_batch):
            out = step(params, state, opt_state, b, key)
        return out

    t_pad = _seconds(lambda: epoch(padded_last), args.repeats)
    t_recompile = _seconds(lambda: epoch(short_last), args.repeats)
    print(f"padding vs recompiling, a 3-batch epoch with a short last batch (compiles included): "
          f"{t_recompile / t_pad:.2f}x faster with padding")


if __name__ == "__main__":
    main()
