"""Fast CPU inference for the student (§5.2), numerically the same model as distill.student.StudentClassifier.

Three things make it fast, each exact (not an approximation):
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

import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.profiler import record_function
from tqdm.auto import tqdm

from .io import get_logger
from .student import StudentClassifier
from .vocab import Vocab

log = get_logger("fast_student")

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

# ---- fused LSTM cell -----------------------------------------------------------------------------------------
# Per step the matmul is ~half the work; done as ~8 separate torch elementwise ops the other half is memory
# traffic and op overhead (and torch's tanh is slow on CPU). One C loop over the gates does it in one pass.
# It is compiled on first use with the system C compiler; without one, the torch-ops cell is used (same maths).
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
            cpu = platform.processor() + platform.machine()
            if Path("/proc/cpuinfo").exists():  # -march=native: key on the CPU model and flags (not its MHz)
                cpu += "".join(line for line in Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines()
                               if line.startswith(("model name", "flags")))
            key = hashlib.sha256((_CELL_C + " ".join(_CELL_FLAGS) + cpu).encode()).hexdigest()[:16]
            cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bilstm-distill"
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


def _fold_direction(lstm: torch.nn.LSTM, table: torch.Tensor, suffix: str, perm: torch.Tensor):
    w_ih = getattr(lstm, f"weight_ih_l0{suffix}")
    bias = getattr(lstm, f"bias_ih_l0{suffix}") + getattr(lstm, f"bias_hh_l0{suffix}")
    gates_x = torch.addmm(bias, table, w_ih.t())  # (V, 4H): input projection of every vocabulary word
    w_hh = getattr(lstm, f"weight_hh_l0{suffix}")
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
        enc = model.encoder
        H = cfg.hidden
        # PyTorch gate order is i, f, g, o; reorder to i, f, o, g so one sigmoid covers a contiguous 3H slice
        perm = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
        with torch.inference_mode():
            emb = enc.embed.trainable.weight.detach().float()
            if enc.embed.frozen is not None:
                emb = torch.cat([enc.embed.frozen.weight.detach().float(), emb], dim=1)
            gx_f, whh_f = _fold_direction(enc.lstm, emb, "", perm)
            gx_b, whh_b = _fold_direction(enc.lstm, emb, "_reverse", perm)
            self.vocab_size = emb.shape[0]
            self.gates_table = torch.cat([gx_f, gx_b])  # (2V, 4H): rows [0, V) forward, [V, 2V) backward
            self.w_hh = torch.stack([whh_f, whh_b])  # (2, H, 4H)
            fc1, fc2 = model.classifier[0], model.classifier[2]
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


def reference_logits(model: StudentClassifier, vocab: Vocab, first: Sequence[str],
                     second: Sequence[str] | None = None, batch_size: int = 512, progress: bool = False,
                     sort: bool = True) -> np.ndarray:
    """The reference nn.LSTM model over padded batches (length-sorted when `sort`), in input order."""
    def padded(texts):
        ids, lengths = FastTokenizer(vocab).encode_batch(texts)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
        return ids, lengths, starts

    cols = [padded(first)] + ([padded(second)] if second is not None else [])
    n = len(first)
    order = np.argsort(-cols[0][1], kind="stable") if sort else np.arange(n)
    out = np.empty((n, model.cfg.num_labels), np.float32)
    model.eval()

    def batch(col, rows):
        ids, lengths, starts = col
        lens = lengths[rows]
        T = max(int(lens.max()), 1)
        pos = np.arange(T)
        valid = pos[None, :] < lens[:, None]
        mat = np.where(valid, ids[np.where(valid, starts[rows][:, None] + pos[None, :], 0)] if len(ids) else 0, 0)
        return torch.from_numpy(mat), torch.from_numpy(lens)

    with torch.inference_mode():
        for s in tqdm(range(0, n, batch_size), desc="reference", unit="batch", disable=not progress):
            rows = order[s:s + batch_size]
            args = [t for col in cols for t in batch(col, rows)]
            out[rows] = model(*args).numpy()
    return out



# ---- onnxruntime path ------------------------------------------------------------------------------------------
def onnx_encoder_model(model: StudentClassifier):
    """The student's encoder as an ONNX graph: Gather -> bidirectional LSTM (with sequence_lens) -> (B, 2H).

    Built with onnx.helper from the weights (no tracing: the packed-sequence nn.LSTM does not trace to a
    variable-length graph); onnxruntime's LSTM kernel handles each sequence's own length in both directions."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    enc, H = model.encoder, model.cfg.hidden
    lstm = enc.lstm
    emb = enc.embed.trainable.weight.detach()
    if enc.embed.frozen is not None:
        emb = torch.cat([enc.embed.frozen.weight.detach(), emb], dim=1)
    perm = torch.cat([torch.arange(0, H), torch.arange(3 * H, 4 * H), torch.arange(H, 3 * H)])  # i f g o -> i o f c

    def stacked(name):
        return torch.stack([getattr(lstm, f"{name}_l0")[perm], getattr(lstm, f"{name}_l0_reverse")[perm]])

    bias = torch.cat([stacked("bias_ih"), stacked("bias_hh")], dim=1)  # (2, 8H): [Wb, Rb]
    inits = [numpy_helper.from_array(t.detach().float().numpy(), n) for t, n in
             [(emb, "emb"), (stacked("weight_ih"), "W"), (stacked("weight_hh"), "R"), (bias, "B")]]
    inits.append(numpy_helper.from_array(np.array([0, 2 * H], np.int64), "shape2"))
    nodes = [
        helper.make_node("Gather", ["emb", "ids"], ["x_tb"]),  # ids are time-major (T, B)
        helper.make_node("LSTM", ["x_tb", "W", "R", "B", "lengths"], ["", "h_n"], hidden_size=H,
                         direction="bidirectional"),
        helper.make_node("Transpose", ["h_n"], ["h_bt"], perm=[1, 0, 2]),  # (B, 2, H)
        helper.make_node("Reshape", ["h_bt", "shape2"], ["h"]),  # (B, 2H) = [forward, backward]
    ]
    graph = helper.make_graph(
        nodes, "student_encoder",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["T", "B"]),
         helper.make_tensor_value_info("lengths", TensorProto.INT32, ["B"])],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["B", 2 * H])], inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(onnx_model)
    return onnx_model


