"""LeNet-5's training step on the CPU: fnn against a hand-written JAX step and PyTorch eager.

    python benchmarks/lenet5.py [--rounds 20] [--steps 5] [--out benchmarks/lenet5.json]
    /work/bench-venv/bin/python benchmarks/lenet5.py     # with PyTorch, if installed there
    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false python benchmarks/lenet5.py --torch-threads 1

The last form runs both libraries on one thread (steadier on a busy machine). XLA's YNNPACK
fusions may still use a second thread, so the process CPU time per step, which counts every
thread, is reported beside the wall-clock time; ``taskset -c 1 python benchmarks/lenet5.py
...`` holds the whole process to one core (the label then says so). ``--out`` adds this run to
the JSON file under a label naming its threading (other runs there are kept).

One SGD step (batch 128 of 28×28×1 images, softmax cross-entropy, learning rate 0.05) of
LeNet-5 (C1 6@5×5 padded by 2 → pool 2 → C3 16@5×5 → pool 2 → C5 120@5×5 → F6 84 → 10) in two
forms: ``max-relu`` (max pooling, ReLU: the form JAX libraries are slow at, XLA:CPU's
max-pool backward being ``select_and_scatter``) and ``avg-tanh`` (fnn's `lenet5` defaults).
Three implementations of the same step:

- ``fnn``: ``make_train_step(lenet5(padding=2, ...), "softmax_cross_entropy", sgd(0.05))``
  with the layers' default (``"auto"``) lowerings;
- ``jax``: the same network written by hand with plain ``lax.conv_general_dilated`` and
  ``lax.reduce_window`` (what Flax, Equinox or Haiku lower to), jitted;
- ``torch``: ``torch.nn`` layers in eager mode with ``torch.optim.SGD``, when torch imports.

With ``--microbatches K`` a fourth, ``fnn-mbK``, times ``make_train_step(...,
microbatches=K)``: the batch cut into K slices run forward and backward as independent
computations (which XLA can run on both cores at once) and their gradients combined.

Interleaved: each round times ``--steps`` steps of every implementation, in a random order
(each after one untimed step), and the ratios are taken within the round (the machine is shared
and its load varies); the medians over rounds are reported. Before timing, fnn's step and the
hand-written one start from the same parameters and the largest difference of their updated
parameters is printed (the lowerings must not change results).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnn.losses import softmax_cross_entropy
from fnn.models import lenet5
from fnn.optim import sgd
from fnn.train import Batch, make_train_step

BATCH, LEARNING_RATE = 128, 0.05
FORMS = {"max-relu": ("max", "relu"), "avg-tanh": ("avg", "tanh")}
_DN = ("NHWC", "HWIO", "NHWC")


# ----------------------------------------------------------------------------- hand-written JAX

def jax_step(pool: str, activation: str):
    """The plain-lax LeNet-5 SGD step ``(params, x, y) -> params`` over fnn's params tree."""
    act = jax.nn.relu if activation == "relu" else jnp.tanh

    def conv(x, p, pad):
        y = lax.conv_general_dilated(x, p["w"], (1, 1), ((pad, pad), (pad, pad)),
                                     dimension_numbers=_DN)
        return act(y + p["b"])

    def pooled(x):
        if pool == "max":
            return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        return lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4

    def loss(params, x, y):
        h = pooled(conv(x, params["c1"], 2))
        h = pooled(conv(h, params["c3"], 0))
        h = conv(h, params["c5"], 0).reshape(x.shape[0], -1)
        h = act(h @ params["f6"]["w"] + params["f6"]["b"])
        logits = h @ params["output"]["w"] + params["output"]["b"]
        log_p = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))

    @jax.jit
    def step(params, x, y):
        grads = jax.grad(loss)(params, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - LEARNING_RATE * g, params, grads)

    return step


# ----------------------------------------------------------------------------- PyTorch eager

