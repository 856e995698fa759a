"""distill/report/benchmark.py and the benchmark stage (§5.2): parameters, timings, speed.json."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import one_line_error, run_stage
from distill.io import UserError
from distill.layout import TaskPaths
from distill.report.benchmark import (reference_logits, run_benchmark, scored_accuracy, speed_metrics, student_parameters, summary,
                                      teacher_parameters, time_runs)
from distill.student.model import count_parameters, save_student
from distill.teacher.model import load_teacher
from helpers import cli_dirs, make_student, random_texts, write_params, write_task_file


def test_teacher_parameter_count_excludes_embedding_tables(tiny_teacher):
    model, _ = load_teacher(tiny_teacher, "cpu")
    counts = teacher_parameters(model)
    emb = model.bert.embeddings
    tables = sum(m.weight.numel() for m in (emb.word_embeddings, emb.position_embeddings, emb.token_type_embeddings))
    total = sum(p.numel() for p in model.parameters())
    assert tables == (30522 + 128 + 2) * 32  # MiniLM's vocabulary, 128 positions, 2 segments, 32-d
    assert counts == {"params_m": total / 1e6, "params_m_without_embeddings": (total - tables) / 1e6}


def test_student_parameters():
    model = make_student(20, embedding_dim=8, hidden=6, fc=5, num_labels=2)
    lstm = 2 * (4 * 6 * (16 + 6) + 2 * 4 * 6)  # input 2 x 8 (multichannel)
    head = (12 * 5 + 5) + (5 * 2 + 2)
    assert student_parameters(model) == {"params_m": (lstm + head + 2 * 20 * 8) / 1e6,
                                         "params_m_without_embeddings": (lstm + head) / 1e6}


def test_summary_and_time_runs():
    assert summary([3.0, 1.0, 2.0], 10) == {"seconds": 2.0, "seconds_all": [3.0, 1.0, 2.0], "sentences_per_s": 5.0}
    calls = []
    times, out = time_runs(lambda: calls.append(1) or len(calls), 3, torch.device("cpu"))
    assert len(times) == 3 and out == 3 and all(t >= 0 for t in times)
    assert len(time_runs(lambda: None, 0, torch.device("cpu"))[0]) == 1  # at least one run


def test_speed_metrics_by_hand():
    report = {"student": {"arch": "bilstm", "sentences_per_s": 1234.56, "params_m": 0.96349},
              "teacher": {"sentences_per_s": 98.04, "params_m": 22.71},
              "speedup": 12.5923, "params_ratio": 23.5709}
    assert speed_metrics(report, "sst2") == {"sst2": {
        "speedup": 12.6, "params_ratio": 23.6,
        "student": {"arch": "bilstm", "sentences_per_s": 1234.6, "params_m": 0.963},
        "teacher": {"sentences_per_s": 98.0, "params_m": 22.71}}}
    assert speed_metrics({"student": report["student"]}, "qqp") == {
        "qqp": {"student": {"arch": "bilstm", "sentences_per_s": 1234.6, "params_m": 0.963}}}
    with_baseline = {**report, "baseline": {"arch": "cnn", "sentences_per_s": 2000.04},
                     "student": {**report["student"], "arch": "cnn", "gflops": 7.25}}
    out = speed_metrics(with_baseline, "sst2")["sst2"]
    assert out["baseline"] == {"arch": "cnn", "sentences_per_s": 2000.0} and out["student"]["gflops"] == 7.2
    assert out["student"]["arch"] == "cnn"


def test_scored_accuracy_reads_the_evaluate_stage_file(tmp_path):
    path = tmp_path / "student.json"
    path.write_text(json.dumps({"sst2": {"student": {"dev": {"accuracy": 0.8125}}}}))
    assert scored_accuracy(path, "sst2", "student", "dev") == 0.8125
    for bad, message in ((None, "not found; run the evaluate stage first"),
                         ('{"dev": {"accuracy": 0.8}}', "no sst2.student.dev.accuracy in it"),
                         ("{not json", "no sst2.student.dev.accuracy in it")):
        if bad is None:
            path.unlink()
        else:
            path.write_text(bad)
        with pytest.raises(UserError, match=message):
            scored_accuracy(path, "sst2", "student", "dev")


def test_reference_logits_is_the_model_call(student_corpus):
    _, _, vocab = student_corpus
    model = make_student(len(vocab), num_labels=3, jitter=0.3)
    texts = ["w1 w2 w3", "w4", "w5 w6"]
    ids = torch.zeros(3, 3, dtype=torch.long)
    for i, t in enumerate(texts):
        ids[i, :len(t.split())] = torch.tensor(vocab.encode(t))
    with torch.no_grad():
        direct = model(ids, torch.tensor([3, 1, 2])).numpy()
    np.testing.assert_allclose(reference_logits(model, vocab, texts), direct, atol=1e-6)


def test_run_benchmark_record(student_corpus, tiny_teacher):
    rng, words, vocab = student_corpus
    model = make_student(len(vocab), pair=True, jitter=0.3)
    first, second = random_texts(rng, 40, words), random_texts(rng, 40, words)
    tmodel, tok = load_teacher(tiny_teacher, "cpu")
    res = run_benchmark(first, second, (model, vocab), (tmodel, tok), batch_size=16, repeats=2, max_length=64,
                        device=torch.device("cpu"), progress=False)
    s, t = res["student"], res["teacher"]
    assert res["sentences"] == 80 and res["examples"] == 40 and res["pair"] and res["device_type"] == "cpu"
    assert set(s["paths"]) == {"reference", "fast", "onnxruntime"}
    assert s["seconds"] == min(p["seconds"] for p in s["paths"].values())  # the fastest path is the student
    assert s["sentences_per_s"] == 80 / s["seconds"]
    assert all(len(p["seconds_all"]) == 2 for p in s["paths"].values())
    assert s["max_abs_logit_diff_vs_reference"]["reference"] == 0.0
    assert max(s["max_abs_logit_diff_vs_reference"].values()) < 1e-4
    assert s["params_m"] == count_parameters(model) / 1e6
    assert t["teacher_repeats"] == 1 and len(t["seconds_all"]) == 1
    assert res["speedup"] == t["seconds"] / s["seconds"]
    assert res["params_ratio"] == t["params_m"] / s["params_m"]


@pytest.mark.long
def test_stage(student_corpus, tiny_teacher, tmp_path):
    rng, words, vocab = student_corpus
    paths = TaskPaths("sst2", tmp_path / "data", tmp_path / "models", tmp_path / "metrics")
    write_task_file(paths)
    pd.DataFrame({"idx": range(30), "sentence": random_texts(rng, 30, words), "label": 0, "split": "train"}
                 ).to_parquet(paths.train)
    pd.DataFrame({"idx": range(12), "sentence": random_texts(rng, 12, words), "label": 1, "split": "dev"}
                 ).to_parquet(paths.split("dev"))
    save_student(make_student(len(vocab), seed=4), vocab, paths.model("student"))
    save_student(make_student(len(vocab), seed=5), vocab, paths.model("baseline"))
    shutil.copytree(tiny_teacher, paths.model("teacher"))
    scores = paths.for_stage("evaluate")  # what the evaluate stage leaves in models/<task>/runs/evaluate/
    scores.metrics.mkdir(parents=True)
    accuracy = {"teacher": 0.9, "student": 0.85, "baseline": 0.8}
    for kind, acc in accuracy.items():
        scores.scores(kind).write_text(json.dumps({"sst2": {kind: {"dev": {"accuracy": acc}}}}))
    write_params(tmp_path, benchmark={"batch_size": 8, "repeats": 2, "max_sentences": 25, "latency_sentences": 10,
                                      "curve_sentences": 20})
    proc = run_stage("benchmark.py", "--task", "sst2", *cli_dirs(tmp_path, "data", "models", "params"), check=False)
    assert "no exported student; run the export stage first" in one_line_error(proc)
    run_stage("export.py", "--task", "sst2", *cli_dirs(tmp_path, "data", "models", "params"))
    run_stage("benchmark.py", "--task", "sst2", *cli_dirs(tmp_path, "data", "models", "params"))
    paths = paths.for_stage("benchmark")  # its outputs: models/<task>/runs/benchmark/
    report = json.loads(paths.report("benchmark").read_text())
    assert report["examples"] == 25 and report["batch_size"] == 8 and report["repeats"] == 2
    assert report["task"] == "sst2" and report["student"]["max_abs_logit_diff_vs_reference"]["fast"] < 1e-4
    assert report["baseline"]["path"] == "fast" and len(report["baseline"]["seconds_all"]) == 2
    s, t, b = report["student"], report["teacher"], report["baseline"]
    speed = json.loads(paths.speed.read_text())
    service = report["service"]
    assert service["threads"] == 1 and service["latency_examples"] == 10 and service["curve_examples"] == 20
    assert set(service["latency"]) == {"student_onnx", "student_fast", "teacher", "student_onnx_with_text_handling"}
    for path in ("student_onnx", "student_fast", "teacher"):
        lat = service["latency"][path]
        assert lat["requests"] == 10 and 0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"]
        assert speed["sst2"]["latency"].pop(path) == {"p50_ms": round(lat["p50_ms"], 4),
                                                     "p99_ms": round(lat["p99_ms"], 4),
                                                     "cpu_p99_ms": round(lat["cpu_p99_ms"], 4)}
        assert 0 < lat["cpu_p50_ms"] <= lat["cpu_p99_ms"]
    arithmetic = service["arithmetic"]
    assert arithmetic["requests"] == 10 and arithmetic["teacher_macs_mean"] > arithmetic["student_macs_mean"] > 0
    assert speed["sst2"].pop("latency") == {
        "teacher_over_student_onnx_p99": round(service["teacher_over_student_onnx_p99"], 1),
        "teacher_over_student_macs": round(arithmetic["teacher_over_student_macs"], 1)}
    curve = pd.read_csv(paths.plots / "throughput_vs_batch.csv")
    assert list(curve.columns) == ["model", "batch_size", "sentences_per_s"]
    assert curve["model"].tolist() == [m for m in ("student_onnx", "student_fast", "teacher") for _ in range(4)]
    assert curve["batch_size"].tolist() == [1, 8, 64, 512] * 3 and (curve["sentences_per_s"] > 0).all()
    assert speed == {"sst2": {"speedup": round(t["seconds"] / s["seconds"], 1),
                              "params_ratio": round(t["params_m"] / s["params_m"], 1),
                              "student": {"arch": "bilstm", "sentences_per_s": round(25 / s["seconds"], 1),
                                          "params_m": round(s["params_m"], 3), "gflops": round(s["gflops"], 1)},
                              "teacher": {"sentences_per_s": round(25 / t["seconds"], 1),
                                          "params_m": round(t["params_m"], 3)},
                              "baseline": {"arch": "bilstm", "sentences_per_s": round(25 / b["seconds"], 1)}}}
    speed = speed["sst2"]
    table = pd.read_csv(paths.plots / "accuracy_vs_speed.csv")
    assert list(table.columns) == ["model", "arch", "sentences_per_s", "batch1_p50_ms", "batch1_p99_ms",
                                   "dev_accuracy"]
    assert table["model"].tolist() == ["teacher", "student", "baseline"]
    assert table["arch"].tolist() == ["bert", "bilstm", "bilstm"]
    assert table["dev_accuracy"].tolist() == [0.9, 0.85, 0.8]  # from the scores the evaluate stage wrote
    assert table["sentences_per_s"].tolist() == [speed[k]["sentences_per_s"] for k in table["model"]]
    for row, path in ((0, "teacher"), (1, "student_onnx")):  # the served export's batch-1 latency
        lat = service["latency"][path]
        assert table.loc[row, ["batch1_p50_ms", "batch1_p99_ms"]].tolist() == [round(lat["p50_ms"], 4),
                                                                              round(lat["p99_ms"], 4)]
    assert table.loc[2, ["batch1_p50_ms", "batch1_p99_ms"]].isna().all()  # the baseline: batch_size only
