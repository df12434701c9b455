"""Where the LSTM language model's step spends its time (issue 10): the recurrent products alone,
the same in PyTorch, and fnn's LSTM layer on each of its paths, interleaved.

    /work/bench-venv/bin/python benchmarks/lstm_floor.py [--rounds 7] [--reps 5] [--out F.json]
    OMP_NUM_THREADS=1 XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 1 \\
        /work/bench-venv/bin/python benchmarks/lstm_floor.py --torch-threads 1   # one core

Sizes of `table.py`'s LSTM workload: hidden N = 256 (4N = 1024 gate rows), embedding d = 64,
batch B = 32, T = 64 steps. Cases (each timed as ``--reps`` calls per round, rounds in rotating
order; medians over rounds of wall and process CPU time per call):

- ``xla fwd products``: a `lax.scan` of 64 dependent ``W_hᵀ (1024, 256) · h (256, 32)``
  products (plus a tanh, so each step needs the last): the forward loop's floor.
  ``xla fwd products, rows``: the same as ``h (32, 256) · W_h (256, 1024)``.
- ``xla bwd products``: 64 ``W_h (256, 1024) · dz (1024, 32)``: the backward loop's floor.
- ``xla empty loop``: 64 steps of one elementwise op on (256, 32): the while loop's overhead.
- ``xla dW_h product``: ``DZ (1024, 2048) · H_prevᵀ``, the post-loop weight gradient.
- ``torch ...``: the same products with ``torch.mm`` in a Python loop, and ``nn.LSTM`` (one
  fused oneDNN kernel) forward alone and forward + backward of ``y.sum()``.
- ``fnn <impl> fwd`` / ``fwd+bwd``: `fnn.layers.recurrent.scan_cell` of `LSTMCell(256)`,
  jitted, forward alone and `jax.vjp` (forward + backward) with a random cotangent, for
  ``impl="scan"`` (the plain path), ``"generic"`` (the fused path every cell with a ``combine``
  takes: the LSTM with peepholes uses it) and ``"fused"`` (the plain LSTM's written-out loops).
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from record import record, write

from fnn.layers import LSTMCell
from fnn.layers import recurrent

N, G, B, T, E = 256, 4, 32, 64, 64


def xla_cases(rng):
    f32 = lambda *s: jnp.asarray(rng.normal(size=s).astype(np.float32) * 0.05)  # noqa: E731
    w_t, w, h0, dz = f32(G * N, N), f32(N, G * N), f32(N, B), f32(T, G * N, B)
    dz_all, h_all = f32(G * N, T * B), f32(N, T * B)

    @jax.jit
    def fwd(w_t, h):
        return jax.lax.scan(lambda h, _: (jnp.tanh((w_t @ h)[:N]), None), h, None, length=T)[0]

    @jax.jit
    def fwd_rows(w, h):
        return jax.lax.scan(lambda h, _: (jnp.tanh((h @ w)[:, :N]), None), h, None, length=T)[0]

    @jax.jit
    def bwd(w, h, dz):
        return jax.lax.scan(lambda h, d: (jnp.tanh(w @ d + h), None), h, dz)[0]

    @jax.jit
    def empty(h):
        return jax.lax.scan(lambda h, _: (h * 1.0001 + 1e-3, None), h, None, length=T)[0]

    @jax.jit
    def dw_h(dz_all, h_all):
        return dz_all @ h_all.T

    return {"xla fwd products (1024,256)(256,32)": lambda: fwd(w_t, h0),
            "xla fwd products, rows (32,256)(256,1024)": lambda: fwd_rows(w, h0.T),
            "xla bwd products (256,1024)(1024,32)": lambda: bwd(w, h0, dz),
            "xla empty loop": lambda: empty(h0),
            "xla dW_h product (1024,2048)(2048,256)": lambda: dw_h(dz_all, h_all)}


def fnn_cases(rng):
    cell = LSTMCell(N)
    _, params = cell.init(jax.random.PRNGKey(0), (E,))
    xs = jnp.asarray(rng.normal(size=(B, T, E)).astype(np.float32))
    cotangent = jnp.asarray(rng.normal(size=(B, T, N)).astype(np.float32))
    carry = cell.init_carry((B,))
    # the generic fused path: the cell without its "lstm" mark (same combine, same equations)
    generic = cell._replace(equations=None)
    cases = {}
    for label, c, impl in (("scan", cell, "scan"), ("generic", generic, "fused"),
                           ("fused", cell, "fused")):
        def run(p, x, c=c, impl=impl):
            return recurrent.scan_cell(c, p, carry, x, impl=impl)[1]
        forward = jax.jit(run)
        both = jax.jit(lambda p, x, ct, run=run: jax.vjp(run, p, x)[1](ct))
        cases[f"fnn {label} fwd"] = lambda f=forward: f(params, xs)
        cases[f"fnn {label} fwd+bwd"] = lambda f=both: f(params, xs, cotangent)
    return cases


def torch_cases(torch):
    torch.manual_seed(0)
    w_t, w, h0 = torch.randn(G * N, N) * 0.05, torch.randn(N, G * N) * 0.05, torch.randn(N, B)
    dz = torch.randn(T, G * N, B)
    lstm = torch.nn.LSTM(E, N, batch_first=True)
    x = torch.randn(B, T, E, requires_grad=True)

    def fwd():
        h = h0
        for _ in range(T):
            h = torch.tanh(torch.mm(w_t, h)[:N])
        return h

    def bwd():
        h = h0
        for t in range(T):
            h = torch.tanh(torch.mm(w, dz[t]) + h)
        return h

    def lstm_fwd():
        with torch.no_grad():
            return lstm(x)[0]

    def lstm_both():
        y = lstm(x)[0]
        y.sum().backward()
        return y

    return {"torch fwd products (1024,256)(256,32)": fwd,
            "torch bwd products (256,1024)(1024,32)": bwd,
            "torch nn.LSTM fwd": lstm_fwd, "torch nn.LSTM fwd+bwd": lstm_both}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch.set_num_threads (0: PyTorch's default)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cases = {**xla_cases(rng), **fnn_cases(rng)}
    try:
        import torch
        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        cases.update(torch_cases(torch))
    except ImportError:
        print("PyTorch not installed: its cases are left out")
    for f in cases.values():  # compile and warm up
        jax.block_until_ready(f())
        jax.block_until_ready(f())
    names = list(cases)
    times = {k: [] for k in names}
    for r in range(args.rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(args.reps):
                jax.block_until_ready(cases[k]())
            times[k].append(((time.perf_counter() - wall) / args.reps * 1e3,
                             (time.process_time() - cpu) / args.reps * 1e3))
    result = {}
    for k in names:
        v = np.array(times[k])
        result[k] = {"wall_ms": float(np.median(v[:, 0])), "cpu_ms": float(np.median(v[:, 1])),
                     "rounds": v.tolist()}
        print(f"{k:44s} wall {result[k]['wall_ms']:8.2f} ms   cpu {result[k]['cpu_ms']:8.2f} ms")
    write(record(rounds=args.rounds, reps=args.reps, torch_threads=args.torch_threads,
                 cases=result), args.out)


if __name__ == "__main__":
    main()
