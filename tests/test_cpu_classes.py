"""The CPU-sensitive tests once more, as two other kinds of machine would run them, inside the one `python -m
pytest` that the README and .ci/run run, so a regression on the common CPU class fails CI even on an AVX-512 host:

- avx2: an AVX2-only CPU (most laptops, cloud VMs and CI runners): oneDNN, ATen and MKL capped at AVX2, and the
  project's own flag detection masked above AVX2 (BILSTM_DISTILL_CPU_ISA=avx2), so the AVX2 builds of the C
  kernels and every AVX2 decision (fp32 for `auto`, errors for bf16) run. On such a CPU this repeats the main run.
- no-compiler: CC=false, so no C kernel builds and every caller takes its torch fallback.

Each runs in a subprocess (the ISA caps must be set before torch loads) with a fresh kernel cache. Passing is not
enough: the inner run ends with `test_record_the_class_in_effect`, which writes down what that process saw (the
project's CPU flags, torch's CPU capability, the C kernels it built and their flags, the kernel cache), and the
outer test checks that the class took effect."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from distill.runtime import cpu_flags

INNER = "BILSTM_DISTILL_INNER_CPU_CLASS"  # set in the inner runs: they must not start runs of their own
PROBE = "BILSTM_DISTILL_CPU_CLASS_PROBE"  # in the inner runs: where test_record_the_class_in_effect writes
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


@pytest.mark.skipif(not os.environ.get(PROBE), reason="only at the end of an inner CPU-class run")
def test_record_the_class_in_effect():
    """What the CPU-sensitive tests of this run ran with (asking for the kernels builds nothing new when a test
    built them already)."""
    from distill import runtime
    from distill.inference import kernels

    fused = kernels.compiled_fused("auto")
    record = {"cpu_flags_above_avx2": sorted(f for f in runtime.cpu_flags() if f.startswith(runtime._ABOVE_AVX2)),
              "torch_cpu_capability": runtime.torch_cpu_capability(),
              "cell_flags": kernels.build_spec("cell")[1],
              "cell_library": kernels.library_path("lstm_cell", *kernels.build_spec("cell"),
                                                   runtime.cpu_fingerprint()).name,
              "cell_built": kernels.compiled_cell() is not None,
              "fused_isa": fused.isa if fused else None,
              "lowp_builds": kernels.lowp_builds(),
              "libraries": sorted(p.name for p in runtime.cache_dir().glob("*.so"))}
    Path(os.environ[PROBE]).write_text(json.dumps(record))


def check_class_in_effect(name: str, seen: dict) -> None:
    if name == "no-compiler":  # no C kernel anywhere in the run: every caller took the torch path
        assert not seen["cell_built"] and seen["fused_isa"] is None, seen
        assert seen["libraries"] == [], seen
        return
    # avx2: the project's flag detection, torch's kernels and every C build as on an AVX2-only CPU
    assert seen["cpu_flags_above_avx2"] == [], seen
    assert seen["torch_cpu_capability"] == "AVX2", seen
    assert "-march=x86-64-v3" in seen["cell_flags"] and "-march=native" not in seen["cell_flags"], seen
    assert seen["cell_built"] and seen["cell_library"] in seen["libraries"], seen  # the cell built with those flags
    assert seen["fused_isa"] == "avx2" and seen["lowp_builds"] == ["int8-avx2"], seen
    above = [lib for lib in seen["libraries"] if "avx512" in lib or "vnni" in lib]
    assert above == [] and any(lib.startswith("lstm_fused_avx2_") for lib in seen["libraries"]), seen


@pytest.mark.long
@pytest.mark.skipif(bool(os.environ.get(INNER)), reason="already an inner CPU-class run")
@pytest.mark.parametrize("name", sorted(CLASSES))
def test_cpu_sensitive_tests_pass_on(name, tmp_path):
    if name == "avx2" and not {"avx2", "fma"} <= cpu_flags():
        pytest.skip("the AVX2 class needs an x86-64 CPU with AVX2 and FMA")
    probe = tmp_path / "class-in-effect.json"
    env = {**os.environ, **CLASSES[name], INNER: name, PROBE: str(probe),
           "BILSTM_DISTILL_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "-n", "0",
                           *(f"tests/{f}" for f in CPU_SENSITIVE),
                           "tests/test_cpu_classes.py::test_record_the_class_in_effect"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    print(f"{name}: {summary}")
    assert proc.returncode == 0, f"{name} run failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    assert " passed" in summary
    assert probe.exists(), f"{name}: the inner run did not record the class in effect"
    seen = json.loads(probe.read_text())
    print(f"{name}: {seen}")
    check_class_in_effect(name, seen)
