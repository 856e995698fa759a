"""End to end: `dvc repro` of the whole DAG on a tiny configuration, in a temporary copy of the repository
(conftest's session-wide `tiny_dvc_repo`); every documented output checked against the data it was computed from."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from distill.layout import RUN_STAGES, TaskPaths
from distill.report.charts import CHARTS, chart_path
from distill.student.model import load_student
from distill.teacher.model import encode, load_tokenizer, token_count

TASK = "rotten_tomatoes"


def _dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def rate_fits(rate: float, count: int, wall_s: float) -> bool:
    """A report's count/s against its count and its wall time, which the report rounds to 10 ms."""
    return count / (wall_s + 0.005) - 0.05 <= rate <= count / max(wall_s - 0.005, 1e-9) + 0.05


def test_dvc_repro_tiny_end_to_end(tiny_dvc_repo):
    """The tiny configuration of dvc_helpers.tiny_params: a made-up wheel of 240 reviews, n_iter 2, the tiny
    teacher (1 epoch, lr 1e-4), random-embedding BiLSTMs of hidden 16, a 64-sentence benchmark."""
    repo = tiny_dvc_repo
    p = TaskPaths(TASK, repo / "data", repo / "models", repo / "metrics")
    train, dev, test = (pd.read_parquet(p.split(s)) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (192, 24, 24)
    assert _json(p.download_report)["rows"] == {"train": 192, "dev": 24, "test": 24}

    # transfer set: the training rows first, then at most n_iter synthetic rows per training row
    transfer = pd.read_parquet(p.transfer)
    n_synth = int(transfer["synthetic"].sum())
    assert transfer["sentence"][:192].tolist() == train["sentence"].tolist() and 0 < n_synth <= 2 * 192
    assert len(transfer) == 192 + n_synth and (transfer["label"][192:] == -1).all()

    # teacher logits: the same rows, two classes, teacher_label their argmax
    logits = pd.read_parquet(p.logits)
    assert logits["sentence"].tolist() == transfer["sentence"].tolist()
    z = np.stack(logits["logits"].to_numpy())
    assert z.shape == (len(transfer), 2) and (logits["teacher_label"].to_numpy() == z.argmax(1)).all()
    assert pd.read_parquet(p.teacher_vectors).empty  # random embeddings: the teacher's vectors are not needed

    finetune = _json(p.report("teacher_finetune"))
    assert finetune["best_lr"] == 1e-4 and finetune["runs"][0]["train_rows"] == 192 and finetune["dev"]["n"] == 24
    # the teacher stages' rates count what the teacher read: its tokenizer's tokens, special tokens in, no padding
    tokenizer = load_tokenizer(str(p.model("teacher")), True)
    train_tokens = token_count(encode(tokenizer, train["sentence"].tolist(), None, 32))  # teacher.max_length 32
    transfer_tokens = token_count(encode(tokenizer, transfer["sentence"].tolist(), None, 32))
    (run,) = finetune["runs"]  # one epoch
    assert (run["rows_trained"], run["tokens_trained"]) == (192, train_tokens) and train_tokens > 2 * 192
    assert rate_fits(run["rows_per_s"], 192, run["train_wall_s"])
    assert rate_fits(finetune["tokens_per_s"], train_tokens, finetune["train_wall_s"])

    for kind in ("teacher", "student", "baseline"):
        scores = _json(p.scores(kind))
        assert list(scores) == [TASK] and list(scores[TASK]) == [kind]  # names unique across files (dvc exp show)
        scores = scores[TASK][kind]
        assert set(scores) == ({"dev", "test"} if kind == "teacher" else {"dev", "test", "params"})
        confusion = pd.read_csv(p.confusion / f"{kind}.csv")
        assert len(confusion) == len(dev) and confusion["actual"].tolist() == [("negative", "positive")[y] for y in dev["label"]]
        hits = sum(a == b for a, b in zip(confusion["actual"], confusion["predicted"]))
        assert scores["dev"]["accuracy"] == round(hits / len(dev), 4)  # the JSON's accuracy is the CSV's

    for kind, rows in (("student", len(transfer)), ("baseline", len(train))):
        saved = _json(p.model(kind) / "config.json")
        assert saved["train_rows"] == rows and saved["hidden"] == 16 and saved["embeddings"] == "random"
        curve = pd.read_csv(p.curve(kind))
        assert 1 <= len(curve) <= 2 and (curve["model"] == kind).all()
        # the kept epoch is the curve's best, and evaluate scores that same model on the same dev split
        assert saved["dev_accuracy"] == curve["dev_accuracy"].max() == _json(p.scores(kind))[TASK][kind]["dev"]["accuracy"]
        model, _ = load_student(p.model(kind))
        total = sum(x.numel() for x in model.parameters())
        assert _json(p.scores(kind))[TASK][kind]["params"]["total"] == total

    report = _json(p.report("benchmark"))
    assert report["examples"] == report["sentences"] == 64 and report["task"] == TASK
    speed = _json(p.speed)[TASK]
    s, t = report["student"], report["teacher"]
    assert speed["student"]["sentences_per_s"] == round(64 / s["seconds"], 1)
    assert speed["speedup"] == round(t["seconds"] / s["seconds"], 1) and speed["speedup"] > 0
    assert speed["baseline"]["sentences_per_s"] == round(64 / report["baseline"]["seconds"], 1)
    table = pd.read_csv(p.plots / "accuracy_vs_speed.csv")
    assert table["model"].tolist() == ["teacher", "student", "baseline"]
    assert table["dev_accuracy"].tolist() == [_json(p.scores(k))[TASK][k]["dev"]["accuracy"] for k in table["model"]]
    assert sorted(x.name for x in p.plots.iterdir()) == ["accuracy_vs_speed.csv", "baseline_curve.csv", "confusion",
                                                         "student_curve.csv", "teacher_curve.csv",
                                                         "teacher_loss.csv", "throughput_vs_batch.csv"]

    # export: both BiLSTMs as ONNX folders, checked against torch on every dev row; batch-1 latency in speed.json
    for kind in ("student", "baseline"):
        info = _json(p.model("export") / kind / "export.json")
        assert info["labels"] == ["negative", "positive"] and info["pair"] is False and info["kind"] == kind
        assert info["check"]["rows"] == len(dev) and info["check"]["max_abs_logit_diff_vs_torch"] <= 1e-5
    latency = speed["latency"]
    assert set(latency) == {"student_onnx", "student_fast", "teacher", "teacher_over_student_onnx_p99",
                            "teacher_over_student_macs"}
    assert latency["teacher_over_student_macs"] == round(report["service"]["arithmetic"]["teacher_over_student_macs"], 1)
    assert latency["teacher_over_student_macs"] > 0  # (here < 1: the test's teacher is smaller than its student)
    assert all(0 < latency[k]["p50_ms"] <= latency[k]["p99_ms"] for k in ("student_onnx", "student_fast", "teacher"))
    assert report["service"]["latency"]["student_onnx"]["requests"] == 16 and report["service"]["curve_examples"] == 32
    curve = pd.read_csv(p.plots / "throughput_vs_batch.csv")
    assert curve["batch_size"].tolist() == [1, 8, 64, 512] * 3

    # every chart dvc.yaml declares (a folder of one file per task) has the task's file, with its x and y columns
    # and every model's rows
    charts = dict(next(iter(entry.items())) for entry in yaml.safe_load((repo / "dvc.yaml").read_text())["plots"])
    assert sorted(charts) == sorted(chart_path(p, name).parent.relative_to(repo).as_posix() for name in CHARTS)
    for folder, chart in charts.items():
        table = pd.read_csv(repo / folder / f"{TASK}.csv")
        assert chart["x"] in table.columns and chart["y"] in table.columns, (folder, list(table.columns))
    assert pd.read_csv(chart_path(p, "confusion"))["model"].unique().tolist() == ["teacher", "student", "baseline"]
    assert pd.read_csv(chart_path(p, "dev_accuracy"))["model"].str.split().str[0].unique().tolist() == [
        "teacher", "student", "baseline"]
    shown = json.loads(_dvc(repo, "plots", "show", "--json").stdout)
    assert "errors" not in shown and set(shown["data"]) == {f"{folder}/{TASK}.csv" for folder in charts}

    # metrics/<task>/ is the report stage's copy of the expensive stages' run folders (DVC-cached), file for file
    copied = {f.relative_to(p.run(stage)): f for stage in RUN_STAGES for f in p.run(stage).rglob("*") if f.is_file()}
    assert {f.relative_to(p.metrics) for f in p.metrics.rglob("*") if f.is_file()} == set(copied)
    assert all((p.metrics / rel).read_bytes() == source.read_bytes() for rel, source in copied.items())
    logits_report = _json(p.report("teacher_logits"))
    assert logits_report["rows"] == len(transfer) and logits_report["precision"] == "fp32"  # tiny params: bf16 false
    assert (logits_report["rows_computed"], logits_report["tokens_computed"]) == (len(transfer), transfer_tokens)
    assert rate_fits(logits_report["tokens_per_s"], transfer_tokens, logits_report["wall_s"])
    for kind in ("teacher", "student", "baseline"):  # every model says what it trained in and on
        assert _json(p.model(kind) / "training.json")["hardware"]["device_type"] == "cpu"

    status = _dvc(repo, "repro")
    assert "Running stage" not in status.stdout, status.stdout
    shown = json.loads(_dvc(repo, "metrics", "show", "--json").stdout)
    files = {Path(f).as_posix() for rev in shown.values() for f in rev.get("data", {})}
    assert {f"metrics/{TASK}/{name}.json" for name in ("teacher", "student", "baseline", "speed")} <= files
