"""Precision per machine: the bf16 params' `auto` (bf16 only where the device has it natively), a one-line error
when bf16 is asked for where it would be emulated, and the project's CPU-class override
(BILSTM_DISTILL_CPU_ISA=avx2) that makes an AVX-512 machine decide as an AVX2-only CPU would."""
import pytest
import torch

from conftest import REPO, one_line_error, run_stage
from distill import config, runtime
from distill.io import UserError
from distill.student.params import StudentParams
from distill.teacher.params import LogitsParams, TeacherParams
from helpers import write_params

CPU = torch.device("cpu")
AVX2_ONLY = {"BILSTM_DISTILL_CPU_ISA": "avx2"}


@pytest.fixture
def avx2_only(monkeypatch):
    monkeypatch.setenv("BILSTM_DISTILL_CPU_ISA", "avx2")


def test_override_masks_every_flag_above_avx2(avx2_only):
    flags = runtime.cpu_flags()
    assert not [f for f in flags if f.startswith(("avx512", "amx", "avx_vnni"))]
    assert not runtime.cpu_supports_bf16()
    assert set(runtime.cpu_vector_flags()) <= {"avx2", "fma"}
    assert runtime.hardware_record(CPU)["cpu_isa_override"] == "avx2"


def test_override_rejects_an_unknown_class(monkeypatch):
    monkeypatch.setenv("BILSTM_DISTILL_CPU_ISA", "sse2")
    with pytest.raises(UserError, match="BILSTM_DISTILL_CPU_ISA='sse2': expected avx2"):
        runtime.cpu_flags()


def test_onednn_isa_cap_means_no_native_bf16(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not runtime.cpu_supports_bf16()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert runtime.cpu_supports_bf16() == bool({"avx512_bf16", "amx_bf16"} & runtime.cpu_flags())


def test_auto_is_bf16_only_where_native(monkeypatch):
    assert runtime.resolve_bf16("auto", CPU, "teacher.bf16") == runtime.cpu_supports_bf16()
    assert runtime.resolve_bf16(False, CPU, "teacher.bf16") is False
    monkeypatch.setenv("BILSTM_DISTILL_CPU_ISA", "avx2")
    assert runtime.resolve_bf16("auto", CPU, "teacher.bf16") is False


def test_bf16_asked_for_where_emulated_is_a_one_line_error(avx2_only):
    with pytest.raises(UserError) as err:
        runtime.resolve_bf16(True, CPU, "student.bf16")
    message = str(err.value)
    assert "\n" not in message and message.startswith("student.bf16 is true but this CPU")
    assert "no native bf16" in message and "set student.bf16 to auto or false" in message


@pytest.mark.skipif(not runtime.cpu_supports_bf16(), reason="needs a CPU with AVX512-BF16/AMX")
def test_bf16_asked_for_where_native_is_kept():
    assert runtime.resolve_bf16(True, CPU, "teacher.bf16") is True


@pytest.mark.parametrize("cls, key", [(TeacherParams, "teacher.bf16"), (LogitsParams, "teacher_logits.bf16"),
                                      (StudentParams, "student.bf16")])
def test_bf16_params_take_auto_true_false(tmp_path, cls, key):
    section, name = key.split(".")
    for value in ("auto", True, False):
        path = write_params(tmp_path, **{section: {name: value}})
        assert config.load(cls, "rotten_tomatoes", path).bf16 == value
    path = write_params(tmp_path, **{section: {name: "yes"}})
    with pytest.raises(UserError, match=f"params.yaml: {key} must be auto, true or false, got 'yes'"):
        config.load(cls, "rotten_tomatoes", path)
    # the command line's words are YAML too (--set KEY=VALUE): true / false / auto, and `off` is a string
    given = lambda value: config.parse_settings([f"{key}={value}"], cls)  # noqa: E731
    assert config.load(cls, "rotten_tomatoes", path, given("true")).bf16 is True
    assert config.load(cls, "rotten_tomatoes", path, given("auto")).bf16 == "auto"
    with pytest.raises(UserError, match=f"--set {key} must be auto, true or false, got 'off'"):
        config.load(cls, "rotten_tomatoes", path, given("off"))


def test_shipped_defaults_are_auto():
    params = config.read_params_file(REPO / "params.yaml")
    assert params["teacher"]["bf16"] == params["teacher_logits"]["bf16"] == params["student"]["bf16"] == "auto"


@pytest.mark.parametrize("script, args, key", [
    ("finetune_teacher.py", [], "teacher.bf16"),
    ("teacher_logits.py", [], "teacher_logits.bf16"),
    ("train.py", ["student"], "student.bf16"),
])
def test_stages_refuse_emulated_bf16_before_reading_data(tmp_path, monkeypatch, script, args, key):
    """No data exists here: the stage must stop on the precision first, in one line, exit 2."""
    monkeypatch.setenv("BILSTM_DISTILL_CPU_ISA", "avx2")
    path = write_params(tmp_path)
    proc = run_stage(script, *args, "--task", "rotten_tomatoes", "--set", f"{key}=true", "--params-file", str(path),
                     "--data-dir", str(tmp_path / "data"), "--models-dir", str(tmp_path / "models"), check=False)
    line = one_line_error(proc)
    assert line.startswith(f"error: {key} is true but this CPU") and f"set {key} to auto or false" in line


def test_benchmark_refuses_bf16_on_an_avx2_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("BILSTM_DISTILL_CPU_ISA", "avx2")
    path = write_params(tmp_path)
    proc = run_stage("benchmark.py", "--task", "rotten_tomatoes", "--set", "benchmark.precision=bf16", "--device", "cpu",
                     "--params-file", str(path), "--data-dir", str(tmp_path / "data"), check=False)
    line = one_line_error(proc)
    assert line.startswith("error: benchmark.precision: precision bf16 needs a CPU with") and "exact" in line