class OnnxStudent(FastStudent):
    """FastStudent with the encoder run by onnxruntime (tokenization and classifier as in FastStudent)."""

    def __init__(self, model: StudentClassifier, vocab: Vocab, threads: int | None = None):
        import onnxruntime as ort

        super().__init__(model, vocab, cell="torch")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_encoder_model(model).SerializeToString(), opts,
                                            providers=["CPUExecutionProvider"])
        self.cell = "onnxruntime"

    def encode_ids(self, ids: np.ndarray, lengths: np.ndarray, batch_size: int = 512,
                   progress: bool = False) -> torch.Tensor:
        ids, lengths = self._padded(np.asarray(ids, np.int64), np.asarray(lengths, np.int64))
        n = len(lengths)
        out = torch.empty(n, 2 * self.hidden)
        if n == 0:
            return out
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        order = np.argsort(-lengths, kind="stable")  # similar lengths per batch: little padding
        for s in tqdm(range(0, n, batch_size), desc="student (onnx)", unit="batch", disable=not progress):
            rows = order[s:s + batch_size]
            lens, st = lengths[rows], starts[rows]
            pos = np.arange(int(lens[0]))
            valid = pos[:, None] < lens[None, :]
            mat = np.where(valid, ids[np.where(valid, st[None, :] + pos[:, None], 0)], 0)  # (T, B)
            h = self.session.run(["h"], {"ids": mat, "lengths": lens.astype(np.int32)})[0]
            out[torch.from_numpy(rows)] = torch.from_numpy(h)
        return out