def torch_step(torch, pool: str, activation: str, params, x, y):
    """A ``() -> None`` closure running one eager PyTorch SGD step of the same network (weights
    copied from fnn's HWIO/NHWC layout to PyTorch's OIHW/NCHW)."""
    nn = torch.nn
    act = nn.ReLU if activation == "relu" else nn.Tanh
    pool_layer = nn.MaxPool2d if pool == "max" else nn.AvgPool2d
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), act(), pool_layer(2),
        nn.Conv2d(6, 16, 5), act(), pool_layer(2),
        nn.Conv2d(16, 120, 5), act(), nn.Flatten(),
        nn.Linear(120, 84), act(), nn.Linear(84, 10))
    with torch.no_grad():
        for i, name in ((0, "c1"), (3, "c3"), (6, "c5")):
            model[i].weight.copy_(torch.from_numpy(
                np.ascontiguousarray(np.transpose(np.asarray(params[name]["w"]), (3, 2, 0, 1)))))
            model[i].bias.copy_(torch.from_numpy(np.array(params[name]["b"])))
        for i, name in ((9, "f6"), (11, "output")):
            model[i].weight.copy_(torch.from_numpy(np.asarray(params[name]["w"]).T.copy()))
            model[i].bias.copy_(torch.from_numpy(np.array(params[name]["b"])))
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    xt = torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))
    yt = torch.from_numpy(y.astype(np.int64))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        optimizer.step()

    return step


# ----------------------------------------------------------------------------- timing

