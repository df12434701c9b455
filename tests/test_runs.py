"""A finished run folder back in Python and on the command line (`fnn.load_run`, `fnn evaluate`,
`fnn predict`), and the run-folder helpers of fnn.experiment: strict metrics lines, truncation
on resume, config differences, the experiments' --out guard, and plots of a diverged run."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_cli import TINY, tiny_config

import fnn
from fnn import plots
from fnn.cli import main
from fnn.config import from_dict
from fnn.experiment import (RunFolderError, check_run_folder, config_differences, experiment_main,
                            load_splits, metrics_line, read_metrics, run_keys, truncate_metrics)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 1-epoch tiny run (no plots) and its config path."""
    folder = tmp_path_factory.mktemp("finished")
    config = tiny_config(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "available", lambda: False)
        assert main(["run", str(config), "--out", str(folder / "run"), "--no-progress",
                     "--set", "train.epochs=1"]) == 0
    return folder / "run"


def test_load_run_gives_the_trained_model(finished):
    model, params, state, config = fnn.load_run(finished)
    assert config.name == "tiny" and config.train.epochs == 1
    assert params["dense_0"]["w"].shape == (2, 8) and params["dense_1"]["w"].shape == (8, 2)
    saved = fnn.checkpoint.load(finished / "model.npz")
    np.testing.assert_array_equal(params["dense_1"]["w"], saved["params"]["dense_1"]["w"])
    x = np.array([[0.5, -1.0], [2.0, 0.0]], np.float32)
    scores = np.asarray(fnn.predict(model, params, state, x))
    # the same as the run's model applied by hand: relu(x W0 + b0) W1 + b1
    p = {k: {n: np.asarray(a, np.float64) for n, a in v.items()} for k, v in params.items()}
    hidden = np.maximum(x @ p["dense_0"]["w"] + p["dense_0"]["b"], 0)
    np.testing.assert_allclose(scores, hidden @ p["dense_1"]["w"] + p["dense_1"]["b"], rtol=1e-5,
                               atol=1e-6)


def test_fnn_evaluate_repeats_the_runs_test_scores(finished, tmp_path, capsys):
    out = tmp_path / "scores.json"
    assert main(["evaluate", str(finished), "--out", str(out)]) == 0
    results = json.loads((finished / "results.json").read_text())
    scores = json.loads(out.read_text())
    for key in ("test_loss", "test_accuracy", "test_macro_f1", "confusion_matrix"):
        assert scores[key] == results[key], key
    assert f"test accuracy {results['test_accuracy']:.4f}" in capsys.readouterr().out


def test_fnn_predict_scales_raw_inputs_as_the_run_did(finished, tmp_path, capsys):
    raw = np.array([[0.5, -1.0], [2.0, 0.0], [-0.3, 0.3]], np.float32)
    np.save(tmp_path / "x.npy", raw)
    assert main(["predict", str(finished), str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "p.npy")]) == 0
    model, params, state, config = fnn.load_run(finished)
    stats = fnn.checkpoint.load(finished / "model.npz")["scaling"]
    # [data] scaling = "standardize", fitted on the run's training inputs only
    x_train = np.asarray(load_splits(config.data, run_keys(config.seed)[0])["train"][0], np.float64)
    np.testing.assert_allclose(stats.shift, x_train.mean(0, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(stats.scale, x_train.std(0, keepdims=True), rtol=1e-5)
    x = (raw - np.asarray(stats.shift)) / np.asarray(stats.scale)
    expected = np.asarray(fnn.predict(model, params, state, x))
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, rtol=1e-6)
    capsys.readouterr()
    assert main(["predict", str(finished), str(tmp_path / "x.npy")]) == 0
    assert capsys.readouterr().out.split() == [str(k) for k in expected.argmax(-1)]
    np.save(tmp_path / "bad.npy", raw[:, :1])
    assert main(["predict", str(finished), str(tmp_path / "bad.npy")]) == 1
    assert capsys.readouterr().err == (f"fnn predict: predict_run: {finished} takes inputs of "
                                       "shape (N, 2); got (3, 1).\n")


def test_a_folder_without_a_finished_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (f"fnn evaluate: load_run: {tmp_path} is not a run folder "
                                       "(no config.toml).\n")
    (tmp_path / "config.toml").write_text(TINY)
    with pytest.raises(FileNotFoundError, match="has no model.npz: the run did not finish"):
        fnn.load_run(tmp_path)


# --- run-folder helpers -----------------------------------------------------------------------


def test_metrics_lines_are_strict_json():
    line = metrics_line(3, {"loss": math.nan, "accuracy": np.float32(0.5), "val_loss": math.inf})
    assert line.endswith("\n") and "NaN" not in line and "Infinity" not in line
    assert json.loads(line) == {"epoch": 3, "loss": None, "accuracy": 0.5, "val_loss": None}


def test_truncate_metrics_keeps_the_checkpointed_epochs(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(metrics_line(e, {"loss": 1.0 / e}) for e in (1, 2, 3)))
    truncate_metrics(path, 2)
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [1, 2]
    assert read_metrics(path) == {"loss": [1.0, 0.5]}
    truncate_metrics(path, 0)
    assert path.read_text() == ""
    truncate_metrics(tmp_path / "absent.jsonl", 1)  # nothing to cut: no error


def test_config_differences_name_every_changed_key():
    old = from_dict({"train": {"epochs": 2}, "optimizer": {"momentum": 0.9}})
    new = from_dict({"train": {"epochs": 5}, "model": {"hidden": [4]},
                     "early_stopping": {"patience": 2}})
    differences = config_differences(old, new)
    assert differences["train.epochs"] == (2, 5) and differences["model.hidden"] == ([300, 100], [4])
    assert differences["early_stopping"][1] is None or differences["early_stopping"][0] is None
    assert differences["early_stopping.patience"][1] == 2
    assert differences["optimizer.momentum"][0] == 0.9
    assert config_differences(old, old) == {}


def test_check_run_folder(tmp_path):
    check_run_folder(tmp_path / "new")  # a new folder is fine
    check_run_folder(tmp_path)  # so is an empty one
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(RunFolderError, match=r"already holds a run \(results.json\)"):
        check_run_folder(tmp_path)
    check_run_folder(tmp_path, overwrite=True)
    with pytest.raises(RunFolderError, match="give one of them"):
        check_run_folder(tmp_path, resume=True, overwrite=True)


def test_experiments_refuse_an_out_folder_that_holds_a_run(tmp_path, capsys):
    class Cfg:
        name = "demo"

    def run(config, out, progress):
        (out / "results.json").write_text(json.dumps({"runs": len(calls) + 1}))
        calls.append(out)

    calls = []
    config = tmp_path / "demo.toml"
    config.write_text("x = 1\n")
    argv = [str(config), "--out", str(tmp_path / "out")]
    kwargs = dict(name="demo", description="d", load_config=lambda path, quick: Cfg(), run=run,
                  quick="q")
    assert experiment_main(argv, **kwargs) == 0
    assert experiment_main(argv, **kwargs) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"demo: {tmp_path / 'out'} already holds a run (config.toml, "
                            "results.json)") and "--overwrite" in error
    assert len(calls) == 1 and json.loads((tmp_path / "out" / "results.json").read_text()) == {"runs": 1}
    assert experiment_main([*argv, "--overwrite"], **kwargs) == 0 and len(calls) == 2


