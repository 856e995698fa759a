"""The machine a stage runs on: device, usable cores, CPU name and flags, and the user cache outside the repo."""
from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

import torch

from distill.io import UserError


def device() -> torch.device:
    """cuda when present, else cpu."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), not the machine's total."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def set_threads(threads: int = 0) -> int:
    """torch intra-op threads: `threads` if > 0, else OMP_NUM_THREADS if set, else the usable cores.

    More threads than free cores make the small per-step LSTM kernels spin-wait (measured 10x slower on a busy
    machine), hence the affinity mask rather than the machine's core count."""
    if threads > 0:
        n = threads
    elif os.environ.get("OMP_NUM_THREADS", "").isdigit():
        n = max(int(os.environ["OMP_NUM_THREADS"]), 1)
    else:
        n = usable_cores()
    torch.set_num_threads(n)
    return n


@lru_cache(maxsize=1)
def _cpuinfo_first_block() -> dict[str, str]:
    try:
        block = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines())}


def cpu_name() -> str:
    return _cpuinfo_first_block().get("model name") or platform.processor() or platform.machine()


# The flags an AVX2-class CPU (Haswell .. Zen 3: most laptops, cloud VMs and CI runners) lacks. Masking them
# lets an AVX-512 machine take every decision, and build every C kernel, as such a CPU would.
_ABOVE_AVX2 = ("avx512", "amx", "avx_vnni", "avx_ne_convert", "avx_ifma")
CPU_ISA_ENV = "BILSTM_DISTILL_CPU_ISA"


def cpu_isa_override() -> str:
    """$BILSTM_DISTILL_CPU_ISA: "" (the CPU as detected) or "avx2" (behave as an AVX2-only CPU)."""
    value = os.environ.get(CPU_ISA_ENV, "").strip().lower()
    if value not in ("", "native", "avx2"):
        raise UserError(f"{CPU_ISA_ENV}={value!r}: expected avx2 (behave as an AVX2-only CPU) or native")
    return "" if value == "native" else value


def cpu_flags() -> set[str]:
    """The CPU's flags from /proc/cpuinfo, less those above AVX2 when $BILSTM_DISTILL_CPU_ISA=avx2."""
    flags = set(_cpuinfo_first_block().get("flags", "").split())
    if cpu_isa_override() == "avx2":
        flags = {f for f in flags if not f.startswith(_ABOVE_AVX2)}
    return flags


def cpu_vector_flags() -> list[str]:
    """The flags that decide kernel speed and numerics here (reported beside every timing)."""
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
    return sorted(f for f in cpu_flags() if f in wanted)


def cpu_fingerprint() -> str:
    """CPU model + flags (not its MHz): what `-march=native` code and bf16 support depend on."""
    return f"{platform.machine()} {cpu_name()} {' '.join(sorted(cpu_flags()))}"


def torch_cpu_capability() -> str:
    """The vector ISA class torch's own CPU kernels run at (AVX512, AVX2, ...; ATEN_CPU_CAPABILITY lowers it)."""
    return str(getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")())


def _onednn_allows_bf16() -> bool:
    """False when ONEDNN_MAX_CPU_ISA caps oneDNN below the ISAs that have bf16 instructions."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).strip().upper()
    return not isa or isa == "ALL" or "BF16" in isa or "AMX" in isa or isa.startswith("AVX10")


def cpu_supports_bf16() -> bool:
    """bf16 matmuls in hardware (AVX512-BF16 or AMX), usable by oneDNN here; without them CPU bf16 is emulated:
    measured 20x slower than fp32 on an AVX2-only CPU (teacher fine-tuning), and oneDNN's LSTM refuses it."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags()) and _onednn_allows_bf16()


def native_bf16(device: torch.device) -> bool:
    """Whether `device` runs bf16 matmuls natively (a CUDA GPU of compute capability >= 8.0, or a bf16 CPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and cpu_supports_bf16()


def resolve_bf16(value: bool | str, device: torch.device, key: str) -> bool:
    """A bf16 param (`auto`, true or false) made concrete for `device`. auto = bf16 where `device` has it natively,
    else fp32; true where it has not is a UserError naming `key`, never an emulated 20x slowdown or a oneDNN crash."""
    if value == "auto":
        return native_bf16(device)
    if value and not native_bf16(device):
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else (
            f"this CPU ({cpu_name()}; flags {' '.join(cpu_vector_flags()) or 'none above SSE'}"
            f"{'; ' + CPU_ISA_ENV + '=avx2' if cpu_isa_override() else ''})")
        raise UserError(f"{key} is true but {where} has no native bf16 (needs AVX512-BF16/AMX or a GPU of "
                        f"compute capability 8.0+): emulated bf16 runs ~20x slower than fp32 or fails; set {key} "
                        "to auto or false")
    return bool(value)


def hardware_record(device: torch.device) -> dict:
    """What a stage ran on, for its report and its model's metadata: the outputs of bf16 (or auto) runs, and of the
    C kernels, depend on it."""
    record = {"device_type": device.type, "device": device_name(device), "torch": torch.__version__,
              "torch_cpu_capability": torch_cpu_capability(), "cpu_flags": cpu_vector_flags()}
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):
        record["onednn_max_cpu_isa"] = os.environ["ONEDNN_MAX_CPU_ISA"]
    if cpu_isa_override():
        record["cpu_isa_override"] = cpu_isa_override()
    if device.type == "cuda":
        record["cuda_capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
    return record


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({torch.get_num_threads()} threads)"


def cache_dir() -> Path:
    """$BILSTM_DISTILL_CACHE, else ~/.cache/bilstm-distill: models assembled on first use (POS tagger, MPNet
    teacher) and the compiled LSTM cell. Not /tmp: NLTK refuses world-writable data dirs."""
    return Path(os.environ.get("BILSTM_DISTILL_CACHE") or Path.home() / ".cache" / "bilstm-distill")
