"""The machine a stage runs on: device, usable cores, CPU name and flags, and the user cache outside the repo."""
from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

import torch


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


def cpu_flags() -> set[str]:
    return set(_cpuinfo_first_block().get("flags", "").split())


def cpu_vector_flags() -> list[str]:
    """The flags that decide kernel speed and numerics here (reported beside every timing)."""
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
    return sorted(f for f in cpu_flags() if f in wanted)


def cpu_fingerprint() -> str:
    """CPU model + flags (not its MHz): what `-march=native` code and bf16 support depend on."""
    return f"{platform.machine()} {cpu_name()} {' '.join(sorted(cpu_flags()))}"


def cpu_supports_bf16() -> bool:
    """bf16 matmuls in hardware (AVX512-BF16 or AMX); without them CPU bf16 is emulated and slower."""
    if "AMX" in str(getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()).upper():
        return True
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"{cpu_name()} ({torch.get_num_threads()} threads)"


def cache_dir() -> Path:
    """$BILSTM_DISTILL_CACHE, else ~/.cache/bilstm-distill: models assembled on first use (POS tagger, MPNet
    teacher) and the compiled LSTM cell. Not /tmp: NLTK refuses world-writable data dirs."""
    return Path(os.environ.get("BILSTM_DISTILL_CACHE") or Path.home() / ".cache" / "bilstm-distill")
