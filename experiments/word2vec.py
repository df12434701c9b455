"""word2vec (course lecture 6): skip-gram and CBOW trained on a text corpus, then evaluated.

Each ``[[runs]]`` entry of the config trains one model with `fnn.embeddings.train` (its keys
override the ``[word2vec]`` settings, see `fnn.embeddings.Word2VecSettings`), optionally on its
own ``[runs.corpus]``, and is scored by

* word similarity: Spearman ρ between cosine similarities and the human scores of WordSim-353
  and SimLex-999, over the pairs whose words are in the vocabulary (skipped pairs counted);
* analogies ``a : b :: c : ?`` of ``questions-words.txt`` by 3CosAdd over the ``restrict`` most
  frequent words: accuracy per section, semantic, syntactic and overall, skipped questions
  (a word out of the vocabulary) counted;
* the nearest neighbours (cosine) of a few words.

Run it from the repository root (about 5 minutes for the shipped config on 2 busy cores;
``--quick`` a few seconds on a slice of ``lee_background.cor``)::

    python experiments/word2vec.py configs/word2vec.toml [--out DIR] [--quick] [--no-progress]

Text files are read from ``data_dir`` when the config sets it, else from ``$FNN_DATA/text/``.
The run folder holds ``config.toml``, ``results.json`` (every number, the settings, the date),
``vectors_<run>.txt`` (the word2vec text format) and ``word2vec.png`` (the loss of each run
against epochs, and a 2-D PCA of the first run's vectors of the query words and their
neighbours).
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

import jax
import numpy as np

from fnn import embeddings as emb
from fnn.config import ConfigError, from_dict, load as load_toml, to_dict
from fnn.experiment import experiment_main, write_json
from fnn.plots import available as plots_available, figure, save

Scalar = Union[bool, int, float, str]


# ----------------------------------------------------------------------------- config

@dataclass(frozen=True)
class CorpusConfig:
    file: str = "enwiki_sample.txt"  # a file name under data_dir or $FNN_DATA/text/
    lowercase: bool = False  # lower-case every token
    words_only: bool = False  # keep runs of letters and digits only (drop punctuation)
    min_count: int = 5
    max_tokens: int = 0  # use only the first sentences up to this many tokens (0: all)


@dataclass(frozen=True)
class RunConfig:
    """One model: a name, optionally its own corpus, and overrides of ``[word2vec]``."""

    name: str
    corpus: Optional[CorpusConfig] = None  # None: the top-level [corpus]
    options: Dict[str, Scalar] = field(default_factory=dict)
    EXTRA_KEYS = "options"


@dataclass(frozen=True)
class EvaluationConfig:
    wordsim: str = "wordsim353.tsv"
    simlex: str = "simlex999.txt"
    analogies: str = "questions-words.txt"
    restrict: int = 30_000  # analogies search the most frequent words only (word2vec.c's 30,000)
    neighbours: List[str] = field(default_factory=lambda: ["war", "music", "king", "france"])
    k: int = 8  # neighbours listed per word


@dataclass(frozen=True)
class Word2VecExperiment:
    name: str = "word2vec"
    seed: int = 0
    data_dir: str = ""  # where the text files are ("": $FNN_DATA/text)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    word2vec: emb.Word2VecSettings = field(default_factory=emb.Word2VecSettings)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    runs: List[RunConfig] = field(default_factory=lambda: [RunConfig("skipgram_negative")])


QUICK_CORPUS = {"file": "lee_background.cor", "lowercase": True, "words_only": True,
                "min_count": 3, "max_tokens": 8000}
QUICK_SETTINGS = {"dim": 16, "epochs": 2, "batch_size": 128, "steps_per_call": 8}


def load_config(path, quick: bool = False) -> Word2VecExperiment:
    """Read and check a config; ``quick`` trains every run on 8,000 tokens of
    ``lee_background.cor`` (unless the config names its own file in ``data_dir``) for 2 epochs
    with 16-dimensional vectors."""
    cfg = load_toml(path, Word2VecExperiment)
    if quick:
        corpus = QUICK_CORPUS if not cfg.data_dir else {"max_tokens": 8000}
        cfg = dataclasses.replace(
            cfg, corpus=dataclasses.replace(cfg.corpus, **corpus),
            word2vec=dataclasses.replace(cfg.word2vec, **QUICK_SETTINGS),
            runs=[dataclasses.replace(r, corpus=None, options={
                k: v for k, v in r.options.items() if k not in QUICK_SETTINGS})
                for r in cfg.runs])
    for run in cfg.runs:
        run_settings(cfg, run)
    if len({r.name for r in cfg.runs}) != len(cfg.runs) or not cfg.runs:
        raise ConfigError(f"config key `runs` must list runs with distinct names; got "
                          f"{[r.name for r in cfg.runs]}.")
    files = {"corpus.file": cfg.corpus.file, **{
        f"runs.{r.name}.corpus.file": r.corpus.file for r in cfg.runs if r.corpus}, **{
        f"evaluation.{k}": getattr(cfg.evaluation, k) for k in ("wordsim", "simlex", "analogies")}}
    for key, name in files.items():
        try:
            data_file(cfg, name)
        except FileNotFoundError as error:
            raise ConfigError(f"config key `{key}`: {error}") from None
    return cfg


def run_settings(cfg: Word2VecExperiment, run: RunConfig) -> emb.Word2VecSettings:
    """The ``[word2vec]`` settings with the run's overrides, checked (a `ConfigError` names the
    key)."""
    raw = {**dataclasses.asdict(cfg.word2vec), **run.options}
    settings = from_dict(raw, emb.Word2VecSettings, prefix=f"runs.{run.name}.")
    try:
        return settings.check()
    except ValueError as error:
        raise ConfigError(f"config of run `{run.name}`: {error}") from None


# ----------------------------------------------------------------------------- the experiment

def data_file(cfg: Word2VecExperiment, name: str) -> Path:
    """A text file of the config: under ``data_dir`` when set, else ``$FNN_DATA/text``."""
    return emb.text_path(name, Path(cfg.data_dir) / name if cfg.data_dir else None)


def load_corpus(cfg: Word2VecExperiment, corpus: CorpusConfig):
    """``(vocabulary, encoded corpus)`` of a corpus table."""
    sentences = emb.read_sentences(data_file(cfg, corpus.file), lowercase=corpus.lowercase,
                                   words_only=corpus.words_only)
    if corpus.max_tokens:
        kept, total = [], 0
        for sentence in sentences:
            if total >= corpus.max_tokens:
                break
            kept.append(sentence[: corpus.max_tokens - total])
            total += len(kept[-1])
        sentences = kept
    vocab = emb.build_vocabulary(sentences, corpus.min_count)
    return vocab, emb.encode(sentences, vocab)


def evaluate(cfg: Word2VecExperiment, vectors: emb.WordVectors) -> Dict:
    """Similarity, analogy and neighbour results of one set of vectors."""
    ev = cfg.evaluation
    result = {name: emb.word_similarity(vectors, emb.read_word_pairs(data_file(cfg, file)))
              for name, file in (("wordsim353", ev.wordsim), ("simlex999", ev.simlex))}
    result["analogies"] = emb.analogy_accuracy(
        vectors, emb.read_analogies(data_file(cfg, ev.analogies)), restrict=ev.restrict)
    known = set(vectors.words)
    result["neighbours"] = {w: [[n, round(c, 3)] for n, c in emb.nearest(vectors, w, ev.k)]
                            for w in ev.neighbours if w in known}
    return result


def run(cfg: Word2VecExperiment, out_dir, *, progress: bool = True, log=print) -> Dict:
    """Train and evaluate every run; write the run folder; return the results."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    corpora, runs, histories = {}, [], {}
    for number, spec in enumerate(cfg.runs):
        corpus_cfg = spec.corpus or cfg.corpus
        if corpus_cfg not in corpora:
            corpora[corpus_cfg] = load_corpus(cfg, corpus_cfg)
        vocab, corpus = corpora[corpus_cfg]
        settings = run_settings(cfg, spec)
        log(f"{spec.name}: {settings.architecture}, {settings.loss} loss, "
            f"{len(corpus.ids):,} tokens of {corpus_cfg.file}, "
            f"{len(vocab.words):,} words")
        result = emb.train(corpus, vocab, jax.random.fold_in(jax.random.PRNGKey(cfg.seed),
                                                              number),
                           settings, progress=progress)
        vectors = emb.word_vectors(result.params, vocab)
        emb.save_text(out / f"vectors_{spec.name}.txt", vectors)
        scores = evaluate(cfg, vectors)
        histories[spec.name] = result.history
        runs.append({"name": spec.name, "corpus": dataclasses.asdict(corpus_cfg),
                     "vocabulary": len(vocab.words), "corpus_tokens": corpus.raw_tokens,
                     "settings": dataclasses.asdict(settings),
                     "train_seconds": round(result.seconds, 2),
                     "words_per_second": round(result.words_per_second),
                     "examples": result.examples, "final_loss": result.history["loss"][-1],
                     **scores})
        log(format_run(runs[-1]))
    report = {"name": cfg.name, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "seconds": round(time.perf_counter() - started, 1), "config": to_dict(cfg),
              "notes": ("words_per_second counts every corpus token (out-of-vocabulary ones "
                        "too) times epochs over the training wall time, compilation included. "
                        "Similarity: Spearman over the pairs with both words in the vocabulary "
                        "(lower-cased). Analogies: 3CosAdd over the `restrict` most frequent "
                        "words, a, b, c excluded; accuracy = correct / answered."),
              "runs": runs, "histories": histories}
    write_json(out / "results.json", report)
    if plots_available():
        plot(report, emb.load_text(out / f"vectors_{cfg.runs[0].name}.txt"), cfg,
             out / "word2vec.png")
    return report


