"""evaluate stage (metrics JSON + confusion CSVs) and the predict CLI."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO, run_stage
from test_student import make_task_dir, tiny_teacher

from distill.report.evaluate import evaluate, model_kind, read_rows, student_predictor
from distill.io import UserError
from distill.report.metrics import split_metrics
from distill.student.model import StudentClassifier, StudentConfig, save_student
from distill.tasks import get_task
from distill.student.vocab import Vocab

torch.set_num_threads(1)
TASK = "rotten_tomatoes"


def save_tiny_student(path, texts, pair=False, seed=0):
    vocab = Vocab.build(texts)
    torch.manual_seed(seed)
    model = StudentClassifier(StudentConfig(vocab_size=len(vocab), embedding_dim=8, hidden=6, fc=5, num_labels=2,
                                            pair=pair))
    return save_student(model, vocab, path)


@pytest.fixture
def task_root(tmp_path):
    root = make_task_dir(tmp_path)
    train = pd.read_parquet(root / "data" / TASK / "train.parquet")["sentence"].tolist()
    models = root / "models" / TASK
    tiny_teacher(models / "teacher")
    save_tiny_student(models / "student", train, seed=1)
    save_tiny_student(models / "baseline", train, seed=2)
    return root


def test_evaluate_skips_unlabelled_rows_and_reports_f1():
    task = get_task("qqp")
    df = pd.DataFrame({"sentence1": ["a", "b", "c", "d"], "sentence2": ["a", "x", "c", "y"], "label": [1, 0, -1, 1]})

    def predict(columns):  # "duplicate" when both questions are equal
        return np.array([[0.0, 1.0] if a == b else [1.0, 0.0] for a, b in zip(*columns)])

    metrics, conf = evaluate(predict, task, {"dev": df, "test": df.assign(label=-1)})
    assert metrics == {"dev": split_metrics([1, 0, 1], [1, 0, 0], with_f1=True)}
    assert "f1" in metrics["dev"] and metrics["dev"]["n"] == 3
    assert conf.to_dict("list") == {"actual": [1, 0, 1], "predicted": [1, 0, 0]}


def test_evaluate_stage_writes_the_documented_outputs(task_root):
    run_stage("evaluate.py", "--task", TASK, "--data-dir", str(task_root / "data"), "--models-dir",
              str(task_root / "models"), "--metrics-dir", str(task_root / "metrics"))
    metrics = task_root / "metrics" / TASK
    dev = pd.read_parquet(task_root / "data" / TASK / "dev.parquet")
    for name in ("teacher", "baseline", "student"):
        report = json.loads((metrics / f"{name}.json").read_text())
        assert set(report) == ({"dev", "test"} if name == "teacher" else {"dev", "test", "params"})
        assert report["dev"]["n"] == 16 and report["test"]["n"] == 16 and "f1" not in report["dev"]
        conf = pd.read_csv(metrics / "confusion" / f"{name}.csv")
        assert list(conf.columns) == ["actual", "predicted"] and conf["actual"].tolist() == dev["label"].tolist()
        assert report["dev"]["accuracy"] == round(float((conf["actual"] == conf["predicted"]).mean()), 4)
    # the student's numbers are its own predictions, recomputed here in-process
    predict, info = student_predictor(task_root / "models" / TASK / "student")
    preds = predict([dev["sentence"].tolist()]).argmax(1)
    student = json.loads((metrics / "student.json").read_text())
    assert student["dev"] == split_metrics(dev["label"].to_numpy(), preds)
    assert student["params"] == info["params"] and student["params"]["without_embeddings"] > 0


def test_evaluate_stage_missing_model_is_one_line(task_root):
    import shutil

    shutil.rmtree(task_root / "models" / TASK / "baseline")
    proc = run_stage("evaluate.py", "--task", TASK, "--data-dir", str(task_root / "data"), "--models-dir",
                     str(task_root / "models"), "--metrics-dir", str(task_root / "metrics"), check=False)
    assert proc.returncode == 2 and "baseline" in proc.stderr and "Traceback" not in proc.stderr


def predict_cli(*args, stdin=""):
    return subprocess.run([sys.executable, str(REPO / "stages" / "predict.py"), *args], input=stdin,
                          capture_output=True, text=True, cwd=REPO)


def test_predict_cli_output_format(task_root):
    model = task_root / "models" / TASK / "student"
    proc = predict_cli("--model", str(model), stdin="It's a charming journey!\nA dull, lifeless mess.\n")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().split("\n")
    assert len(lines) == 2
    predict, _ = student_predictor(model)
    logits = predict([["it 's a charming journey !", "a dull , lifeless mess ."]])  # normalised input
    for line, z in zip(lines, logits):
        label, *probs = line.split("\t")
        probs = np.array([float(p) for p in probs])
        assert len(probs) == 2 and abs(probs.sum() - 1) < 1e-3 and int(label) == int(np.argmax(z))
        expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        assert np.allclose(probs, expected, atol=1e-4)

    (task_root / "in.tsv").write_text("funny and moving\n")
    teacher = predict_cli("--model", str(task_root / "models" / TASK / "teacher"), "--input", str(task_root / "in.tsv"))
    assert teacher.returncode == 0, teacher.stderr
    assert len(teacher.stdout.strip().split("\t")) == 3


def test_predict_cli_errors(tmp_path):
    (tmp_path / "bogus").mkdir()
    (tmp_path / "bogus" / "notes.txt").write_text("hi")
    proc = predict_cli("--model", str(tmp_path / "bogus"), stdin="hello\n")
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().split("\n")) == 1 and "neither a student" in proc.stderr
    pair = save_tiny_student(tmp_path / "pair", ["a b", "c d"], pair=True)
    ok = predict_cli("--model", str(pair), stdin="a b\tc d\nc\ta\n")
    assert ok.returncode == 0 and len(ok.stdout.strip().split("\n")) == 2


def test_model_kind_and_input_parsing(tmp_path):
    with pytest.raises(UserError, match="not found"):
        model_kind(tmp_path / "missing")
    assert model_kind(save_tiny_student(tmp_path / "s", ["a b"])) == "student"
    assert read_rows(["It's good!", "", "Bad."], 1) == [["it 's good !", "bad ."]]
    assert read_rows(["A\tB", "c\td"], None) == [["a", "c"], ["b", "d"]]
    with pytest.raises(UserError, match="2 tab-separated"):
        read_rows(["only one field"], 2)
    with pytest.raises(UserError, match="the same on every line"):
        read_rows(["a\tb", "c"], None)
    with pytest.raises(UserError, match="no input"):
        read_rows(["", "  "], 1)
