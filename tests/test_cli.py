"""`fnn run`: a config in, a run folder out; a bad config, a bad folder or bad data stops with one
line naming the problem, and an interrupted run resumes to exactly the files of an uninterrupted one."""
import json
import runpy
import sys
from pathlib import Path

import pytest

import fnn
from fnn import checkpoint, plots
from fnn.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.toml"

TINY = """\
# A run small enough for a test: XOR, 80 points, one hidden layer of 8.
name = "tiny"
seed = 0

[data]
dataset = "xor"
samples = 80
validation_size = 16
scaling = "standardize"

[model]
hidden = [8]

[optimizer]
name = "sgd"
learning_rate = 0.1

[train]
epochs = 2
batch_size = 16
"""


def tiny_config(folder, text=TINY, name="tiny.toml") -> Path:
    """Write a config file (by default `TINY`) and return its path."""
    path = Path(folder) / name
    path.write_text(text)
    return path


@pytest.fixture
def no_plots(monkeypatch):
    """Runs without PNGs (drawing them is half the time of a tiny run); the plots are tested once."""
    monkeypatch.setattr(plots, "available", lambda: False)


def snapshot(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


def metrics_lines(folder) -> list:
    return (Path(folder) / "metrics.jsonl").read_text().splitlines()


def test_run_writes_a_complete_run_folder(tmp_path):
    out = tmp_path / "run"
    assert main(["run", str(tiny_config(tmp_path)), "--out", str(out), "--no-progress"]) == 0
    assert {p.name for p in out.iterdir()} == {"config.toml", "metrics.jsonl", "checkpoint.npz",
                                               "model.npz", "results.json", "curves.png",
                                               "boundary.png"}
    assert (out / "config.toml").read_text() == TINY  # the file as given, comments and all
    lines = [json.loads(line) for line in metrics_lines(out)]  # strict JSON: json.loads rejects NaN
    assert [line["epoch"] for line in lines] == [1, 2]
    results = json.loads((out / "results.json").read_text())
    assert 0.0 <= results["test_accuracy"] <= 1.0 and results["epochs_run"] == 2
    assert results["config"]["train"]["epochs"] == 2


def test_a_run_folder_is_never_lost(tmp_path, capsys, no_plots):
    """Refused without --resume or --overwrite; --resume with another config names the keys;
    a corrupt checkpoint is one line; in each case nothing in the folder changes."""
    config, out = tiny_config(tmp_path), tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--no-progress", "--set", "train.epochs=1",
                 "--set", "model.hidden=[8]", "--set", "optimizer.name=sgd"]) == 0
    saved = out / "config.toml"  # the config as run: the file with the overrides
    assert saved.read_text().startswith(f"# fnn run {config} --set train.epochs=1 --set ")
    assert fnn.config.load(saved) == fnn.config.load(config, overrides={"train": {"epochs": 1}})
    before = snapshot(out)
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(out), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"fnn run: {out} already holds a run (config.toml, metrics.jsonl, ")
    assert "--resume" in error and "--out" in error and "--overwrite" in error
    assert snapshot(out) == before  # nothing lost: the code before 2026-11-29 truncated metrics.jsonl

    other = tiny_config(tmp_path, TINY.replace("hidden = [8]", "hidden = [4]"), "other.toml")
    assert main(["run", str(other), "--out", str(out), "--resume", "--no-progress",
                 "--set", "optimizer.momentum=0.9"]) == 2
    error = capsys.readouterr().err
    assert "the config differs from the run's config.toml at `model.hidden` [8] -> [4]; " \
           "`optimizer.momentum` (absent) -> 0.9." in error
    assert "Only train.epochs, data.data_dir may change on resume" in error
    assert snapshot(out) == before

    # --resume may raise train.epochs (the file says 2)
    assert main(["run", str(config), "--out", str(out), "--no-progress", "--resume"]) == 0
    assert [json.loads(line)["epoch"] for line in metrics_lines(out)] == [1, 2]
    assert saved.read_text() == TINY

    (out / "checkpoint.npz").write_bytes(b"not a zip file")
    before = snapshot(out)
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(out), "--resume", "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"fnn run: load: {out / 'checkpoint.npz'} is truncated or not an .npz")
    assert error.count("\n") == 1 and snapshot(out) == before

    assert main(["run", str(config), "--out", str(out), "--no-progress", "--overwrite",
                 "--set", "train.epochs=1"]) == 0
    assert [json.loads(line)["epoch"] for line in metrics_lines(out)] == [1]


