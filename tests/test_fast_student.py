"""The fast inference path is the reference student, exactly: same tokens, same logits, same predictions."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_stage
from distill.report.benchmark import run_benchmark, teacher_parameters
from distill.report.benchmark import reference_logits
from distill.student.cell import compiled_cell
from distill.student.fast import FastStudent, FastTokenizer
from distill.student.onnx import OnnxStudent
from distill.student.model import StudentClassifier, StudentConfig, count_parameters, save_student
from distill.student.vocab import Vocab

torch.set_num_threads(1)


def random_texts(rng, n, words, max_len=12):
    """Random lengths incl. 1 (and a few 0) over known and unknown words, with irregular spacing."""
    out = []
    for _ in range(n):
        k = int(rng.choice([0, 1, 1, rng.integers(1, max_len + 1)], p=[0.03, 0.2, 0.07, 0.7]))
        toks = [words[i] if rng.random() < 0.85 else f"oov{i}" for i in rng.integers(0, len(words), k)]
        sep = "  " if rng.random() < 0.1 else " "
        out.append(sep.join(toks) + (" " if rng.random() < 0.05 else ""))
    return out


def random_model(seed, vocab, pair=False, multichannel=True, hidden=7, num_labels=3):
    torch.manual_seed(seed)
    cfg = StudentConfig(embeddings="random", vocab_size=len(vocab), embedding_dim=5, hidden=hidden, fc=11, num_labels=num_labels,
                        pair=pair, multichannel=multichannel)
    model = StudentClassifier(cfg)
    with torch.no_grad():  # make the frozen copy differ from the trainable one, as after training
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)] + ["it", "'s", "[MASK]", "n't", "é"]
    vocab = Vocab.build(random_texts(rng, 200, words))
    return rng, words, vocab


def test_tokenization_equals_vocab_encode(corpus):
    rng, words, vocab = corpus
    texts = random_texts(rng, 300, words) + ["", " ", "a\tb", "x\u00a0y w1", "w1\x1cw2"]
    ids, lengths = FastTokenizer(vocab).encode_batch(texts)
    assert lengths.tolist() == [len(vocab.encode(t)) for t in texts]
    assert ids.tolist() == [i for t in texts for i in vocab.encode(t)]
    # the vectorized path itself (no odd whitespace) must agree too
    plain = texts[:300]
    ids, lengths = FastTokenizer(vocab).encode_batch(plain)
    assert ids.tolist() == [i for t in plain for i in vocab.encode(t)]


CELLS = ["torch", "onnx"] + (["c"] if compiled_cell() is not None else [])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("pair", [False, True])
@pytest.mark.parametrize("multichannel", [False, True])
def test_fast_logits_equal_reference(corpus, cell, pair, multichannel):
    rng, words, vocab = corpus
    model = random_model(1 + pair + 2 * multichannel, vocab, pair=pair, multichannel=multichannel)
    first = random_texts(rng, 157, words)
    second = random_texts(rng, 157, words) if pair else None
    fast = OnnxStudent(model, vocab) if cell == "onnx" else FastStudent(model, vocab, cell=cell)
    assert fast.cell == ("onnxruntime" if cell == "onnx" else cell)
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
def test_parallel_batches_equal_one_thread(corpus):
    """Batches spread over a thread pool give the single-thread result, in input order, and torch's thread
    count is restored afterwards."""
    rng, words, vocab = corpus
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


def test_reference_logits_is_the_model_call(corpus):
    """The helper feeding the reference model pads exactly like a direct call."""
    rng, words, vocab = corpus
    model = random_model(5, vocab)
    texts = ["w1 w2 w3", "w4", "w5 w6"]
    rows = [vocab.encode(t) for t in texts]
    ids = torch.zeros(3, 3, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
    with torch.no_grad():
        direct = model(ids, torch.tensor([3, 1, 2])).numpy()
    np.testing.assert_allclose(reference_logits(model, vocab, texts), direct, atol=1e-6)


def test_pair_and_single_misuse_is_an_error(corpus):
    _, _, vocab = corpus
    fast = FastStudent(random_model(0, vocab), vocab)
    with pytest.raises(ValueError):
        fast.logits(["w1"], ["w2"])


def tiny_teacher(path):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    torch.manual_seed(0)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(40)] + ["it", "'s"]
    (path / "vocab.txt").parent.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
    cfg = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64, num_labels=2)
    model = BertForSequenceClassification(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return model, tok


def test_teacher_parameter_count_excludes_embedding_tables(tmp_path):
    model, _ = tiny_teacher(tmp_path / "t")
    counts = teacher_parameters(model)
    emb = model.bert.embeddings
    tables = sum(m.weight.numel() for m in (emb.word_embeddings, emb.position_embeddings, emb.token_type_embeddings))
    total = sum(p.numel() for p in model.parameters())
    assert counts["params_m"] == pytest.approx(total / 1e6)
    assert counts["params_m_without_embeddings"] == pytest.approx((total - tables) / 1e6)


def test_run_benchmark_record(corpus, tmp_path):
    rng, words, vocab = corpus
    model = random_model(3, vocab, pair=True, num_labels=2)
    first, second = random_texts(rng, 40, words), random_texts(rng, 40, words)
    tmodel, tok = tiny_teacher(tmp_path / "t")
    res = run_benchmark(first, second, (model, vocab), (tmodel.eval(), tok), batch_size=16, repeats=2, max_length=128,
                        device=torch.device("cpu"), progress=False)
    s, t = res["student"], res["teacher"]
    assert res["sentences"] == 80 and res["pair"]
    assert set(s["paths"]) == {"reference", "fast", "onnxruntime"} and s["path"] in s["paths"]
    assert all(len(p["seconds_all"]) == 2 for p in s["paths"].values())
    assert max(s["max_abs_logit_diff_vs_reference"].values()) < 1e-4
    assert s["params_m"] == pytest.approx(count_parameters(model) / 1e6)
    assert t["teacher_repeats"] == 1
    assert res["speedup"] == pytest.approx(t["seconds"] / s["seconds"])


def test_benchmark_cli(corpus, tmp_path):
    rng, words, vocab = corpus
    root = tmp_path / "repo"
    texts = random_texts(rng, 30, words)
    (root / "data" / "sst2").mkdir(parents=True)
    pd.DataFrame({"idx": range(30), "sentence": texts, "label": 0, "split": "train"}).to_parquet(
        root / "data" / "sst2" / "train.parquet")
    save_student(random_model(4, vocab, num_labels=2), vocab, root / "models" / "sst2" / "student")
    tiny_teacher(root / "models" / "sst2" / "teacher")
    (root / "params.yaml").write_text("benchmark:\n  batch_size: 8\n  repeats: 2\n  max_sentences: 25\n")
    run_stage("benchmark.py", "--task", "sst2", cwd=root)
    res = json.loads((root / "metrics" / "sst2" / "benchmark.json").read_text())
    assert res["examples"] == 25 and res["batch_size"] == 8 and res["repeats"] == 2
    assert res["teacher"]["params_m"] > 0 and res["student"]["seconds"] > 0
    assert res["student"]["max_abs_logit_diff_vs_reference"]["fast"] < 1e-4
