"""distill/student/vocab.py: the word vocabulary with [PAD], [UNK] and [MASK] rows."""
import numpy as np
import pytest

from distill.student.vocab import SPECIALS, Vocab


def test_build_orders_by_frequency_then_alphabetically():
    vocab = Vocab.build(["b a c", "a b", "a", "z y", "y z"])
    # counts: a 3, b 2, y 2, z 2, c 1
    assert vocab.itos == ["[PAD]", "[UNK]", "[MASK]", "a", "b", "y", "z", "c"]
    assert Vocab.build(["a a b"], min_count=2).itos == [*SPECIALS, "a"]


def test_specials_and_mask():
    vocab = Vocab.build(["the [MASK] film", "[MASK] [MASK]"])
    assert (vocab.pad_id, vocab.unk_id, vocab.mask_id) == (0, 1, 2)
    assert vocab.itos.count("[MASK]") == 1  # the augmented word maps to its own row, not a new word
    assert vocab.encode("the [MASK] film zebra") == [vocab.stoi["the"], 2, vocab.stoi["film"], 1]


def test_encode_batch_is_flat_ids_and_lengths():
    vocab = Vocab.build(["a b c"])
    ids, lengths = vocab.encode_batch(["a  b", "", "c x a"])
    assert ids.tolist() == [3, 4, 5, 1, 3] and lengths.tolist() == [2, 0, 3]
    assert ids.dtype == np.int64 and lengths.dtype == np.int64


def test_save_load_round_trip(tmp_path):
    vocab = Vocab.build(["é ça", "it 's"])
    vocab.save(tmp_path / "vocab.txt")
    assert Vocab.load(tmp_path / "vocab.txt").itos == vocab.itos


def test_invalid_vocabularies():
    with pytest.raises(ValueError, match="must start with"):
        Vocab(["a", "b"])
    with pytest.raises(ValueError, match="duplicate"):
        Vocab([*SPECIALS, "a", "a"])
