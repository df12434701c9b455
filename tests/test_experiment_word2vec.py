"""experiments/word2vec.py --quick on a tiny corpus written by the test: the run folder, its
JSON, the saved vectors and the config checks (a few seconds, no shared data needed)."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fnn import embeddings as emb
from fnn.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("word2vec_experiment",
                                               ROOT / "experiments" / "word2vec.py")
study = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("word2vec_experiment", study)  # dataclasses look their module up
_spec.loader.exec_module(study)

CONFIG = """
name = "w2v_test"
data_dir = "{data}"
[corpus]
file = "tiny.txt"
min_count = 2
[word2vec]
window = 2
negative = 3
sample = 0.0
[evaluation]
neighbours = ["a0", "b1", "unknown"]
k = 3
[[runs]]
name = "sg"
"""


def write_data(folder: Path) -> None:
    rng = np.random.default_rng(0)
    topics = [[f"a{i}" for i in range(6)], [f"b{i}" for i in range(6)]]
    lines = [" ".join(rng.choice(topics[n % 2], 10)) for n in range(200)]
    (folder / "tiny.txt").write_text("\n".join(lines) + "\n")
    (folder / "ws.tsv").write_text("a0\ta1\t9\na0\tb0\t1\nb1\tb2\t8\nA0\tzebra\t5\n")
    (folder / "wordsim353.tsv").write_text("# comment\na0\ta1\t9\na0\tb0\t1\nb1\tzebra\t3\n")
    (folder / "simlex999.txt").write_text("a0\ta2\t9\na3\tb3\t1\nb1\tb2\t8\n")
    (folder / "questions-words.txt").write_text(": s\na0 a1 b0 b1\na0 a1 zebra b1\n")


@pytest.mark.slow
def test_quick_run_writes_results_vectors_and_plot(tmp_path):
    write_data(tmp_path)
    config = tmp_path / "w2v.toml"
    config.write_text(CONFIG.format(data=tmp_path))
    out = tmp_path / "run"
    assert study.main([str(config), "--quick", "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in report["runs"]] == ["sg"] and report["date"]
    for r in report["runs"]:
        assert r["vocabulary"] == 12 and r["corpus_tokens"] == 2000
        assert r["settings"]["epochs"] == 2 and r["settings"]["dim"] == 16  # --quick
        assert r["words_per_second"] > 0 and np.isfinite(r["final_loss"])
        assert r["wordsim353"]["pairs"] == 2 and r["wordsim353"]["skipped"] == 1
        assert r["simlex999"]["pairs"] == 3
        assert r["analogies"]["overall"]["answered"] == 1
        assert r["analogies"]["overall"]["skipped"] == 1
        assert set(r["neighbours"]) == {"a0", "b1"} and len(r["neighbours"]["a0"]) == 3
        history = report["histories"][r["name"]]
        assert history["epoch"][-1] == pytest.approx(2.0)
        assert history["loss"][-1] < history["loss"][0]
    # the two topics never share a line: each word's neighbours are of its own topic
    for r in report["runs"]:
        for word, neighbours in r["neighbours"].items():
            assert all(n[0] == word[0] for n, _ in neighbours), (r["name"], neighbours)
    vectors = emb.load_text(out / "vectors_sg.txt")
    assert len(vectors.words) == 12 and vectors.vectors.shape == (12, 16)
    assert (out / "config.toml").is_file()
    if study.plots_available():
        assert (out / "word2vec.png").stat().st_size > 1000


@pytest.mark.parametrize("toml, message", [
    ('[[runs]]\nname = "x"\nwindow = "5"\n', r"`runs\.x\.window` must be int"),
    ('[[runs]]\nname = "x"\narchitecture = "glove"\n', r"run `x`.*architecture must be one of"),
    ('[[runs]]\nname = "x"\n[[runs]]\nname = "x"\n', r"`runs` must list runs with distinct"),
    ('[corpus]\nmin_cont = 5\n', r"unknown config key `corpus\.min_cont`"),
    ('data_dir = "{data}"\n[corpus]\nfile = "missing.txt"\n',
     r"`corpus\.file`: text_path: 'missing.txt' not found at the path argument"),
])
def test_config_errors_name_the_key(tmp_path, toml, message):
    write_data(tmp_path)
    path = tmp_path / "bad.toml"
    path.write_text(toml.replace("{data}", str(tmp_path)))
    with pytest.raises(ConfigError, match=message):
        study.load_config(path)


def test_shipped_config_loads_and_quick_shrinks_it():
    try:
        full = study.load_config(ROOT / "configs" / "word2vec.toml")
        quick = study.load_config(ROOT / "configs" / "word2vec.toml", quick=True)
    except ConfigError as error:
        if "FNN_DATA" in str(error) or "not found" in str(error):
            pytest.skip(f"the text data is absent: {error}")
        raise
    assert [r.name for r in full.runs][:2] == ["skipgram_negative", "cbow_negative"]
    gensim_like = study.run_settings(full, full.runs[0])
    assert (gensim_like.architecture, gensim_like.loss, gensim_like.dim, gensim_like.window,
            gensim_like.negative, gensim_like.epochs) == ("skipgram", "negative", 100, 5, 5, 5)
    assert full.corpus.min_count == 5 and full.evaluation.restrict == 30_000
    assert quick.corpus.max_tokens == 8000 and quick.word2vec.epochs == 2
    assert all(r.corpus is None for r in quick.runs)
