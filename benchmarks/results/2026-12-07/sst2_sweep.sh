#!/usr/bin/env bash
# SST-2 at the paper's settings (docs/paper-tasks.md), queued on a workspace whose params.yaml holds the run's
# settings and whose dvc.lock already records the MPNet teacher and its logits on the n_iter 20 transfer set (DVC's
# cache and run cache hold them): the first experiment runs the rest of the pipeline; each variant runs only up to
# its student (train_student@sst2), so it costs only its own training. Run from the repository root:
#   bash benchmarks/results/2026-12-07/sst2_sweep.sh [JOBS]
# then: python benchmarks/results/2026-12-07/collect_sst2.py <the names below>
set -euo pipefail
jobs=${1:-2}
export OMP_NUM_THREADS=1
dvc exp run --queue -n sst2-mpnet-paper
student() { name=$1; shift; dvc exp run --queue -n "$name" "$@" train_student@sst2; }
student sst2-iters-0 -S student.transfer_iters=0
student sst2-iters-5 -S student.transfer_iters=5
student sst2-iters-10 -S student.transfer_iters=10
student sst2-iters-8-6ep -S student.transfer_iters=8 -S student.epochs=6   # the MiniLM run's n_iter and epochs
# the costly ones capped to fit the session (768-d MPNet vectors, multichannel: ~6x the input work a token)
student sst2-teacher-vectors-3ep -S student.embeddings=teacher -S student.epochs=3
student sst2-hidden-300-6ep -S student.hidden=300 -S student.fc=400 -S student.epochs=6
dvc queue start -j "$jobs"
dvc queue status
