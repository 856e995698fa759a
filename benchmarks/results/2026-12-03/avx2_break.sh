#!/bin/bash
# A deliberate break of an AVX2-only code path, to show that the test command (.ci/run: python -m pytest) catches
# it on an AVX-512 machine: in a scratch clone, the AVX2 branch of the fused kernel's exp() shifts the exponent
# by 4 bits instead of 3 (the AVX-512 branch is untouched). Then the native fused-kernel tests (AVX-512 here) and
# tests/test_cpu_classes.py (which reruns the CPU-sensitive tests as an AVX2-only CPU and without a compiler).
#   bash benchmarks/results/2026-12-03/avx2_break.sh <repo>   > avx2_break.txt
set -u
repo=$(cd "${1:-.}" && pwd)
work=$(mktemp -d)
git clone -q "$repo" "$work/clone" && cd "$work/clone" || exit 1
echo "# $(git log --oneline -1); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
sed -i 's/_mm256_sub_epi32(ki, _mm256_set1_epi32(0x4B400000)), 3), 23)/_mm256_sub_epi32(ki, _mm256_set1_epi32(0x4B400000)), 4), 23)/' \
  distill/inference/lstm_fused.c
git diff --stat && git diff | grep '^[-+] '
echo "## python -m pytest -q -p no:cacheprovider tests/test_student_fused.py   (this CPU's own class: AVX-512)"
BILSTM_DISTILL_CACHE="$work/cache" python -m pytest -q -p no:cacheprovider tests/test_student_fused.py 2>&1 | tail -2
echo "## python -m pytest -q -p no:cacheprovider tests/test_cpu_classes.py"
python -m pytest -q -p no:cacheprovider tests/test_cpu_classes.py 2>&1 | grep -E "^(FAILED|ERROR)|passed|failed|avx2 run failed|^E .*(assert|Error)" | head -12
rm -rf "$work"
