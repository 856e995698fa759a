#!/usr/bin/env bash
# Benchmark (not a test): peak resident memory of every stage after augment, on a task whose transfer set is
# already made (e.g. SST-2 at the paper's n_iter 20: 867,396 rows), without the hours a real SST-2 teacher takes.
#
# Works in a scratch folder WORK (nothing in this checkout's data/ or models/ is touched), from SRC, a data/<task>
# folder that holds train, dev, test, postag, tag_unigrams and transfer Parquet files and task.json:
#   finetune_teacher  the real stage on the real rows, stopped after SECONDS (its peak comes from loading and
#                     tokenizing every row and the first steps; later steps allocate nothing new);
#   teacher_logits    the real MiniLM (a fresh classifier head: the cost and memory do not depend on the head's
#                     weights) for SECONDS, then to completion with the tests' tiny random teacher (in a separate
#                     models folder) so that the later stages have logits for every row;
#   teacher_vectors, train_student and train_baseline (1 epoch each), evaluate and benchmark (every training
#                     sentence, exact precision): run to completion, against the MiniLM teacher above.
# Usage, from the repo root:  benchmarks/every_stage_memory.sh /path/to/data/sst2 /tmp/every_stage [SECONDS]
set -euo pipefail
src=$1
work=${2:-/tmp/every_stage}
seconds=${3:-120}
task=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['name'])" "$src/task.json")
repo=$(pwd)
rm -rf "$work" && mkdir -p "$work/data/$task" "$work/models/$task" "$work/tiny/$task" "$work/metrics"
cp "$src"/{train,dev,test,postag,tag_unigrams,transfer}.parquet "$src/task.json" "$work/data/$task/"
dirs=(--data-dir "$work/data" --models-dir "$work/models")
mem() { python "$repo/benchmarks/stage_memory.py" --json "$work/$1.json" -- "${@:2}"; }

mem finetune_teacher timeout "$seconds" python stages/finetune_teacher.py --task "$task" "${dirs[@]}" \
    --metrics-dir "$work/metrics" || true
python - "$work" "$task" <<'EOF'
import shutil, sys
from pathlib import Path
sys.path[:0] = ["tests", "."]
from helpers import make_tiny_teacher
from transformers import AutoModelForSequenceClassification
from distill.teacher.finetune import resolve_model_source
from distill.teacher.model import load_tokenizer
from distill.tasks import read_task
work, name = Path(sys.argv[1]), sys.argv[2]
task = read_task(work / "data" / name / "task.json")
source, local = resolve_model_source("minilm")
model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=task.num_labels, local_files_only=local)
model.save_pretrained(work / "models" / name / "teacher")
load_tokenizer(source, local).save_pretrained(work / "models" / name / "teacher")
make_tiny_teacher(work / "tiny" / name / "teacher", num_labels=task.num_labels)
for folder in ("models", "tiny"):
    shutil.copy(work / "data" / name / "task.json", work / folder / name / "teacher")
EOF
mem teacher_logits timeout "$seconds" python stages/teacher_logits.py --task "$task" "${dirs[@]}" || true
rm -rf "$work/data/$task/.teacher_logits.parts"
mem teacher_logits_tiny python stages/teacher_logits.py --task "$task" --fp32 --data-dir "$work/data" \
    --models-dir "$work/tiny"
mem teacher_vectors python stages/teacher_vectors.py --task "$task" "${dirs[@]}"
mem train_student python stages/train.py student --task "$task" --epochs 1 "${dirs[@]}" --metrics-dir "$work/metrics"
mem train_baseline python stages/train.py baseline --task "$task" --epochs 1 "${dirs[@]}" --metrics-dir "$work/metrics"
mem evaluate python stages/evaluate.py --task "$task" "${dirs[@]}" --metrics-dir "$work/metrics"
mem benchmark python stages/benchmark.py --task "$task" --precision exact "${dirs[@]}" --metrics-dir "$work/metrics"
python - "$work" <<'EOF'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
for name in ("finetune_teacher", "teacher_logits", "teacher_logits_tiny", "teacher_vectors", "train_student",
             "train_baseline", "evaluate", "benchmark"):
    run = json.loads((work / f"{name}.json").read_text())
    for stage in run["stages"]:
        print(f"{name:20} {stage['stage']:28} peak RSS {stage['peak_rss_mb']:8.1f} MB  {stage['seconds']:7.1f} s"
              f"  exit {run['exit']}")
EOF
