"""distill/report/evaluate.py, the evaluate stage (scores JSON + confusion CSVs) and the predict CLI."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO, one_line_error, run_stage
from distill.io import UserError
from distill.report.evaluate import evaluate, metrics_document, model_kind, read_rows, write_confusion
from distill.student.model import load_student
from helpers import builtin_task, cli_dirs, save_tiny_student, write_params, write_task_data
from distill.teacher.model import load_teacher

TASK = "rotten_tomatoes"


def student_preds(model_dir, texts):
    """The saved student's labels, one direct forward call per text (no batching code of the library)."""
    model, vocab = load_student(model_dir)
    with torch.no_grad():
        return [int(model(torch.tensor([vocab.encode(t) or [0]]), torch.tensor([max(len(t.split()), 1)])).argmax())
                for t in texts]


def teacher_preds(model_dir, texts):
    model, tok = load_teacher(model_dir, "cpu")
    with torch.no_grad():
        return [int(model(**tok([t], return_tensors="pt")).logits.argmax()) for t in texts]


@pytest.fixture
def task_root(tmp_path, tiny_teacher):
    paths = write_task_data(tmp_path)
    train = pd.read_parquet(paths.train)["sentence"].tolist()
    shutil.copytree(tiny_teacher, paths.model("teacher"))
    save_tiny_student(paths.model("student"), train, seed=1, jitter=0.5)
    save_tiny_student(paths.model("baseline"), train, seed=2, jitter=0.5)
    write_params(tmp_path)
    return tmp_path, paths


def test_evaluate_skips_unlabelled_rows_and_reports_f1():
    task = builtin_task("qqp")
    df = pd.DataFrame({"sentence1": ["a", "b", "c", "d"], "sentence2": ["a", "x", "c", "y"], "label": [1, 0, -1, 1]})

    def predict(columns):  # "duplicate" when both questions are equal
        return np.array([[0.0, 1.0] if a == b else [1.0, 0.0] for a, b in zip(*columns)])

    metrics, conf = evaluate(predict, task, {"dev": df, "test": df.assign(label=-1)})
    # labelled rows a/a (1, predicted 1), b/x (0, predicted 0), d/y (1, predicted 0):
    # accuracy 2/3; positive class tp 1, fp 0, fn 1 -> F1 2/3
    assert metrics == {"dev": {"accuracy": 0.6667, "n": 3, "f1": 0.6667, "per_class": {  # test: no labels, no entry
        "not_duplicate": {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1},
        "duplicate": {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}}}}
    assert conf.to_dict("list") == {"actual": ["duplicate", "not_duplicate", "duplicate"],
                                    "predicted": ["duplicate", "not_duplicate", "not_duplicate"]}


