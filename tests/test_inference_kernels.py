"""distill/inference/kernels.py: the C files beside it, their builds (every one -Wall -Wextra clean) and the build
cache's key."""
import os
import platform
import shutil
import subprocess

import pytest

import distill.inference.kernels as kernels

X86 = platform.machine().lower() in ("x86_64", "amd64")


def compiler_works() -> bool:
    try:
        return subprocess.run([os.environ.get("CC", "cc"), "--version"], capture_output=True).returncode == 0
    except OSError:
        return False


needs_cc = pytest.mark.skipif(not compiler_works(), reason="no C compiler here")


def test_c_sources_live_beside_the_module():
    for build in kernels.ALL_BUILDS:
        source, flags = kernels.build_spec(build)
        assert source.parent == kernels.KERNEL_DIR and source.is_file(), source
        assert {"-Wall", "-Wextra"} <= set(flags), build
    with pytest.raises(ValueError):
        kernels.build_spec("neon")


@needs_cc
@pytest.mark.skipif(not X86, reason="the kernels' builds target x86-64")
@pytest.mark.parametrize("build", kernels.ALL_BUILDS)
def test_every_build_compiles_without_a_warning(build):
    """Every build's file with its flags and defines under -Werror (syntax only: no CPU needs to run it)."""
    source, flags = kernels.build_spec(build)
    flags = [f for f in flags if f not in ("-shared", "-fPIC")]
    done = subprocess.run([os.environ.get("CC", "cc"), *flags, "-Werror", "-fsyntax-only", str(source)],
                          capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@needs_cc
def test_build_cache_key_covers_the_source_its_headers_and_the_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("BILSTM_DISTILL_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "src" / "lstm_cell.c"
    source.parent.mkdir()
    shutil.copy(kernels.CELL_SOURCE, source)
    flags = ["-O1", "-shared", "-fPIC", *kernels.WARNINGS]
    first = kernels._build("k", source, flags)
    assert first.is_file() and kernels._build("k", source, flags) == first  # from the cache
    source.write_text(source.read_text() + "\n/* an edit */\n")
    edited = kernels._build("k", source, flags)
    (source.parent / "extra.h").write_text("/* a header beside it */\n")
    with_header = kernels._build("k", source, flags)
    other_flags = kernels._build("k", source, ["-O2", *flags[1:]])
    other_cpu = kernels._build("k", source, flags, "another CPU")
    assert len({first, edited, with_header, other_flags, other_cpu}) == 5


def predefined_macros(flags: list[str]) -> set[str]:
    done = subprocess.run([os.environ.get("CC", "cc"), *flags, "-dM", "-E", "-x", "c", os.devnull],
                          capture_output=True, text=True, check=True)
    return {line.split()[1] for line in done.stdout.splitlines() if line.startswith("#define ")}


@needs_cc
@pytest.mark.skipif(not X86, reason="the AVX2 class is an x86-64 one")
def test_cpu_isa_override_builds_and_dispatches_as_an_avx2_cpu(monkeypatch):
    """$BILSTM_DISTILL_CPU_ISA=avx2: the -march=native cell is built for the AVX2 class instead (no AVX-512 or AMX
    code even on a CPU that has them), under another cache key, and only the AVX2 fused and int8 builds are chosen."""
    monkeypatch.delenv("BILSTM_DISTILL_CPU_ISA", raising=False)
    native_source, native_flags = kernels.build_spec("cell")
    native_key = kernels.cpu_fingerprint()
    above_avx2 = {f for f in kernels.cpu_flags() if f.startswith(("avx512", "amx", "avx_vnni"))}
    monkeypatch.setenv("BILSTM_DISTILL_CPU_ISA", "avx2")
    source, flags = kernels.build_spec("cell")
    assert source == native_source and "-march=native" not in flags and flags != native_flags
    macros = predefined_macros([f for f in flags if f not in ("-shared", "-fPIC")])
    assert {"__AVX2__", "__FMA__", "__F16C__"} <= macros
    assert not {m for m in macros if m.startswith(("__AVX512", "__AMX", "__AVXVNNI"))}
    assert (kernels.cpu_fingerprint() != native_key) == bool(above_avx2)  # the cell's cache key: another CPU
    assert "avx512" not in kernels.fused_isas()
    assert not [b for b in kernels.lowp_builds() if "avx512" in b or "vnni" in b]
    if {"avx2", "fma"} <= kernels.cpu_flags():
        assert kernels.fused_isas() == ["avx2"] and kernels.lowp_builds() == ["int8-avx2"]
        assert kernels.lowp_build_for("auto") == "int8-avx2"
        with pytest.raises(ValueError, match="needs a CPU with"):
            kernels.lowp_build_for("bf16")
