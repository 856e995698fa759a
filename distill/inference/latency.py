"""Inference as a service sees it: one request at a time (batch 1), and throughput against batch size.

`request_latency` times each request of a fixed sample on its own (perf_counter around the call, and the
process's CPU time: the same on a quiet core, less where other processes take time slices), after a warm-up of
the first `warmup` requests that is not counted, and reports percentiles in milliseconds.
`throughput_by_batch` cuts a sample into consecutive batches of each size (arrival order: no sorting by length
across batches, as a service receives them) and reports sentences/s. Callers pin threads (one core) themselves.
"""
from __future__ import annotations

import gc
import time
from typing import Callable, Sequence

import numpy as np

# fn(columns) -> anything: columns = [texts] or [first, second] for pairs, one request's (or batch's) texts
Request = Callable[[list[list[str]]], object]
BATCH_SIZES = (1, 8, 64, 512)


def percentiles_ms(seconds: Sequence[float]) -> dict:
    ms = np.asarray(seconds, np.float64) * 1e3
    if not len(ms):
        return {"requests": 0}
    return {"requests": int(len(ms)), "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "max_ms": float(ms.max())}


def _rows(columns: list[list[str]], start: int, stop: int) -> list[list[str]]:
    return [c[start:stop] for c in columns]


def request_latency(fn: Request, columns: list[list[str]], warmup: int = 20) -> dict:
    """Each row of `columns` as its own request: percentiles of the wall time per request (warm-up excluded)."""
    n = len(columns[0])
    for i in range(min(warmup, n)):
        fn(_rows(columns, i, i + 1))
    gc.collect()
    times, cpu = [], []
    for i in range(n):
        one = _rows(columns, i, i + 1)
        start, start_cpu = time.perf_counter(), time.process_time()
        fn(one)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    # wall time is what a caller waits (time slices lost to other processes included); the process's CPU time
    # is the work itself, the steadier figure on a shared core
    return {**percentiles_ms(times), **{f"cpu_{k}": v for k, v in percentiles_ms(cpu).items() if k != "requests"},
            "warmup_requests": min(warmup, n)}


def throughput_by_batch(fn: Request, columns: list[list[str]], batch_sizes: Sequence[int] = BATCH_SIZES,
                        repeats: int = 1) -> list[dict]:
    """Examples (sentences, or pairs) per second at each batch size: the sample in consecutive batches, the median
    of `repeats` passes, after one untimed batch."""
    n = len(columns[0])
    out = []
    for size in batch_sizes:
        fn(_rows(columns, 0, min(size, n)))  # warm-up
        passes = []
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            for s in range(0, n, size):
                fn(_rows(columns, s, s + size))
            passes.append(time.perf_counter() - start)
        seconds = float(np.median(passes))
        out.append({"batch_size": int(size), "examples": n, "seconds": seconds,
                    "sentences_per_s": n / seconds if seconds > 0 else 0.0})
    return out
