"""Word vectors: a word list with one row per word, cosine neighbours, the word2vec text format.

The word2vec text format (word2vec.c ``-binary 0``, gensim ``save_word2vec_format(binary=False)``):
a header line ``"<V> <D>"``, then one line per word, ``word v_1 … v_D`` separated by single
spaces. Words must not contain whitespace. `save_text` writes float32 values with 9 significant
digits (enough to read back the same float32); `load_text` also accepts the trailing space
word2vec.c writes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, NamedTuple, Sequence, Tuple, Union

import numpy as np

__all__ = ["WordVectors", "word_vectors", "index_of", "unit_rows", "nearest", "save_text",
           "load_text"]


class WordVectors(NamedTuple):
    """``words`` (V,) strings and ``vectors`` (V, D) float32, row ``i`` the vector of word ``i``
    (most frequent first when it comes from training)."""

    words: tuple
    vectors: np.ndarray


def word_vectors(params, vocab) -> WordVectors:
    """The trained embeddings (the rows of ``params["input"]``) with the vocabulary's words."""
    return WordVectors(tuple(vocab.words), np.asarray(params["input"], np.float32))


def index_of(vectors: WordVectors) -> Dict[str, int]:
    """word -> row (the first row when a word repeats)."""
    index: Dict[str, int] = {}
    for i, word in enumerate(vectors.words):
        index.setdefault(word, i)
    return index


def unit_rows(matrix) -> np.ndarray:
    """Each row divided by its Euclidean norm (zero rows stay zero); (V, D) -> (V, D) float32."""
    matrix = np.asarray(matrix, np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def nearest(vectors: WordVectors, query: Union[str, np.ndarray], k: int = 10,
            exclude: Sequence[str] = ()) -> List[Tuple[str, float]]:
    """The ``k`` words of highest cosine similarity ``cos(q, v) = q·v / (‖q‖‖v‖)`` to ``query``
    (a word, itself excluded, or a (D,) vector), best first, as ``(word, cosine)``."""
    index = index_of(vectors)
    if isinstance(query, str):
        if query not in index:
            raise KeyError(f"nearest: {query!r} is not in the vocabulary ({len(index)} words).")
        exclude = (*exclude, query)
        query = vectors.vectors[index[query]]
    query = np.asarray(query, np.float32)
    if query.shape != vectors.vectors.shape[1:]:
        raise ValueError(f"nearest: query must be a word or a vector of shape "
                         f"{vectors.vectors.shape[1:]}; got shape {query.shape}.")
    cosines = unit_rows(vectors.vectors) @ unit_rows(query[None])[0]
    for word in exclude:
        if word in index:
            cosines[index[word]] = -np.inf
    best = np.argsort(-cosines, kind="stable")[:k]
    return [(vectors.words[i], float(cosines[i])) for i in best if np.isfinite(cosines[i])]


def save_text(path, vectors: WordVectors) -> Path:
    """Write ``vectors`` in the word2vec text format (header ``"V D"``); returns the path."""
    matrix = np.asarray(vectors.vectors, np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(vectors.words):
        raise ValueError(f"save_text: vectors must be (V, D) with V = {len(vectors.words)} "
                         f"words; got shape {matrix.shape}.")
    bad = [w for w in vectors.words if not w or any(ch.isspace() for ch in w)]
    if bad:
        raise ValueError(f"save_text: words must be non-empty and free of whitespace; got "
                         f"{bad[:3]!r}.")
    path = Path(path)
    with path.open("w", encoding="utf-8") as out:
        out.write(f"{matrix.shape[0]} {matrix.shape[1]}\n")
        for word, row in zip(vectors.words, matrix):
            out.write(word + " " + " ".join("%.9g" % v for v in row.tolist()) + "\n")
    return path


def load_text(path) -> WordVectors:
    """Read a file in the word2vec text format; raises ValueError naming the line that does not
    fit its header."""
    with open(path, encoding="utf-8") as lines:
        header = lines.readline().split()
        if len(header) != 2 or not all(h.isdigit() for h in header):
            raise ValueError(f"load_text: {path}: the first line must be '<words> <dimension>'; "
                             f"got {' '.join(header)!r}.")
        n, dim = int(header[0]), int(header[1])
        words, matrix = [], np.empty((n, dim), np.float32)
        for number, line in enumerate(lines, start=2):
            parts = line.rstrip().split(" ")
            if len(words) == n:
                if line.strip():
                    raise ValueError(f"load_text: {path}: more than the {n} words the header "
                                     f"announces (line {number}).")
                continue
            if len(parts) != dim + 1:
                raise ValueError(f"load_text: {path}, line {number}: expected a word and {dim} "
                                 f"numbers; got {len(parts)} fields.")
            matrix[len(words)] = np.array(parts[1:], np.float32)
            words.append(parts[0])
    if len(words) != n:
        raise ValueError(f"load_text: {path}: the header announces {n} words; found {len(words)}.")
    return WordVectors(tuple(words), matrix)
