"""Benchmark (not a test): where a training step of the student goes, what the row-sparse AdaDelta saves, and
whether a hand-written training recurrence or a second core could still pay.

1. One thread, the train stage's padded encoder in fp32 (batch 50, MSE), under torch.profiler, once with
   torch.optim.Adadelta (before) and once with the stage's RowSparseAdadelta (now): the time in torch's LSTM layer
   forward and backward (oneDNN's RNN primitive), in the optimizer step and in everything else; the LSTM layer's
   GFLOP/s from the batches' padded shapes (per direction and step 8 B H (E + H) forward, twice that backward),
   against this core's measured fp32 matrix-product peak. A fused training recurrence can only win what the LSTM
   layer leaves under that peak.
2. Both cores: torch's Adadelta and the row-sparse one with the encoder as it is (oneDNN splits each LSTM call over
   the two threads), and the row-sparse one with the two directions run side by side, each on one thread of a
   two-thread pool (a custom autograd Function whose forward and backward run the directions' sub-graphs
   concurrently). Same batches; the first two alternate, the third runs last (see two_cores); the trained weights
   are compared bit for bit.

    python benchmarks/student_step_breakdown.py            # from the repo root, on a quiet machine
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch.profiler import profile

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)
sys.path.insert(0, str(Path(__file__).resolve().parent))

from flop_floor import gemm_rate
from student_training import arguments, optimizer, rows_per_s, setup, train_step
from distill.runtime import cpu_name, cpu_vector_flags
from distill.student.model import BiLSTMEncoder, StudentClassifier, reverse_rows

LSTM_FORWARD, LSTM_BACKWARD, OPTIMIZER = "aten::mkldnn_rnn_layer", "aten::mkldnn_rnn_layer_backward", "Optimizer.step"


def new_model(cfg, vectors, row_sparse: bool):
    torch.manual_seed(13)
    model = StudentClassifier(cfg, torch.from_numpy(vectors))
    model.train()
    return model, optimizer(model, row_sparse)


def lstm_flop(data, batches, hidden: int, inputs: int) -> float:
    """Forward FLOPs of both directions' LSTM layers over these batches, as run: every row to the batch's longest."""
    padded = sum(len(rows) * int(data.total_lengths()[rows].max()) for rows in batches)
    return 2 * 8 * hidden * (inputs + hidden) * padded


def breakdown(data, batches, cfg, vectors, warmup: int, row_sparse: bool, peak: float) -> None:
    model, opt = new_model(cfg, vectors, row_sparse)
    for rows in batches[:warmup]:
        train_step(model, opt, data, rows)
    timed = batches[warmup:]
    with profile() as prof:
        start = time.perf_counter()
        for rows in timed:
            train_step(model, opt, data, rows)
        wall = time.perf_counter() - start
    self_us = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total_us = {e.key: e.cpu_time_total for e in prof.key_averages()}
    parts = {"LSTM layer forward": self_us.get(LSTM_FORWARD, 0) / 1e6,
             "LSTM layer backward": self_us.get(LSTM_BACKWARD, 0) / 1e6,
             "optimizer step (AdaDelta)": sum(v for k, v in total_us.items() if k.startswith(OPTIMIZER)) / 1e6}
    parts["everything else"] = wall - sum(parts.values())
    flop = lstm_flop(data, timed, cfg.hidden, 2 * cfg.embedding_dim)
    lengths = data.total_lengths()
    waste = 1 - sum(lengths[r].sum() for r in timed) / sum(len(r) * lengths[r].max() for r in timed)
    rows = sum(len(r) for r in timed)
    print(f"\n1. one thread, fp32, {'RowSparseAdadelta (now)' if row_sparse else 'torch.optim.Adadelta (before)'}, "
          f"{len(timed)} batches: {rows / wall:,.0f} rows/s under the profiler (padding {waste:.1%} of the LSTM's "
          f"steps; this core's fp32 2048^3 product peak {peak:.1f} GFLOP/s)")
    for name, seconds in parts.items():
        rate = {"LSTM layer forward": flop, "LSTM layer backward": 2 * flop}.get(name)
        extra = f"  {rate / seconds / 1e9:6.1f} GFLOP/s = {rate / seconds / 1e9 / peak:.0%} of peak" if rate else ""
        print(f"  {name:27} {seconds:7.2f} s  {seconds / wall:5.1%}{extra}")


def one_omp_thread() -> None:
    """This pool thread's own OpenMP teams get one thread (an OpenMP setting is per calling thread; torch's
    set_num_threads would change the main thread's too)."""
    libs = glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libgomp*"))
    if libs:
        ctypes.CDLL(libs[0]).omp_set_num_threads(1)


_pool = None