def test_resume_after_a_kill_between_the_metrics_line_and_the_checkpoint(tmp_path, monkeypatch,
                                                                         no_plots):
    """Killed after epoch 2's metrics line was written but before its checkpoint was saved:
    the resumed run's metrics.jsonl equals an uninterrupted run's (no epoch twice)."""
    config = tiny_config(tmp_path)
    assert main(["run", str(config), "--out", str(tmp_path / "whole"), "--no-progress"]) == 0
    real_save, saves = checkpoint.save, []

    def killed_at_the_second_epoch_end(path, tree):
        saves.append(path)
        if Path(path).name == "checkpoint.npz" and len(saves) == 2:
            raise KeyboardInterrupt  # the line of epoch 2 is written, its checkpoint is not
        return real_save(path, tree)

    out = tmp_path / "killed"
    monkeypatch.setattr(checkpoint, "save", killed_at_the_second_epoch_end)
    assert main(["run", str(config), "--out", str(out), "--no-progress"]) == 130
    monkeypatch.setattr(checkpoint, "save", real_save)
    assert len(metrics_lines(out)) == 2  # one epoch more than the checkpoint holds
    assert main(["run", str(config), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert metrics_lines(out) == metrics_lines(tmp_path / "whole")


def _write(path, text):
    path.write_text(text)
    return path


ERRORS = [  # (argv after "run CONFIG", config text, status, the message's start)
    ([], "", 2, "config file {config} is empty; a run config needs the tables [data], [model]"),
    ([], "[train]\nepochs = 1\n", 2, "config file {config} has no [data] and no [model]"),
    ([], TINY.replace("epochs = 2", 'epochs = "ten"'), 2,
     "config key `train.epochs` must be int; got 'ten' (str)"),
    (["--set", "train.epoch=5"], TINY, 2, "unknown config key `train.epoch`"),
    (["--set", "train.epochs"], TINY, 2, "--set expects KEY=VALUE"),
    (["--set", "data.samples=1"], TINY, 2, "config key `data.samples` must be >= 2; got 1"),
    (["--set", "data.test_fraction=0.001"], TINY, 2,
     "config keys `data.samples` = 80 and `data.test_fraction` = 0.001 leave 0 test"),
    (["--set", "data.validation_size=60"], TINY, 2, "config key `data.validation_size` = 60 "
                                                    "leaves no training examples"),
    (["--set", "model.hidden=[0]"], TINY, 2, "config key `model.hidden` must list positive sizes"),
    (["--resume"], TINY, 2, "{out} holds no run to resume (no config.toml)"),
    (["--set", "parallel.data=2"], TINY, 2, "config keys `parallel.data` × `parallel.model` "
                                             "must use all 1 devices"),
    (["--set", "parallel.model=0"], TINY, 2, "config key `parallel.model` must be >= 1; got 0"),
    (["--processes", "2"], TINY, 2, "--processes 2 needs --coordinator HOST:PORT"),
    (["--process-id", "1"], TINY, 2, "--process-id needs --processes N > 1."),
    (["--processes", "2", "--process-id", "2", "--coordinator", "localhost:5000"], TINY, 2,
     "--process-id must be in 0 … 1; got 2."),
    (["--processes", "2", "--process-id", "0", "--coordinator", "localhost"], TINY, 2,
     "--coordinator must be HOST:PORT; got 'localhost'."),
    (["--cpu-devices", "0"], TINY, 2, "--cpu-devices must be >= 1; got 0."),
]


@pytest.mark.parametrize("argv, text, status, message", ERRORS,
                         ids=[m[:30] for *_, m in ERRORS])
def test_errors_are_one_line_and_leave_no_run_folder(tmp_path, capsys, argv, text, status, message):
    config, out = _write(tmp_path / "c.toml", text), tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), *argv]) == status
    error = capsys.readouterr().err
    assert error.startswith("fnn run: " + message.format(config=config, out=out)), error
    assert "Traceback" not in error and error.count("\n") == 1
    assert not out.exists()


