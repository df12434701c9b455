"""Text corpora for word2vec: finding the files, tokens, the vocabulary, subsampling and noise.

A corpus is read as sentences (lists of tokens): one sentence per line, long lines cut into
pieces of at most ``max_sentence_length`` tokens (gensim's ``LineSentence`` does the same with
10,000). The vocabulary keeps the words seen at least ``min_count`` times, most frequent first.

Two distributions over the vocabulary come from the counts ``c_w`` (``T = Σ_w c_w``, the number
of in-vocabulary tokens, ``f_w = c_w / T``):

* frequent-word subsampling (Mikolov et al. 2013; the formula of word2vec.c and gensim): a token
  of word ``w`` is kept with probability ``min(1, (sqrt(f_w / s) + 1) · s / f_w)``, ``s`` the
  ``sample`` threshold (1e-3 by default); ``s = 0`` keeps every token;
* the noise distribution of negative sampling: ``P_n(w) ∝ c_w^0.75``.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence

import numpy as np

__all__ = ["Vocabulary", "EncodedCorpus", "text_path", "tokenize", "read_sentences",
           "build_vocabulary", "encode", "keep_probabilities", "noise_distribution"]

MAX_SENTENCE_LENGTH = 10_000  # gensim's LineSentence default: longer lines are cut


def text_path(name: str, path=None) -> Path:
    """The file of a text data set: ``path`` if given, else ``$FNN_DATA/text/<name>``.

    Raises FileNotFoundError naming where it looked and how to fix it.
    """
    if path is not None:
        candidate = Path(path)
        if candidate.is_file():
            return candidate
        raise FileNotFoundError(f"text_path: {name!r} not found at the path argument {candidate}.")
    root = os.environ.get("FNN_DATA")
    if not root:
        raise FileNotFoundError(
            f"text_path: cannot find {name!r}: no path argument was given and FNN_DATA is not set. "
            f"Fix: set FNN_DATA to a folder whose text/ subfolder holds {name}, or pass path=.")
    candidate = Path(root) / "text" / name
    if not candidate.is_file():
        raise FileNotFoundError(
            f"text_path: {name!r} not found at $FNN_DATA/text/{name} ({candidate}). Fix: put the "
            f"file there or pass path=.")
    return candidate


_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokenize(line: str, lowercase: bool = False, words_only: bool = False) -> List[str]:
    """The tokens of one line: split on whitespace, or with ``words_only`` the runs of letters
    and digits (apostrophes inside words kept, punctuation dropped); lower-cased on request."""
    if lowercase:
        line = line.lower()
    return _WORD.findall(line) if words_only else line.split()


def read_sentences(path, *, lowercase: bool = False, words_only: bool = False,
                   max_sentence_length: int = MAX_SENTENCE_LENGTH) -> List[List[str]]:
    """The sentences of a text file: one per non-empty line, cut into pieces of at most
    ``max_sentence_length`` tokens (see `tokenize` for ``lowercase`` and ``words_only``)."""
    if max_sentence_length < 1:
        raise ValueError(f"read_sentences: max_sentence_length must be >= 1; "
                         f"got {max_sentence_length}.")
    sentences = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            tokens = tokenize(line, lowercase, words_only)
            for start in range(0, len(tokens), max_sentence_length):
                sentences.append(tokens[start:start + max_sentence_length])
    return sentences


class Vocabulary(NamedTuple):
    """Words with their counts, most frequent first (ties in alphabetical order).

    ``words`` (V,) strings, ``counts`` (V,) int64, ``index`` word -> row, ``total_tokens`` the
    number of tokens in the corpus including the words below ``min_count``.
    """

    words: tuple
    counts: np.ndarray
    index: Dict[str, int]
    total_tokens: int


def build_vocabulary(sentences: Iterable[Sequence[str]], min_count: int = 5,
                     max_size: Optional[int] = None) -> Vocabulary:
    """The words occurring at least ``min_count`` times (word2vec.c and gensim keep ``c_w >=
    min_count``), most frequent first, optionally only the ``max_size`` most frequent."""
    if min_count < 1:
        raise ValueError(f"build_vocabulary: min_count must be >= 1; got {min_count}.")
    counter: Counter = Counter()
    for sentence in sentences:
        counter.update(sentence)
    kept = sorted(((w, c) for w, c in counter.items() if c >= min_count),
                  key=lambda wc: (-wc[1], wc[0]))[:max_size]
    if not kept:
        raise ValueError(f"build_vocabulary: no word occurs min_count={min_count} times "
                         f"(the corpus has {len(counter)} distinct words).")
    words = tuple(w for w, _ in kept)
    return Vocabulary(words, np.array([c for _, c in kept], np.int64),
                      {w: i for i, w in enumerate(words)}, sum(counter.values()))


class EncodedCorpus(NamedTuple):
    """A corpus as rows of the vocabulary: ``ids`` (N,) int32 of the in-vocabulary tokens in
    order, ``sentence`` (N,) int32 the sentence each belongs to; ``raw_tokens`` counts every
    token including the out-of-vocabulary ones (the words/second denominator)."""

    ids: np.ndarray
    sentence: np.ndarray
    raw_tokens: int


def encode(sentences: Iterable[Sequence[str]], vocab: Vocabulary) -> EncodedCorpus:
    """The in-vocabulary tokens of ``sentences`` as ids; out-of-vocabulary tokens are dropped
    (as word2vec.c and gensim do), so windows reach across them."""
    ids: List[int] = []
    sentence_of: List[int] = []
    raw = 0
    index = vocab.index
    for number, sentence in enumerate(sentences):
        raw += len(sentence)
        row = [index[w] for w in sentence if w in index]
        ids.extend(row)
        sentence_of.extend([number] * len(row))
    return EncodedCorpus(np.array(ids, np.int32), np.array(sentence_of, np.int32), raw)


def keep_probabilities(counts, sample: float = 1e-3) -> np.ndarray:
    """Probability of keeping each token of word ``w`` under frequent-word subsampling:
    ``min(1, (sqrt(f_w / s) + 1) · s / f_w)`` with ``f_w = c_w / Σ c`` (word2vec.c, gensim);
    all ones when ``sample`` = 0. ``counts`` (V,) -> (V,) float64."""
    counts = np.asarray(counts, np.float64)
    if sample < 0:
        raise ValueError(f"keep_probabilities: sample must be >= 0; got {sample}.")
    if sample == 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()  # s·T: f_w / s = c_w / (s·T)
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


def noise_distribution(counts, power: float = 0.75) -> np.ndarray:
    """Negative-sampling noise ``P_n(w) = c_w^power / Σ_v c_v^power``; (V,) -> (V,) float64."""
    weights = np.asarray(counts, np.float64) ** power
    return weights / weights.sum()
