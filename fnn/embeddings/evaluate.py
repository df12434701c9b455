"""Intrinsic evaluation of word vectors: word similarity (Spearman) and analogies.

* Word similarity (WordSim-353, SimLex-999): the Spearman rank correlation between the cosine
  similarity of each pair's vectors and the human score, over the pairs whose two words are in
  the vocabulary; the others are counted as skipped.
* Analogies (``questions-words.txt``): for ``a : b :: c : d`` predict
  ``argmax_x cos(x̂, b̂ − â + ĉ)`` over the vocabulary, ``a``, ``b``, ``c`` excluded (3CosAdd on
  unit vectors, the course's formula, as word2vec.c's compute-accuracy and gensim's
  ``evaluate_word_analogies``). A question with a word outside the vocabulary searched is
  skipped and counted; accuracy is correct / answered, per section and overall.

Both match words case-insensitively by default (as gensim): queries and vocabulary are
lower-cased, and a lower-cased form that several vocabulary words share means the most frequent
(the first) of them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from fnn.embeddings.vectors import WordVectors, unit_rows

__all__ = ["rankdata", "spearman", "read_word_pairs", "word_similarity", "Analogy",
           "read_analogies", "analogy_accuracy"]


def rankdata(values) -> np.ndarray:
    """Ranks 1..n of ``values`` (n,), ties given the mean of the ranks they span; float64."""
    values = np.asarray(values, np.float64)
    if values.ndim != 1:
        raise ValueError(f"rankdata: values must be 1-D; got shape {values.shape}.")
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # runs of equal values: [start, end) in sorted order; each gets the mean rank (start+end+1)/2
    starts = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]])
    run = np.cumsum(starts) - 1
    first = np.nonzero(starts)[0]
    last = np.append(first[1:], len(values))
    ranks = np.empty(len(values))
    ranks[order] = ((first + last + 1) / 2.0)[run]
    return ranks


def spearman(x, y) -> float:
    """Spearman's ρ: the Pearson correlation of the ranks (`rankdata`, ties averaged) of ``x``
    and ``y`` (n,); NaN when either is constant or n < 2."""
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman: x and y must be 1-D of one length; got shapes {x.shape} "
                         f"and {y.shape}.")
    if len(x) < 2:
        return float("nan")
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


def read_word_pairs(path) -> List[Tuple[str, str, float]]:
    """``(word1, word2, score)`` from a tab- or space-separated file; ``#`` lines are comments."""
    pairs = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) < 3:
            raise ValueError(f"read_word_pairs: {path}, line {number}: expected 'word1 word2 "
                             f"score'; got {line!r}.")
        pairs.append((parts[0].strip(), parts[1].strip(), float(parts[2])))
    return pairs


def _lookup(vectors: WordVectors, lowercase: bool, restrict: Optional[int]) -> Dict[str, int]:
    """word (lower-cased when asked) -> row, over the first ``restrict`` rows; the first row
    wins when several words share a lower-cased form."""
    index: Dict[str, int] = {}
    for i, word in enumerate(vectors.words[:restrict]):
        index.setdefault(word.lower() if lowercase else word, i)
    return index


def word_similarity(vectors: WordVectors, pairs: Sequence[Tuple[str, str, float]], *,
                    lowercase: bool = True, restrict: Optional[int] = None) -> Dict:
    """Spearman ρ between cosine similarities and human scores over the in-vocabulary pairs.

    Returns ``{"spearman", "pairs" (used), "skipped" (a word missing), "total"}``; only the
    first ``restrict`` vocabulary rows count as known (None: all).
    """
    index = _lookup(vectors, lowercase, restrict)
    norm = (lambda w: w.lower()) if lowercase else (lambda w: w)
    used = [(index[norm(a)], index[norm(b)], s) for a, b, s in pairs
            if norm(a) in index and norm(b) in index]
    if not used:
        return {"spearman": float("nan"), "pairs": 0, "skipped": len(pairs), "total": len(pairs)}
    rows = unit_rows(vectors.vectors)
    first, second, human = (np.array(column) for column in zip(*used))
    cosines = np.sum(rows[first] * rows[second], axis=1)
    return {"spearman": spearman(cosines, human), "pairs": len(used),
            "skipped": len(pairs) - len(used), "total": len(pairs)}


class Analogy(NamedTuple):
    """One analogy question ``a : b :: c : d`` of a named section."""

    section: str
    a: str
    b: str
    c: str
    d: str


def read_analogies(path) -> List[Analogy]:
    """The questions of a ``questions-words.txt``-style file (``: section`` headers, then
    ``a b c d`` lines)."""
    questions, section = [], None
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith(":"):
            section = line[1:].strip()
            continue
        words = line.split()
        if not words:
            continue
        if len(words) != 4 or section is None:
            raise ValueError(f"read_analogies: {path}, line {number}: expected four words after "
                             f"a ': section' header; got {line!r}.")
        questions.append(Analogy(section, *words))
    return questions


def analogy_accuracy(vectors: WordVectors, questions: Sequence[Analogy], *,
                     restrict: Optional[int] = 30_000, lowercase: bool = True,
                     batch: int = 2048) -> Dict:
    """Answer every analogy question by 3CosAdd over the first ``restrict`` vocabulary rows.

    Returns ``{"sections": {name: {"correct", "answered", "skipped", "accuracy"}}, "semantic",
    "syntactic" (sections whose name starts with "gram"), "overall"}`` (each with the same four
    fields; accuracy = correct / answered, NaN when none answered) and ``"restrict"``.
    """
    index = _lookup(vectors, lowercase, restrict)
    rows = unit_rows(vectors.vectors[: len(vectors.words) if restrict is None else restrict])
    norm = (lambda w: w.lower()) if lowercase else (lambda w: w)
    known, sections = [], {}
    for q in questions:
        counts = sections.setdefault(q.section, {"correct": 0, "answered": 0, "skipped": 0})
        words = [norm(w) for w in (q.a, q.b, q.c, q.d)]
        if all(w in index for w in words):
            known.append((q.section, *(index[w] for w in words)))
            counts["answered"] += 1
        else:
            counts["skipped"] += 1
    if known:
        section_of = [k[0] for k in known]
        a, b, c, d = (np.array(column) for column in list(zip(*known))[1:])
        for start in range(0, len(a), batch):
            part = slice(start, start + batch)
            scores = (rows[b[part]] - rows[a[part]] + rows[c[part]]) @ rows.T
            for col in (a, b, c):
                scores[np.arange(scores.shape[0]), col[part]] = -np.inf
            hits = np.argmax(scores, axis=1) == d[part]
            for name, hit in zip(section_of[part], hits):
                sections[name]["correct"] += int(hit)
    groups = {"semantic": [s for s in sections if not s.startswith("gram")],
              "syntactic": [s for s in sections if s.startswith("gram")],
              "overall": list(sections)}
    result = {"sections": {name: _with_accuracy(counts) for name, counts in sections.items()}}
    for group, names in groups.items():
        total = {key: sum(sections[n][key] for n in names)
                 for key in ("correct", "answered", "skipped")}
        result[group] = _with_accuracy(total)
    result["restrict"] = restrict
    return result


def _with_accuracy(counts: Dict) -> Dict:
    answered = counts["answered"]
    return {**counts, "accuracy": counts["correct"] / answered if answered else float("nan")}
