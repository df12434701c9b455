"""experiments/hello.py --quick: the course's "hello" vocabulary and sequences, and the run
writing both score matrices to its JSON (the learning itself: test_recurrent.py's
test_the_hello_example_learns)."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("hello_experiment",
                                               ROOT / "experiments" / "hello.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("hello_experiment", study)  # dataclasses look their module up
_spec.loader.exec_module(study)


@pytest.mark.slow  # fit and init compile: ~5 s of CPU without the compilation cache
def test_quick_run_writes_the_scores_before_and_after(tmp_path, monkeypatch):
    assert study.vocabulary("hello") == ["h", "e", "l", "o"]
    x, y = study.sequences("hello")
    np.testing.assert_array_equal(x, [[0, 1, 2, 2]])  # h e l l
    np.testing.assert_array_equal(y, [[1, 2, 2, 3]])  # e l l o
    monkeypatch.setattr(study, "plot", lambda *a, **k: None)
    out = tmp_path / "run"
    assert study.main([str(ROOT / "configs" / "hello.toml"), "--quick", "--no-progress",
                       "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["config"]["hidden"] == 3 and r["config"]["updates"] == 20
    assert r["parameters"] == (4 * 3 + 3 * 3 + 3) + (3 * 4 + 4)  # Nd + N² + N, then Dense
    for when in ("before", "after"):
        scores = np.asarray(r[f"scores_{when}"])
        assert scores.shape == (4, 4)
        assert r[f"predicted_{when}"] == "".join("helo"[i] for i in scores.argmax(1))
        np.testing.assert_allclose(np.asarray(r[f"probabilities_{when}"]).sum(1), 1, rtol=1e-5)
    assert not np.allclose(r["scores_before"], r["scores_after"])
    assert len(r["loss"]) == 20 and r["loss"][-1] < r["loss"][0]
