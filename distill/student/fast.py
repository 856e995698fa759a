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
4. Every core busy: with the C cell, whole batches go to a pool of threads (one per core, torch single-threaded
   inside), since both the bmm and the ctypes call release the GIL. One batch per core beats splitting each
   step's small matmul across cores, and the fused cell would otherwise run on one core only.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.profiler import record_function
from tqdm.auto import tqdm

from distill.student.cell import compiled_cell
from distill.student.model import StudentClassifier
from distill.student.vocab import Vocab

# Every character str.split() treats as whitespace, except ' ' (texts containing one take the exact slow path).
_OTHER_SPACE = "[\t\n\x0b\x0c\r\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


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


class FastStudent:
    """Inference-only student: `logits(first, second=None)` -> np.ndarray (N, num_labels), input order."""

    def __init__(self, model: StudentClassifier, vocab: Vocab, cell: str = "auto", threads: int | None = None):
        """cell: "auto" (C if it compiles, else torch), "c" or "torch" — both compute the same LSTM cell.
        threads: batches run in parallel with the C cell (default: torch's thread count, i.e. the cores)."""
        if cell not in ("auto", "c", "torch"):
            raise ValueError(f"cell must be auto, c or torch, not {cell!r}")
        self.threads = max(1, threads or torch.get_num_threads())
        self.cell_fn = compiled_cell() if cell in ("auto", "c") else None
        if cell == "c" and self.cell_fn is None:
            raise RuntimeError("the C LSTM cell could not be compiled here")
        self.cell = "c" if self.cell_fn is not None else "torch"
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

    # ---- encoder -------------------------------------------------------------------------------------------
    def _padded(self, ids: np.ndarray, lengths: np.ndarray):
        """Empty texts become one [PAD] token (the reference clamps length to 1 over a padded row)."""
        if (lengths == 0).any():
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            ids = np.insert(ids, starts[lengths == 0], 0)
            lengths = np.maximum(lengths, 1)
        return ids, lengths

    def encode_ids(self, ids: np.ndarray, lengths: np.ndarray, batch_size: int = 512,
                   progress: bool = False) -> torch.Tensor:
        """Flat ids + lengths -> (N, 2H) = [forward last state, backward last state], in input order."""
        ids, lengths = self._padded(np.asarray(ids, np.int64), np.asarray(lengths, np.int64))
        n, H, V = len(lengths), self.hidden, self.vocab_size
        out = torch.empty(n, 2 * H)
        if n == 0:
            return out
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        order = np.argsort(-lengths, kind="stable")  # longest first: active rows are always a prefix
        plan = [order[s:s + batch_size] for s in range(0, n, batch_size)]

        @torch.inference_mode()  # thread-local: pool threads need it too
        def run(rows: np.ndarray) -> None:
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
            out[torch.from_numpy(rows)] = torch.cat([h[0], h[1]], dim=1)  # batches own disjoint rows

        bar = tqdm(total=len(plan), desc="student", unit="batch", disable=not progress)
        workers = min(self.threads, len(plan)) if self.cell_fn is not None else 1
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

    def encode(self, texts: Sequence[str], batch_size: int = 512, progress: bool = False) -> torch.Tensor:
        with record_function("tokenize"):
            ids, lengths = self.tokenizer.encode_batch(texts)
        return self.encode_ids(ids, lengths, batch_size, progress)

    # ---- classifier ----------------------------------------------------------------------------------------
    def classify(self, features: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), record_function("classifier"):
            hidden = torch.addmm(self.fc1_b, features, self.fc1_w).relu_()
            return torch.addmm(self.fc2_b, hidden, self.fc2_w)

    def logits(self, first: Sequence[str], second: Sequence[str] | None = None, batch_size: int = 512,
               progress: bool = False) -> np.ndarray:
        if self.pair != (second is not None):
            raise ValueError("pair model needs `second`; single-sentence model takes none")
        if second is None:
            return self.classify(self.encode(first, batch_size, progress)).numpy()
        n = len(first)
        if len(second) != n:
            raise ValueError("first and second differ in length")
        h = self.encode([*first, *second], batch_size, progress)  # siamese: one shared encoder pass
        h1, h2 = h[:n], h[n:]
        return self.classify(torch.cat([h1, h2, h1 * h2, (h1 - h2).abs()], dim=1)).numpy()
