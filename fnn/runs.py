"""A finished run folder back in Python: its model, parameters, state and config in one call.

    model, params, state, config = fnn.load_run("runs/mnist_mlp-20261129-101500")
    scores = fnn.predict(model, params, state, x_scaled)

The folder is one `fnn run` wrote (``config.toml`` and ``model.npz``, the trained model: the best
epoch's with early stopping). `evaluate_run` scores it on its config's test split (the numbers
of its ``results.json``), `predict_run` scores new raw inputs, scaled as its training data was.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from fnn import checkpoint
from fnn import config as config_lib


class LoadedRun(NamedTuple):
    """What `load_run` returns; unpacks as ``model, params, state, config``."""

    model: Any
    params: Any
    state: Any
    config: config_lib.Config


def _model_file(folder: Path) -> dict:
    """The contents of ``folder/model.npz``, or a FileNotFoundError saying what is missing."""
    path = folder / "model.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"load_run: {folder} has no model.npz: the run did not finish (continue it with "
            f"fnn run {folder / 'config.toml'} --out {folder} --resume).")
    return checkpoint.load(path)


def _load(folder) -> tuple:
    """``(LoadedRun, saved model.npz dict)``; the parameters are checked against the model the
    config builds (a mismatch is a `fnn.checkpoint.CheckpointError` naming the path)."""
    from fnn.experiment import build, check, run_keys  # imports every layer: only when used

    folder = Path(folder)
    if not (folder / "config.toml").is_file():
        raise FileNotFoundError(f"load_run: {folder} is not a run folder (no config.toml).")
    config = config_lib.load(folder / "config.toml")
    check(config)
    saved = _model_file(folder)
    model = build(config, saved["classes"])
    _, params, state = model.init(run_keys(config.seed)[1], (None, *saved["input_shape"]))
    restored = checkpoint.load(folder / "model.npz", like={
        "params": params, "state": state, "classes": 0, "input_shape": checkpoint.AS_SAVED,
        "scaling": checkpoint.AS_SAVED})
    return LoadedRun(model, restored["params"], restored["state"], config), saved


def load_run(folder) -> LoadedRun:
    """``(model, params, state, config)`` of the finished run in ``folder``: the model its
    ``config.toml`` builds, with the trained parameters and state of its ``model.npz``.

    The model takes inputs scaled as the run's training data (``[data] scaling``); `predict_run`
    scales raw inputs for you. Raises FileNotFoundError when the folder holds no finished run.
    """
    return _load(folder)[0]


def evaluate_run(folder) -> dict:
    """The test-split scores of a finished run (``test_loss``, ``test_accuracy``,
    ``test_macro_f1``, ``confusion_matrix``), recomputed from its config and model: they equal
    its ``results.json``."""
    from fnn.experiment import check, load_splits, run_keys, scale_splits, test_scores

    loaded, saved = _load(folder)
    config = loaded.config
    splits = load_splits(config.data, run_keys(config.seed)[0])
    test = scale_splits(config.data, splits, saved["scaling"])["test"]
    scores = test_scores(loaded.model, loaded.params, loaded.state, test, check(config).loss,
                         saved["classes"])
    scores["confusion_matrix"] = np.asarray(scores["confusion_matrix"]).tolist()
    return scores


def predict_run(folder, inputs) -> np.ndarray:
    """The class scores (N, C) of a finished run's model for raw inputs (N, *input_shape),
    scaled first with the statistics the run fitted on its training data."""
    from fnn.experiment import scale_inputs
    from fnn.train import predict

    loaded, saved = _load(folder)
    inputs = np.asarray(inputs)
    expected = tuple(saved["input_shape"])
    if inputs.ndim != len(expected) + 1 or inputs.shape[1:] != expected:
        raise ValueError(f"predict_run: {folder} takes inputs of shape (N, "
                         f"{', '.join(map(str, expected))}); got {inputs.shape}.")
    if not np.issubdtype(inputs.dtype, np.number):
        raise ValueError(f"predict_run: inputs must be numbers; got dtype {inputs.dtype}.")
    x = scale_inputs(loaded.config.data, inputs, saved["scaling"])
    return np.asarray(jax.device_get(predict(loaded.model, loaded.params, loaded.state, x)))
