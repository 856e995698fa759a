"""distill/inference/kernels.py: the fused C LSTM cell computes one LSTM step, checked against numpy by hand."""
import ctypes

import numpy as np
import pytest

from distill.inference.kernels import compiled_cell

cell = compiled_cell()
pytestmark = pytest.mark.skipif(cell is None, reason="no C compiler here")


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_one_step_by_hand():
    D, k, B, H, V = 2, 2, 3, 4, 5  # 2 directions; 2 of the 3 rows are still running
    rng = np.random.default_rng(0)
    g = rng.normal(size=(D, k, 4 * H)).astype(np.float32)  # recurrent part h W_hh^T, gates [i f o g]
    table = rng.normal(size=(2 * V, 4 * H)).astype(np.float32)  # folded input part per (direction, word)
    ids = np.array([[1, 3, 4], [V + 0, V + 2, V + 4]], dtype=np.int64)  # backward rows offset by V
    c = rng.normal(size=(D, B, H)).astype(np.float32)
    h = rng.normal(size=(D, B, H)).astype(np.float32)
    c0, h0 = c.copy(), h.copy()
    cell(g.ctypes.data, table.ctypes.data, ids.ctypes.data, c.ctypes.data, h.ctypes.data, D, k, B, H)
    for d in range(D):
        for r in range(k):
            x = g[d, r] + table[ids[d, r]]
            i, f, o = sigmoid(x[:H]), sigmoid(x[H:2 * H]), sigmoid(x[2 * H:3 * H])
            c_new = f * c0[d, r] + i * np.tanh(x[3 * H:])
            np.testing.assert_allclose(c[d, r], c_new, atol=1e-5)
            np.testing.assert_allclose(h[d, r], o * np.tanh(c_new), atol=1e-5)
        assert np.array_equal(c[d, k:], c0[d, k:]) and np.array_equal(h[d, k:], h0[d, k:])  # finished rows
    assert isinstance(cell, ctypes._CFuncPtr) and compiled_cell() is cell  # compiled once per process
