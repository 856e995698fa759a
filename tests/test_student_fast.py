"""distill/student/fast.py: the fast CPU path is the reference student, exactly: same tokens, same logits."""
import numpy as np
import pytest
import torch

from distill.report.benchmark import reference_logits
from distill.student.cell import compiled_cell
from distill.student.fast import FastStudent, FastTokenizer
from helpers import make_student, random_texts

CELLS = ["torch"] + (["c"] if compiled_cell() is not None else [])


def random_model(seed, vocab, **kw):
    return make_student(len(vocab), embedding_dim=5, hidden=7, fc=11, num_labels=kw.pop("num_labels", 3), seed=seed,
                        jitter=0.3, **kw)


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


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("pair", [False, True])
@pytest.mark.parametrize("multichannel", [False, True])
def test_fast_logits_equal_reference(student_corpus, cell, pair, multichannel):
    rng, words, vocab = student_corpus
    model = random_model(1 + pair + 2 * multichannel, vocab, pair=pair, multichannel=multichannel)
    first = random_texts(rng, 157, words)
    second = random_texts(rng, 157, words) if pair else None
    fast = FastStudent(model, vocab, cell=cell)
    assert fast.cell == cell
    got = fast.logits(first, second, batch_size=16)  # several batches, each a shrinking batch
    # the reference, unsorted and in one different batching, straight through the nn.LSTM model
    want = reference_logits(model, vocab, first, second, batch_size=50, sort=False)
    assert got.shape == (157, 3)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert (got.argmax(1) == want.argmax(1)).all()
    # batch size does not change results; input order is preserved
    np.testing.assert_allclose(fast.logits(first, second, batch_size=1000), got, atol=1e-5, rtol=0)
    sub = fast.logits(first[5:9], second[5:9] if pair else None)
    np.testing.assert_allclose(sub, got[5:9], atol=1e-5, rtol=0)


@pytest.mark.skipif(compiled_cell() is None, reason="no C compiler here")
def test_parallel_batches_equal_one_thread(student_corpus):
    """Batches spread over a thread pool give the single-thread result, in input order, and torch's thread
    count is restored afterwards."""
    rng, words, vocab = student_corpus
    model = random_model(7, vocab, pair=True)
    first, second = random_texts(rng, 301, words), random_texts(rng, 301, words)
    one = FastStudent(model, vocab, cell="c", threads=1).logits(first, second, batch_size=16)
    before = torch.get_num_threads()
    pooled = FastStudent(model, vocab, cell="c", threads=3)
    assert pooled.threads == 3
    np.testing.assert_allclose(pooled.logits(first, second, batch_size=16), one, atol=1e-5, rtol=0)
    assert torch.get_num_threads() == before
    want = reference_logits(model, vocab, first, second, batch_size=64)
    np.testing.assert_allclose(one, want, atol=1e-4, rtol=0)


def test_misuse_is_an_error(student_corpus):
    _, _, vocab = student_corpus
    fast = FastStudent(random_model(0, vocab), vocab, cell="torch")
    with pytest.raises(ValueError, match="single-sentence model takes none"):
        fast.logits(["w1"], ["w2"])
    with pytest.raises(ValueError, match="cell must be one of auto, fused, c, torch"):
        FastStudent(random_model(0, vocab), vocab, cell="cuda")
    pair = FastStudent(random_model(0, vocab, pair=True), vocab, cell="torch")
    with pytest.raises(ValueError, match="differ in length"):
        pair.logits(["w1", "w2"], ["w3"])
    assert fast.encode([]).shape == (0, 14)  # (0, 2 * hidden)
