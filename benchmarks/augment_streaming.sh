#!/usr/bin/env bash
# augment's peak memory and wall time before (OLD: a checkout of 3b3bef5, every iteration's candidates in memory) and
# after (this checkout: candidates spilled to disk, an 8-byte key each in memory), one after the other in one run, on
# the same SST-2 inputs at n_iter 20 and 120; the two transfer sets must be the same bytes. Peak memory twice: the
# RSS of the stage's process tree sampled by benchmarks/stage_memory.py, and the stage process's max RSS from
# /usr/bin/time (the kernel's high-water mark, which sampling cannot miss). Pinned to one core; wall times are
# indicative on a shared machine.
# Usage, from the repo root: bash benchmarks/augment_streaming.sh OLD_CHECKOUT DATA_DIR [CORE]
#   DATA_DIR/sst2/ holds a copy of the stage's inputs (task.json, train, postag, tag_unigrams); its
#   transfer.parquet is overwritten.
set -euo pipefail
old=$1 data=$2 core=${3:-0} repo=$(pwd) tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|avx512_vnni' \
  /proc/cpuinfo | sort -u | tr '\n' ' ')(taskset -c $core)"
echo "before: $(git -C "$old" rev-parse --short HEAD); after: $(git rev-parse --short HEAD)"

run() {  # label checkout n_iter: one stage run; its peak RSS sampled every 50 ms, the kernel's high-water mark, wall
  (cd "$2" && taskset -c "$core" python "$repo/benchmarks/stage_memory.py" --interval 0.05 -- /usr/bin/time -f \
    "maxrss %M" python stages/augment.py --task sst2 --data-dir "$data" --n-iter "$3" 2>"$tmp/stderr") >"$tmp/out" ||
    { tail -5 "$tmp/stderr"; exit 1; }
  local hwm
  hwm=$(awk '/^maxrss/ {printf "%.1f", $2 / 1024}' "$tmp/stderr")
  awk -v label="$1 n_iter $3" -v hwm="$hwm" '/augment@/ {rss = $2}
    /^command:/ {print label ": peak RSS " rss " MB (max RSS " hwm " MB), wall " $(NF - 1) " s"}' "$tmp/out"
  grep -h "candidates," "$tmp/stderr" | sed 's/^.*INFO /  /'
}

for n in 20 120; do
  run before "$old" "$n"
  cp "$data/sst2/transfer.parquet" "$tmp/before.parquet"
  run after "$repo" "$n"
  if ! cmp "$tmp/before.parquet" "$data/sst2/transfer.parquet"; then echo "n_iter $n: the bytes differ"; exit 1; fi
  sum=$(sha256sum <"$tmp/before.parquet" | cut -c1-16)
  echo "n_iter $n: same bytes ($(stat -c %s "$tmp/before.parquet") bytes, sha256 $sum...)"
done
