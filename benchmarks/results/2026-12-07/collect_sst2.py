"""Collect the SST-2 sweep (sst2_sweep.sh) into committed records, from the repository that ran it:
    python benchmarks/results/2026-12-07/collect_sst2.py --out <repo>/metrics/sst2 sst2-mpnet-paper sst2-iters-0 ...
The first experiment ran the whole pipeline: its metrics/sst2/ files (scores, speed, reports, plots) and its
params.yaml and dvc.lock are copied to --out (the lock names every output's md5 in DVC's cache and remote). Every
experiment's student report (models/sst2/runs/train_student/, read from DVC's cache) is copied to
<out>/experiments/<name>/train_student.json and summarised as one row of <out>/student_variants.csv."""
import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import dvc.api
import yaml

TASK = "sst2"
REPORT = f"models/{TASK}/runs/train_student/reports/train_student.json"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def revision(name: str) -> str:
    found = [r for r in git("for-each-ref", "--format=%(refname)", "refs/exps").split() if r.rsplit("/", 1)[-1] == name]
    if len(found) != 1:
        sys.exit(f"experiment {name}: {len(found)} refs found")
    return git("rev-parse", found[0]).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    first, rows = args.names[0], []
    rev = revision(first)
    for path in git("ls-tree", "-r", "--name-only", rev, f"metrics/{TASK}").split():
        if "/experiments/" in path:
            continue
        dest = args.out / Path(path).relative_to(f"metrics/{TASK}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(git("show", f"{rev}:{path}"))
    run_dir = args.out / "experiments" / first
    run_dir.mkdir(parents=True, exist_ok=True)
    for path in ("params.yaml", "dvc.lock"):
        (run_dir / path).write_text(git("show", f"{rev}:{path}"))
    for name in args.names:
        rev = revision(name)
        params = yaml.safe_load(git("show", f"{rev}:params.yaml"))["student"]
        with dvc.api.open(REPORT, repo=".", rev=rev) as f:
            report = json.load(f)
        out = args.out / "experiments" / name
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_student.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        rows.append({"experiment": name, "transfer_iters": params.get("transfer_iters", -1),
                     "train_rows": report["train_rows"], "embeddings": params["embeddings"],
                     "hidden": params["hidden"], "fc": params["fc"], "epochs": params["epochs"],
                     "best_epoch": report["best_epoch"], "dev_accuracy": report["dev_accuracy"],
                     "rows_per_s": report["rows_per_s"], "wall_s": report.get("wall_s"),
                     "precision": report["precision"], "device": report["hardware"]["device"]})
    with open(args.out / "student_variants.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
