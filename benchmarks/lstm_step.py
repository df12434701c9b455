"""The LSTM (or GRU) language model's training step of `table.py`, fnn on each recurrent path
against hand-written JAX and PyTorch eager, interleaved, with medians of per-round ratios.

    /work/bench-venv/bin/python benchmarks/lstm_step.py [--workload lstm] [--rounds 9]
        [--steps 5] [--torch-threads N] [--out F.json]
    OMP_NUM_THREADS=1 XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 1 \\
        /work/bench-venv/bin/python benchmarks/lstm_step.py --torch-threads 1   # one core

Implementations: ``fnn`` (`RNN(cell)`, the default ``impl="auto"``: for the LSTM its
written-out fused loops, for the GRU the plain path), ``fnn_generic`` (``impl="fused"`` on the
cell without an ``equations`` mark: the generic fused path, which every cell with a ``combine``
but the plain LSTM takes, and the plain LSTM's path before its loops were written out),
``fnn_scan`` (``impl="scan"``, the plain path), ``jax`` (`table.py`'s hand-written step) and
``torch`` (PyTorch eager, when installed). Each round times ``--steps`` steps of each in a
random order, after one untimed step; times are medians over rounds of the wall time per step,
ratios medians of the per-round ratios (steadier on a shared machine than ratios of medians,
which `table.py` reports).
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import table
from record import record, write

import fnn
from fnn.layers import GRUCell, LSTMCell, RNN, Dense, Embedding, serial
from fnn.optim import sgd


def fnn_variant(workload, batch, impl, generic=False):
    """`table.fnn_step`'s model and step with ``RNN(cell, impl=impl)``; ``generic``: the cell
    without its ``equations`` mark, so the fused path linearizes its ``combine``."""
    cell = LSTMCell(table.HIDDEN) if workload == "lstm" else GRUCell(table.HIDDEN,
                                                                     reset_after=True)
    if generic:
        cell = cell._replace(equations=None)
    model = serial(Embedding(table.VOCAB, table.EMBED), RNN(cell, impl=impl),
                   Dense(table.VOCAB))
    _, params, state = model.init(jax.random.PRNGKey(0), (None, table.T))
    optimizer = sgd(table.LR)
    step = fnn.make_train_step(model, "softmax_cross_entropy", optimizer)
    carry = [params, state, optimizer.init(params)]
    fb = fnn.Batch(jnp.asarray(batch[0]), jnp.asarray(batch[1]))
    key = jax.random.PRNGKey(1)

    def run():
        carry[0], carry[1], carry[2], m = step(carry[0], carry[1], carry[2], fb, key)
        return m["loss"]

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=("lstm", "gru"), default="lstm")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch.set_num_threads (0: PyTorch's default)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    batch = table.lm_batch(np.random.default_rng(0))
    runs = {"fnn": fnn_variant(args.workload, batch, "auto")}
    runs["fnn_generic"] = fnn_variant(args.workload, batch, "fused", generic=True)
    runs["fnn_scan"] = fnn_variant(args.workload, batch, "scan")
    runs["jax"] = table.jax_step(args.workload, batch)[0]
    if table.available("torch"):
        import torch
        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        runs["torch"] = table.torch_step(args.workload, batch)[0]
    for run in runs.values():  # compile and warm up
        for _ in range(2):
            table.block(run())
    names = list(runs)
    times = {k: [] for k in names}
    order = np.random.default_rng(1)
    for r in range(args.rounds):
        # a random order each round and one untimed step before each timed block (PyTorch's
        # OpenMP threads spin on after its step and slow whatever runs next; see table.py)
        for k in order.permutation(names):
            table.block(runs[k]())
            start = time.perf_counter()
            for _ in range(args.steps):
                table.block(runs[k]())
            times[k].append((time.perf_counter() - start) / args.steps * 1e3)
    result = {"workload": args.workload, "ms_per_step": {}, "ratio_to_jax": {},
              "ratio_to_torch": {}, "rounds_ms": times}
    for k in names:
        v = np.array(times[k])
        result["ms_per_step"][k] = float(np.median(v))
        result["ratio_to_jax"][k] = float(np.median(v / np.array(times["jax"])))
        line = (f"{k:12s} {result['ms_per_step'][k]:8.2f} ms/step   "
                f"x hand JAX {result['ratio_to_jax'][k]:5.2f}")
        if "torch" in times:
            result["ratio_to_torch"][k] = float(np.median(v / np.array(times["torch"])))
            line += f"   x PyTorch {result['ratio_to_torch'][k]:5.2f}"
        print(line)
    write(record(rounds=args.rounds, steps=args.steps, torch_threads=args.torch_threads,
                 **result), args.out)


if __name__ == "__main__":
    main()