def _direction(inputs, weights, last, hidden: int, training: bool):
    """One direction's LSTM call on detached leaves, so that its backward can run on its own thread."""
    with torch.enable_grad():
        x = inputs.detach().requires_grad_(inputs.requires_grad)
        leaves = [w.detach().requires_grad_() for w in weights]
        h0 = x.new_zeros(1, x.shape[0], hidden)
        out = torch.lstm(x, (h0, h0), leaves, True, 1, 0.0, training, False, True)[0]
        return x, leaves, out.gather(1, last).squeeze(1)


class TwoDirections(torch.autograd.Function):
    """Both directions' LSTM calls at once on the pool's two threads, forward and backward."""

    @staticmethod
    def forward(ctx, forward_inputs, backward_inputs, last, hidden, training, *weights):
        jobs = [_pool.submit(_direction, forward_inputs, weights[:4], last, hidden, training),
                _pool.submit(_direction, backward_inputs, weights[4:], last, hidden, training)]
        ctx.parts = [job.result() for job in jobs]
        return tuple(part[2].detach() for part in ctx.parts)

    @staticmethod
    def backward(ctx, grad_forward, grad_backward):
        def run(part, grad):
            x, leaves, final = part
            grads = torch.autograd.grad(final, ([x] if x.requires_grad else []) + leaves, grad)
            return (grads[0] if x.requires_grad else None), grads[-4:]
        (dx_f, dw_f), (dx_b, dw_b) = [job.result() for job in (_pool.submit(run, ctx.parts[0], grad_forward),
                                                                _pool.submit(run, ctx.parts[1], grad_backward))]
        ctx.parts = None
        return (dx_f, dx_b, None, None, None, *dw_f, *dw_b)


def side_by_side_forward(self, ids, lengths):
    x = self.embed(ids)
    lengths = lengths.to(x.device).clamp(min=1)
    last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, self.lstm.hidden_size)
    f, b = TwoDirections.apply(x, reverse_rows(x, lengths), last, self.lstm.hidden_size, self.training,
                               *self.direction_weights(False), *self.direction_weights(True))
    return torch.cat([f, b], dim=-1)


def two_cores(data, batches, cfg, vectors, warmup: int, rounds: int) -> None:
    global _pool
    _pool = ThreadPoolExecutor(2, initializer=one_omp_thread)
    torch.set_num_threads(2)
    now = BiLSTMEncoder.forward
    variants = {"torch Adadelta, encoder as it is": (now, False), "row-sparse, encoder as it is": (now, True),
                "row-sparse, directions side by side": (side_by_side_forward, True)}
    rates, weights = {name: [] for name in variants}, {}
    # the side-by-side variant's rounds come last: once its pool threads have run OpenMP work, the other variants'
    # two-thread calls measured slower (1.5-2x) for the rest of the process
    schedule = [name for _ in range(rounds) for name in list(variants)[:2]] + [list(variants)[2]] * rounds
    for name in schedule:
        forward, row_sparse = variants[name]
        BiLSTMEncoder.forward = forward
        torch.manual_seed(13)
        model = StudentClassifier(cfg, torch.from_numpy(vectors))
        rates[name].append(rows_per_s(model, data, batches, warmup, False, row_sparse=row_sparse))
        weights[name] = [p.detach().clone() for p in model.parameters()]
    BiLSTMEncoder.forward = now
    first, *others = weights.values()
    same = all(torch.equal(a, b) for other in others for a, b in zip(first, other))
    print(f"\n2. two threads, fp32, {len(batches) - warmup} batches, {rounds} rounds each, the first two variants "
          f"alternating (best; all rounds)")
    base = max(rates["torch Adadelta, encoder as it is"])
    for name, values in rates.items():
        print(f"  {name:36} {max(values):7,.0f} rows/s  {max(values) / base:5.2f}x  "
              f"({', '.join(f'{v:,.0f}' for v in values)})")
    print(f"  weights after training, all three: {'bit-identical' if same else 'DIFFERENT'}")


def main() -> None:
    ap = arguments(__doc__)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of part 2")
    args = ap.parse_args()
    if args.pairs:
        ap.error("--pairs: the FLOP count here is the single-sentence student's; use student_training.py --pairs")
    torch.set_num_threads(1)
    data, batches, cfg, vectors, batch_size = setup(args)
    print(f"{cpu_name()}; flags {' '.join(cpu_vector_flags())}; torch {torch.__version__}; batch {batch_size}; "
          f"{args.batches} timed batches from data/{args.task}/teacher_logits.parquet", flush=True)
    peak = gemm_rate(2048, torch.float32, 1)
    for row_sparse in (False, True):
        breakdown(data, batches, cfg, vectors, args.warmup, row_sparse, peak)
    two_cores(data, batches, cfg, vectors, args.warmup, args.rounds)


if __name__ == "__main__":
    main()
