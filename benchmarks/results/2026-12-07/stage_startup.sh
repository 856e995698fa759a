#!/usr/bin/env bash
# Stage start-up before/after importing nltk on first tokenization, in one run on one core: `--help` of the stages
# that import distill.data.text, alternating the two trees five times. Usage: stage_startup.sh BEFORE_TREE AFTER_TREE
set -euo pipefail
for stage in evaluate export benchmark; do
  for round in 1 2 3 4 5; do
    for tree in "$1" "$2"; do
      start=$(date +%s.%N)
      (cd "$tree" && taskset -c 1 python -m "stages.$stage" --help > /dev/null)
      echo "$stage $(basename "$tree") $(echo "$(date +%s.%N) - $start" | bc)"
    done
  done
done
