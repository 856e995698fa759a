"""Fast CPU inference for the cnn, bow and linear students (distill.student.model), what distill.inference.fast is to
the BiLSTM: the same maths as the torch model over a flat token stream instead of padded batches, each exact up to
float summation order (the benchmark and the tests compare it with the torch model).

- Tokenization as FastStudent's (FastTokenizer: pyarrow kernels, no per-text Python for large batches).
- bow / linear: each text's mean by torch's embedding_bag and its max by one scatter_reduce over the gathered rows,
  over its own tokens only: no padding, no mask.
- linear, single sentences: the output layer folded into the table (mean(e) W^T = mean(e W^T)): one (V, labels)
  table, so a text costs a gather of `labels` floats per token.
- cnn: the convolution folded into the table too, as FastStudent folds the LSTM's input projection: a window's
  output for width w is sum_k W_k e(word at k) + b, so e(v) W_k^T is computed once per vocabulary word, width and
  offset (a (3+4+5) x V x filters table, built when at most _FOLDED_TABLE_BYTES), and a window is then a bag of w
  table rows (embedding_bag, sum): no multiply per token. Each text is padded with [PAD] to 5 tokens and reads its
  windows 0 .. max(length - w + 1, 1) - 1 (the model's rule), max per text, then bias and ReLU (both commute with
  the max). Past the size limit, one conv1d per width over the texts laid end to end does the same.
Timings of every path and arch on one thread: benchmarks/student_archs.py.

`fast_student` and `onnx_student` pick the implementation for a model's arch: FastStudent / OnnxStudent for the
BiLSTM, PooledStudent / OnnxGraphStudent (the export's whole graph run by onnxruntime) for the others.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from distill.inference.export import onnx_classifier_model
from distill.inference.fast import FastStudent, FastTokenizer
from distill.inference.onnx import OnnxStudent
from distill.student.batching import pad_rows
from distill.student.model import CNN_WIDTHS, StudentClassifier
from distill.student.vocab import Vocab

_FOLDED_TABLE_BYTES = 1 << 30  # the cnn's folded table, when at most this large (FastStudent's limit for its own)


def _empty_as_pad(ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empty texts become one [PAD] token (the torch model clamps a length to 1 over a padded row)."""
    if (lengths == 0).any():
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        ids = np.insert(ids, starts[lengths == 0], 0)
        lengths = np.maximum(lengths, 1)
    return ids, lengths


