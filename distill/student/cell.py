"""The fused LSTM cell of the fast student path, in C: per step the matmul is ~half the work; done as ~8
separate torch elementwise ops the other half is memory traffic and op overhead (and torch's tanh is slow on
CPU). One C loop over the gates does it in one pass. Compiled on first use with the system C compiler into the
user cache (keyed by source, flags and CPU); without a compiler the torch-ops cell is used (same maths)."""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from distill.io import get_logger
from distill.runtime import cache_dir, cpu_fingerprint

log = get_logger("cell")

_CELL_C = r"""
#include <math.h>
static inline float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }
/* g: (D, k, 4H) = h W_hh^T, gate order [i f o g]; the input part comes from the folded table (2V, 4H) by the
   step's ids (D, B) (backward ids already offset by V); c, h: (D, B, H); rows 0..k-1 are updated in place. */
void lstm_cell(const float *restrict g, const float *restrict table, const long *restrict ids, float *restrict c,
               float *restrict h, long D, long k, long B, long H) {  /* restrict: lets gcc vectorize */
    for (long d = 0; d < D; d++)
        for (long r = 0; r < k; r++) {
            const float *gr = g + (d * k + r) * 4 * H, *xr = table + ids[d * B + r] * 4 * H;
            float *cr = c + (d * B + r) * H, *hr = h + (d * B + r) * H;
            for (long j = 0; j < H; j++) {
                float i = sigm(gr[j] + xr[j]), f = sigm(gr[H + j] + xr[H + j]), o = sigm(gr[2 * H + j] + xr[2 * H + j]);
                float cand = 2.0f * sigm(2.0f * (gr[3 * H + j] + xr[3 * H + j])) - 1.0f;  /* tanh */
                float cn = f * cr[j] + i * cand;
                cr[j] = cn;
                hr[j] = o * (2.0f * sigm(2.0f * cn) - 1.0f);
            }
        }
}
"""
_CELL_FLAGS = ["-O3", "-march=native", "-ffast-math", "-shared", "-fPIC"]
_cell_lib = None


def compiled_cell():
    """The C cell as a ctypes function, or None when no compiler works here (cached per source+CPU)."""
    global _cell_lib
    if _cell_lib is None:
        _cell_lib = False
        try:
            # -march=native: key on the CPU model and flags (not its MHz)
            key = hashlib.sha256((_CELL_C + " ".join(_CELL_FLAGS) + cpu_fingerprint()).encode()).hexdigest()[:16]
            cache = cache_dir()
            lib = cache / f"lstm_cell_{key}.so"
            if not lib.exists():
                cache.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryDirectory(dir=cache) as tmp:
                    src = Path(tmp) / "cell.c"
                    src.write_text(_CELL_C)
                    cc = os.environ.get("CC", "cc")
                    subprocess.run([cc, *_CELL_FLAGS, "-o", str(Path(tmp) / "cell.so"), str(src), "-lm"],
                                   check=True, capture_output=True, timeout=120)
                    os.replace(Path(tmp) / "cell.so", lib)  # atomic: concurrent builders never see half a file
            fn = ctypes.CDLL(str(lib)).lstm_cell
            fn.restype = None
            fn.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_long] * 4
            _cell_lib = fn
        except (OSError, subprocess.SubprocessError) as err:
            log.warning("no C compiler for the fused LSTM cell (%s); using torch ops", err)
    return _cell_lib or None


