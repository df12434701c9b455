"""The data pipeline of word2vec: subsampling, windows with random shrink, negatives.

Host-side steps (NumPy, on ``np.random.Generator`` objects made by `host_rng` from a JAX key, so
a run is reproduced by its key):

* `subsample`: drop tokens with probability ``1 − keep_w``
  (`fnn.embeddings.vocab.keep_probabilities`), before windows are formed, so windows reach over
  the dropped tokens (word2vec.c, gensim);
* `window_reach`: each centre token's window shrinks to a random ``r ∈ {1, …, window}``
  (word2vec.c draws ``b ~ U{0, …, window−1}`` and uses ``window − b``), so a context at distance
  ``d`` is used with probability ``(window − d + 1) / window``;
* `skipgram_pairs` and `cbow_windows`: the (centre, context) pairs and the context windows, in
  corpus order, never crossing a sentence boundary;
* `alias_table` and `sample_negatives`: noise words drawn i.i.d. from ``P_n`` by Walker's alias
  method (exact, O(1) per draw: a uniform column ``i`` and a uniform ``u``; the draw is ``i`` if
  ``u < prob[i]`` else ``alias[i]``).
"""
from __future__ import annotations

from typing import NamedTuple, Tuple

import jax
import numpy as np

__all__ = ["host_rng", "subsample", "window_reach", "window_offsets", "skipgram_pairs",
           "CbowWindows", "cbow_windows", "AliasTable", "alias_table", "alias_distribution",
           "sample_negatives"]


def host_rng(key, *stream: int) -> np.random.Generator:
    """A NumPy generator for the host-side pipeline, seeded by the JAX ``key``'s data and the
    non-negative integers ``stream`` (e.g. the epoch): the same key and stream give the same
    generator, different streams independent ones (NumPy's ``SeedSequence``)."""
    words = np.asarray(jax.random.key_data(key)).ravel().tolist()
    return np.random.default_rng([*words, *stream])


def subsample(keep, ids, rng: np.random.Generator) -> np.ndarray:
    """Bool mask (N,) of the tokens kept: token ``i`` survives with probability ``keep[ids[i]]``."""
    ids = np.asarray(ids)
    return rng.random(len(ids)) < np.asarray(keep)[ids]


def window_reach(n: int, window: int, rng: np.random.Generator) -> np.ndarray:
    """The shrunk window of each of ``n`` centres: ``window − b``, ``b ~ U{0, …, window−1}``;
    (n,) int64 in ``[1, window]``."""
    if window < 1:
        raise ValueError(f"window_reach: window must be >= 1; got {window}.")
    return window - rng.integers(0, window, n)


def window_offsets(window: int) -> np.ndarray:
    """``[−window, …, −1, 1, …, window]``: the positions of the contexts relative to the centre."""
    return np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])


def _context_positions(sentence, reach, window: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(positions (N, 2W), valid (N, 2W))``: each centre's context positions and which of them
    are inside its shrunk window, inside the corpus and in its sentence."""
    sentence, reach = np.asarray(sentence), np.asarray(reach)
    n = len(sentence)
    offsets = window_offsets(window)
    positions = np.arange(n)[:, None] + offsets[None, :]
    valid = (np.abs(offsets)[None, :] <= reach[:, None]) & (positions >= 0) & (positions < n)
    valid &= sentence[np.clip(positions, 0, max(n - 1, 0))] == sentence[:, None]
    return positions, valid


def skipgram_pairs(sentence, reach, window: int) -> Tuple[np.ndarray, np.ndarray]:
    """Skip-gram pairs ``(centre_positions, context_positions)``, both (P,) int64, ordered by
    centre then offset: every context within the centre's ``reach`` and sentence.
    ``sentence`` (N,) sentence ids of the (subsampled) tokens, ``reach`` (N,) from
    `window_reach`."""
    positions, valid = _context_positions(sentence, reach, window)
    centre, slot = np.nonzero(valid)
    return centre, positions[centre, slot]


class CbowWindows(NamedTuple):
    """CBOW examples: ``centre`` (M,) positions of the centres that have at least one context,
    ``context`` (M, 2W) context positions (0 where unused), ``mask`` (M, 2W) bool."""

    centre: np.ndarray
    context: np.ndarray
    mask: np.ndarray


def cbow_windows(sentence, reach, window: int) -> CbowWindows:
    """The context window of each centre (see `skipgram_pairs`), padded to ``2·window``."""
    positions, valid = _context_positions(sentence, reach, window)
    centre = np.nonzero(valid.any(1))[0]
    return CbowWindows(centre, np.where(valid, positions, 0)[centre], valid[centre])


class AliasTable(NamedTuple):
    """Walker's alias table of a distribution over V outcomes: ``prob`` (V,) float32 the chance
    of keeping column ``i``, ``alias`` (V,) int32 the outcome taken otherwise."""

    prob: np.ndarray
    alias: np.ndarray


def alias_table(probabilities) -> AliasTable:
    """The alias table of ``probabilities`` (V,) (normalized here), built by Vose's method: every
    column holds mass 1/V, split between its own outcome and one alias."""
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 1 or len(p) == 0 or (p < 0).any() or not p.sum() > 0:
        raise ValueError(f"alias_table: probabilities must be a non-empty 1-D array of "
                         f"non-negative numbers with a positive sum; got shape {p.shape}.")
    n = len(p)
    scaled = p * (n / p.sum())
    prob, alias = np.ones(n), np.arange(n)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    # the columns left over hold (up to rounding) exactly 1: keep them whole
    return AliasTable(prob.astype(np.float32), alias.astype(np.int32))


def alias_distribution(table: AliasTable) -> np.ndarray:
    """The distribution an alias table draws from (V,) float64: ``(prob_i + Σ_{j: alias_j = i}
    (1 − prob_j)) / V``; inverts `alias_table` (for tests)."""
    prob = table.prob.astype(np.float64)
    mass = prob + np.bincount(table.alias, weights=1.0 - prob, minlength=len(prob))
    return mass / len(prob)


def sample_negatives(table: AliasTable, shape, rng: np.random.Generator) -> np.ndarray:
    """Noise words drawn i.i.d. from the alias ``table``'s distribution; int32 of ``shape``."""
    column = rng.integers(0, len(table.prob), shape, dtype=np.int32)
    keep = rng.random(shape, dtype=np.float32) < table.prob[column]
    return np.where(keep, column, table.alias[column])
