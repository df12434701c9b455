"""`fnn run`: a config in, a run folder out; a bad config stops before any training."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fnn.cli import main

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.toml"


def _short_quickstart(tmp_path, epochs=3):
    text = QUICKSTART.read_text().replace("epochs = 200", f"epochs = {epochs}")
    assert text != QUICKSTART.read_text(), "the quickstart config changed: update this test"
    path = tmp_path / "quick.toml"
    path.write_text(text)
    return path


def test_run_writes_a_complete_run_folder(tmp_path):
    out = tmp_path / "run"
    assert main(["run", str(_short_quickstart(tmp_path)), "--out", str(out), "--no-progress"]) == 0
    assert {p.name for p in out.iterdir()} >= {"config.toml", "metrics.jsonl", "checkpoint.npz",
                                               "results.json", "curves.png"}
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    results = json.loads((out / "results.json").read_text())
    assert 0.0 <= results["test_accuracy"] <= 1.0 and results["epochs_run"] == 3
    assert results["config"]["train"]["epochs"] == 3


def test_resume_continues_the_run(tmp_path):
    out = tmp_path / "run"
    main(["run", str(_short_quickstart(tmp_path, 2)), "--out", str(out), "--no-progress"])
    longer = _short_quickstart(tmp_path, 4)
    assert main(["run", str(longer), "--out", str(out), "--resume", "--no-progress"]) == 0
    epochs = [json.loads(l)["epoch"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]


def test_a_bad_config_is_rejected_with_the_key_named(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[train]\nepochs = "ten"\n')
    assert main(["run", str(bad), "--out", str(tmp_path / "never")]) == 2
    assert "config key `train.epochs` must be int; got 'ten' (str)" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_resume_needs_the_run_folder(capsys):
    assert main(["run", str(QUICKSTART), "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_python_dash_m_fnn_is_the_same_command():
    done = subprocess.run([sys.executable, "-m", "fnn", "run", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "--resume" in done.stdout


def test_cv_scores_every_fold_and_writes_them(tmp_path, capsys):
    out = tmp_path / "cv.json"
    assert main(["cv", str(_short_quickstart(tmp_path, 2)), "--folds", "3", "--out", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert len(scores["scores"]["accuracy"]) == 3
    assert scores["mean"]["accuracy"] == pytest.approx(sum(scores["scores"]["accuracy"]) / 3)
    assert "3-fold cross-validation: accuracy" in capsys.readouterr().out


def test_cv_needs_two_folds(tmp_path, capsys):
    assert main(["cv", str(_short_quickstart(tmp_path, 2)), "--folds", "1"]) == 2
    assert "--folds must be at least 2; got 1" in capsys.readouterr().err


def test_write_json_is_strict_json(tmp_path):
    import numpy as np

    from fnn.experiment import write_json
    path = write_json(tmp_path / "r.json", {"loss": [1.0, float("nan")], "best": np.float32(0.5),
                                            "curve": np.array([np.inf, 2.0]), "run": (1, "a")})
    assert json.loads(path.read_text()) == {"loss": [1.0, None], "best": 0.5,
                                            "curve": [None, 2.0], "run": [1, "a"]}
