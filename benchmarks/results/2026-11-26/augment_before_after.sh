#!/usr/bin/env bash
# augment's peak memory before (fd4f6ea: Python strings + pandas duplicated) and after (Arrow strings + dictionary
# codes), one after the other in one run, on the same SST-2 inputs; the transfer sets must be the same bytes.
# Usage, from the repo root: bash benchmarks/results/2026-11-26/augment_before_after.sh OLD_WORKTREE DATA_DIR
set -euo pipefail
old=$1 data=$2 repo=$(pwd)
for n in 20 120; do
  (cd "$old" && python "$repo/benchmarks/stage_memory.py" -- python stages/augment.py --task sst2 --data-dir "$data" --n-iter $n) | grep "augment@" | sed "s/^/before n_iter $n: /"
  cp "$data/sst2/transfer.parquet" "$data/transfer_before.parquet"
  python benchmarks/stage_memory.py -- python stages/augment.py --task sst2 --data-dir "$data" --n-iter $n | grep "augment@" | sed "s/^/after  n_iter $n: /"
  cmp "$data/transfer_before.parquet" "$data/sst2/transfer.parquet" && echo "n_iter $n: same bytes"
done
