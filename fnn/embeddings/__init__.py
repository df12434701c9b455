"""Word embeddings (course lecture 6): word2vec, its data pipeline, evaluation and file format.

    from fnn import embeddings as emb
    sentences = emb.read_sentences(emb.text_path("enwiki_sample.txt"))
    vocab = emb.build_vocabulary(sentences, min_count=5)
    result = emb.train(emb.encode(sentences, vocab), vocab, jax.random.PRNGKey(0),
                       emb.Word2VecSettings(architecture="skipgram", loss="negative"))
    vectors = emb.word_vectors(result.params, vocab)
    emb.nearest(vectors, "king"); emb.save_text("vectors.txt", vectors)

Modules: `vocab` (files, tokens, vocabulary, subsampling and noise distributions), `sampling`
(windows, pairs, negatives), `word2vec` (losses and training), `vectors` (neighbours, the
word2vec text format), `evaluate` (Spearman similarity, analogies).
"""
from fnn.embeddings import evaluate, sampling, vectors, vocab, word2vec
from fnn.embeddings.evaluate import (analogy_accuracy, read_analogies, read_word_pairs, spearman,
                                     word_similarity)
from fnn.embeddings.vectors import WordVectors, load_text, nearest, save_text, word_vectors
from fnn.embeddings.vocab import (EncodedCorpus, Vocabulary, build_vocabulary, encode,
                                  keep_probabilities, noise_distribution, read_sentences, text_path)
from fnn.embeddings.word2vec import TrainResult, Word2VecSettings, init_params, train

__all__ = [
    "EncodedCorpus", "TrainResult", "Vocabulary", "Word2VecSettings", "WordVectors",
    "analogy_accuracy", "build_vocabulary", "encode", "evaluate", "init_params",
    "keep_probabilities", "load_text", "nearest", "noise_distribution", "read_analogies",
    "read_sentences", "read_word_pairs", "sampling", "save_text", "spearman", "text_path", "train",
    "vectors", "vocab", "word2vec", "word_similarity", "word_vectors",
]
