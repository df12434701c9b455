"""Data-parallel `fit` over a device mesh (`fnn.parallel`, issue 12).

The comparison of one device with eight needs eight devices, which XLA's CPU backend gives only
when ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` is set before JAX starts: the test
runs this file as a script in a fresh process with that flag. The script trains an MLP, a CNN
with BatchNorm and an LSTM for one epoch of three steps on one device and on a (data=8) mesh, with a batch of
12 that the mesh pads to 16 with masked rows, and also on a (data=4, model=2) mesh with sharded
kernels; every parameter, BatchNorm statistic and metric must agree to within float32 rounding
(the sums over the batch are reduced in another order).
"""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from fnn import parallel

TOLERANCE = dict(rtol=2e-5, atol=2e-6)


def test_mesh_checks_its_shape_and_fit_checks_its_mesh():
    with pytest.raises(ValueError, match=r"mesh: `data` × `model` must equal the number of "
                                         r"devices \(1\); got data=2, model=1"):
        parallel.mesh(2, 1, devices=jax.devices()[:1])
    with pytest.raises(ValueError, match="fit: `mesh` must be a jax.sharding.Mesh"):
        parallel.check_mesh("fit", "data")
    one = parallel.mesh(devices=jax.devices()[:1])
    assert parallel.padded_batch_size(12, one) == 12


@pytest.mark.slow
def test_one_device_and_eight_train_the_same_models():
    flags = os.environ.get("XLA_FLAGS", "")  # conftest's optimization level, kept
    env = {**os.environ, "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split().count("same") == 5, done.stdout


def _models():
    from fnn.layers import (LSTMCell, RNN, BatchNorm, Conv2D, Dense, Flatten, ReLU, serial)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(30, 6, 6, 1)).astype(np.float32)
    sequences = rng.normal(size=(30, 4, 3)).astype(np.float32)
    flat = rng.normal(size=(30, 8)).astype(np.float32)
    labels = (rng.random(30) * 3).astype(np.int32)
    return {
        "mlp": (serial(Dense(16), ReLU(), Dense(3)), flat),
        # no bias before BatchNorm: its gradient is zero up to rounding, which Adam would amplify
        "cnn_batchnorm": (serial(Conv2D(2, 3, use_bias=False), BatchNorm(), ReLU(), Flatten(),
                                 Dense(3)), images),
        "lstm": (serial(RNN(LSTMCell(4), return_sequences=False), Dense(3)), sequences),
    }, labels


def _compare():
    import fnn
    from fnn.optim import adam

    assert len(jax.devices()) == 8, jax.devices()
    models, labels = _models()
    meshes = {"data=8": (parallel.mesh(), False),
              "data=4,model=2": (parallel.mesh(4, 2), True)}
    for name, (model, inputs) in models.items():
        _, params, state = model.init(jax.random.PRNGKey(0), (None, *inputs.shape[1:]))

        def train(mesh=None, shard_params=False):
            return fnn.fit(model, params, state, (inputs, labels), loss="softmax_cross_entropy",
                           optimizer=adam(0.01), key=jax.random.PRNGKey(1), epochs=1,
                           batch_size=12, mesh=mesh, shard_params=shard_params, progress=False)

        single = train()
        for mesh_name, (mesh, shard) in meshes.items():
            if name != "mlp" and shard:
                continue
            sharded = train(mesh, shard)
            for a, b in zip(jax.tree_util.tree_leaves((single.params, single.state)),
                            jax.tree_util.tree_leaves((sharded.params, sharded.state)),
                            strict=True):
                np.testing.assert_allclose(np.asarray(b), np.asarray(a), **TOLERANCE)
            for metric, values in single.history.items():
                np.testing.assert_allclose(sharded.history[metric], values, **TOLERANCE)
            devices = {d for leaf in jax.tree_util.tree_leaves(sharded.params)
                       for d in leaf.sharding.device_set}
            assert len(devices) == 8, (name, mesh_name, devices)
            print(name, mesh_name, "same")
    # the model axis splits the MLP's kernels whose output size it divides (16 and 3 -> only 16)
    sharded = train_mlp_sharded(models["mlp"], labels)
    print("mlp kernel split over model:", sharded, "same" if sharded == [2, 1] else "different")


def train_mlp_sharded(model_and_inputs, labels):
    model, inputs = model_and_inputs
    _, params, _ = model.init(jax.random.PRNGKey(0), (None, *inputs.shape[1:]))
    shardings = parallel.param_sharding(params, parallel.mesh(4, 2), shard_params=True)
    kernels = [params[k]["w"] for k in sorted(params) if "w" in params[k]]
    specs = [shardings[k]["w"] for k in sorted(params) if "w" in params[k]]
    return [len({str(index) for index in s.devices_indices_map(k.shape).values()})
            for k, s in zip(kernels, specs)]


if __name__ == "__main__":
    _compare()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("FNN_TEST_MULTIPROCESS") != "1",
                    reason="starts three JAX processes (about a minute of CPU on 2 cores); "
                           "FNN_TEST_MULTIPROCESS=1 runs it")
def test_two_processes_train_as_one_process(tmp_path):
    """The worked example: 2 processes × 2 CPU devices (jax.distributed over gloo) with full
    batches take the same steps as one process on one device."""
    import json
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / "experiments" / "data_parallel.py"),
                           str(root / "configs" / "data_parallel.toml"), "--quick", "--out",
                           str(tmp_path / "run"), "--no-progress"],
                          capture_output=True, text=True, timeout=600, cwd=root)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["processes"] == 2 and results["devices"] == 4
    assert results["max_parameter_difference"] < 1e-5, results
    assert results["parallel"]["final_loss"] == pytest.approx(results["single"]["final_loss"],
                                                              rel=1e-5)


@pytest.mark.slow
def test_fnn_run_on_two_processes_trains_as_one_process(tmp_path):
    """``fnn run --processes 2`` (each process with 2 CPU devices, its own shard of the training
    set, jax.distributed over gloo) writes one run folder whose model equals that of a run in
    this process on one device (full batches: the same gradient steps, summed in another
    order)."""
    import socket
    from fnn.cli import main

    config = tmp_path / "xor.toml"
    config.write_text('name = "xor"\n[data]\ndataset = "xor"\nsamples = 80\n'
                      'validation_size = 16\nscaling = "standardize"\n[model]\nhidden = [8]\n'
                      '[optimizer]\nname = "sgd"\nlearning_rate = 0.1\n'
                      '[train]\nepochs = 3\nbatch_size = "full"\n')
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "fnn", "run", str(config), "--quiet"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    jobs = [subprocess.Popen([*command, "--out", str(tmp_path / "two"), "--processes", "2",
                              "--process-id", str(i), "--coordinator", f"localhost:{port}",
                              "--cpu-devices", "2"], env=env, stderr=subprocess.PIPE, text=True)
            for i in range(2)]
    try:
        assert main(["run", str(config), "--quiet", "--out", str(tmp_path / "one")]) == 0
        errors = [job.communicate(timeout=600)[1] for job in jobs]
    finally:
        for job in jobs:
            job.kill()
    assert [job.returncode for job in jobs] == [0, 0], errors
    two_model = np.load(tmp_path / "two" / "model.npz")
    one_model = np.load(tmp_path / "one" / "model.npz")
    assert sorted(two_model) == sorted(one_model)
    for name in one_model:
        np.testing.assert_allclose(two_model[name], one_model[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir())
