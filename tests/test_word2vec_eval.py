"""fnn.embeddings evaluation and I/O: Spearman with ties by hand, similarity and analogies on a
hand-made embedding whose answers are known, neighbours, and the word2vec text format."""
import numpy as np
import pytest

from fnn import embeddings as emb
from fnn.embeddings.evaluate import Analogy, rankdata


def test_rankdata_and_spearman_with_ties_by_hand():
    np.testing.assert_array_equal(rankdata([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
    np.testing.assert_array_equal(rankdata([3, 3, 3]), [2, 2, 2])
    # ranks x: 1 2.5 2.5 4, y: 1 3 2 4 -> deviations (−1.5 0 0 1.5), (−1.5 .5 −.5 1.5):
    # ρ = 4.5 / sqrt(4.5 · 5)
    assert emb.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / np.sqrt(22.5))
    # without ties: 1 − 6 Σ d² / (n (n² − 1)); ranks 1 3 2 5 4 and 2 1 5 4 3, Σ d² = 16
    x, y = [0.1, 0.4, 0.2, 0.9, 0.5], [2, 1, 5, 4, 3]
    assert emb.spearman(x, y) == pytest.approx(1 - 6 * 16 / (5 * 24))
    assert emb.spearman(x, [-v for v in x]) == pytest.approx(-1.0)
    assert np.isnan(emb.spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="spearman: x and y must be 1-D of one length"):
        emb.spearman([1, 2], [1, 2, 3])


# a hand-made embedding: gender along axis 1, royalty along axis 2, a country/capital offset
# along axis 3; "Filler" is close to everything and must never be predicted by exclusion
WORDS = ("man", "woman", "king", "queen", "france", "paris", "italy", "rome", "apple")
VECTORS = np.array([
    [1.0, 0.0, 0.0, 0.0],   # man
    [1.0, 1.0, 0.0, 0.0],   # woman
    [1.0, 0.0, 1.0, 0.0],   # king
    [1.0, 1.0, 1.0, 0.0],   # queen
    [0.0, 0.0, 0.0, 1.0],   # france
    [0.0, 0.0, 0.3, 1.0],   # paris
    [0.2, 0.0, 0.0, 1.0],   # italy
    [0.2, 0.0, 0.3, 1.0],   # rome
    [-1.0, 0.0, 0.0, 0.0],  # apple
], np.float32)
VECS = emb.WordVectors(WORDS, VECTORS)


def test_analogies_known_answers_per_section_with_skips_counted():
    questions = [
        Analogy("family", "man", "woman", "king", "queen"),     # right
        Analogy("family", "Man", "King", "woman", "queen"),     # right, case-insensitive
        Analogy("family", "man", "woman", "prince", "princess"),  # skipped: OOV
        Analogy("capital", "france", "paris", "italy", "rome"),   # right
        Analogy("capital", "paris", "france", "rome", "apple"),   # wrong (answer italy)
        Analogy("gram-plural", "king", "queen", "man", "woman"),  # right
    ]
    result = emb.analogy_accuracy(VECS, questions)
    assert result["sections"]["family"] == {"correct": 2, "answered": 2, "skipped": 1,
                                            "accuracy": 1.0}
    assert result["sections"]["capital"]["correct"] == 1
    assert result["sections"]["capital"]["accuracy"] == 0.5
    assert result["overall"] == {"correct": 4, "answered": 5, "skipped": 1, "accuracy": 0.8}
    assert result["semantic"]["answered"] == 4 and result["syntactic"]["correct"] == 1
    # a:b::c:? never answers a, b or c: b − a + c = c here, yet the answer is another word
    same = emb.analogy_accuracy(VECS, [Analogy("s", "man", "man", "king", "queen")])
    assert same["overall"]["correct"] == 1
    # restricted to the 4 most frequent rows, the country questions are out of vocabulary
    small = emb.analogy_accuracy(VECS, questions, restrict=4)
    assert small["overall"]["skipped"] == 3 and small["sections"]["capital"]["answered"] == 0
    assert np.isnan(small["sections"]["capital"]["accuracy"])


def test_read_analogies_and_word_pairs(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text(": capital\nAthens Greece Oslo Norway\n: gram1\na b c d\n")
    assert emb.read_analogies(path) == [Analogy("capital", "Athens", "Greece", "Oslo", "Norway"),
                                        Analogy("gram1", "a", "b", "c", "d")]
    path.write_text("a b c d\n")
    with pytest.raises(ValueError, match="line 1: expected four words after a ': section'"):
        emb.read_analogies(path)
    pairs = tmp_path / "p.tsv"
    pairs.write_text("# comment\nman\twoman\t8.5\nKing queen 7\n")
    assert emb.read_word_pairs(pairs) == [("man", "woman", 8.5), ("King", "queen", 7.0)]


def test_word_similarity_spearman_of_cosines_over_known_pairs():
    pairs = [("man", "woman", 9.0), ("man", "king", 7.0), ("man", "apple", 1.0),
             ("KING", "queen", 8.0), ("man", "unicorn", 5.0)]
    result = emb.word_similarity(VECS, pairs)
    unit = VECTORS / np.linalg.norm(VECTORS, axis=1, keepdims=True)
    cosines = [unit[0] @ unit[1], unit[0] @ unit[2], unit[0] @ unit[8], unit[2] @ unit[3]]
    assert result["pairs"] == 4 and result["skipped"] == 1 and result["total"] == 5
    assert result["spearman"] == pytest.approx(emb.spearman(cosines, [9, 7, 1, 8]))
    assert emb.word_similarity(VECS, pairs, lowercase=False)["pairs"] == 3


def test_nearest_by_cosine():
    got = emb.nearest(VECS, "france", k=3)
    assert [w for w, _ in got] == ["italy", "paris", "rome"]
    assert got[0][1] == pytest.approx(1 / np.sqrt(1.04))
    assert emb.nearest(VECS, np.array([0, 1, 1, 0], np.float32), k=1)[0][0] == "queen"
    with pytest.raises(KeyError, match="'unicorn' is not in the vocabulary"):
        emb.nearest(VECS, "unicorn")


def test_word2vec_text_format_round_trip_and_header(tmp_path):
    rng = np.random.default_rng(0)
    vectors = emb.WordVectors(("the", "naïve", "x'y"), rng.normal(size=(3, 5)).astype(np.float32))
    path = emb.save_text(tmp_path / "v.txt", vectors)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "3 5" and lines[2].split(" ")[0] == "naïve" and len(lines) == 4
    assert len(lines[1].split(" ")) == 6
    loaded = emb.load_text(path)
    assert loaded.words == vectors.words
    np.testing.assert_array_equal(loaded.vectors, vectors.vectors)  # float32 exactly
    # word2vec.c writes a space after the last number
    path.write_text("2 2\na 0.5 1 \nb -1 2.5 \n")
    np.testing.assert_array_equal(emb.load_text(path).vectors, [[0.5, 1], [-1, 2.5]])
    path.write_text("2 2\na 0.5 1\n")
    with pytest.raises(ValueError, match="header announces 2 words; found 1"):
        emb.load_text(path)
    path.write_text("2 2\na 0.5\n")
    with pytest.raises(ValueError, match="line 2: expected a word and 2 numbers"):
        emb.load_text(path)
    with pytest.raises(ValueError, match="free of whitespace"):
        emb.save_text(tmp_path / "w.txt", emb.WordVectors(("a b",), np.zeros((1, 2))))
