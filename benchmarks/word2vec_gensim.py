"""fnn's word2vec against gensim's on the same corpus and settings: speed and quality.

    python benchmarks/word2vec_gensim.py [--corpus PATH] [--seeds 3] [--json PATH]

Runs in a separate environment that has gensim (never a dependency of fnn)::

    python3 -m venv /work/bench-venv
    /work/bench-venv/bin/pip install gensim numpy scipy
    /work/bench-venv/bin/pip install -e .          # fnn and jax
    FNN_DATA=../shared/data /work/bench-venv/bin/python benchmarks/word2vec_gensim.py

Both train skip-gram with negative sampling (5 noise words, unigram^0.75), window 5 (random
shrink), 100 dimensions, min count 5, subsampling 1e-3, 5 epochs, learning rate 0.025 decaying
linearly to 1e-4, on the same sentences (``enwiki_sample.txt``, one article per line, cut into
pieces of at most 10,000 tokens as gensim's ``LineSentence`` does). gensim uses 2 worker threads.
The two are run alternately (gensim first for even seeds, fnn first for odd), so that a change of
the machine's load hits both.

Speed: words per second = corpus tokens (out-of-vocabulary ones included, gensim's
``raw_word_count``) × epochs / wall time of training. Vocabulary building is not timed for
either; fnn's time includes compiling its jitted step (once per run). CPU seconds of the process
are reported too (the machine is shared: wall time depends on the others' load).

Quality, the same protocol for both (fnn.embeddings.evaluate on each model's input vectors):
Spearman ρ of cosine similarity against WordSim-353 and SimLex-999 over the pairs with both
words in the vocabulary (lower-cased); analogy accuracy on questions-words.txt by 3CosAdd over
the 30,000 most frequent words (here all 9,002), a, b, c excluded; questions with a word out of
the vocabulary skipped and counted. gensim's own ``evaluate_word_pairs`` and
``evaluate_word_analogies(restrict_vocab=30000)`` on its model are recorded as a cross-check of
the protocol.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import numpy as np

from fnn import embeddings as emb

SETTINGS = dict(dim=100, window=5, negative=5, min_count=5, epochs=5, sample=1e-3,
                learning_rate=0.025, min_learning_rate=1e-4)
THREADS = 2
RESTRICT = 30_000


def train_gensim(sentences, seed: int):
    from gensim.models import Word2Vec
    s = SETTINGS
    model = Word2Vec(sg=1, hs=0, negative=s["negative"], ns_exponent=0.75, window=s["window"],
                     vector_size=s["dim"], min_count=s["min_count"], sample=s["sample"],
                     alpha=s["learning_rate"], min_alpha=s["min_learning_rate"],
                     epochs=s["epochs"], workers=THREADS, seed=seed)
    model.build_vocab(sentences)
    wall, cpu = time.perf_counter(), time.process_time()
    _, raw_words = model.train(sentences, total_examples=model.corpus_count,
                               epochs=model.epochs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    vectors = emb.WordVectors(tuple(model.wv.index_to_key), np.asarray(model.wv.vectors))
    return model, vectors, {"seconds": wall, "cpu_seconds": cpu,
                            "words_per_second": raw_words / wall,
                            "words_per_cpu_second": raw_words / cpu}


def train_fnn(sentences, seed: int):
    s = SETTINGS
    vocab = emb.build_vocabulary(sentences, s["min_count"])
    corpus = emb.encode(sentences, vocab)
    settings = emb.Word2VecSettings(
        architecture="skipgram", loss="negative", dim=s["dim"], window=s["window"],
        negative=s["negative"], sample=s["sample"], epochs=s["epochs"],
        learning_rate=s["learning_rate"], min_learning_rate=s["min_learning_rate"])
    cpu = time.process_time()
    result = emb.train(corpus, vocab, jax.random.PRNGKey(seed), settings)
    cpu = time.process_time() - cpu
    raw_words = corpus.raw_tokens * s["epochs"]
    return emb.word_vectors(result.params, vocab), {
        "seconds": result.seconds, "cpu_seconds": cpu,
        "words_per_second": result.words_per_second, "words_per_cpu_second": raw_words / cpu,
        "settings": {"batch_size": settings.batch_size,
                     "steps_per_call": settings.steps_per_call}}


def scores(vectors, data) -> dict:
    analogies = emb.analogy_accuracy(vectors, data["analogies"], restrict=RESTRICT)
    return {
        "wordsim353": emb.word_similarity(vectors, data["wordsim353"]),
        "simlex999": emb.word_similarity(vectors, data["simlex999"]),
        "analogy": {group: analogies[group] for group in ("overall", "semantic", "syntactic")},
        "analogy_sections": analogies["sections"],
        "vocabulary": len(vectors.words),
    }


def gensim_cross_check(model, files) -> dict:
    """gensim's own evaluators on its model (the same protocol as `scores`)."""
    return {
        "wordsim353": float(model.wv.evaluate_word_pairs(str(files["wordsim353"]))[1][0]),
        "simlex999": float(model.wv.evaluate_word_pairs(str(files["simlex999"]))[1][0]),
        "analogy": float(model.wv.evaluate_word_analogies(str(files["analogies"]),
                                                          restrict_vocab=RESTRICT)[0]),
    }


