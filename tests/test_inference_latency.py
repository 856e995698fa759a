"""distill/inference/latency.py: the percentiles it reports, which requests it times (warm-up excluded, one row
each), and throughput by batch size; on a fake clock (exact figures) and on real sleeps (the real clock)."""
import time
from types import SimpleNamespace

import numpy as np
import pytest

from distill.inference import latency
from distill.inference.latency import percentiles_ms, request_latency, throughput_by_batch


def test_percentiles_match_numpy_on_known_data():
    rng = np.random.default_rng(0)
    seconds = rng.permutation(np.arange(1, 201)) / 1e3  # 1 .. 200 ms, shuffled
    got = percentiles_ms(seconds.tolist())
    ms = seconds * 1e3
    assert got == pytest.approx({"requests": 200, "p50_ms": np.percentile(ms, 50), "p90_ms": np.percentile(ms, 90),
                                 "p99_ms": np.percentile(ms, 99), "mean_ms": ms.mean(), "max_ms": 200.0})
    # linear interpolation between order statistics: p99 of 200 samples lies between the 198th and 199th
    assert got["p99_ms"] == pytest.approx(198.01) and got["p90_ms"] == pytest.approx(180.1)
    assert got["p50_ms"] == pytest.approx(100.5)


def test_percentiles_of_one_sample_and_of_none():
    assert percentiles_ms([0.0042]) == pytest.approx({"requests": 1, "p50_ms": 4.2, "p90_ms": 4.2, "p99_ms": 4.2,
                                                      "mean_ms": 4.2, "max_ms": 4.2})
    assert percentiles_ms([]) == {"requests": 0}


class FakeClock:
    """perf_counter and process_time that move only when the fake request says so."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def advance(self, wall_s: float, cpu_s: float) -> None:
        self.wall += wall_s
        self.cpu += cpu_s

    def module(self):
        return SimpleNamespace(perf_counter=lambda: self.wall, process_time=lambda: self.cpu)


def test_request_latency_times_each_row_alone_after_the_warm_up(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(latency, "time", clock.module())
    n, warmup = 200, 20
    order = np.random.default_rng(1).permutation(n)
    durations_ms = (order + 1).astype(float)  # row i takes durations_ms[i]: 1 .. 200 ms in shuffled order
    first, second = [f"a{i}" for i in range(n)], [f"b{i}" for i in range(n)]
    calls = []

    def request(columns):
        calls.append(columns)
        row = int(columns[0][0][1:])
        if len(calls) <= warmup:
            clock.advance(1.0, 1.0)  # the warm-up is slow, and must not count
        else:
            clock.advance(durations_ms[row] / 1e3, durations_ms[row] / 2e3)

    got = request_latency(request, [first, second], warmup=warmup)
    assert calls == [[[first[i]], [second[i]]] for i in [*range(warmup), *range(n)]]  # one row (both texts) a call
    assert got["requests"] == n and got["warmup_requests"] == warmup
    want = percentiles_ms(durations_ms / 1e3)
    for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms"):
        assert got[key] == pytest.approx(want[key]), key
        assert got[f"cpu_{key}"] == pytest.approx(want[key] / 2), key
    assert got["p99_ms"] == pytest.approx(198.01) and got["max_ms"] == pytest.approx(200.0)


def test_request_latency_with_fewer_rows_than_the_warm_up():
    calls = []
    got = request_latency(lambda cols: calls.append(cols), [["x", "y", "z"]], warmup=20)
    assert got["requests"] == 3 and got["warmup_requests"] == 3 and len(calls) == 6


def test_request_latency_on_the_real_clock():
    """A request that sleeps 20 ms: its wall time is 20 ms (plus scheduling), its CPU time nearly none."""
    got = request_latency(lambda cols: time.sleep(0.02), [[f"s{i}" for i in range(8)]], warmup=2)
    assert got["requests"] == 8
    assert 20.0 <= got["p50_ms"] < 40.0  # one sleep per request: not none, not two (the median: robust to a stall)
    assert got["p50_ms"] <= got["p90_ms"] <= got["p99_ms"] <= got["max_ms"]
    assert got["cpu_p50_ms"] < 5.0


def test_throughput_by_batch_cuts_consecutive_batches(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(latency, "time", clock.module())
    n = 100
    texts = [f"t{i}" for i in range(n)]
    calls = []

    def batch(columns):  # 2 ms per call + 1 ms per row
        calls.append(columns[0])
        clock.advance(0.002 + 0.001 * len(columns[0]), 0.0)

    rows = throughput_by_batch(batch, [texts], batch_sizes=(1, 8, 64, 512), repeats=3)
    assert [r["batch_size"] for r in rows] == [1, 8, 64, 512] and all(r["examples"] == n for r in rows)
    for row in rows:
        size = row["batch_size"]
        want = -(-n // size) * 0.002 + n * 0.001  # one pass: ceil(n / size) calls
        assert row["seconds"] == pytest.approx(want) and row["sentences_per_s"] == pytest.approx(n / want)
    # size 8: one warm-up batch, then three passes over the rows in arrival order, in batches of 8 (the last 4)
    eight = calls[1 + 3 * n:][: 1 + 3 * 13]  # after size 1: one warm-up call and three passes of n calls
    assert eight[0] == texts[:8]
    assert eight[1:14] == [texts[s:s + 8] for s in range(0, n, 8)] and eight[1:14] == eight[14:27]
    assert calls[-1] == texts  # batch 512 > n: the whole sample in one call