def _starts(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def _segment_max(rows: torch.Tensor, counts: np.ndarray) -> torch.Tensor:
    """(len(counts), width): the maximum of each run of counts[i] >= 1 consecutive rows."""
    segment = torch.from_numpy(np.repeat(np.arange(len(counts)), counts))
    out = torch.full((len(counts), rows.shape[1]), float("-inf"), dtype=rows.dtype)
    return out.scatter_reduce_(0, segment[:, None].expand(-1, rows.shape[1]), rows, "amax")


class PooledStudent:
    """Inference-only cnn / bow / linear student: `logits(first, second=None)` -> np.ndarray (N, num_labels)."""

    isa = None  # (FastStudent's instruction set; nothing here is hand-written)

    def __init__(self, model: StudentClassifier, vocab: Vocab, threads: int | None = None):
        cfg = model.cfg
        if cfg.arch not in ("cnn", "bow", "linear"):
            raise ValueError(f"PooledStudent runs the cnn, bow and linear students, not {cfg.arch!r}")
        self.arch, self.pair, self.num_labels = cfg.arch, cfg.pair, cfg.num_labels
        self.threads = max(1, threads or torch.get_num_threads())  # torch's intra-op threads
        self.tokenizer = FastTokenizer(vocab)
        self.features = model.encoder.output_dim
        with torch.inference_mode():
            self.table = model.embedding_table().contiguous()  # (V, D)
            V = self.vocab_size = self.table.shape[0]
            self.layers = [(layer.weight.detach().float().t().contiguous(), layer.bias.detach().float().clone())
                           for layer in model.classifier_layers()]
            self.pools = getattr(model.encoder, "pools", ())
            self.convs = [(conv.weight.detach().float().clone(), conv.bias.detach().float().clone())
                          for conv in getattr(model.encoder, "convs", ())]
            self.folded = self.conv_table = None
            if self.arch == "linear" and not self.pair:  # the mean commutes with the output layer
                self.folded = (self.table @ self.layers[0][0]).contiguous()  # (V, num_labels)
            if self.arch == "cnn" and 4 * V * sum(CNN_WIDTHS) * cfg.filters <= _FOLDED_TABLE_BYTES:
                # rows [V * j, V * (j + 1)): block j = (width, offset) in CNN_WIDTHS order: e(v) W[:, :, k]^T
                self.conv_table = torch.cat([self.table @ weight[:, :, k].t() for weight, _ in self.convs
                                             for k in range(weight.shape[2])]).contiguous()
        self.cell = {"cnn": "folded" if self.conv_table is not None else "conv1d", "bow": "bag",
                     "linear": "folded" if self.folded is not None else "bag"}[self.arch]

    # ---- encoder ---------------------------------------------------------------------------------------------
    def _bag(self, ids: torch.Tensor, lengths: np.ndarray, table: torch.Tensor, pools) -> torch.Tensor:
        out = []
        for pool in pools:
            if pool == "mean":
                out.append(F.embedding_bag(ids, table, torch.from_numpy(_starts(lengths)), mode="mean"))
            else:  # (embedding_bag's max also tracks every maximum's index: measured 7x slower here)
                out.append(_segment_max(F.embedding(ids, table), lengths))
        return out[0] if len(out) == 1 else torch.cat(out, dim=1)

    def _cnn(self, ids: torch.Tensor, lengths: np.ndarray) -> torch.Tensor:
        """(B, 3 * filters): each width's windows of each text (see the module doc), max per text, bias, ReLU."""
        widest, V = max(CNN_WIDTHS), self.vocab_size
        region = np.maximum(lengths, widest)  # each text's span in the stream: its tokens, then [PAD]
        starts = _starts(region)
        stream = torch.zeros(int(region.sum()), dtype=torch.int64)
        stream[torch.from_numpy(np.repeat(starts - _starts(lengths), lengths) + np.arange(len(ids)))] = ids
        x = None if self.conv_table is not None else self.table[stream].t().unsqueeze(0)  # (1, D, positions)
        out, block = [], 0
        for weight, bias in self.convs:
            width = weight.shape[2]
            count = np.maximum(lengths - width + 1, 1)  # windows per text
            first = torch.from_numpy(np.repeat(starts - _starts(count), count) + np.arange(count.sum()))
            if x is None:
                rows = stream[first[:, None] + torch.arange(width)] + V * (block + torch.arange(width))
                y = F.embedding_bag(rows, self.conv_table, mode="sum")  # (windows, filters)
            else:
                y = torch.conv1d(x, weight)[0].t()[first]
            out.append(_segment_max(y, count) + bias)
            block += width
        return torch.cat(out, dim=1).relu_()

    def encode_ids(self, ids: np.ndarray, lengths: np.ndarray, batch_size: int = 512, progress: bool = False,
                   folded: bool = False) -> torch.Tensor:
        """Flat ids + lengths -> (N, features) in input order, batch by batch of consecutive texts; `folded`:
        the linear student's logits less its bias, through its folded table."""
        ids, lengths = _empty_as_pad(np.asarray(ids, np.int64), np.asarray(lengths, np.int64))
        n = len(lengths)
        if lengths.sum() != len(ids) or (len(ids) and (ids.min() < 0 or ids.max() >= self.vocab_size)):
            raise ValueError("ids and lengths do not match, or an id is outside the vocabulary")
        out = torch.empty(n, self.num_labels if folded else self.features)
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        tokens = torch.from_numpy(ids)
        with torch.inference_mode():
            for s in tqdm(range(0, n, batch_size), desc="student", unit="batch", disable=not progress):
                e = min(s + batch_size, n)
                part, lens = tokens[bounds[s]:bounds[e]], lengths[s:e]
                if folded:
                    out[s:e] = self._bag(part, lens, self.folded, ("mean",))
                elif self.arch == "cnn":
                    out[s:e] = self._cnn(part, lens)
                else:
                    out[s:e] = self._bag(part, lens, self.table, self.pools)
        return out

    def encode(self, texts: Sequence[str], batch_size: int = 512, progress: bool = False) -> torch.Tensor:
        ids, lengths = self.tokenizer.encode_batch(texts)
        return self.encode_ids(ids, lengths, batch_size, progress)

    # ---- classifier ------------------------------------------------------------------------------------------
    def classify(self, features: torch.Tensor) -> torch.Tensor:
        h = features
        with torch.inference_mode():
            for i, (weight, bias) in enumerate(self.layers):
                h = torch.addmm(bias, h, weight)
                if i < len(self.layers) - 1:
                    h.relu_()
        return h

    def logits(self, first: Sequence[str], second: Sequence[str] | None = None, batch_size: int = 512,
               progress: bool = False) -> np.ndarray:
        if self.pair != (second is not None):
            raise ValueError("pair model needs `second`; single-sentence model takes none")
        if second is None:
            if self.folded is not None:
                ids, lengths = self.tokenizer.encode_batch(first)
                return (self.encode_ids(ids, lengths, batch_size, progress, folded=True) + self.layers[0][1]).numpy()
            return self.classify(self.encode(first, batch_size, progress)).numpy()
        n = len(first)
        if len(second) != n:
            raise ValueError("first and second differ in length")
        h = self.encode([*first, *second], batch_size, progress)  # siamese: one shared encoder pass
        h1, h2 = h[:n], h[n:]
        return self.classify(torch.cat([h1, h2, h1 * h2, (h1 - h2).abs()], dim=1)).numpy()


class OnnxGraphStudent:
    """A cnn / bow / linear student's whole exported graph (distill.inference.export) run by onnxruntime, fed as
    the fast paths are (FastTokenizer, batches of similar lengths): `logits(first, second=None)`."""

    def __init__(self, model: StudentClassifier, vocab: Vocab, threads: int | None = None):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_classifier_model(model).SerializeToString(), opts,
                                            providers=["CPUExecutionProvider"])
        self.tokenizer, self.pair, self.num_labels = FastTokenizer(vocab), model.cfg.pair, model.cfg.num_labels
        self.cell = "onnxruntime"

    def logits(self, first: Sequence[str], second: Sequence[str] | None = None, batch_size: int = 512,
               progress: bool = False) -> np.ndarray:
        if self.pair != (second is not None):
            raise ValueError("pair model needs `second`; single-sentence model takes none")
        columns = []
        for texts in (first, second) if second is not None else (first,):
            ids, lengths = _empty_as_pad(*self.tokenizer.encode_batch(texts))
            columns.append((ids, lengths, np.concatenate([[0], np.cumsum(lengths)[:-1]])))
        n = len(first)
        out = np.empty((n, self.num_labels), np.float32)
        order = np.argsort(-sum(c[1] for c in columns), kind="stable")  # similar lengths per batch
        for s in tqdm(range(0, n, batch_size), desc="student (onnx)", unit="batch", disable=not progress):
            rows = order[s:s + batch_size]
            feed = {}
            for suffix, (ids, lengths, starts) in zip(("", "2"), columns):
                feed["ids" + suffix] = pad_rows(ids, starts[rows], lengths[rows])
                feed["lengths" + suffix] = lengths[rows].astype(np.int32)
            out[rows] = self.session.run(["logits"], feed)[0]
        return out


def fast_student(model: StudentClassifier, vocab: Vocab, threads: int | None = None) -> FastStudent | PooledStudent:
    """The fastest CPU implementation of this model's arch (FastStudent's best cell for the BiLSTM)."""
    return FastStudent(model, vocab, threads=threads) if model.cfg.arch == "bilstm" else \
        PooledStudent(model, vocab, threads=threads)


def onnx_student(model: StudentClassifier, vocab: Vocab, threads: int | None = None
                 ) -> OnnxStudent | OnnxGraphStudent:
    """The model through onnxruntime: the BiLSTM's encoder graph (OnnxStudent), or the others' whole graph."""
    return OnnxStudent(model, vocab, threads) if model.cfg.arch == "bilstm" else \
        OnnxGraphStudent(model, vocab, threads)
