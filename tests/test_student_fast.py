"""distill/inference/fast.py: the fast CPU path's tokenizer and its misuse errors (its logits against nn.LSTM, for
every cell, and its thread pool: tests/test_student_fused.py)."""
import pytest

from distill.inference.fast import FastStudent, FastTokenizer
from helpers import random_texts, small_student


def test_tokenization_equals_vocab_encode(student_corpus):
    rng, words, vocab = student_corpus
    texts = random_texts(rng, 300, words) + ["", " ", "a\tb", "x\u00a0y w1", "w1\x1cw2"]
    ids, lengths = FastTokenizer(vocab).encode_batch(texts)
    assert lengths.tolist() == [len(vocab.encode(t)) for t in texts]
    assert ids.tolist() == [i for t in texts for i in vocab.encode(t)]
    # the vectorized path itself (no odd whitespace) must agree too
    plain = texts[:300]
    ids, lengths = FastTokenizer(vocab).encode_batch(plain)
    assert ids.tolist() == [i for t in plain for i in vocab.encode(t)]
    ids, lengths = FastTokenizer(vocab).encode_batch([])
    assert ids.shape == lengths.shape == (0,)


def test_misuse_is_an_error(student_corpus):
    _, _, vocab = student_corpus
    fast = FastStudent(small_student(0, vocab), vocab, cell="torch")
    with pytest.raises(ValueError, match="single-sentence model takes none"):
        fast.logits(["w1"], ["w2"])
    with pytest.raises(ValueError, match="cell must be one of auto, fused, c, torch"):
        FastStudent(small_student(0, vocab), vocab, cell="cuda")
    pair = FastStudent(small_student(0, vocab, pair=True), vocab, cell="torch")
    with pytest.raises(ValueError, match="differ in length"):
        pair.logits(["w1", "w2"], ["w3"])
    assert fast.encode([]).shape == (0, 14)  # (0, 2 * hidden)
