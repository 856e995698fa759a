#!/usr/bin/env bash
# The main job as the README states it (a clean clone, a fresh venv, `pip install -r requirements.txt && dvc
# repro` with the params as shipped), timed per stage with peak memory by benchmarks/stage_memory.py.
# Usage: bash main_job.sh REPO OUT VENV [avx2]
#   avx2: the forced AVX2 class on an AVX-512 machine (oneDNN, ATen and MKL capped at AVX2, the project's own CPU-flag
#   detection masked above AVX2), as an AVX2-only CPU would run it.
set -e
repo=$1 out=$2 venv=$3 class=${4:-native}
if [ "$class" = avx2 ]; then
  export BILSTM_DISTILL_CPU_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
fi
start=$(date +%s)
echo "start $(date -u); class $class; $(grep -m1 'model name' /proc/cpuinfo); $(nproc) cores"
echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512_bf16|avx512_vnni|avx_vnni|amx_bf16|amx_int8)$' | tr '\n' ' ')"
git clone -q "$repo" "$out"
cd "$out"
echo "commit $(git rev-parse --short HEAD)"
python -m venv "$venv"
. "$venv/bin/activate"
t0=$(date +%s)
pip install -q -r requirements.txt
echo "install $(( $(date +%s) - t0 )) s"
t1=$(date +%s)
python benchmarks/stage_memory.py --json "$out.stages.json" -- dvc repro
echo "dvc repro $(( $(date +%s) - t1 )) s"
echo "total $(( $(date +%s) - start )) s; end $(date -u)"
