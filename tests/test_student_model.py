"""distill/student/model.py: the BiLSTM of §3.1 (siamese for pairs, multichannel embeddings), saving and loading."""
import json

import numpy as np
import pytest
import torch

from distill.io import UserError
from distill.student.batching import Dataset, predict_logits
from distill.student.model import StudentClassifier, StudentConfig, count_parameters, load_student, save_student
from distill.student.vocab import Vocab
from helpers import make_student

TEXTS = ["a charming , often affecting journey", "boring and far too long", "the [MASK] film of the year",
         "it never comes alive", "funny and moving", "a dull , lifeless mess"]


def test_paper_parameter_count():
    # §5.2: 0.96M parameters without embeddings for 2x300-d multichannel input, 150 hidden, 200 FC, 2 classes.
    # By hand: LSTM 2 directions x (4*150*(600 + 150) + 2*4*150) = 902,400; FC 300*200 + 200 = 60,200;
    # output 200*2 + 2 = 402.
    model = StudentClassifier(StudentConfig(vocab_size=20, embedding_dim=300, hidden=150, fc=200, num_labels=2,
                                            pair=False, multichannel=True, embeddings="random"))
    assert count_parameters(model, include_embeddings=False) == 902_400 + 60_200 + 402 == 963_002
    assert count_parameters(model) == 963_002 + 2 * 20 * 300  # frozen and trainable copies
    pair = StudentClassifier(StudentConfig(vocab_size=20, embedding_dim=300, hidden=150, fc=200, num_labels=3,
                                           pair=True, multichannel=False, embeddings="random"))
    # one shared encoder (4*150*(300+150) + 1200 per direction), features 4 x 300 -> 200 -> 3
    assert count_parameters(pair, False) == 2 * (4 * 150 * 450 + 1200) + (1200 * 200 + 200) + (200 * 3 + 3)


def test_output_shapes_single_and_pair():
    ids, lengths = torch.tensor([[3, 4, 5], [6, 0, 0]]), torch.tensor([3, 1])
    assert make_student(50, num_labels=3)(ids, lengths).shape == (2, 3)
    assert make_student(50, pair=True, num_labels=3)(ids, lengths, ids.flip(0), lengths.flip(0)).shape == (2, 3)


def test_multichannel_keeps_a_frozen_copy():
    vectors = torch.randn(10, 8)
    model = StudentClassifier(StudentConfig(vocab_size=10, embedding_dim=8, hidden=4, fc=3, num_labels=2,
                                            pair=False, multichannel=True, embeddings="random"), vectors)
    embed = model.encoder.embed
    assert not embed.frozen.weight.requires_grad and embed.trainable.weight.requires_grad
    assert torch.equal(embed.frozen.weight, vectors) and torch.equal(embed.trainable.weight, vectors)
    assert torch.equal(model.embedding_table(), torch.cat([vectors, vectors], dim=1))
    assert embed(torch.tensor([[3]])).shape == (1, 1, 16)


def test_siamese_encoder_shared_and_compare_features_symmetric():
    model = make_student(50, pair=True, num_labels=3)
    assert sum(1 for m in model.modules() if isinstance(m, torch.nn.LSTM)) == 1  # one encoder for both sides
    captured = []
    model.classifier[0].register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach()))
    a, la = torch.tensor([[3, 4, 5, 6]]), torch.tensor([4])
    b, lb = torch.tensor([[7, 8, 0, 0]]), torch.tensor([2])
    with torch.no_grad():
        model(a, la, b, lb)
        model(b, lb, a, la)
        h_a, h_b = model.encoder(a, la), model.encoder(b, lb)
    f_ab, f_ba = captured
    assert torch.allclose(f_ab, torch.cat([h_a, h_b, h_a * h_b, (h_a - h_b).abs()], dim=1))  # [h1, h2, h1*h2, |h1-h2|]
    h = 2 * model.cfg.hidden
    assert torch.equal(f_ab[:, :h], f_ba[:, h:2 * h]) and torch.equal(f_ab[:, h:2 * h], f_ba[:, :h])
    assert torch.allclose(f_ab[:, 2 * h:], f_ba[:, 2 * h:])  # h1*h2 and |h1-h2| do not depend on the order


def test_padding_does_not_change_the_encoding():
    model = make_student(50)
    with torch.no_grad():
        short = model(torch.tensor([[3, 4]]), torch.tensor([2]))
        padded = model(torch.tensor([[3, 4, 0, 0, 0]]), torch.tensor([2]))
    assert torch.equal(short, padded)


def _packed_reference(model, ids, lengths):
    """The encoder as nn.LSTM over a packed sequence: the textbook form the padded two-call forward replaces."""
    from torch.nn.utils.rnn import pack_padded_sequence
    enc = model.encoder
    packed = pack_padded_sequence(enc.embed(ids), lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
    _, (h_n, _) = enc.lstm(packed)
    return torch.cat([h_n[0], h_n[1]], dim=-1)


@pytest.mark.parametrize("training", [False, True])
def test_encoder_matches_packed_nn_lstm_values_and_gradients(training):
    torch.manual_seed(3)
    model = make_student(40, hidden=7, embedding_dim=5, jitter=0.1).train(training)
    lengths = torch.tensor([5, 1, 3, 0, 5, 2])  # ties, a one-token row, an empty row (clamped to 1 token)
    ids = torch.randint(1, 40, (6, 5)) * (torch.arange(5)[None, :] < lengths[:, None].clamp(min=1))
    fast = model.encoder(ids, lengths)
    ref = _packed_reference(model, ids, lengths)
    assert torch.allclose(fast, ref, atol=1e-6)
    weights = [p for p in model.encoder.parameters() if p.requires_grad]
    probe = torch.randn_like(ref)
    grads = torch.autograd.grad((fast * probe).sum(), weights)
    ref_grads = torch.autograd.grad((ref * probe).sum(), weights)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, atol=1e-5), (g - r).abs().max()


def test_reverse_rows_reverses_each_rows_tokens_and_keeps_padding():
    from distill.student.model import reverse_rows
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 0, 0, 0]]).unsqueeze(-1)
    out = reverse_rows(x, torch.tensor([3, 2, 1])).squeeze(-1)
    assert out.tolist() == [[3, 2, 1, 0], [5, 4, 0, 0], [6, 0, 0, 0]]


def test_saved_student_reloads_and_predicts_identically(tmp_path):
    vocab = Vocab.build(TEXTS)
    model = make_student(len(vocab), pair=True, num_labels=3)
    save_student(model, vocab, tmp_path / "m", extra={"best_epoch": 1})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.pt", "vocab.txt"]
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["best_epoch"] == 1 and saved["hidden"] == 6 and saved["pair"] is True
    loaded, loaded_vocab = load_student(tmp_path / "m")
    assert loaded_vocab.itos == vocab.itos and loaded.cfg == model.cfg and not loaded.training
    data = Dataset(vocab, [TEXTS, TEXTS[::-1]])
    assert np.array_equal(predict_logits(model, data, 4), predict_logits(loaded, data, 4))


def test_load_student_errors(tmp_path):
    with pytest.raises(UserError, match="not a student model directory"):
        load_student(tmp_path)
    save_student(make_student(10), Vocab.build(["a b"]), tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text('{"hidden": 6}')
    with pytest.raises(UserError, match="not a student config"):
        load_student(tmp_path / "m")
