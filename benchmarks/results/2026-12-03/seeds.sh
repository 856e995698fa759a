#!/bin/bash
# Two more seeds of the default task beside the committed run (seed 13): the augment, teacher and student seeds
# together (the split, download.seed, stays 13 so every run is scored on the same dev and test rows). Run in a
# checkout whose default pipeline is built (dvc repro); each run is a workspace experiment, and its metrics are
# copied to <out>/<seed>/.   bash seeds.sh <checkout> <out>
repo=$1 out=$2
cd "$repo" || exit 1
for s in 14 15; do
  start=$(date +%s)
  dvc exp run -n seed-$s -S augment.seed=$s -S teacher.seed=$s -S student.seed=$s > "$out/seed$s.log" 2>&1
  rc=$?
  echo "seed $s rc=$rc wall_s=$(( $(date +%s) - start ))" >> "$out/seeds.summary"
  rm -rf "$out/$s" && mkdir -p "$out/$s" && cp -r metrics/rotten_tomatoes/. "$out/$s/"
  cp params.yaml dvc.lock "$out/$s/"
done