# --- plots of a run ---------------------------------------------------------------------------


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions would save, kept instead of written."""
    kept = []
    monkeypatch.setattr(plots, "save", lambda fig, path: kept.append(fig) or Path(path))
    return kept


def test_a_diverged_history_is_drawn_with_a_note(figures):
    history = {"loss": [1.0, 0.5, math.nan], "accuracy": [0.5, 0.7, 0.5],
               "val_loss": [1.1, math.inf, math.nan]}
    assert plots.nonfinite_note("loss", history["loss"]) == "loss: nan from epoch 3 (not drawn)"
    assert plots.nonfinite_note("accuracy", history["accuracy"]) is None
    plots.plot_history(history, "curves.png", note="training diverged: at epoch 4, batch 2")
    texts = [figures[0]._suptitle.get_text()]
    assert texts == ["training diverged: at epoch 4, batch 2\nloss: nan from epoch 3 (not drawn)\n"
                     "val_loss: inf from epoch 2 (not drawn)"]
    note = "training diverged: the training loss became nan at epoch 1, batch 2 of 3"
    plots.plot_history({}, "curves.png", title="tiny", note=note)
    (ax,) = figures[1].axes
    assert ax.get_title() == "tiny (no finished epoch)"
    assert [t.get_text().replace("\n", " ") for t in ax.texts] == [note]


def test_the_decision_boundary_has_a_legend(figures):
    x = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]], np.float32)
    plots.plot_decision_boundary(lambda g: np.stack([g[:, 0], 1 - g[:, 0]], 1),
                                 (x, np.array([0, 1, 1])), "boundary.png", resolution=20)
    legend = figures[0].axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["class 0", "class 1",
                                                          "shade: predicted class"]


def test_a_resumable_experiment_resumes_only_its_own_config(tmp_path, capsys):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Steps:
        name: str = "steps"
        steps: int = 10

    def run(config, out, progress):
        calls.append(config)
        (out / "results.json").write_text("{}")

    calls = []
    kwargs = dict(name="steps", description="d", quick="q", run=run, resumable=True,
                  load_config=lambda path, quick: fnn.config.load(path, Steps))
    config = tiny_config(tmp_path, "steps = 10\n", "steps.toml")
    out = tmp_path / "out"
    argv = [str(config), "--out", str(out)]
    assert experiment_main(argv, **kwargs) == 0
    assert experiment_main(argv, **kwargs) == 2
    assert "Continue it with --resume" in capsys.readouterr().err
    assert experiment_main([*argv, "--resume"], **kwargs) == 0 and len(calls) == 2
    config.write_text("steps = 20\n")
    assert experiment_main([*argv, "--resume"], **kwargs) == 2
    assert "the config differs from the run's config.toml at `steps` 10 -> 20" in \
        capsys.readouterr().err
    assert len(calls) == 2 and (out / "config.toml").read_text() == "steps = 10\n"
