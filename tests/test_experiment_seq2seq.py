"""experiments/seq2seq.py: the date task (deterministic for a seed, each source read back by
`strptime` gives its target, held-out days never trained on, padding masked) and the --quick run
writing its JSON (about 10 s: fit compiles the gradient of the scanned encoder-decoder)."""
import datetime
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fnn.config import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("seq2seq_experiment",
                                               ROOT / "experiments" / "seq2seq.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("seq2seq_experiment", study)  # dataclasses look their module up
_spec.loader.exec_module(study)


def test_the_date_task_is_deterministic_and_its_labels_are_right():
    cfg = from_dict({"first_year": 1999, "last_year": 2001, "validation_size": 50,
                     "test_size": 60}, study.Seq2seqConfig)
    train, val, test = study.split_days(cfg)
    assert len(train) + len(val) + len(test) == 365 * 3 + 1 and (len(val), len(test)) == (50, 60)
    assert not set(train) & (set(val) | set(test)) and not set(val) & set(test)
    assert study.split_days(cfg) == (train, val, test)
    examples = study.date_examples(train, 300, seed=7)
    assert examples == study.date_examples(train, 300, seed=7)
    assert examples != study.date_examples(train, 300, seed=8)
    assert {fmt for _, _, fmt in examples} == set(study.FORMATS)
    for source, target, fmt in examples:  # the format's inverse reads back the target's day
        day = datetime.datetime.strptime(source, study.STRPTIME[fmt]).date()
        assert day.isoformat() == target and day in set(train)
    assert study.FORMATS["Weekday, d Month yyyy"](datetime.date(2026, 11, 29)) == \
        "Sunday, 29 November 2026"
    assert study.FORMATS["d Mon yyyy"](datetime.date(2026, 11, 29)) == "29 Nov 2026"


def test_encoding_pads_masks_and_reads_back():
    ids, mask = study.encode_sources(["1 Jan 2000", "May 5, 1999"], 12)
    assert ids.shape == mask.shape == (2, 12) and ids.dtype == np.int32
    np.testing.assert_array_equal(mask.sum(1), [10, 11])
    assert (ids[mask == 0] == study.PAD).all() and (ids[mask == 1] > 0).all()
    y = study.encode_targets(["2000-01-01", "1999-05-05"])
    assert y.shape == (2, 10) and y.min() >= 1
    assert study.decode_targets(y) == ["2000-01-01", "1999-05-05"]
    batch, formats = study.make_split([("1 Jan 2000", "2000-01-01", "d Mon yyyy")], 12)
    source, decoder_in = batch.inputs
    np.testing.assert_array_equal(decoder_in[0], np.concatenate([[study.START], y[0, :-1]]))
    np.testing.assert_array_equal(batch.seq_mask["source"], mask[:1])


def test_config_names_bad_keys(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('formats = ["yyyy/dd/mm"]\n')
    with pytest.raises(ConfigError, match="config key `formats` must list some of"):
        study.load_config(path)
    path.write_text('first_year = 2000\nlast_year = 2000\ntest_size = 366\n')
    with pytest.raises(ConfigError, match="must leave days to train on"):
        study.load_config(path)


@pytest.mark.slow  # fit compiles the scanned encoder-decoder's gradient: ~8 s of CPU at least
def test_quick_run_writes_its_results(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "plot", lambda *a, **k: None)
    out = tmp_path / "run"
    assert study.main([str(ROOT / "configs" / "seq2seq.toml"), "--quick", "--no-progress",
                       "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["config"]["train_size"] == 96 and r["test_examples"] == 32
    assert r["model"].startswith("seq2seq(43 -> 12, gru")
    assert 0 <= r["exact_match"] <= r["token_accuracy"] <= 1
    assert len(r["history"]["loss"]) == len(r["history"]["val_loss"]) == 1
    assert set(r["exact_match_by_format"]) <= set(study.FORMATS)
    for e in r["examples"]:
        assert len(e["decoded"]) == 10 and e["right"] == (e["decoded"] == e["target"])
