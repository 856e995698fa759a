"""benchmarks/serving_latency.py on a tiny single-sentence task: every path's batch-1 latency and throughput curve,
the teacher's work against the student's, written as JSON."""
import json

import numpy as np
import pandas as pd

from benchmarks import serving_latency
from distill.layout import TaskPaths
from distill.student.vocab import Vocab

WORDS = "the a film movie good bad plot is was very dull great".split()


def write_task(data_dir, n_train=60, n_dev=30):
    rng = np.random.default_rng(0)
    paths = TaskPaths("sst2", data_dir)
    paths.data.mkdir(parents=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        sentences = [" ".join(rng.choice(WORDS, rng.integers(3, 12))) for _ in range(n)]
        pd.DataFrame({"idx": range(n), "sentence": sentences, "label": rng.integers(0, 2, n),
                      "split": split}).to_parquet(paths.split(split))


def test_latency_of_every_path_against_the_offline_teacher(tmp_path, capsys):
    write_task(tmp_path / "data")
    out = tmp_path / "latency.json"
    serving_latency.main(["--data-dir", str(tmp_path / "data"), "--requests", "24", "--curve-sentences", "8",
                          "--json", str(out)])
    result = json.loads(out.read_text())
    train = pd.read_parquet(TaskPaths("sst2", tmp_path / "data").train)["sentence"]
    assert result["requests"] == 24 and result["vocab"] == len(Vocab.build(train)) and result["torch_threads"] == 1
    assert set(result["latency"]) == {"student_onnx", "student_onnx_with_text_handling", "student_fast", "teacher"}
    for timing in result["latency"].values():
        assert 0 < timing["p50_ms"] <= timing["p99_ms"] <= timing["max_ms"]
    assert [r["batch_size"] for r in result["throughput"]["student_fast"]] == [1, 8, 64, 512]
    assert result["teacher"] == "minilm" and result["arithmetic"]["teacher_over_student_macs"] > 10
    assert result["teacher_over_student_onnx_p99"] > 0
    assert "teacher p99 / student_onnx p99" in capsys.readouterr().out