def format_run(r: Dict) -> str:
    analogies = r["analogies"]["overall"]
    lines = [f"  {r['words_per_second']:,} words/s, loss {r['final_loss']:.3f}; WordSim-353 ρ "
             f"{r['wordsim353']['spearman']:.3f} ({r['wordsim353']['pairs']} pairs), SimLex-999 "
             f"ρ {r['simlex999']['spearman']:.3f} ({r['simlex999']['pairs']} pairs); analogies "
             f"{analogies['correct']}/{analogies['answered']} = {analogies['accuracy']:.2%} "
             f"({analogies['skipped']} skipped)"]
    lines += [f"  {w}: {', '.join(n for n, _ in ns)}" for w, ns in r["neighbours"].items()]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plot

def pca_2d(matrix) -> np.ndarray:
    """Rows of ``matrix`` (N, D) projected on its first two principal axes: (N, 2)."""
    centred = matrix - matrix.mean(0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    return centred @ axes[:2].T


def plot(report: Dict, vectors: emb.WordVectors, cfg: Word2VecExperiment, path) -> Path:
    """Loss against epochs for every run; PCA of the query words and their neighbours."""
    fig = figure("word2vec", figsize=(13, 5.5), layout="constrained")
    loss_ax, pca_ax = fig.subplots(1, 2, width_ratios=[1, 1.3])
    for r in report["runs"]:
        h = report["histories"][r["name"]]
        loss_ax.plot(h["epoch"], h["loss"], label=f"{r['name']} ({r['vocabulary']:,} words)")
    loss_ax.set(xlabel="epoch", ylabel="mean loss per example", title="training loss")
    loss_ax.grid(alpha=0.3)
    loss_ax.legend(fontsize=8)
    first = report["runs"][0]
    index = {w: i for i, w in enumerate(vectors.words)}
    groups = [[q] + [n for n, _ in ns[:5]] for q, ns in first["neighbours"].items()]
    words = [w for g in groups for w in g]
    if words:
        points = pca_2d(emb.vectors.unit_rows(vectors.vectors[[index[w] for w in words]]))
        start = 0
        for number, group in enumerate(groups):
            xy = points[start:start + len(group)]
            pca_ax.scatter(xy[:, 0], xy[:, 1], color=f"C{number}", s=18)
            for word, (x, y) in zip(group, xy):
                pca_ax.annotate(word, (x, y), fontsize=8, color=f"C{number}",
                                fontweight="bold" if word == group[0] else "normal")
            start += len(group)
    pca_ax.set(title=f"{first['name']}: PCA of unit vectors (query words in bold, 5 cosine "
                     f"neighbours each)", xlabel="PC 1", ylabel="PC 2")
    pca_ax.title.set_fontsize(9)
    pca_ax.grid(alpha=0.3)
    fig.suptitle(f"word2vec on {first['corpus']['file']}", fontsize=10)
    return save(fig, path)


# ----------------------------------------------------------------------------- command line

def main(argv=None) -> int:
    return experiment_main(argv, name="word2vec", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run,
                           quick="2 epochs of 16-dimensional vectors on 8,000 tokens")


if __name__ == "__main__":
    sys.exit(main())
