#!/usr/bin/env bash
# The main job from a clean clone, install included, with each stage's wall time and peak memory: the run behind
# main_job_fused.txt (there: REPO the project's repository, OUT and VENV scratch folders; OUT's parent must hold
# shared/ for the GLUE mirror, which the default task does not read). Usage: bash main_job_fused.sh REPO OUT VENV
set -e
repo=$1 out=$2 venv=$3
start=$(date +%s)
echo "start $(date -u)"
git clone -q "$repo" "$out"
cd "$out"
python -m venv "$venv"
. "$venv/bin/activate"
t0=$(date +%s)
pip install -q -r requirements.txt
echo "install $(( $(date +%s) - t0 )) s"
t1=$(date +%s)
python benchmarks/stage_memory.py --json "$out.stages.json" -- dvc repro
echo "dvc repro $(( $(date +%s) - t1 )) s"
echo "total $(( $(date +%s) - start )) s; end $(date -u)"