def test_missing_mnist_names_data_dir_and_never_downloads(tmp_path, capsys, monkeypatch):
    from fnn.data import mnist
    monkeypatch.setattr(mnist, "MIRRORS", ())  # no network in tests
    monkeypatch.delenv("FNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = _write(tmp_path / "m.toml", TINY.replace('"xor"', '"mnist"'))
    out, nowhere = tmp_path / "run", tmp_path / "nowhere"
    assert main(["run", str(config), "--out", str(out), "--data-dir", str(nowhere)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("fnn run: load_mnist: found neither train-images-idx3-ubyte")
    assert f"{nowhere}  (the `data_dir` argument)" in error  # --data-dir reached the loader
    assert "set `data_dir` in its [data] table, or pass fnn run --data-dir DIR" in error
    assert "Traceback" not in error and not out.exists()


def test_debug_prints_the_traceback(tmp_path, capsys):
    config = _write(tmp_path / "c.toml", "")
    assert main(["run", str(config), "--debug"]) == 2
    error = capsys.readouterr().err
    assert "Traceback (most recent call last)" in error and error.endswith(
        "fnn run: config file " + str(config) + " is empty; a run config needs the tables "
        "[data], [model] (e.g. configs/quickstart.toml).\n")


def test_a_diverged_run_exits_non_zero_and_its_curves_say_so(tmp_path, capsys, monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, "plot_history", lambda history, path, **kw: drawn.append(kw))
    out = tmp_path / "run"
    assert main(["run", str(tiny_config(tmp_path)), "--out", str(out), "--no-progress",
                 "--set", "optimizer.learning_rate=1e30"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("fnn run: fit: the training loss became ") and "epoch 1" in error
    assert drawn and drawn[0]["note"].startswith("training diverged: the training loss became")
    assert not (out / "results.json").exists()


def test_a_parallel_section_trains_over_a_mesh(tmp_path, capsys, no_plots):
    """``[parallel]`` sends `fit` a mesh (here of the one device): the same training as without
    (the 8-device and two-process comparisons are in tests/test_parallel.py)."""
    plain, meshed = tmp_path / "plain", tmp_path / "meshed"
    assert main(["run", str(tiny_config(tmp_path)), "--out", str(plain), "--quiet"]) == 0
    assert main(["run", str(tiny_config(tmp_path)), "--out", str(meshed), "--no-progress",
                 "--set", "parallel.data=1"]) == 0
    assert "(data-parallel over a mesh of {'data': 1, 'model': 1} devices, 1 process)" in capsys.readouterr().out
    for a, b in zip(metrics_lines(plain), metrics_lines(meshed)):
        a, b = json.loads(a), json.loads(b)
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-5) for k in a)


def test_several_processes_need_the_run_folder(capsys):
    assert main(["run", str(QUICKSTART), "--processes", "2", "--process-id", "0",
                 "--coordinator", "localhost:5000"]) == 2
    assert "--processes 2 needs --out: the run folder" in capsys.readouterr().err


def test_resume_needs_the_run_folder(capsys):
    assert main(["run", str(QUICKSTART), "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"fnn {fnn.__version__}\n"


def test_python_dash_m_fnn_is_the_same_command(monkeypatch, capsys):
    # `python -m fnn` runs fnn/__main__.py as "__main__", as runpy does here (in this process: a
    # new interpreter costs seconds of importing JAX and tests nothing more).
    monkeypatch.setattr(sys, "argv", ["fnn", "run", "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("fnn", run_name="__main__")
    out = capsys.readouterr().out
    assert done.value.code == 0 and "--resume" in out and "--overwrite" in out


def test_cv_scores_every_fold_and_writes_them(tmp_path, capsys):
    out = tmp_path / "cv.json"
    assert main(["cv", str(tiny_config(tmp_path)), "--folds", "2", "--out", str(out),
                 "--set", "train.epochs=1"]) == 0
    scores = json.loads(out.read_text())
    assert len(scores["scores"]["accuracy"]) == 2
    assert scores["mean"]["accuracy"] == pytest.approx(sum(scores["scores"]["accuracy"]) / 2)
    assert "2-fold cross-validation: accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("folds, message", [
    (1, "--folds must be at least 2; got 1"),
    (61, "cross_validate_config: `folds` (fnn cv --folds) = 61 is more than the 60 training "
         "examples"),
])
def test_cv_folds_are_checked(tmp_path, capsys, folds, message):
    assert main(["cv", str(tiny_config(tmp_path)), "--folds", str(folds)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("fnn cv: " + message) and "Traceback" not in error


def test_write_json_is_strict_json(tmp_path):
    import numpy as np

    from fnn.experiment import write_json
    path = write_json(tmp_path / "r.json", {"loss": [1.0, float("nan")], "best": np.float32(0.5),
                                            "curve": np.array([np.inf, 2.0]), "run": (1, "a")})
    assert json.loads(path.read_text()) == {"loss": [1.0, None], "best": 0.5,
                                            "curve": [None, 2.0], "run": [1, "a"]}
