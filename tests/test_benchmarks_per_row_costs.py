"""benchmarks/per_row_costs.py then benchmarks/time_model.py, on tiny SST-2 and QQP transfer sets: the sample
folder holds what the measuring machine needs, every loop is timed on the CPU, and the time model reads the
result."""
import json

import numpy as np
import pandas as pd

from benchmarks import per_row_costs, time_model
from distill.layout import TaskPaths

WORDS = "the a film movie good bad plot is was very dull great".split()


def write_transfer(data_dir, task, columns, n=40):
    rng = np.random.default_rng(0)
    paths = TaskPaths(task, data_dir)
    paths.data.mkdir(parents=True)
    df = pd.DataFrame({c: [" ".join(rng.choice(WORDS, rng.integers(3, 12))) for _ in range(n)] for c in columns})
    df["synthetic"] = np.arange(n) >= n // 2
    df.to_parquet(paths.transfer)


def test_sample_measure_and_time_model(tmp_path, capsys):
    write_transfer(tmp_path / "data", "sst2", ["sentence"])
    write_transfer(tmp_path / "data", "qqp", ["sentence1", "sentence2"])
    sample = tmp_path / "sample"
    per_row_costs.main(["make-sample", "--data-dir", str(tmp_path / "data"), "--out", str(sample), "--rows", "8"])
    meta = json.loads((sample / "sample.json").read_text())
    assert meta["sets"]["sst2"] == {"columns": ["sentence"], "transfer_rows": 40, "train_rows": 20,
                                    "student_vocab": meta["sets"]["qqp"]["student_vocab"]}
    assert len(pd.read_parquet(sample / "qqp_transfer.parquet")) == 8 and (sample / "tokenizer/vocab.txt").is_file()
    assert set(pd.read_parquet(sample / "mnli_train.parquet").columns) == {"sentence1", "sentence2"}

    costs = tmp_path / "costs.json"
    per_row_costs.main(["measure", "--sample", str(sample), "--out", str(costs), "--teachers", "minilm", "--rows",
                        "8", "--steps", "1", "--batches", "1", "--warmup", "0", "--repeats", "1", "--vocab-sizes",
                        "1000", "--device", "cpu"])
    result = json.loads(costs.read_text())
    assert result["machine"]["device"] == "cpu"
    assert set(result["student"]) == {f"{t}/vocab{v}" for t in ("sst2", "qqp", "mnli")
                                      for v in (1000, meta["sets"]["sst2"]["student_vocab"])}
    assert set(result["logits"]) == {f"minilm/{t}/batch{b}" for t in ("sst2", "qqp", "mnli") for b in (128, 512)}
    assert result["student"]["qqp/vocab1000"]["batch_size"] == 256  # the siamese student on pairs
    assert set(result["finetune"]) == {"minilm/sst2", "minilm/qqp", "minilm/mnli"}
    assert all(r["rows_per_s"] > 0 for part in ("student", "logits", "finetune") for r in result[part].values())

    time_model.main([str(costs), "--gpus", "2", "--student-vocab", "1000"])
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "minilm" in line]
    assert [line.split(" | ")[0] for line in table] == ["| SST-2 x20", "| QQP x10", "| MNLI x10"]
