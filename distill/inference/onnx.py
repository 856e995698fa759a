"""The student's encoder as an ONNX graph built from the weights: the BiLSTM's (Gather -> bidirectional LSTM, run
by OnnxStudent with tokenization and classifier as in the fast path), and the other archs' (cnn: Gather -> Conv per
width -> ReLU -> masked max over time; bow / linear: Gather -> masked mean [and max]), which the export wraps."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from tqdm.auto import tqdm

from distill.student.batching import pad_rows
from distill.inference.fast import FastStudent
from distill.student.model import CNN_WIDTHS, StudentClassifier
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


def _const(name: str, value, dtype=np.int64):
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def onnx_pooled_encoder_model(model: StudentClassifier):
    """A cnn, bow or linear student's encoder as an ONNX graph: ids (B, T) int64 right-padded, lengths (B,) int32
    -> h (B, encoder.output_dim), the torch encoder's maths (distill.student.model: CNNEncoder, BagEncoder), each
    row reading only its own tokens (lengths below 1 count as 1, as in torch)."""
    cfg, encoder = model.cfg, model.encoder
    inits = [numpy_helper.from_array(model.embedding_table().numpy(), "emb"),
             _const("zero", 0), _const("one", 1), _const("axis0", [0]), _const("axis1", [1])]
    nodes = [helper.make_node("Cast", ["lengths"], ["len_raw"], to=TensorProto.INT64),
             helper.make_node("Max", ["len_raw", "one"], ["len"]),
             helper.make_node("Unsqueeze", ["len", "axis1"], ["len_col"])]  # (B, 1)

    def mask(count: str, values: str, axis: int, out: str) -> None:
        """out (B, n) bool: position < count per row, n = values' size along `axis`."""
        inits.append(_const(f"{out}_axis", axis))
        nodes.extend([helper.make_node("Shape", [values], [f"{out}_shape"]),
                      helper.make_node("Gather", [f"{out}_shape", f"{out}_axis"], [f"{out}_n"]),
                      helper.make_node("Range", ["zero", f"{out}_n", "one"], [f"{out}_pos"]),
                      helper.make_node("Unsqueeze", [f"{out}_pos", "axis0"], [f"{out}_row"]),
                      helper.make_node("Less", [f"{out}_row", count], [out])])

    pooled = []
    if cfg.arch == "cnn":
        inits.append(_const("ids_pads", [0, 0, 0, max(CNN_WIDTHS) - 1]))  # [PAD] columns: no text is too short
        nodes += [helper.make_node("Pad", ["ids", "ids_pads", "zero"], ["ids_padded"]),
                  helper.make_node("Gather", ["emb", "ids_padded"], ["x"]),  # (B, T + 4, D)
                  helper.make_node("Transpose", ["x"], ["x_bdt"], perm=[0, 2, 1])]
        for conv in encoder.convs:
            w = conv.kernel_size[0]
            inits += [numpy_helper.from_array(conv.weight.detach().float().numpy(), f"conv{w}_w"),
                      numpy_helper.from_array(conv.bias.detach().float().numpy(), f"conv{w}_b"),
                      _const(f"conv{w}_span", w - 1)]
            nodes += [helper.make_node("Conv", ["x_bdt", f"conv{w}_w", f"conv{w}_b"], [f"conv{w}"],
                                       kernel_shape=[w]),
                      helper.make_node("Relu", [f"conv{w}"], [f"conv{w}_relu"]),  # (B, filters, n)
                      helper.make_node("Sub", ["len_col", f"conv{w}_span"], [f"conv{w}_windows_raw"]),
                      helper.make_node("Max", [f"conv{w}_windows_raw", "one"], [f"conv{w}_windows"])]
            mask(f"conv{w}_windows", f"conv{w}_relu", 2, f"conv{w}_inside")
            nodes += [helper.make_node("Cast", [f"conv{w}_inside"], [f"conv{w}_keep"], to=TensorProto.FLOAT),
                      helper.make_node("Unsqueeze", [f"conv{w}_keep", "axis1"], [f"conv{w}_keep3"]),
                      helper.make_node("Mul", [f"conv{w}_relu", f"conv{w}_keep3"], [f"conv{w}_masked"]),
                      helper.make_node("ReduceMax", [f"conv{w}_masked"], [f"pool{w}"], axes=[2], keepdims=0)]
            pooled.append(f"pool{w}")
    else:
        nodes.append(helper.make_node("Gather", ["emb", "ids"], ["x"]))  # (B, T, D)
        mask("len_col", "ids", 1, "inside")
        inits.append(_const("axis2", [2]))
        nodes.append(helper.make_node("Unsqueeze", ["inside", "axis2"], ["inside3"]))  # (B, T, 1)
        for pool in encoder.pools:
            if pool == "mean":
                nodes += [helper.make_node("Cast", ["inside3"], ["keep"], to=TensorProto.FLOAT),
                          helper.make_node("Mul", ["x", "keep"], ["x_kept"]),
                          helper.make_node("ReduceSum", ["x_kept", "axis1"], ["x_sum"], keepdims=0),
                          helper.make_node("Cast", ["len_col"], ["len_float"], to=TensorProto.FLOAT),
                          helper.make_node("Div", ["x_sum", "len_float"], ["pool_mean"])]
            else:
                inits.append(_const("minus_inf", -np.inf, np.float32))
                nodes += [helper.make_node("Where", ["inside3", "x", "minus_inf"], ["x_or_inf"]),
                          helper.make_node("ReduceMax", ["x_or_inf"], ["pool_max"], axes=[1], keepdims=0)]
            pooled.append(f"pool_{pool}")
    nodes.append(helper.make_node("Concat", pooled, ["h"], axis=1))
    graph = helper.make_graph(
        nodes, f"{cfg.arch}_encoder",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["B", "T"]),
         helper.make_tensor_value_info("lengths", TensorProto.INT32, ["B"])],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["B", encoder.output_dim])], inits)
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
