"""benchmarks/time_model.py: the README's GPU time model multiplies per-row costs as its docstring says."""
import json
import math
import subprocess
import sys

import pytest

from benchmarks import time_model
from conftest import REPO


def costs(teachers=("minilm",)) -> dict:
    out = {"machine": {"device": "cuda", "gpu": "test GPU", "cpu": "test CPU", "torch": "x", "transformers": "y"},
           "student": {}, "logits": {}, "finetune": {}}
    for task in time_model.TASKS:
        out["student"][f"{task}/vocab100000"] = {"rows_per_s": 1000.0}
        for t in teachers:
            out["finetune"][f"{t}/{task}"] = {"rows_per_s": 100.0}
            out["logits"][f"{t}/{task}/batch512"] = {"rows_per_s": 10000.0}
    return out


def test_stages_multiply_out_and_ranks_take_whole_shards():
    rows = {r["task"]: r for r in time_model.model(costs(), gpus=8, teacher_epochs=3, student_epochs=10,
                                                   shard_rows=65536, logits_batch=512, student_vocab=100000)}
    sst2 = rows["SST-2 x20"]
    assert sst2[1]["finetune_s"] == pytest.approx(67_349 * 3 / 100)
    assert sst2[1]["logits_s"] == pytest.approx(867_396 / 10000)
    assert sst2[1]["student_s"] == pytest.approx(867_396 * 10 / 1000)
    assert sst2[8]["finetune_s"] == pytest.approx(sst2[1]["finetune_s"] / 8)  # ideal data parallelism
    assert sst2[8]["student_s"] == sst2[1]["student_s"]  # one process
    shards = math.ceil(867_396 / 65536)  # 14: the slowest of 8 ranks computes 2 whole shards
    assert sst2[8]["logits_s"] == pytest.approx(math.ceil(shards / 8) * 65536 / 10000)
    for r in rows.values():
        for n in (1, 8):
            assert r[n]["total_s"] == pytest.approx(r[n]["finetune_s"] + r[n]["logits_s"] + r[n]["student_s"])


def test_a_later_cost_file_replaces_an_earlier_ones_figures(tmp_path):
    first, second = costs(), costs()
    second = {"machine": second["machine"], "student": {}, "logits": {},
              "finetune": {k: {"rows_per_s": 300.0} for k in first["finetune"]}}
    (tmp_path / "a.json").write_text(json.dumps(first))
    (tmp_path / "b.json").write_text(json.dumps(second))
    out = subprocess.run([sys.executable, "-m", "benchmarks.time_model", str(tmp_path / "a.json"),
                          str(tmp_path / "b.json")], cwd=REPO, capture_output=True, text=True, check=True).stdout
    sst2 = next(line for line in out.splitlines() if line.startswith("| SST-2 x20"))
    assert f"{67_349 * 3 / 300 / 60:.1f} min + " in sst2  # fine-tuning from b.json, the rest from a.json