def format_cross_check(vectors) -> dict:
    """fnn's word2vec text file read by gensim, and gensim's file read by fnn: equal vectors?"""
    import tempfile

    from gensim.models import KeyedVectors
    with tempfile.TemporaryDirectory() as folder:
        ours = emb.save_text(Path(folder) / "fnn.txt", vectors)
        loaded = KeyedVectors.load_word2vec_format(str(ours), binary=False)
        loaded.save_word2vec_format(str(Path(folder) / "gensim.txt"), binary=False)
        back = emb.load_text(Path(folder) / "gensim.txt")
    return {"gensim_reads_fnn": bool(np.array_equal(loaded.vectors, vectors.vectors)
                                     and list(loaded.index_to_key) == list(vectors.words)),
            "fnn_reads_gensim": bool(np.array_equal(back.vectors, vectors.vectors)
                                     and back.words == tuple(vectors.words))}


def summary(runs) -> dict:
    """Mean, sample standard deviation and values of each headline number over the seeds."""
    fields = {
        "words_per_second": lambda r: r["speed"]["words_per_second"],
        "words_per_cpu_second": lambda r: r["speed"]["words_per_cpu_second"],
        "wordsim353_spearman": lambda r: r["scores"]["wordsim353"]["spearman"],
        "simlex999_spearman": lambda r: r["scores"]["simlex999"]["spearman"],
        "analogy_accuracy": lambda r: r["scores"]["analogy"]["overall"]["accuracy"],
        "analogy_semantic": lambda r: r["scores"]["analogy"]["semantic"]["accuracy"],
        "analogy_syntactic": lambda r: r["scores"]["analogy"]["syntactic"]["accuracy"],
    }
    out = {}
    for name, get in fields.items():
        values = [get(r) for r in runs]
        out[name] = {"mean": statistics.fmean(values),
                     "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                     "values": values}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", help="default: $FNN_DATA/text/enwiki_sample.txt")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", default="benchmarks/word2vec_gensim.json",
                        help="where to write the results")
    args = parser.parse_args(argv)

    files = {"corpus": emb.text_path("enwiki_sample.txt", args.corpus),
             "wordsim353": emb.text_path("wordsim353.tsv"),
             "simlex999": emb.text_path("simlex999.txt"),
             "analogies": emb.text_path("questions-words.txt")}
    data = {"wordsim353": emb.read_word_pairs(files["wordsim353"]),
            "simlex999": emb.read_word_pairs(files["simlex999"]),
            "analogies": emb.read_analogies(files["analogies"])}
    sentences = emb.read_sentences(files["corpus"])
    tokens = sum(map(len, sentences))
    print(f"{files['corpus']}: {len(sentences)} sentences, {tokens:,} tokens; "
          f"{args.seeds} seeds each, interleaved")
    runs = {"gensim": [], "fnn": []}
    cross_checks = []
    for seed in range(args.seeds):
        order = ("gensim", "fnn") if seed % 2 == 0 else ("fnn", "gensim")
        for system in order:
            if system == "gensim":
                model, vectors, speed = train_gensim(sentences, seed + 1)
                cross_checks.append(gensim_cross_check(model, files))
                del model
            else:
                vectors, speed = train_fnn(sentences, seed)
                if seed == 0:
                    text_format = format_cross_check(vectors)
            result = {"seed": seed, "speed": speed, "scores": scores(vectors, data)}
            runs[system].append(result)
            sc = result["scores"]
            print(f"seed {seed} {system:6s}: {speed['words_per_second']:9,.0f} words/s "
                  f"({speed['seconds']:.1f} s wall, {speed['cpu_seconds']:.1f} s CPU)  "
                  f"WS353 {sc['wordsim353']['spearman']:.3f}  SL999 "
                  f"{sc['simlex999']['spearman']:.3f}  analogy "
                  f"{sc['analogy']['overall']['accuracy']:.2%}", flush=True)
    table = {system: summary(r) for system, r in runs.items()}
    ratio = {name: table["fnn"][name]["mean"] / table["gensim"][name]["mean"]
             for name in table["fnn"]}
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "corpus": str(files["corpus"]), "corpus_tokens": tokens, "settings": SETTINGS,
        "gensim_threads": THREADS, "analogy_restrict": RESTRICT,
        "summary": table, "fnn_over_gensim": ratio,
        "targets": {"speed_at_least_half": ratio["words_per_second"] >= 0.5,
                    "similarity_at_least_as_good": (
                        ratio["wordsim353_spearman"] >= 1 and ratio["simlex999_spearman"] >= 1),
                    "analogy_at_least_as_good": ratio["analogy_accuracy"] >= 1},
        "gensim_own_evaluation": cross_checks, "text_format": text_format, "runs": runs,
        "skipped": {name: runs["fnn"][0]["scores"][name]["skipped"]
                    for name in ("wordsim353", "simlex999")} | {
            "analogies": runs["fnn"][0]["scores"]["analogy"]["overall"]["skipped"]},
    }
    print("\n| | words/s (wall) | words/CPU-s | WordSim-353 ρ | SimLex-999 ρ | analogies |")
    print("|---|---|---|---|---|---|")
    for system in ("gensim", "fnn"):
        t = table[system]
        print(f"| {system} | {t['words_per_second']['mean']:,.0f} ± "
              f"{t['words_per_second']['std']:,.0f} | {t['words_per_cpu_second']['mean']:,.0f} | "
              f"{t['wordsim353_spearman']['mean']:.3f} ± {t['wordsim353_spearman']['std']:.3f} | "
              f"{t['simlex999_spearman']['mean']:.3f} ± {t['simlex999_spearman']['std']:.3f} | "
              f"{t['analogy_accuracy']['mean']:.2%} ± {t['analogy_accuracy']['std']:.2%} |")
    print(f"fnn / gensim: " + ", ".join(f"{k} {v:.2f}" for k, v in ratio.items()))
    print("targets:", report["targets"], "text format:", text_format)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