def _time_steps(fn, steps: int):
    """Wall-clock and process CPU seconds per step over ``steps`` consecutive steps (``fn``
    blocks on its result). The CPU time counts every thread of the process: XLA's "one thread"
    flag does not stop its YNNPACK fusions from using a thread pool."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps


def measure(form: str, rounds: int, steps: int, torch, microbatches: int = 0) -> dict:
    pool, activation = FORMS[form]
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 28, 28, 1), np.float32)
    y = rng.integers(0, 10, BATCH).astype(np.int32)
    model = lenet5(pool=pool, activation=activation, padding=2)
    _, params, state = model.init(jax.random.PRNGKey(0), (BATCH, 28, 28, 1))
    optimizer = sgd(LEARNING_RATE)
    opt_state = optimizer.init(params)
    batch = Batch(jnp.asarray(x), jnp.asarray(y), jnp.ones(BATCH, jnp.float32))
    key = jax.random.PRNGKey(1)
    fnn_train = make_train_step(model, "softmax_cross_entropy", optimizer)
    plain = jax_step(pool, activation)
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    fnn_params = fnn_train(params, state, opt_state, batch, key)[0]
    plain_params = plain(params, xj, yj)
    difference = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
        jax.tree_util.tree_leaves(fnn_params), jax.tree_util.tree_leaves(plain_params)))
    sliced_difference = None
    if microbatches:
        sliced = make_train_step(model, "softmax_cross_entropy", optimizer,
                                 microbatches=microbatches)
        sliced_difference = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
            jax.tree_util.tree_leaves(fnn_params),
            jax.tree_util.tree_leaves(sliced(params, state, opt_state, batch, key)[0])))

    runs = {"fnn": lambda: jax.block_until_ready(fnn_train(params, state, opt_state, batch, key)),
            "jax": lambda: jax.block_until_ready(plain(params, xj, yj))}
    if microbatches:
        runs[f"fnn-mb{microbatches}"] = lambda: jax.block_until_ready(
            sliced(params, state, opt_state, batch, key))
    if torch is not None:
        runs["torch"] = torch_step(torch, pool, activation, params, x, y)
    for fn in runs.values():  # compile / warm up
        fn(), fn()
    names = list(runs)
    times = {name: [] for name in names}
    cpu_times = {name: [] for name in names}
    order = np.random.default_rng(1)
    for r in range(rounds):
        # a random order each round and one untimed step before each timed block: PyTorch's
        # OpenMP threads spin on after its step and slow whatever runs next (see table.py)
        for name in order.permutation(names):
            runs[name]()
            wall, cpu = _time_steps(runs[name], steps)
            times[name].append(wall)
            cpu_times[name].append(cpu)

    def summary(table, base="fnn"):
        base_times = np.array(table[base])
        return ({name: 1000 * float(np.median(t)) for name, t in table.items()},
                {name: float(np.median(np.array(t) / base_times))
                 for name, t in table.items() if name != base})
    median_ms, speedup = summary(times)
    median_cpu_ms, cpu_speedup = summary(cpu_times)
    sliced_speedup = summary(times, f"fnn-mb{microbatches}")[1] if microbatches else None
    result = {
        "pool": pool, "activation": activation,
        "max_abs_param_difference_fnn_vs_jax": difference,
        "max_abs_param_difference_fnn_vs_microbatches": sliced_difference,
        "median_ms": median_ms, "median_speedup_of_fnn": speedup,
        "median_speedup_of_fnn_microbatches": sliced_speedup,
        "median_cpu_ms": median_cpu_ms, "median_cpu_speedup_of_fnn": cpu_speedup,
        "ms_per_round": {name: [round(1000 * v, 3) for v in t] for name, t in times.items()},
        "cpu_ms_per_round": {name: [round(1000 * v, 3) for v in t]
                             for name, t in cpu_times.items()},
    }
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5, help="steps timed per round")
    parser.add_argument("--forms", nargs="+", default=list(FORMS), choices=list(FORMS))
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads (default: PyTorch's own choice)")
    parser.add_argument("--microbatches", type=int, default=0,
                        help="also time fnn's step with make_train_step(..., microbatches=K)")
    parser.add_argument("--out", default=None, help="add the results to this JSON file")
    args = parser.parse_args(argv)
    if args.microbatches and (args.microbatches < 2 or BATCH % args.microbatches):
        parser.error(f"--microbatches must be 0 (off) or a divisor >= 2 of the batch {BATCH}; "
                     f"got {args.microbatches}.")
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not importable here: comparing with the hand-written JAX step only.")
    if torch is not None and args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    single = "xla_cpu_multi_thread_eigen=false" in os.environ.get("XLA_FLAGS", "")
    label = "one thread" if single and args.torch_threads == 1 else \
        f"XLA {'one thread' if single else 'default threads'}, torch " \
        f"{args.torch_threads or 'default'} threads"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cores < os.cpu_count():  # e.g. under `taskset -c 1`: the only way to hold XLA to one core
        label += f", pinned to {cores} core{'s' if cores > 1 else ''}"
    report = {
        "date": datetime.datetime.now().isoformat(timespec="minutes"),
        "machine": {"cpus": os.cpu_count(), "cores_allowed": cores, "platform": platform.platform(),
                    "load_average_at_start": list(os.getloadavg())},
        "versions": {"jax": jax.__version__,
                     "torch": None if torch is None else torch.__version__},
        "torch_threads": None if torch is None else torch.get_num_threads(),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "batch": BATCH, "rounds": args.rounds, "steps_per_round": args.steps, "forms": {},
    }
    for form in args.forms:
        result = measure(form, args.rounds, args.steps, torch, args.microbatches)
        report["forms"][form] = result
        times = ", ".join(f"{k} {v:.1f} ms" for k, v in result["median_ms"].items())
        ratios = ", ".join(f"{v:.2f}× faster than {k}"
                           for k, v in result["median_speedup_of_fnn"].items())
        cpu = ", ".join(f"{k} {v:.1f} ms" for k, v in result["median_cpu_ms"].items())
        cpu_ratios = ", ".join(f"{k} {v:.2f}"
                               for k, v in result["median_cpu_speedup_of_fnn"].items())
        print(f"LeNet-5 {form}: median step {times}; fnn (median of per-round ratios) {ratios}; "
              f"CPU time per step {cpu} (other / fnn: {cpu_ratios}); max |Δparams| fnn vs jax "
              f"after one step {result['max_abs_param_difference_fnn_vs_jax']:.1e}"
              + ("" if result["max_abs_param_difference_fnn_vs_microbatches"] is None else
                 f", fnn vs fnn-mb{args.microbatches} "
                 f"{result['max_abs_param_difference_fnn_vs_microbatches']:.1e}; fnn-mb"
                 f"{args.microbatches} (median of per-round ratios) " + ", ".join(
                     f"{v:.2f}× faster than {k}"
                     for k, v in result["median_speedup_of_fnn_microbatches"].items())),
              flush=True)
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    if args.out:
        runs = {}
        if os.path.exists(args.out):
            with open(args.out) as f:
                runs = json.load(f).get("runs", {})
        runs[label] = report
        with open(args.out, "w") as f:
            json.dump({"runs": runs}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
