"""The C parts of the fast student path (lstm_cell.c and lstm_fused.c, beside this module), compiled on first use
with the system C compiler into the user cache (keyed by the C file, the flags, and the CPU where it matters);
without a compiler the torch-ops cell is used (same maths). This module only builds, loads and dispatches them.

* `compiled_cell()`: the fused gate loop of the "c" cell. Per step torch.bmm does h W_hh^T for both directions,
  then one C pass does the gates (as ~8 separate torch elementwise ops it would be memory traffic and op overhead,
  and torch's tanh is slow on CPU).
* `compiled_fused(isa)`: the "fused" path, the whole recurrence in C (matmul micro-kernel + gates per tile of rows,
  see lstm_fused.c), one build per instruction set (AVX-512 or AVX2+FMA), picked at run time from the CPU's flags.
* `compiled_lowp(build)`: the same recurrence with a reduced-precision product h W_hh^T (LOWP_BUILDS: bf16 with
  AVX512-BF16, int8 with AVX-512 VNNI or AVX2), built from the same source; used only when a caller asks for a
  precision (FastStudent(precision=...), benchmark.precision), never chosen on its own.
"""
from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch

from distill.io import get_logger
from distill.runtime import cache_dir, cpu_fingerprint, cpu_flags, cpu_isa_override

log = get_logger("kernels")

KERNEL_DIR = Path(__file__).resolve().parent  # the C sources live beside this module
CELL_SOURCE = KERNEL_DIR / "lstm_cell.c"
FUSED_SOURCE = KERNEL_DIR / "lstm_fused.c"  # the fused recurrence, exact and reduced-precision builds
WARNINGS = ["-Wall", "-Wextra"]  # the sources are clean under these (checked by tests/test_inference_kernels.py)
_CELL_FLAGS = ["-O3", "-ffast-math", "-shared", "-fPIC", *WARNINGS]  # + cell_march()
_cell_lib = None
_build_lock = threading.Lock()


def cell_march() -> list[str]:
    """The cell's target: this CPU (-march=native), or under $BILSTM_DISTILL_CPU_ISA=avx2 (on x86-64) the AVX2 class,
    x86-64-v3 (AVX2, FMA, F16C, BMI2; no AVX-512, AMX or AVX-VNNI), tuned for this CPU: what runtime.cpu_flags()
    then reports, so an AVX-512 machine builds and runs the code an AVX2-only one would."""
    if cpu_isa_override() == "avx2" and platform.machine().lower() in ("x86_64", "amd64"):
        return ["-march=x86-64-v3", "-mtune=native"]
    return ["-march=native"]


