"""The student's encoder run by onnxruntime: an ONNX graph built from the weights (Gather -> bidirectional LSTM),
tokenization and classifier as in the fast path."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from tqdm.auto import tqdm

from distill.student.batching import pad_rows
from distill.inference.fast import FastStudent
from distill.student.model import StudentClassifier
from distill.student.vocab import Vocab


def onnx_encoder_model(model: StudentClassifier):
    """The student's encoder as an ONNX graph: Gather -> bidirectional LSTM (with sequence_lens) -> (B, 2H).

    Built with onnx.helper from the weights (no tracing: the packed-sequence nn.LSTM does not trace to a
    variable-length graph); onnxruntime's LSTM kernel handles each sequence's own length in both directions."""
    H = model.cfg.hidden
    emb = model.embedding_table()
    forward, backward = model.lstm_weights(False), model.lstm_weights(True)
    perm = torch.cat([torch.arange(0, H), torch.arange(3 * H, 4 * H), torch.arange(H, 3 * H)])  # i f g o -> i o f c

    def stacked(i):  # 0 W_ih, 1 W_hh, 2 b_ih, 3 b_hh
        return torch.stack([forward[i][perm], backward[i][perm]])

    bias = torch.cat([stacked(2), stacked(3)], dim=1)  # (2, 8H): [Wb, Rb]
    inits = [numpy_helper.from_array(t.detach().float().numpy(), n) for t, n in
             [(emb, "emb"), (stacked(0), "W"), (stacked(1), "R"), (bias, "B")]]
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
            mat = pad_rows(ids, st, lens, time_major=True)  # (T, B)
            h = self.session.run(["h"], {"ids": mat, "lengths": lens.astype(np.int32)})[0]
            out[torch.from_numpy(rows)] = torch.from_numpy(h)
        return out
