#!/usr/bin/env bash
# Benchmark (not a test): peak resident memory of augment, teacher_logits and train_student on a transfer set far
# larger than the default's, e.g. SST-2 at n_iter 60 (about 2.6M rows) or more, to see how memory grows with rows.
#
# Needs data/<task>/{train,dev,postag,tag_unigrams}.parquet and task.json (dvc repro postag@<task>). Works in a
# scratch folder (nothing in data/ or models/ is touched): augment with --n-iter, then teacher_logits with THE
# tiny random teacher of the tests (2 layers, 32-d, MiniLM's tokenizer: the rows and the Parquet/shard handling
# are the real ones, the model is small so that millions of rows take minutes), then train_student for
# STUDENT_SECONDS (its peak comes from loading and encoding all rows, before the first epoch ends).
# Usage, from the repo root:  benchmarks/transfer_memory.sh sst2 60 /tmp/transfer_memory [STUDENT_SECONDS]
set -euo pipefail
task=${1:-sst2}
n_iter=${2:-60}
work=${3:-/tmp/transfer_memory}
student_seconds=${4:-180}
repo=$(pwd)
rm -rf "$work" && mkdir -p "$work/data/$task" "$work/models/$task" "$work/metrics"
for f in train dev test postag tag_unigrams; do
  [ -f "data/$task/$f.parquet" ] && cp "data/$task/$f.parquet" "$work/data/$task/"
done
cp "data/$task/task.json" "$work/data/$task/"
python - "$work/models/$task/teacher" "$work/data/$task/task.json" <<'EOF'
import shutil, sys
sys.path[:0] = ["tests", "."]
from helpers import make_tiny_teacher
from distill.tasks import read_task
task = read_task(sys.argv[2])
make_tiny_teacher(sys.argv[1], num_labels=task.num_labels)
shutil.copy(sys.argv[2], sys.argv[1])
EOF
mem() { python "$repo/benchmarks/stage_memory.py" --json "$work/$1.json" -- "${@:2}"; }
mem augment python stages/augment.py --task "$task" --n-iter "$n_iter" --data-dir "$work/data"
mem teacher_logits python stages/teacher_logits.py --task "$task" --fp32 --data-dir "$work/data" \
    --models-dir "$work/models"
mem train_student timeout "$student_seconds" python stages/train.py student --task "$task" --epochs 1 \
    --data-dir "$work/data" --models-dir "$work/models" --metrics-dir "$work/metrics" || true
python - "$work" <<'EOF'
import json, sys
from pathlib import Path
import pyarrow.parquet as pq
work = Path(sys.argv[1])
rows = {p.name: pq.ParquetFile(p).metadata.num_rows for p in work.glob("data/*/t*.parquet")}
print("rows:", rows)
for name in ("augment", "teacher_logits", "train_student"):
    for stage in json.loads((work / f"{name}.json").read_text())["stages"]:
        print(f"{stage['stage']:32} peak RSS {stage['peak_rss_mb']:8.1f} MB  {stage['seconds']:7.1f} s")
EOF
