"""Fast CPU inference for the student (§5.2), numerically the same model as distill.student.StudentClassifier.

Four things make it fast, each exact (not an approximation):
1. Tokenization without per-sentence Python: all texts are joined once, split once into one flat token array
   and mapped to ids through a pandas Index (`get_indexer`; unknown -> [UNK]).
2. The LSTM's input projection is folded into the embedding table: its input is an embedding lookup, so
   W_ih·e(w) + b_ih + b_hh is precomputed once per vocabulary word and direction (one V x 4H table each).
   A multichannel embedding is just the concatenation [frozen, trainable], folded as one.
3. No work on padding: sentences are sorted by length and each batch runs a shrinking-batch recurrence (like
   packed sequences): at step t only the k_t sequences longer than t are updated. The backward direction gets
   each sequence's tokens reversed ahead of time, so it is the same left-aligned recurrence, and both
   directions run in one batched matmul (baddbmm) per step.
4. Every core busy: with a C cell, whole batches go to a pool of threads (one per core, torch single-threaded
   inside), since both the bmm and the ctypes call release the GIL. One batch per core beats splitting each
   step's small matmul across cores, and the fused cell would otherwise run on one core only.

Cells (`cell=`), all the same maths: "fused" (lstm_fused.c, built by distill.inference.kernels: the whole
recurrence in C, the matmul micro-kernel and the gates fused per tile of rows, AVX-512 or AVX2 chosen from the
CPU's flags; the classifier in C too, batch by batch for single sentences; a second per-word table, as large as the
folded one, holds every word's step-1 product), "c" (per step one torch.bmm for both directions, then the C gate
loop of lstm_cell.c), "torch" (torch ops only); "auto" takes the first of these that builds here (measured in that
order of speed: benchmarks/results/2026-11-25/history.md).

`precision` (default "exact"; only ever what the caller asks for): "bf16" or "int8" (or "auto": bf16 where the
CPU has AVX512-BF16, else int8) swaps the fused recurrence's product h W_hh^T for a reduced-precision one
(distill.inference.kernels's LOWP_BUILDS); gates, step 1's per-word table and the classifier stay exact fp32. NOT the
reference model's numbers: logits move by ~1e-3..1e-2 (measured in benchmark.json).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.profiler import record_function
from tqdm.auto import tqdm

from distill.inference.kernels import (FusedKernel, LowpKernel, compiled_cell, compiled_fused, compiled_lowp,
                                       hugepage_floats, lowp_build_for)
from distill.student.model import StudentClassifier
from distill.student.vocab import Vocab

# Every character str.split() treats as whitespace, except ' ' (texts containing one take the exact slow path).
_OTHER_SPACE = "[\t\n\x0b\x0c\r\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


_SMALL_BATCH = 64  # fewer texts than this: Vocab.encode_batch's dict lookups (measured 1.4 -> 0.6 ms at batch 1)


class FastTokenizer:
    """Vocab.encode for many texts at once, vectorized with pyarrow compute kernels (no per-text Python)."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        self.value_set = pa.array(vocab.itos, pa.large_string())

    def encode_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Flat int64 ids and per-text lengths, identical to Vocab.encode_batch."""
        texts = list(texts)
        if not texts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        if len(texts) < _SMALL_BATCH:  # each kernel call costs ~0.1 ms and index_in hashes the whole vocabulary
            return self.vocab.encode_batch(texts)
        arr = pa.array(texts, pa.large_string())
        if pc.any(pc.match_substring_regex(arr, _OTHER_SPACE)).as_py():
            return self.vocab.encode_batch(texts)  # str.split() whitespace other than ' ': stay exact
        parts = pc.split_pattern(arr, " ")
        flat = pc.list_flatten(parts)
        keep = pc.not_equal(flat, "")  # runs of spaces give empty pieces that str.split() drops
        parent = pc.list_parent_indices(parts).to_numpy()[keep.to_numpy(zero_copy_only=False)]
        lengths = np.bincount(parent, minlength=len(texts)).astype(np.int64)
        ids = pc.fill_null(pc.index_in(flat.filter(keep), value_set=self.value_set), self.vocab.unk_id)
        return ids.to_numpy().astype(np.int64), lengths

def _fold_direction(model: StudentClassifier, table: torch.Tensor, backward: bool, perm: torch.Tensor):
    w_ih, w_hh, b_ih, b_hh = model.lstm_weights(backward)
    gates_x = torch.addmm(b_ih + b_hh, table, w_ih.t())  # (V, 4H): input projection of every vocabulary word
    return gates_x[:, perm].contiguous(), w_hh[perm].t().contiguous()  # (V, 4H), (H, 4H)


@contextmanager
def torch_threads(n: int):
    """Temporarily set torch's intra-op thread count (process-wide), restoring it afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


