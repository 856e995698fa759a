"""Collect the student sweep (student_sweep.sh) into committed records: each experiment's metrics files under
metrics/rotten_tomatoes/experiments/<name>/, and one row per trained model in metrics/rotten_tomatoes/students_front.csv
(what `dvc plots` draws as the accuracy / speed front). Run from the repository root after the queue finished:
    python benchmarks/results/2026-12-06/collect_front.py bilstm-150=HEAD arch-cnn arch-bow arch-linear bilstm-300
A name=REV pair reads that git revision (e.g. the workspace run committed at HEAD); a bare name is a DVC experiment."""
import csv
import json
import subprocess
import sys
from pathlib import Path

TASK = "rotten_tomatoes"
FILES = ("student.json", "baseline.json", "teacher.json", "speed.json")


def revision(name: str) -> str:
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], capture_output=True,
                          text=True, check=True).stdout.split()
    found = [r for r in refs if r.rsplit("/", 1)[-1] == name]
    if len(found) != 1:
        sys.exit(f"experiment {name}: {len(found)} refs found")
    return found[0]


def show(rev: str, path: str) -> str:
    return subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=True).stdout


def main(args: list[str]) -> None:
    rows = []
    for arg in args:
        name, _, rev = arg.partition("=")
        rev = rev or revision(name)
        params = json.loads(json.dumps(__import__("yaml").safe_load(show(rev, "params.yaml"))))["student"]
        metrics = {f: json.loads(show(rev, f"metrics/{TASK}/{f}"))[TASK] for f in FILES}
        out = Path(f"metrics/{TASK}/experiments/{name}")
        out.mkdir(parents=True, exist_ok=True)
        for f in FILES:
            (out / f).write_text(show(rev, f"metrics/{TASK}/{f}"))
        speed = metrics["speed.json"]
        for model in ("student", "baseline"):
            scores = metrics[f"{model}.json"][model]
            latency = speed["latency"].get("student_onnx", {}) if model == "student" else {}
            rows.append({"variant": name, "model": model, "arch": params.get("arch", "bilstm"),
                         "hidden": params["hidden"], "dev_accuracy": scores["dev"]["accuracy"],
                         "test_accuracy": scores["test"]["accuracy"],
                         "sentences_per_s": speed[model]["sentences_per_s"],
                         "batch1_p50_ms": latency.get("p50_ms"), "batch1_p99_ms": latency.get("p99_ms")})
    with open(f"metrics/{TASK}/students_front.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for r in rows:
        print(r)


if __name__ == "__main__":
    main(sys.argv[1:])
