"""Mixed precision and rematerialization: what they cost and save in one training step.

    python benchmarks/precision_memory.py [--rounds 7] [--steps 5] [--out benchmarks/precision_memory.json]

For each workload, four variants of `fnn.make_train_step` (SGD, softmax cross-entropy):

- ``float32``: the plain step;
- ``bfloat16``: ``compute_dtype="bfloat16"`` (forward and backward on bfloat16 copies of the
  float32 master weights);
- ``remat``: every hidden block wrapped in `fnn.layers.remat` (its activations recomputed in the
  backward pass instead of kept);
- ``bfloat16+remat``: both.

Reported per variant: XLA's own memory plan of the compiled step (``temp``: the scratch buffers
the step needs besides its inputs and outputs, from ``compiled.memory_analysis()``; it does not
depend on the machine's load), the step time as a ratio to ``float32`` (rounds interleaved, a
different order each round, the median of the per-round ratios) and the training loss after
``--train-steps`` steps on a fixed batch relative to ``float32``'s (the tolerance the tests
state: within 1 %).

Workloads: ``mlp`` (784-1024-1024-1024-10 ReLU, batch 512) and ``lstm`` (the character language
model of `benchmarks/table.py`: vocabulary 65, embedding 64, LSTM 256, T = 64, batch 32). On a
CPU without native bfloat16 arithmetic, bfloat16 is expected to cost time, not save it; its
memory saving is what carries over to accelerators.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from record import record, write

import fnn
from fnn.layers import LSTMCell, RNN, Dense, Embedding, ReLU, remat, serial
from fnn.optim import sgd

VARIANTS = ("float32", "bfloat16", "remat", "bfloat16+remat")
VOCAB, EMBED, HIDDEN, T, BATCH_LM = 65, 64, 256, 64, 32


def build(workload: str, rematerialize: bool):
    """The model and its input shape; with ``rematerialize`` each hidden block is a `remat`."""
    wrap = remat if rematerialize else (lambda layer: layer)
    if workload == "mlp":
        hidden = [wrap(serial(Dense(1024), ReLU())) for _ in range(3)]
        return serial(*hidden, Dense(10)), (512, 784)
    return serial(Embedding(VOCAB, EMBED), wrap(RNN(LSTMCell(HIDDEN))), Dense(VOCAB)), (BATCH_LM, T)


def batch_for(workload: str, shape, rng) -> fnn.Batch:
    if workload == "mlp":
        x = rng.random(shape, np.float32)
        y = rng.integers(0, 10, shape[0]).astype(np.int32)
    else:
        ids = rng.integers(0, VOCAB, (shape[0], shape[1] + 1)).astype(np.int32)
        x, y = ids[:, :-1], ids[:, 1:]
    return fnn.Batch(jnp.asarray(x), jnp.asarray(y))


def variant(workload: str, name: str, batch: fnn.Batch):
    """``(run, compiled, loss_after)``: one step on the carried state, the compiled step, and a
    function training a fresh copy for n steps and returning its last loss."""
    model, shape = build(workload, "remat" in name)
    _, params, state = model.init(jax.random.PRNGKey(0), (None, *shape[1:]))
    optimizer = sgd(0.05)
    step = fnn.make_train_step(model, "softmax_cross_entropy", optimizer,
                               compute_dtype="bfloat16" if "bfloat16" in name else None)
    key = jax.random.PRNGKey(1)
    start = (params, state, optimizer.init(params))
    compiled = step.lower(*start, batch, key).compile()
    carry = [jax.tree_util.tree_map(jnp.copy, start)]

    def run():
        p, s, o, metrics = compiled(*carry[0], batch, key)
        carry[0] = (p, s, o)
        return metrics["loss"]

    def loss_after(n: int) -> float:
        p, s, o = jax.tree_util.tree_map(jnp.copy, start)
        for _ in range(n):
            p, s, o, metrics = compiled(p, s, o, batch, key)
        return float(metrics["loss"])

    return run, compiled, loss_after


def _time(run, steps: int) -> float:
    jax.block_until_ready(run())
    start = time.perf_counter()
    for _ in range(steps):
        value = run()
    jax.block_until_ready(value)
    return (time.perf_counter() - start) / steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="steps timed per round")
    parser.add_argument("--train-steps", type=int, default=20,
                        help="steps before comparing the losses")
    parser.add_argument("--workloads", nargs="+", default=["mlp", "lstm"],
                        choices=["mlp", "lstm"])
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    results = {}
    for workload in args.workloads:
        batch = batch_for(workload, build(workload, False)[1], rng)
        runs, info = {}, {}
        for name in VARIANTS:
            runs[name], compiled, loss_after = variant(workload, name, batch)
            memory = compiled.memory_analysis()
            info[name] = {"temp_mib": memory.temp_size_in_bytes / 2 ** 20,
                          "arguments_mib": memory.argument_size_in_bytes / 2 ** 20,
                          "loss_after": loss_after(args.train_steps), "ratios": []}
        for r in range(args.rounds):
            order = VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]
            times = {name: _time(runs[name], args.steps) for name in order}
            for name in VARIANTS:
                info[name]["ratios"].append(times[name] / times["float32"])
                info[name].setdefault("times", []).append(times[name])
        base = info["float32"]
        print(f"\n{workload}: loss after {args.train_steps} steps, XLA's scratch memory, "
              f"step time (median over {args.rounds} rounds)")
        for name in VARIANTS:
            i = info[name]
            i["step_ms"] = 1e3 * float(np.median(i.pop("times")))
            i["time_ratio"] = float(np.median(i.pop("ratios")))
            i["temp_ratio"] = i["temp_mib"] / base["temp_mib"]
            i["loss_relative_difference"] = abs(i["loss_after"] / base["loss_after"] - 1)
            print(f"  {name:15s} loss {i['loss_after']:.4f} ({100 * i['loss_relative_difference']:.2f} % "
                  f"off)  temp {i['temp_mib']:7.2f} MiB ({i['temp_ratio']:.2f}x)  "
                  f"{i['step_ms']:7.2f} ms ({i['time_ratio']:.2f}x)")
        results[workload] = info
    return write(record(rounds=args.rounds, steps=args.steps, train_steps=args.train_steps,
                        results=results), args.out)


if __name__ == "__main__":
    main()
