#!/usr/bin/env bash
# The student family on the default task, queued on top of a finished `dvc repro` (the teacher and its logits come
# from DVC's run cache: each experiment re-runs only the student-side stages). Run from the repository root.
#   bash benchmarks/results/2026-12-06/student_sweep.sh [JOBS]
set -euo pipefail
jobs=${1:-1}
dvc exp run --queue -n arch-cnn -S student.arch=cnn
dvc exp run --queue -n arch-bow -S student.arch=bow
dvc exp run --queue -n arch-linear -S student.arch=linear
dvc exp run --queue -n bilstm-300 -S student.hidden=300
dvc queue start -j "$jobs"
dvc queue status
