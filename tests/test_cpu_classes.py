"""The CPU-sensitive tests once more, as two other kinds of machine would run them, inside the one `python -m
pytest` that the README and .ci/run run, so a regression on the common CPU class fails CI even on an AVX-512 host:

- avx2: an AVX2-only CPU (most laptops, cloud VMs and CI runners): oneDNN, ATen and MKL capped at AVX2, and the
  project's own flag detection masked above AVX2 (BILSTM_DISTILL_CPU_ISA=avx2), so the AVX2 builds of the C
  kernels and every AVX2 decision (fp32 for `auto`, errors for bf16) run. On such a CPU this repeats the main run.
- no-compiler: CC=false, so no C kernel builds and every caller takes its torch fallback.

Each runs in a subprocess (the ISA caps must be set before torch loads) with a fresh kernel cache."""
import os
import subprocess
import sys

import pytest

from conftest import REPO

INNER = "BILSTM_DISTILL_INNER_CPU_CLASS"  # set in the inner runs: they must not start runs of their own
CLASSES = {
    "avx2": {"BILSTM_DISTILL_CPU_ISA": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "no-compiler": {"CC": "false"},
}
# The tests whose path depends on the CPU's vector ISA, its bf16 support or a C compiler.
CPU_SENSITIVE = ["test_runtime.py", "test_precision.py", "test_inference_kernels.py", "test_student_cell.py",
                 "test_student_fused.py", "test_student_lowp.py", "test_student_fast.py", "test_student_onnx.py",
                 "test_student_model.py", "test_student_train.py", "test_teacher_model.py",
                 "test_teacher_finetune.py", "test_report_benchmark.py"]


def test_cpu_sensitive_files_exist():
    assert all((REPO / "tests" / name).is_file() for name in CPU_SENSITIVE)


@pytest.mark.skipif(bool(os.environ.get(INNER)), reason="already an inner CPU-class run")
@pytest.mark.parametrize("name", sorted(CLASSES))
def test_cpu_sensitive_tests_pass_on(name, tmp_path):
    env = {**os.environ, **CLASSES[name], INNER: name, "BILSTM_DISTILL_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                           *(f"tests/{f}" for f in CPU_SENSITIVE)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1800)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    print(f"{name}: {summary}")
    assert proc.returncode == 0, f"{name} run failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    assert " passed" in summary
