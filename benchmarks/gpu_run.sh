#!/bin/bash
# The default task on a CUDA GPU: every stage of dvc.yaml in DAG order (the machine has no DVC, so the stages'
# own commands), each timed, then the paper's §5.2 inference figures against BERT-base/-large shapes.
#
# Prepared for the project's lent GPU machine (no registry, 64 MiB of tree). Here, in a checkout whose default
# task data is built:     python benchmarks/gpu_bundle.py pack   (.gpu-bundle/ is git-ignored)
# Then with the device tool: run(command="bash benchmarks/gpu_run.sh", carry=[".gpu-bundle"], timeout_s=600)
# On a GPU machine of your own with internet, `pip install -r requirements.txt && dvc repro` does the same.
#
# Writes to $OUT (default gpu-out/): stages.tsv (stage command, seconds, exit status), gpu.txt, the task's
# metrics/ and run reports, teacher_shapes.txt/.json.
set -uo pipefail
export OUT=${OUT:-gpu-out}
BUNDLE=${BUNDLE:-.gpu-bundle}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1 SITE=/tmp/gpu-site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/gpu-wheels \
  "$BUNDLE"/wheels/*.whl || exit 1
python3 benchmarks/gpu_bundle.py unpack --bundle "$BUNDLE" --site "$SITE" || exit 1
export PYTHONPATH="$SITE:/tmp/gpu-wheels${PYTHONPATH:+:$PYTHONPATH}"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; lscpu | grep -E 'Model name|^CPU\(s\)';
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda,
  torch.cuda.is_available(), "transformers", transformers.__version__)'; } > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
printf 'command\tseconds\texit\n' > "$OUT/stages.tsv"
start_all=$(date +%s.%N)
while read -r cmd; do
  [ -z "$cmd" ] && continue
  cmd=${cmd/#python /python3 }  # the GPU image's python3 is the one with torch
  echo "== $cmd"
  t0=$(date +%s.%N)
  bash -c "$cmd"
  rc=$?
  t1=$(date +%s.%N)
  printf '%s\t%.1f\t%d\n' "$cmd" "$(python3 -c "print($t1 - $t0)")" "$rc" >> "$OUT/stages.tsv"
  [ "$rc" -ne 0 ] && { echo "stage failed: $cmd"; break; }
done < "$BUNDLE/commands.txt"
printf 'all\t%.1f\t-\n' "$(python3 -c "print($(date +%s.%N) - $start_all)")" >> "$OUT/stages.tsv"
cat "$OUT/stages.tsv"
cp -r metrics/rotten_tomatoes "$OUT/metrics" 2>/dev/null
cp -r models/rotten_tomatoes/runs "$OUT/runs" 2>/dev/null
find models/rotten_tomatoes -name training.json -exec sh -c 'cp "$1" "$OUT/$(basename $(dirname "$1")).training.json"' _ {} \;
# TEACHER_SHAPES_ARGS: e.g. "--max-sentences 256 --shapes bert-base" for a quick look
python3 benchmarks/gpu_teacher_shapes.py ${TEACHER_SHAPES_ARGS:-} --json "$OUT/teacher_shapes.json" \
  | tee "$OUT/teacher_shapes.txt"