CELLS = ("auto", "fused", "c", "torch")
# The fused kernel's exponents: z = -x for the sigmoid gates (i f o), -2x for tanh's (g); see lstm_fused.c.
_FUSED_SCALE = (-1.0, -1.0, -1.0, -2.0)
_STEP1_TABLE_BYTES = 1 << 30  # the fused path's per-word table of step-1 products, when at most this large


def recurrent_flop(tokens: int, hidden: int) -> int:
    """The recurrence's matmul work: every token, both directions, h (1 x H) times W_hh^T (H x 4H)."""
    return 2 * tokens * 2 * hidden * 4 * hidden


class FastStudent:
    """Inference-only student: `logits(first, second=None)` -> np.ndarray (N, num_labels), input order."""

    def __init__(self, model: StudentClassifier, vocab: Vocab, cell: str = "auto", threads: int | None = None,
                 isa: str = "auto", precision: str = "exact"):
        """cell: "auto" (the first of fused, c, torch that builds here), "fused", "c" or "torch" — all compute
        the same LSTM cell (see the module doc). isa: the fused kernel's instruction set, "auto" (the best the
        CPU has), "avx512" or "avx2". threads: batches run in parallel with a C cell (default: torch's thread
        count, i.e. the cores). precision: "exact" (default), or a reduced-precision recurrent product (see the
        module doc): "bf16", "int8", "auto" or a build name of cell.LOWP_BUILDS; it needs the fused cell, and a
        CPU without the precision's instructions is a ValueError, never a silent fallback."""
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        self.threads = max(1, threads or torch.get_num_threads())
        self.kernel: FusedKernel | None = compiled_fused(isa) if cell in ("auto", "fused") else None
        if cell == "fused" and self.kernel is None:
            raise RuntimeError(f"the fused LSTM kernel ({isa}) cannot run or be built here")
        self.cell_fn = compiled_cell() if cell == "c" or (cell == "auto" and self.kernel is None) else None
        if cell == "c" and self.cell_fn is None:
            raise RuntimeError("the C LSTM cell could not be compiled here")
        self.cell = "fused" if self.kernel else "c" if self.cell_fn else "torch"
        self.lowp: LowpKernel | None = self._reduced_kernel(precision)
        self.precision = self.lowp.build if self.lowp else "exact"
        self.isa = self.kernel.isa if self.kernel else None
        cfg = model.cfg
        self.pair, self.hidden, self.num_labels = cfg.pair, cfg.hidden, cfg.num_labels
        self.tokenizer = FastTokenizer(vocab)
        H = cfg.hidden
        # PyTorch gate order is i, f, g, o; reorder to i, f, o, g so one sigmoid covers a contiguous 3H slice
        perm = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
        with torch.inference_mode():
            emb = model.embedding_table()
            gx_f, whh_f = _fold_direction(model, emb, False, perm)
            gx_b, whh_b = _fold_direction(model, emb, True, perm)
            self.vocab_size = emb.shape[0]
            self.gates_table = torch.cat([gx_f, gx_b])  # (2V, 4H): rows [0, V) forward, [V, 2V) backward
            self.w_hh = torch.stack([whh_f, whh_b])  # (2, H, 4H)
            fc1, fc2 = model.classifier_layers()
            self.fc1_w, self.fc1_b = fc1.weight.detach().t().contiguous(), fc1.bias.detach().clone()
            self.fc2_w, self.fc2_b = fc2.weight.detach().t().contiguous(), fc2.bias.detach().clone()
            if self.kernel is not None:
                self._pack_fused()

    def _reduced_kernel(self, precision: str) -> LowpKernel | None:
        build = lowp_build_for(precision)  # ValueError: unknown, or not on this CPU
        if build is None:
            return None
        if self.kernel is None:
            raise RuntimeError(f"precision {precision} needs the fused cell, and this is the {self.cell} cell")
        kernel = compiled_lowp(build)
        if kernel is None:
            raise RuntimeError(f"the reduced-precision LSTM kernel ({build}) cannot be built here")
        return kernel

    def _pack_fused(self) -> None:
        """The fused kernel's operands, once per model: W_hh^T of each direction packed in its panels and the
        folded table (with a vector's slack at the end, in huge pages), both pre-scaled (exactly: powers of 2)."""
        H = self.hidden
        scale = torch.tensor(_FUSED_SCALE).repeat_interleave(H)  # (4H,), gate order i f o g
        packed = [self.kernel.pack(self.w_hh[d] * scale) for d in range(2)]
        self.fused_w = torch.cat(packed)
        self.fused_dir_stride, self.fused_columns = packed[0].numel(), self.kernel.padded_columns(4 * H)
        n = self.gates_table.numel()
        table = hugepage_floats(n + 64)
        table[:n].view_as(self.gates_table).copy_(self.gates_table).mul_(scale)
        self.gates_table = table  # the fused path's only copy (flat)
        # step 1's product of every word (first_products in lstm_fused.c): ~1/9 of the recurrence's matmul work on
        # SST-2, for a second table as large as the folded one (skipped past _STEP1_TABLE_BYTES; same results)
        self.fused_g1 = None
        if 4 * n <= _STEP1_TABLE_BYTES:
            self.fused_g1 = hugepage_floats(n + 64)
            if self.kernel.first(self.fused_w.data_ptr(), self.fused_dir_stride, self.fused_columns,
                                 table.data_ptr(), self.vocab_size, H, self.fused_g1.data_ptr()) != 0:
                raise MemoryError("the fused LSTM kernel could not allocate its work buffers")
        if self.lowp is not None:  # the same pre-scaled W_hh^T, in the reduced build's words
            packed = [self.lowp.pack(self.w_hh[d] * scale) for d in range(2)]
            self.lowp_w = torch.cat([w for w, _ in packed])
            self.lowp_aux = torch.cat([aux for _, aux in packed])
            self.lowp_dir_bytes, self.lowp_columns = 4 * packed[0][0].numel(), self.lowp.padded_columns(4 * H)
        # the classifier's weights for the C head: fc1 packed like W_hh, fc2 and the biases zero-padded
        fc = self.fc1_w.shape[1]
        self.head_columns = self.kernel.padded_columns(fc)
        self.head_w1 = self.kernel.pack(self.fc1_w)
        self.head_b1 = torch.zeros(self.head_columns)
        self.head_b1[:fc] = self.fc1_b
        self.head_w2 = torch.zeros(self.num_labels, self.head_columns)
        self.head_w2[:, :fc] = self.fc2_w.t()
        self.head_b2 = self.fc2_b.contiguous()

    # ---- encoder -------------------------------------------------------------------------------------------
    def _padded(self, ids: np.ndarray, lengths: np.ndarray):
        """Empty texts become one [PAD] token (the reference clamps length to 1 over a padded row)."""
        if (lengths == 0).any():
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            ids = np.insert(ids, starts[lengths == 0], 0)
            lengths = np.maximum(lengths, 1)
        return ids, lengths

    def encode_ids(self, ids: np.ndarray, lengths: np.ndarray, batch_size: int = 512, progress: bool = False,
                   head: Callable[[torch.Tensor], torch.Tensor] | None = None, head_dim: int = 0) -> torch.Tensor:
        """Flat ids + lengths -> (N, 2H) = [forward last state, backward last state], in input order; with
        `head` (a map of features (B, 2H) -> (B, head_dim), e.g. the classifier) -> (N, head_dim), the head
        applied batch by batch while the batch's features are still in cache."""
        ids, lengths = self._padded(np.asarray(ids, np.int64), np.asarray(lengths, np.int64))
        ids, lengths = np.ascontiguousarray(ids), np.ascontiguousarray(lengths)
        n, H, V = len(lengths), self.hidden, self.vocab_size
        out = torch.empty(n, head_dim if head is not None else 2 * H)
        if n == 0:
            return out
        if lengths.sum() != len(ids) or (len(ids) and (ids.min() < 0 or ids.max() >= V)):
            raise ValueError("ids and lengths do not match, or an id is outside the vocabulary")
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        order = np.argsort(-lengths, kind="stable")  # longest first: active rows are always a prefix
        plan = [order[s:s + batch_size] for s in range(0, n, batch_size)]

        @torch.inference_mode()  # thread-local: pool threads need it too
        def run(rows: np.ndarray) -> None:
            if self.kernel is not None:
                with record_function("recurrence"):
                    if head is None:
                        self._recur_fused(ids, starts, lengths, rows, out)
                        return
                    features = torch.empty(len(rows), 2 * H)
                    self._recur_fused(ids, starts, lengths, rows, features, np.arange(len(rows), dtype=np.int64))
                out[torch.from_numpy(rows)] = head(features)
                return
            lens, st = lengths[rows], starts[rows]
            T = int(lens[0])
            with record_function("gather_gates"):
                pos = np.arange(T)
                valid = pos[None, :] < lens[:, None]
                fwd = np.where(valid, st[:, None] + pos[None, :], 0)
                bwd = np.where(valid, st[:, None] + lens[:, None] - 1 - pos[None, :], 0)
                # time-major (T, 2, B) rows of the stacked table; padding positions are never read
                idx = torch.from_numpy(np.ascontiguousarray(np.stack([ids[fwd].T, ids[bwd].T + V], axis=1)))
                active = (lens[None, :] > pos[:, None]).sum(1).tolist()
            with record_function("recurrence"):
                h = self._recur_c(idx, active) if self.cell_fn is not None else \
                    self._recur(self.gates_table[idx], active)
            features = torch.cat([h[0], h[1]], dim=1)
            out[torch.from_numpy(rows)] = features if head is None else head(features)  # batches: disjoint rows

        bar = tqdm(total=len(plan), desc="student", unit="batch", disable=not progress)
        workers = min(self.threads, len(plan)) if self.cell != "torch" else 1
        if workers == 1:
            for rows in plan:
                run(rows)
                bar.update()
        else:  # longest batches are handed out first, so the pool ends nearly balanced
            with torch_threads(1), ThreadPoolExecutor(workers) as pool:
                for _ in pool.map(run, plan):
                    bar.update()
        bar.close()
        return out

    def _recur_fused(self, ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray, rows: np.ndarray,
                     out: torch.Tensor, dest: np.ndarray | None = None) -> None:
        """Fused kernel: the whole recurrence of these rows (both directions) in one C call, their last states
        written straight into their rows of out (N, 2H)."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        g1 = None if self.fused_g1 is None else self.fused_g1.data_ptr()
        if self.lowp is not None:  # the reduced product; step 1 still from the exact per-word table
            status = self.lowp.run(self.lowp_w.data_ptr(), self.lowp_dir_bytes, self.lowp_aux.data_ptr(),
                                   self.lowp_columns, self.gates_table.data_ptr(), g1, self.vocab_size,
                                   ids.ctypes.data, starts.ctypes.data, lengths.ctypes.data, rows.ctypes.data,
                                   len(rows), self.hidden, out.data_ptr(), None if dest is None else dest.ctypes.data)
        else:
            status = self.kernel.run(self.fused_w.data_ptr(), self.fused_dir_stride, self.fused_columns,
                                     self.gates_table.data_ptr(), g1, self.vocab_size, ids.ctypes.data,
                                     starts.ctypes.data, lengths.ctypes.data, rows.ctypes.data, len(rows),
                                     self.hidden, out.data_ptr(), None if dest is None else dest.ctypes.data)
        if status != 0:
            raise MemoryError("the fused LSTM kernel could not allocate its work buffers")

    def _recur_c(self, idx: torch.Tensor, active: list[int]) -> torch.Tensor:
        """C cell: per step one bmm (both directions) into a reused buffer, then one fused pass that adds the
        input gates straight from the folded table (no (T, B, 8H) gather is ever materialised)."""
        B, H = idx.shape[2], self.hidden
        h, c = torch.zeros(2, B, H), torch.zeros(2, B, H)
        buf = torch.empty(2 * B * 4 * H)
        fn, table, w = self.cell_fn, self.gates_table.data_ptr(), self.w_hh
        g_ptr, c_ptr, h_ptr, id_ptr, id_step = buf.data_ptr(), c.data_ptr(), h.data_ptr(), idx.data_ptr(), 2 * B * 8
        for t, k in enumerate(active):
            torch.bmm(h[:, :k], w, out=buf[:2 * k * 4 * H].view(2, k, 4 * H))
            fn(g_ptr, table, id_ptr + t * id_step, c_ptr, h_ptr, 2, k, B, H)
        return h

    def _recur(self, x: torch.Tensor, active: list[int]) -> torch.Tensor:
        """Torch-ops cell over the gathered input gates x (T, 2, B, 4H)."""
        B, H = x.shape[2], self.hidden
        h = x.new_zeros(2, B, H)
        c = x.new_zeros(2, B, H)
        for t, k in enumerate(active):
            g = torch.baddbmm(x[t, :, :k], h[:, :k], self.w_hh)  # (2, k, 4H), both directions at once
            sig = g[..., :3 * H].sigmoid()
            cand = g[..., 3 * H:].tanh()
            ck = c[:, :k]
            ck.mul_(sig[..., H:2 * H]).addcmul_(sig[..., :H], cand)
            torch.mul(sig[..., 2 * H:], ck.tanh(), out=h[:, :k])
        return h

    def encode(self, texts: Sequence[str], batch_size: int = 512, progress: bool = False,
               head: Callable[[torch.Tensor], torch.Tensor] | None = None, head_dim: int = 0) -> torch.Tensor:
        with record_function("tokenize"):
            ids, lengths = self.tokenizer.encode_batch(texts)
        if head is None:  # (OnnxStudent's encode_ids takes no head)
            return self.encode_ids(ids, lengths, batch_size, progress)
        return self.encode_ids(ids, lengths, batch_size, progress, head, head_dim)

    # ---- classifier ----------------------------------------------------------------------------------------
    def classify(self, features: torch.Tensor) -> torch.Tensor:
        if self.kernel is not None:
            return self._classify_fused(features)
        with torch.inference_mode(), record_function("classifier"):
            hidden = torch.addmm(self.fc1_b, features, self.fc1_w).relu_()
            return torch.addmm(self.fc2_b, hidden, self.fc2_w)

    def _classify_fused(self, features: torch.Tensor) -> torch.Tensor:
        """The classifier in C (fc1, ReLU and fc2 per tile of rows, the hidden layer in L1)."""
        with record_function("classifier"):
            x = features.detach().float().contiguous()
            out = torch.empty(x.shape[0], self.num_labels)
            if self.kernel.head(x.data_ptr(), x.shape[0], x.shape[1], self.head_w1.data_ptr(), self.head_columns,
                                self.head_b1.data_ptr(), self.head_w2.data_ptr(), self.head_b2.data_ptr(),
                                self.num_labels, out.data_ptr()) != 0:
                raise MemoryError("the fused classifier could not allocate its work buffer")
            return out

    def logits(self, first: Sequence[str], second: Sequence[str] | None = None, batch_size: int = 512,
               progress: bool = False) -> np.ndarray:
        if self.pair != (second is not None):
            raise ValueError("pair model needs `second`; single-sentence model takes none")
        if second is None:
            if self.kernel is not None:  # the classifier batch by batch, on features still in cache
                return self.encode(first, batch_size, progress, self.classify, self.num_labels).numpy()
            return self.classify(self.encode(first, batch_size, progress)).numpy()
        n = len(first)
        if len(second) != n:
            raise ValueError("first and second differ in length")
        h = self.encode([*first, *second], batch_size, progress)  # siamese: one shared encoder pass
        h1, h2 = h[:n], h[n:]
        return self.classify(torch.cat([h1, h2, h1 * h2, (h1 - h2).abs()], dim=1)).numpy()
