"""distill/student/batching.py: encoded texts, padded batches, batch order and batched inference."""
import numpy as np
import torch

from distill.student.batching import Dataset, Encoded, batch_order, pad_rows, predict_logits
from distill.student.vocab import Vocab
from helpers import make_student

TEXTS = ["a charming , often affecting journey", "boring and far too long", "the [MASK] film of the year",
         "it never comes alive", "funny and moving", "a dull , lifeless mess"]


def test_pad_rows():
    flat, starts, lengths = np.array([5, 6, 7, 8, 9]), np.array([0, 3]), np.array([3, 2])
    assert pad_rows(flat, starts, lengths).tolist() == [[5, 6, 7], [8, 9, 0]]
    assert pad_rows(flat, starts, lengths, time_major=True).tolist() == [[5, 8], [6, 9], [7, 0]]
    assert pad_rows(flat, np.array([3, 0]), np.array([1, 0]), pad_id=-1).tolist() == [[8], [-1]]
    assert pad_rows(np.array([], dtype=np.int64), np.array([0]), np.array([0])).tolist() == [[0]]  # width >= 1


def test_padded_batches_match_per_text_encoding():
    vocab = Vocab.build(TEXTS)
    enc = Encoded(vocab, TEXTS + [""])
    assert enc.lengths.tolist() == [6, 5, 6, 4, 3, 5, 0]
    ids, lengths = enc.batch(np.array([6, 2, 4]))
    assert lengths.tolist() == [0, 6, 3]
    assert ids[0].tolist() == [0] * 6 and ids[1].tolist() == vocab.encode(TEXTS[2])
    assert ids[2].tolist() == vocab.encode(TEXTS[4]) + [0, 0, 0]


def test_dataset_pairs_and_targets():
    vocab = Vocab.build(TEXTS)
    data = Dataset(vocab, [TEXTS, TEXTS[::-1]], targets=[0, 1, 0, 1, 0, 1], teacher_logits=np.zeros((6, 2)))
    ids1, len1, ids2, len2 = data.inputs(np.array([0]))
    assert ids1[0].tolist() == vocab.encode(TEXTS[0]) and ids2[0].tolist() == vocab.encode(TEXTS[5])
    assert data.total_lengths().tolist() == [6 + 5, 5 + 3, 6 + 4, 4 + 6, 3 + 5, 5 + 6]  # words of both sides
    assert data.targets.dtype == np.int64 and data.teacher.dtype == np.float32 and len(data) == 6


def test_batch_order_covers_every_row_once_and_is_seeded():
    lengths = np.random.default_rng(1).integers(1, 30, size=237)
    a = batch_order(lengths, 10, np.random.default_rng(5))
    b = batch_order(lengths, 10, np.random.default_rng(5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert sorted(np.concatenate(a).tolist()) == list(range(237)) and max(len(x) for x in a) == 10
    c = batch_order(lengths, 10, np.random.default_rng(6))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    # inference: sorted by length, ties in input order
    assert [x.tolist() for x in batch_order(np.array([3, 1, 2, 1]), 2, None)] == [[1, 3], [2, 0]]


def test_predict_logits_in_input_order():
    vocab = Vocab.build(TEXTS)
    model = make_student(len(vocab), num_labels=3)
    got = predict_logits(model, Dataset(vocab, [TEXTS]), batch_size=4)
    with torch.no_grad():
        want = [model(torch.tensor([vocab.encode(t)]), torch.tensor([len(vocab.encode(t))]))[0].numpy()
                for t in TEXTS]
    np.testing.assert_allclose(got, np.stack(want), atol=1e-6)
    assert got.shape == (6, 3) and got.dtype == np.float32
