"""distill/student/train.py and the train stage (student | baseline): the distillation loss of §3.2, early stopping
on dev, the saved model and curve."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from conftest import one_line_error, run_stage
from distill.config import load
from distill.io import UserError
from distill.runtime import cpu_supports_bf16, cpu_vector_flags, resolve_bf16
from distill.student.batching import Dataset, predict_logits
from distill.student.model import load_student
from distill.student.params import BaselineParams, StudentParams
from distill.student.train import distill_loss, distillation_targets, first_iterations, fit, train
from distill.student.vocab import Vocab
from helpers import builtin_task, cli_dirs, make_sentences, make_student, write_params, write_task_data

TEXTS = ["a charming , often affecting journey", "boring and far too long", "the [MASK] film of the year",
         "it never comes alive", "funny and moving", "a dull , lifeless mess"]
RT = builtin_task("rotten_tomatoes")
ARCH = {"embeddings": "random", "multichannel": True, "arch": "bilstm", "hidden": 8, "filters": 4, "fc": 8, "lr": 1.0,
        "rho": 0.95, "batch_size": 16, "epochs": 3, "patience": 2, "seed": 13}


def baseline_params(**kw) -> BaselineParams:
    return BaselineParams(**{**ARCH, **kw})


def student_params(**kw) -> StudentParams:
    return StudentParams(**{**ARCH, "alpha": 0.0, "bf16": False, "transfer_iters": -1, **kw})


def test_distill_loss_by_hand():
    z_s, z_t, t = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [1.0, -1.0]]), torch.tensor([1, 0])
    mse = ((1 + 4) + (1 + 1)) / 2  # squared error summed over classes, mean over the batch
    ce = (-math.log(math.exp(2) / (math.exp(1) + math.exp(2))) + math.log(2)) / 2
    assert distill_loss(z_s, z_t, None, 0.0).item() == pytest.approx(mse)
    assert distill_loss(z_s, None, t, 1.0).item() == pytest.approx(ce)  # the baseline: no teacher at all
    assert distill_loss(z_s, z_t, t, 0.3).item() == pytest.approx(0.3 * ce + 0.7 * mse)
    torch.manual_seed(0)
    z_s, z_t, t = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 2, 1, 0])
    assert torch.allclose(distill_loss(z_s, z_t, t, 1.0), F.cross_entropy(z_s, t))


def test_few_distillation_steps_lower_the_mse():
    vocab = Vocab.build(TEXTS)
    rng = np.random.default_rng(0)
    data = Dataset(vocab, [TEXTS], None, rng.normal(size=(len(TEXTS), 3)).astype(np.float32) * 2)
    model = make_student(len(vocab), num_labels=3)
    target = torch.from_numpy(data.teacher)

    def mse():
        return float(((torch.from_numpy(predict_logits(model, data, 8)) - target) ** 2).sum(1).mean())

    before = mse()
    opt = torch.optim.Adadelta([p for p in model.parameters() if p.requires_grad], lr=1.0, rho=0.95)
    model.train()
    for _ in range(50):
        loss = distill_loss(model(*data.inputs(np.arange(len(TEXTS)))), target, None, 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert mse() < 0.9 * before  # AdaDelta starts with tiny steps (its eps), so only a clear drop


@pytest.mark.skipif(not cpu_supports_bf16(), reason="needs native bf16 (AVX512-BF16/AMX): oneDNN has no emulated "
                    "bf16 LSTM, and student.bf16 true is a one-line error there (test_precision.py)")
def test_bf16_training_follows_fp32_and_keeps_fp32_weights():
    texts = TEXTS * 8
    vocab = Vocab.build(texts)
    data = Dataset(vocab, [texts], None, np.random.default_rng(0).normal(size=(len(texts), 2)).astype(np.float32) * 2)
    losses = {}
    for bf16 in (False, True):
        model = make_student(len(vocab))
        result = train(model, data, data, data.teacher.argmax(1), student_params(bf16=bf16, epochs=15, patience=15),
                       0.0, "student", progress=False)
        losses[bf16] = result.curve["train_loss"].to_numpy()
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert losses[True][-1] < losses[True][0] - 0.1  # it learns (AdaDelta starts with tiny steps)
    assert np.allclose(losses[True], losses[False], rtol=0.05)  # and follows the fp32 run closely


def test_train_keeps_the_best_epoch_and_writes_the_curve():
    rows = make_sentences(40, seed=3)
    texts, labels = [t for t, _ in rows], np.array([y for _, y in rows])
    vocab = Vocab.build(texts)
    model = make_student(len(vocab), seed=1)
    dev = Dataset(vocab, [texts[:10]])
    res = train(model, Dataset(vocab, [texts], labels), dev, labels[:10], baseline_params(batch_size=8, epochs=4),
                alpha=1.0, name="baseline", with_f1=True, progress=False)
    curve = res.curve
    assert list(curve.columns) == ["model", "epoch", "train_loss", "dev_accuracy", "dev_f1"]
    assert (curve["model"] == "baseline").all() and curve["epoch"].tolist() == list(range(1, len(curve) + 1))
    assert res.best_dev_accuracy == curve["dev_accuracy"].max()
    assert res.best_epoch == curve["epoch"][curve["dev_accuracy"].idxmax()]  # the first epoch reaching the best
    preds = predict_logits(model, dev, 16).argmax(1)  # the model holds the best epoch's weights
    assert round(float((preds == labels[:10]).mean()), 4) == res.best_dev_accuracy
    with pytest.raises(UserError, match="alpha < 1 needs teacher logits"):
        train(model, Dataset(vocab, [texts], labels), dev, labels[:10], baseline_params(epochs=1), alpha=0.0,
              name="student", progress=False)


def test_early_stopping_after_patience_epochs_without_gain():
    texts = ["a b", "c d"]
    vocab = Vocab.build(texts)
    model = make_student(len(vocab))
    # the dev set is one text with both labels: 0.5 whatever the model does, so no epoch improves on the first
    # and training stops after 1 + patience epochs
    res = train(model, Dataset(vocab, [texts], np.array([0, 1])), Dataset(vocab, [["a b", "a b"]]),
                np.array([0, 1]), baseline_params(epochs=10, patience=2, batch_size=2), alpha=1.0, name="baseline",
                progress=False)
    assert len(res.curve) == 3 and res.best_epoch == 1 and res.best_dev_accuracy == 0.5


def test_distillation_targets():
    df = pd.DataFrame({"label": [1, 0, -1, -1], "synthetic": [False, False, True, True],
                       "teacher_label": [0, 0, 1, 0],
                       "logits": [np.array([1.0, 0.0], np.float32)] * 4})
    targets, teacher = distillation_targets(df, RT)
    assert targets.tolist() == [1, 0, 1, 0]  # gold for originals, the teacher's argmax for synthetic rows
    assert teacher.shape == (4, 2) and teacher.dtype == np.float32
    with pytest.raises(UserError, match="3 classes, task rotten_tomatoes has 2"):
        distillation_targets(df.assign(logits=[np.zeros(3, np.float32)] * 4), RT)
    bad = df.copy()
    bad.at[2, "logits"] = np.array([np.nan, 0.0], np.float32)
    with pytest.raises(UserError, match=r"1 row\(s\) with NaN/inf, first at row\(s\) \[2\]"):
        distillation_targets(bad, RT)


def test_fit_student_is_deterministic(tmp_path):
    paths = write_task_data(tmp_path)
    train_df, dev_df = pd.read_parquet(paths.logits), pd.read_parquet(paths.split("dev"))
    weights = []
    for run in ("a", "b"):
        info = fit(RT, train_df, dev_df, student_params(epochs=2), tmp_path / run, tmp_path / f"{run}.csv",
                   tmp_path / f"{run}.json",
                   progress=False)
        weights.append(load_student(tmp_path / run)[0].state_dict())
        torch.manual_seed(123)  # global RNG state between runs must not matter
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert info["train_rows"] == 96 and info["alpha"] == 0.0 and info["rows_per_s"] > 0


def test_fit_baseline_uses_labelled_rows_only(tmp_path):
    paths = write_task_data(tmp_path)
    train_df = pd.read_parquet(paths.train)
    train_df.loc[:7, "label"] = -1
    info = fit(RT, train_df, pd.read_parquet(paths.split("dev")), baseline_params(epochs=1), tmp_path / "m",
               tmp_path / "c.csv", tmp_path / "r.json", progress=False)
    assert info["train_rows"] == 40 and info["alpha"] == 1.0
    with pytest.raises(UserError, match="no labelled rows for early stopping"):
        fit(RT, train_df, pd.read_parquet(paths.split("dev")).assign(label=-1), baseline_params(epochs=1),
            tmp_path / "m2", tmp_path / "c2.csv", tmp_path / "r2.json", progress=False)
    assert not (tmp_path / "m2").exists() and not (tmp_path / "c2.csv").exists() and not (tmp_path / "r2.json").exists()


def test_fit_pairs_qqp(tmp_path):
    rows = make_sentences(40, seed=4)
    a, b = [t for t, _ in rows[:20]], [t for t, _ in rows[20:]]
    labels = np.array([y for _, y in rows[:20]], dtype=np.int64)
    logits = np.stack([1.0 - labels, labels.astype(float)], 1).astype(np.float32)
    train_df = pd.DataFrame({"sentence1": a, "sentence2": b, "label": labels, "synthetic": False,
                             "origin": np.arange(20), "logits": list(logits), "teacher_label": labels})
    dev_df = train_df[["sentence1", "sentence2", "label"]].iloc[:8]
    info = fit(builtin_task("qqp"), train_df, dev_df, student_params(epochs=1), tmp_path / "m", tmp_path / "c.csv",
               tmp_path / "r.json", progress=False)
    model, vocab = load_student(tmp_path / "m")
    assert model.cfg.pair and set(b[0].split()) <= set(vocab.itos)  # the vocabulary covers both columns
    assert list(pd.read_csv(tmp_path / "c.csv").columns) == ["model", "epoch", "train_loss", "dev_accuracy",
                                                             "dev_f1"]  # QQP also reports F1
    assert info["train_rows"] == 20


# ---- the train stage -------------------------------------------------------------------------------------------
@pytest.mark.long
def test_stage_student_and_baseline(tmp_path):
    paths = write_task_data(tmp_path)
    write_params(tmp_path, student={**ARCH, "embeddings": "glove-6b-50d",
                                    "batch_size": {"rotten_tomatoes": 16, "sst2": 1, "qqp": 1, "mnli": 1}})
    args = ["--task", "rotten_tomatoes", *cli_dirs(tmp_path, "data", "models", "params")]
    for kind in ("student", "baseline"):
        run_stage("train.py", kind, *args)
        model_dir = paths.model(kind)
        assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "model.pt", "task.json", "training.json",
                                                               "vocab.txt"]
        training = json.loads((model_dir / "training.json").read_text())
        assert training["hardware"]["device_type"] == "cpu" and training["hardware"]["cpu_flags"] == cpu_vector_flags()
        # the baseline trains in fp32; the student in what student.bf16 resolves to here
        native = kind == "student" and resolve_bf16(load(StudentParams, "rotten_tomatoes", tmp_path / "params.yaml").bf16,
                                                    torch.device("cpu"), "student.bf16")
        assert training["precision"] == ("bf16" if native else "fp32")
        run = paths.for_stage(f"train_{kind}")
        report = json.loads(run.report(f"train_{kind}").read_text())
        assert report["precision"] == training["precision"] and report["rows_per_s"] > 0 and report["model"] == kind
        assert json.loads((model_dir / "task.json").read_text())["labels"] == ["negative", "positive"]
        cfg = json.loads((model_dir / "config.json").read_text())
        assert cfg["embeddings"] == "glove-6b-50d" and cfg["embedding_dim"] == 50 and 0 < cfg["coverage"] <= 1
        assert cfg["alpha"] == (0.0 if kind == "student" else 1.0) and cfg["hidden"] == 8
        assert cfg["train_rows"] == (96 if kind == "student" else 48)  # transfer set vs gold training set
        curve = pd.read_csv(run.curve(kind))
        assert list(curve.columns) == ["model", "epoch", "train_loss", "dev_accuracy"] and 1 <= len(curve) <= 3
        assert (curve["model"] == kind).all()
        assert cfg["dev_accuracy"] == curve["dev_accuracy"].max()
        assert curve["epoch"][curve["dev_accuracy"].idxmax()] == cfg["best_epoch"]
        vocab = (model_dir / "vocab.txt").read_text().split("\n")
        assert vocab[:3] == ["[PAD]", "[UNK]", "[MASK]"] and vocab.count("[MASK]") == 1
        assert sorted(p.relative_to(run.metrics).as_posix() for p in run.metrics.rglob("*.*")) == [
            f"plots/{kind}_curve.csv", f"reports/train_{kind}.json"]
    assert not paths.metrics.exists()  # metrics/ is the report stage's
    run_stage("train.py", "student", *args, "--set", "student.transfer_iters=0")  # the originals only
    assert json.loads((paths.model("student") / "config.json").read_text())["train_rows"] == 48
    report = json.loads(paths.for_stage("train_student").report("train_student").read_text())
    assert report["transfer_iters"] == 0 and report["train_rows"] == 48 and report["wall_s"] > 0
    proc = run_stage("train.py", "student", *args, "--set", "student.transfer_iters=2", check=False)
    assert one_line_error(proc) == "error: student.transfer_iters=2: the transfer set has only 1 augment iteration(s)"
    proc = run_stage("train.py", "baseline", *args, "--set", "student.alpha=0.5", check=False)
    assert one_line_error(proc).startswith("error: --set student.alpha: not a setting of this stage (its settings: "
                                           "student.embeddings,")  # the baseline is CE on gold labels: no alpha


def test_first_iterations_keeps_the_originals_and_the_early_iterations():
    logits = pd.DataFrame({"origin": [0, 1, 2, 0, 0, 1, 2, 2], "sentence": list("abcdefgh")})
    iterations = pd.DataFrame({"origin": logits["origin"], "iteration": [-1, -1, -1, 0, 2, 1, 0, 2]})
    assert first_iterations(logits, iterations, 0)["sentence"].tolist() == list("abc")
    assert first_iterations(logits, iterations, 1)["sentence"].tolist() == list("abcdg")
    assert first_iterations(logits, iterations, 2)["sentence"].tolist() == list("abcdfg")
    assert first_iterations(logits, iterations, 3).equals(logits)
    with pytest.raises(UserError, match="only 3 augment iteration"):
        first_iterations(logits, iterations, 4)
    with pytest.raises(UserError, match="does not match teacher_logits.parquet row for row"):
        first_iterations(logits, iterations.assign(origin=[0, 1, 2, 0, 1, 0, 2, 2]), 1)
    with pytest.raises(UserError, match="does not match"):
        first_iterations(logits, iterations[:-1], 1)