def source_digest(source: Path) -> str:
    """sha256 of `source` and of every header beside it (what an `#include "..."` of it may read)."""
    digest = hashlib.sha256()
    for path in [source, *sorted(source.parent.glob("*.h"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def library_path(name: str, source: Path, flags: list[str], key_extra: str = "") -> Path:
    """Where the build of `source` with `flags` lives in the user cache: keyed by the source and its headers, the
    flags, the compiler and `key_extra`."""
    cc = os.environ.get("CC", "cc")
    key = hashlib.sha256((source_digest(source) + " ".join(flags) + cc + key_extra).encode()).hexdigest()[:16]
    return cache_dir() / f"{name}_{key}.so"


def _build(name: str, source: Path, flags: list[str], key_extra: str = "") -> Path:
    """The shared library of the C file `source` built with `flags`, from the user cache when already built there
    (library_path)."""
    cc = os.environ.get("CC", "cc")
    lib = library_path(name, source, flags, key_extra)
    cache = lib.parent
    if not lib.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            out = Path(tmp) / "out.so"
            done = subprocess.run([cc, *flags, "-o", str(out), str(source), "-lm"],
                                  check=True, capture_output=True, text=True, timeout=120)
            if done.stderr.strip():  # a newer compiler's warnings: worth seeing, never fatal
                log.warning("%s (%s): %s", source.name, " ".join(flags), done.stderr.strip())
            os.replace(out, lib)  # atomic: concurrent builders never see half a file
    return lib


def compiled_cell():
    """The C cell as a ctypes function, or None when no compiler works here (cached per source and CPU; the CPU
    as runtime.cpu_fingerprint() sees it, so $BILSTM_DISTILL_CPU_ISA=avx2 has its own build)."""
    global _cell_lib
    if _cell_lib is None:
        _cell_lib = False
        try:
            lib = _build("lstm_cell", *build_spec("cell"), cpu_fingerprint())  # native code: key on the CPU
            fn = ctypes.CDLL(str(lib)).lstm_cell
            fn.restype = None
            fn.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_long] * 4
            _cell_lib = fn
        except (OSError, subprocess.SubprocessError) as err:
            log.warning("no C compiler for the fused LSTM cell (%s); using torch ops", err)
    return _cell_lib or None


# Builds per instruction set: (compiler flags, CPU flags it needs). No -march=native: the AVX2 build must not pick
# up AVX-512 on a CPU that has it (it is tested there, and then runs on AVX2-only machines as built). So these
# binaries (and their cache keys) do not depend on the CPU; under $BILSTM_DISTILL_CPU_ISA=avx2 cpu_flags() lacks
# avx512*, so only the AVX2 builds are chosen (here and in LOWP_BUILDS).
FUSED_ISAS = {"avx512": (["-mavx512f", "-mfma", "-DISA_AVX512"], {"avx512f", "fma"}),
              "avx2": (["-mavx2", "-mfma", "-DISA_AVX2"], {"avx2", "fma"})}
_FUSED_FLAGS = ["-O3", "-shared", "-fPIC", *WARNINGS]
_fused_libs: dict[str, "FusedKernel | None"] = {}


@dataclass(frozen=True)
class FusedKernel:
    """One ISA's build of lstm_fused.c: `run` the recurrence (with `first`'s products of step 1), `head` the
    classifier, `pack` weights for them; `vexp` (tests) and `fma_peak_gflops` (benchmarks)."""
    isa: str
    run: ctypes._CFuncPtr
    first: ctypes._CFuncPtr
    head: ctypes._CFuncPtr
    vexp_fn: ctypes._CFuncPtr
    fma_fn: ctypes._CFuncPtr
    lanes: int  # floats per vector
    panel: int  # packed W_hh panel width
    tile: int  # rows per tile
    columns_multiple: int  # W_hh^T's columns are zero-padded to a multiple of this

    def padded_columns(self, n: int) -> int:
        return -(-n // self.columns_multiple) * self.columns_multiple

    def pack(self, w: torch.Tensor) -> torch.Tensor:
        """(K, N) -> the column panels the micro-kernel reads: K x panel each, then one narrower tail panel,
        N zero-padded to `columns_multiple`. Flat, contiguous."""
        k, n = w.shape
        cols = self.padded_columns(n)
        padded = torch.zeros(k, cols)
        padded[:, :n] = w
        starts = list(range(0, cols, self.panel))
        return torch.cat([padded[:, s:s + self.panel].contiguous().flatten() for s in starts])

    def fma_peak_gflops(self, iters: int = 20_000_000, repeats: int = 3) -> float:
        """The calling core's fp32 FMA throughput in this build's vectors (best of `repeats`; thread CPU time,
        so time slices lost to other processes on a shared core do not count)."""
        best = 0.0
        for _ in range(repeats):
            start = time.thread_time()
            self.fma_fn(iters, 0.999999, 1e-7)
            best = max(best, 2 * self.lanes * 12 * iters / (time.thread_time() - start) / 1e9)
        return best

    def vexp(self, z: torch.Tensor) -> torch.Tensor:
        z = z.float().contiguous()
        out = torch.empty_like(z)
        self.vexp_fn(z.data_ptr(), out.data_ptr(), z.numel())
        return out


def fused_isas() -> list[str]:
    """The instruction sets of the fused kernel this CPU runs (from its flags, i.e. what the OS enabled, less those
    above AVX2 under $BILSTM_DISTILL_CPU_ISA=avx2), best first; empty on other architectures."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return []
    flags = cpu_flags()
    return [isa for isa, (_, need) in FUSED_ISAS.items() if need <= flags]


def compiled_fused(isa: str = "auto") -> FusedKernel | None:
    """The fused recurrence built for `isa` ("avx512", "avx2" or "auto" = the best this CPU runs), or None when
    this CPU lacks it or no compiler builds it here (cached per ISA and source)."""
    if isa == "auto":
        for name in fused_isas():
            kernel = compiled_fused(name)
            if kernel is not None:
                return kernel
        return None
    if isa not in FUSED_ISAS:
        raise ValueError(f"isa must be auto, {' or '.join(FUSED_ISAS)}, not {isa!r}")
    with _build_lock:
        if isa not in _fused_libs:
            _fused_libs[isa] = None
            if isa in fused_isas():
                try:
                    lib = ctypes.CDLL(str(_build(f"lstm_fused_{isa}", *build_spec(isa))))
                    run, first, head, vexp, fma, layout = (
                        getattr(lib, f"{f}_{isa}")
                        for f in ("lstm_fused", "first_products", "mlp_head", "vexp_array", "fma_loop", "fused_layout"))
                    i64, ptr = ctypes.c_int64, ctypes.c_void_p
                    run.restype = ctypes.c_int
                    run.argtypes = [ptr, i64, i64, ptr, ptr, i64, ptr, ptr, ptr, ptr, i64, i64, ptr, ptr]
                    first.restype, first.argtypes = ctypes.c_int, [ptr, i64, i64, ptr, i64, i64, ptr]
                    head.restype = ctypes.c_int
                    head.argtypes = [ptr, i64, i64, ptr, i64, ptr, ptr, ptr, i64, ptr]
                    vexp.restype, vexp.argtypes = None, [ptr, ptr, i64]
                    fma.restype, fma.argtypes = ctypes.c_float, [i64, ctypes.c_float, ctypes.c_float]
                    dims = (i64 * 4)()
                    layout.restype, layout.argtypes = None, [ptr]
                    layout(dims)
                    _fused_libs[isa] = FusedKernel(isa, run, first, head, vexp, fma, *dims)
                except (OSError, subprocess.SubprocessError) as err:
                    log.warning("the fused LSTM kernel (%s) could not be built here (%s)", isa, err)
    return _fused_libs[isa]


# Reduced-precision builds of lstm_fused.c (only the recurrent product differs; see its "reduced-precision product"):
# name -> (compiler flags, CPU flags it needs). bf16 needs AVX512-BF16 (AMX CPUs have it too); int8 uses VNNI's
# u8 x s8 dot products where the CPU has them, else AVX2's (built and tested on AVX-512 CPUs as well).
LOWP_BUILDS = {
    "bf16-avx512": (["-mavx512f", "-mavx512bf16", "-mfma", "-DISA_AVX512", "-DPREC_BF16"],
                    {"avx512f", "avx512_bf16", "fma"}),
    "int8-vnni": (["-mavx512f", "-mavx512vnni", "-mfma", "-DISA_AVX512", "-DPREC_INT8"],
                  {"avx512f", "avx512_vnni", "fma"}),
    "int8-avx2": (["-mavx2", "-mfma", "-DISA_AVX2", "-DPREC_INT8", "-DNV=2"],  # NV 2: 16 ymm registers
                  {"avx2", "fma"}),
}
PRECISIONS = ("exact", "bf16", "int8", "auto")


def build_spec(build: str) -> tuple[Path, list[str]]:
    """The C file and the compiler flags of one build: "cell" (the "c" cell's gate loop), a FUSED_ISAS name or a
    LOWP_BUILDS name."""
    if build == "cell":
        return CELL_SOURCE, _CELL_FLAGS + cell_march()
    if build in FUSED_ISAS:
        return FUSED_SOURCE, _FUSED_FLAGS + FUSED_ISAS[build][0]
    if build in LOWP_BUILDS:
        return FUSED_SOURCE, _FUSED_FLAGS + LOWP_BUILDS[build][0]
    raise ValueError(f"no C build named {build!r}")


ALL_BUILDS = ("cell", *FUSED_ISAS, *LOWP_BUILDS)  # auto: bf16 where the CPU has it, else int8
_lowp_libs: dict[str, "LowpKernel | None"] = {}


@dataclass(frozen=True)
class LowpKernel:
    """One reduced-precision build: `run` is lstm_fused with the reduced product (same arguments, but W_hh^T
    from `pack` plus its per-column `aux`)."""
    build: str
    run: ctypes._CFuncPtr
    lanes: int
    panel: int
    tile: int
    per_word: int  # k values per 32-bit word: 2 (bf16) or 4 (int8)
    h_offset: int  # int8: what the kernel adds to the quantized h (0 for bf16)

    @property
    def precision(self) -> str:
        return self.build.split("-")[0]

    def padded_columns(self, n: int) -> int:
        return -(-n // self.lanes) * self.lanes

    def pack(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, N) fp32 -> (the packed words as int32, flat; aux: column scales then int32 accumulator starts,
        2 x padded N floats). K is zero-padded to a multiple of per_word, N to a multiple of lanes."""
        k, n = w.shape
        kp, cols = -(-k // self.per_word) * self.per_word, self.padded_columns(n)
        padded = torch.zeros(kp, cols)
        padded[:k, :n] = w
        scale, start = torch.ones(cols), torch.zeros(cols, dtype=torch.int32)
        if self.precision == "bf16":  # round to nearest even, as the kernel rounds h
            values = padded.to(torch.bfloat16).view(torch.int16)
        else:  # symmetric per column; h's offset (see lstm_fused.c) taken back out through the starts
            amax = padded.abs().amax(0)
            scale = torch.where(amax > 0, amax / 127, torch.ones(()))
            values = torch.round(padded / scale).clamp_(-127, 127).to(torch.int8)
            start = -self.h_offset * values.sum(0, dtype=torch.int32)
        # words: k groups of per_word consecutive rows, one column each -> (K / per_word, N) int32
        words = values.view(kp // self.per_word, self.per_word, cols).transpose(1, 2).contiguous().view(torch.int32)
        words = words.view(kp // self.per_word, cols)
        panels = torch.cat([words[:, s:s + self.panel].contiguous().flatten() for s in range(0, cols, self.panel)])
        return panels, torch.cat([scale.float(), start.view(torch.float32)])


def lowp_builds() -> list[str]:
    """The reduced-precision builds this CPU runs (from its flags), best first per precision."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return []
    flags = cpu_flags()
    return [name for name, (_, need) in LOWP_BUILDS.items() if need <= flags]


def lowp_build_for(precision: str) -> str | None:
    """The build `precision` means here: None for exact; bf16 / int8 / auto (bf16 if available, else int8) -> the
    best build this CPU runs; a build name as itself. ValueError when this CPU has none (or no such precision)."""
    if precision == "exact":
        return None
    if precision in LOWP_BUILDS:
        candidates = [precision]
    elif precision in PRECISIONS:
        wanted = ("bf16", "int8") if precision == "auto" else (precision,)
        candidates = [b for want in wanted for b in LOWP_BUILDS if b.startswith(want + "-")]
    else:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS + tuple(LOWP_BUILDS))}, not {precision!r}")
    available = lowp_builds()
    for build in candidates:
        if build in available:
            return build
    needs = " or ".join(" + ".join(sorted(LOWP_BUILDS[b][1] - {"fma"})) for b in candidates)
    raise ValueError(f"precision {precision} needs a CPU with {needs}, which this one lacks (or no C compiler)")


def compiled_lowp(build: str) -> LowpKernel | None:
    """The reduced-precision build `build` (a LOWP_BUILDS name), or None when this CPU lacks it or no compiler
    builds it here (cached per build and source)."""
    if build not in LOWP_BUILDS:
        raise ValueError(f"build must be one of {', '.join(LOWP_BUILDS)}, not {build!r}")
    with _build_lock:
        if build not in _lowp_libs:
            _lowp_libs[build] = None
            if build in lowp_builds():
                try:
                    lib = ctypes.CDLL(str(_build(f"lstm_lowp_{build}", *build_spec(build))))
                    isa = "avx512" if "-DISA_AVX512" in LOWP_BUILDS[build][0] else "avx2"
                    run, layout = getattr(lib, f"lstm_lowp_{isa}"), getattr(lib, f"lowp_layout_{isa}")
                    i64, ptr = ctypes.c_int64, ctypes.c_void_p
                    run.restype = ctypes.c_int
                    run.argtypes = [ptr, i64, ptr, i64, ptr, ptr, i64, ptr, ptr, ptr, ptr, i64, i64, ptr, ptr]
                    dims = (i64 * 5)()
                    layout.restype, layout.argtypes = None, [ptr]
                    layout(dims)
                    _lowp_libs[build] = LowpKernel(build, run, *dims)
                except (OSError, subprocess.SubprocessError) as err:
                    log.warning("the reduced-precision LSTM kernel (%s) could not be built here (%s)", build, err)
    return _lowp_libs[build]


def hugepage_floats(n: int) -> torch.Tensor:
    """A zeroed float32 tensor of n elements in 2 MB-aligned memory advised to use transparent huge pages
    (Linux): the fused kernel reads random rows of a table of tens of MB, and with 4 KB pages nearly every row
    costs a TLB miss (measured: ~4% of the fused path's time on SST-2). Elsewhere, or on failure, torch.zeros."""
    nbytes = 4 * n
    if sys.platform.startswith("linux") and nbytes >= 1 << 21:
        try:
            libc = ctypes.CDLL(None)
            ptr = ctypes.c_void_p()
            if libc.posix_memalign(ctypes.byref(ptr), ctypes.c_size_t(1 << 21), ctypes.c_size_t(nbytes)) == 0:
                libc.madvise(ptr, ctypes.c_size_t(nbytes), getattr(mmap, "MADV_HUGEPAGE", 14))  # advice only
                ctypes.memset(ptr, 0, nbytes)
                buf = (ctypes.c_float * n).from_address(ptr.value)
                weakref.finalize(buf, libc.free, ptr)
                return torch.frombuffer(buf, dtype=torch.float32, count=n)  # keeps buf (and the memory) alive
        except (OSError, AttributeError, ValueError):
            pass
    return torch.zeros(n)
