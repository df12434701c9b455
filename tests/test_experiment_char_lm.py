"""experiments/char_lm.py as a smoke run: the --quick config on a made-up text (no data files
needed), its results.json, and sampling from the run folder."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fnn.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("char_lm", ROOT / "experiments" / "char_lm.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("char_lm", study)  # dataclasses look their module up
_spec.loader.exec_module(study)

TEXT = "ROMEO:\nto be or not to be, that is the question.\n" * 400


def test_quick_run_writes_results_and_samples(tmp_path, capsys):
    cfg = study.load_config(ROOT / "configs" / "char_lm.toml", quick=True)
    out = tmp_path / "run"
    report = study.run(cfg, out, progress=False, log=lambda *a: None, text=TEXT)
    saved = json.loads((out / "results.json").read_text())
    assert saved["alphabet"] == "".join(sorted(set(TEXT)))
    assert len(saved["history"]["val_loss"]) == 2 and saved["history"]["val_step"] == [6, 12]
    vocab = len(saved["alphabet"])
    assert saved["val_loss"] < saved["history"]["loss"][0] < 1.1 * np.log(vocab)  # it learns
    assert saved["sample"].startswith("ROMEO:") and len(saved["sample"]) == 6 + 40
    # sampling from the folder: the priming string, then `--length` characters
    capsys.readouterr()
    assert study.main(["sample", str(out), "--prime", "to ", "--length", "12", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("to ") and len(text) == 3 + 12 + 1  # print's newline
    assert report["history"]["val_step"] == [6, 12]


def test_config_checks_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\ncell = "rnn"\n')
    with pytest.raises(ConfigError, match="model.cell"):
        study.load_config(bad)