def test_confusion_comes_from_the_dev_split_only():
    task = builtin_task("mnli")
    dev = pd.DataFrame({"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [2, 0]})
    metrics, conf = evaluate(lambda cols: np.tile([0.0, 0.0, 1.0], (len(cols[0]), 1)), task,
                             {"dev_matched": dev, "dev_mismatched": dev.assign(label=[2, 2])})
    # macro-F1 over the three classes: only neutral is ever predicted (F1 2/3 and 1), the others score 0
    assert {k: {m: v for m, v in x.items() if m != "per_class"} for k, x in metrics.items()} == {
        "dev_matched": {"accuracy": 0.5, "n": 2, "macro_f1": 0.2222},
        "dev_mismatched": {"accuracy": 1.0, "n": 2, "macro_f1": 0.3333}}
    assert metrics["dev_matched"]["per_class"]["contradiction"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                                                    "support": 1}
    assert conf.to_dict("list") == {"actual": ["neutral", "contradiction"], "predicted": ["neutral", "neutral"]}


def test_metrics_document_nests_numbers_under_task_and_model():
    scores = {"dev": {"accuracy": 0.75, "n": 4, "f1": 0.5}, "test": {"accuracy": 0.5, "n": 2}}
    assert metrics_document("qqp", "student", scores, {"total": 10, "without_embeddings": 4}) == {"qqp": {"student": {
        "dev": {"accuracy": 0.75, "f1": 0.5}, "test": {"accuracy": 0.5},
        "params": {"total": 10, "without_embeddings": 4}}}}
    assert metrics_document("sst2", "teacher", {"dev": {"accuracy": 1.0, "n": 3}}) == {
        "sst2": {"teacher": {"dev": {"accuracy": 1.0}}}}


def _flat(doc: dict, prefix: str = "") -> set[str]:
    return set().union(*(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k} for k, v in doc.items()))


def test_committed_metric_names_are_unique_across_files():
    """DVC prefixes a metric with its file's path when two files share its flattened name, which made
    `dvc exp show` hundreds of columns wide; every metrics file dvc.yaml lists holds names of its own."""
    import yaml
    files = yaml.safe_load((REPO / "dvc.yaml").read_text())["metrics"]
    seen: dict[str, str] = {}
    for name in files:
        for key in _flat(json.loads((REPO / name).read_text())):
            assert key not in seen, f"{key} in both {seen[key]} and {name}"
            seen[key] = name
        task, model = name.split("/")[1], name.rsplit("/", 1)[1].removesuffix(".json")
        assert all(k.startswith(f"{task}.{'' if model == 'speed' else model + '.'}") for k in _flat(
            json.loads((REPO / name).read_text())))
    assert "rotten_tomatoes.student.dev.accuracy" in seen


def test_write_confusion_replaces_the_folder(tmp_path):
    (tmp_path / "confusion").mkdir()
    (tmp_path / "confusion" / "old_model.csv").write_text("x")
    write_confusion({"student": pd.DataFrame({"actual": [1, 0], "predicted": [1, 1]})}, tmp_path / "confusion")
    assert sorted(p.name for p in (tmp_path / "confusion").iterdir()) == ["student.csv"]
    assert (tmp_path / "confusion" / "student.csv").read_text() == "actual,predicted\n1,1\n0,1\n"


def test_evaluate_stage_writes_the_documented_outputs(task_root):
    root, paths = task_root
    run_stage("evaluate.py", "--task", TASK, *cli_dirs(root, "data", "models", "params"))
    run = paths.for_stage("evaluate")  # models/<task>/runs/evaluate/: the report stage copies it to metrics/<task>/
    dev = pd.read_parquet(paths.split("dev"))
    test = pd.read_parquet(paths.split("test"))
    preds = {"teacher": teacher_preds, "student": student_preds, "baseline": student_preds}
    for kind, predict in preds.items():
        report = json.loads(run.scores(kind).read_text())
        assert list(report) == [TASK] and list(report[TASK]) == [kind]
        report = report[TASK][kind]
        assert set(report) == ({"dev", "test"} if kind == "teacher" else {"dev", "test", "params"})
        for split, df in (("dev", dev), ("test", test)):
            labels = df["label"].tolist()
            hits = sum(p == y for p, y in zip(predict(paths.model(kind), df["sentence"].tolist()), labels))
            assert report[split] == {"accuracy": round(hits / len(labels), 4)}
        conf = pd.read_csv(run.confusion / f"{kind}.csv")
        names = ("negative", "positive")
        assert list(conf.columns) == ["actual", "predicted"]
        assert conf["actual"].tolist() == [names[y] for y in dev["label"]]
        assert conf["predicted"].tolist() == [names[y] for y in predict(paths.model(kind), dev["sentence"].tolist())]
    student = json.loads(run.scores("student").read_text())[TASK]["student"]
    model, _ = load_student(paths.model("student"))
    total = sum(p.numel() for p in model.parameters())
    embeddings = sum(p.numel() for n, p in model.named_parameters() if "embed" in n)
    assert student["params"] == {"total": total, "without_embeddings": total - embeddings}
    assert sorted(p.name for p in run.metrics.iterdir()) == ["baseline.json", "plots", "reports", "student.json",
                                                             "teacher.json"]
    assert not paths.metrics.exists()
    report = json.loads(run.report("evaluate").read_text())
    assert report["labels"] == ["negative", "positive"] and report["models"]["student"]["dev"]["n"] == 16
    assert set(report["models"]["teacher"]["test"]["per_class"]) == {"negative", "positive"}


def test_evaluate_stage_missing_model_writes_nothing(task_root):
    root, paths = task_root
    shutil.rmtree(paths.model("baseline"))
    proc = run_stage("evaluate.py", "--task", TASK, *cli_dirs(root, "data", "models", "params"),
                     check=False)
    assert "baseline" in one_line_error(proc)
    assert not paths.run("evaluate").exists() and not paths.metrics.exists()


def predict_cli(*args, stdin: bytes = b""):
    return subprocess.run([sys.executable, "-m", "stages.predict", *args], input=stdin,
                          capture_output=True, cwd=REPO)


def test_predict_cli_output_format(task_root):
    root, paths = task_root
    params = ["--params-file", str(root / "params.yaml")]
    proc = predict_cli("--model", str(paths.model("student")), *params,
                       stdin=b"It's a charming journey!\n\nA dull, lifeless mess.\n")
    assert proc.returncode == 0, proc.stderr
    header, *lines = proc.stdout.decode().split("\n")
    assert header == "label\tp_0\tp_1"  # a model saved without its task.json: classes named by their ids
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""  # a blank input line keeps its place
    model, vocab = load_student(paths.model("student"))
    for line, text in zip((lines[0], lines[2]), ("it 's a charming journey !", "a dull , lifeless mess .")):
        ids = vocab.encode(text)  # the normalised text, as the training data is
        with torch.no_grad():
            z = model(torch.tensor([ids]), torch.tensor([len(ids)]))[0].double().numpy()
        expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        label, *probs = line.split("\t")
        assert int(label) == int(np.argmax(z)) and len(probs) == 2
        np.testing.assert_allclose([float(p) for p in probs], expected, atol=6e-5)  # printed to 4 decimals

    (root / "in.tsv").write_bytes(b"funny and moving\nbad \xff byte\n")
    teacher = predict_cli("--model", str(paths.model("teacher")), "--input", str(root / "in.tsv"), *params)
    assert teacher.returncode == 0, teacher.stderr
    assert [len(x.split("\t")) for x in teacher.stdout.decode().strip().split("\n")] == [3, 3, 3]
    assert b"1 undecodable byte sequence(s) replaced" in teacher.stderr


def test_predict_cli_errors(tmp_path):
    write_params(tmp_path)
    params = ["--params-file", str(tmp_path / "params.yaml")]
    (tmp_path / "bogus").mkdir()
    (tmp_path / "bogus" / "notes.txt").write_text("hi")
    proc = predict_cli("--model", str(tmp_path / "bogus"), *params, stdin=b"hello\n")
    proc.stderr = proc.stderr.decode()
    assert "neither a student" in one_line_error(proc) and len(proc.stderr.strip().split("\n")) == 1
    pair = save_tiny_student(tmp_path / "pair", ["a b", "c d"], pair=True)
    ok = predict_cli("--model", str(pair), *params, stdin=b"a b\tc d\nc\ta\n")
    assert ok.returncode == 0 and len(ok.stdout.decode().strip().split("\n")) == 3  # header + two answers


def test_model_kind_and_input_parsing(tmp_path, tiny_teacher):
    with pytest.raises(UserError, match="not found"):
        model_kind(tmp_path / "missing")
    assert model_kind(save_tiny_student(tmp_path / "s", ["a b"])) == "student"
    assert model_kind(tiny_teacher) == "teacher"
    assert read_rows(["It's good!", "", "Bad."], 1) == [["it 's good !", "bad ."]]
    assert read_rows(["A\tB", "c\td"], None) == [["a", "c"], ["b", "d"]]
    with pytest.raises(UserError, match="2 tab-separated"):
        read_rows(["only one field"], 2)
    with pytest.raises(UserError, match="the same on every line"):
        read_rows(["a\tb", "c"], None)
    with pytest.raises(UserError, match="no input"):
        read_rows(["", "  "], 1)
