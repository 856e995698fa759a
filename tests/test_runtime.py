"""distill/runtime.py: thread count, usable cores, device names and the user cache folder."""
import os
from pathlib import Path

import pytest
import torch

from distill import runtime


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_set_threads_precedence(monkeypatch, keep_threads):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert runtime.set_threads(2) == 2 == torch.get_num_threads()  # runtime.threads > 0 wins
    assert runtime.set_threads(0) == 3 == torch.get_num_threads()  # then OMP_NUM_THREADS
    monkeypatch.setenv("OMP_NUM_THREADS", "0")
    assert runtime.set_threads(0) == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert runtime.set_threads(0) == runtime.usable_cores()  # then the cores this process may use


def test_usable_cores_is_the_affinity_mask():
    if hasattr(os, "sched_getaffinity"):
        assert runtime.usable_cores() == len(os.sched_getaffinity(0))
    assert 1 <= runtime.usable_cores() <= (os.cpu_count() or 1)


def test_device_and_cpu_description(keep_threads):
    torch.set_num_threads(1)
    assert runtime.device().type in ("cpu", "cuda")
    assert runtime.device_name(torch.device("cpu")).endswith("(1 threads)")
    assert set(runtime.cpu_vector_flags()) <= runtime.cpu_flags()
    assert isinstance(runtime.cpu_supports_bf16(), bool)
    assert runtime.cpu_fingerprint().startswith(os.uname().machine)


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("BILSTM_DISTILL_CACHE", str(tmp_path))
    assert runtime.cache_dir() == tmp_path
    monkeypatch.delenv("BILSTM_DISTILL_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert runtime.cache_dir() == Path(tmp_path / "home" / ".cache" / "bilstm-distill")
