"""The student (or baseline) as a self-contained folder a service can load without torch:

    model.onnx   the whole classifier: ids -> embeddings -> the encoder of the model's arch (bidirectional LSTM;
                 or CNN, bag of words, mean: distill.student.model), each row read to its own length ->
                 [pair: h1, h2, h1*h2, |h1-h2|] -> FC + ReLU -> FC -> logits, probs (linear: -> FC -> logits)
    vocab.txt    one word a line, line i = id i ([PAD] 0, [UNK] 1, [MASK] 2)
    export.json  label names, task shape (single sentence or siamese pair), the text handling the pipeline
                 applied to raw text (distill/data/text.py: lower-casing, Penn Treebank tokens), the inputs'
                 names and layout, and the check of this export against the torch model on the dev split

The graph's encoder is distill.inference.onnx's (Gather -> ONNX LSTM with sequence_lens; or its pooled encoders);
this module adds the batch-major input, the siamese second branch (the same weights) and the classifier.
distill.inference.predictor reads the folder back with onnxruntime and numpy only.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from distill.student.model import StudentClassifier
from distill.inference.onnx import onnx_encoder_model, onnx_pooled_encoder_model
from distill.student.vocab import PAD, UNK, Vocab
from distill.tasks import Task

MODEL_FILE, VOCAB_FILE, EXPORT_FILE = "model.onnx", "vocab.txt", "export.json"
FORMAT, VERSION = "bilstm-distill-onnx", 1
OPSET = 14  # distill.inference.onnx's encoder opset
TOLERANCE = 1e-4  # the export stage refuses an export further than this from the torch model (tests: 1e-5)


def _encoder_branch(model: StudentClassifier, suffix: str) -> tuple[list, list, list]:
    """The encoder graph's nodes, its initializers (shared between branches: no suffix) and its inputs, with every
    value it computes renamed with `suffix`; the input `ids` is batch-major (B, T) (the BiLSTM's time-major
    encoder gets it transposed inside)."""
    lstm = model.cfg.arch == "bilstm"
    enc = (onnx_encoder_model(model) if lstm else onnx_pooled_encoder_model(model)).graph
    shared = {init.name for init in enc.initializer}

    def name(n: str) -> str:
        return n if (not n or n in shared) else n + suffix

    nodes = [helper.make_node("Transpose", ["ids" + suffix], ["ids_tb" + suffix], perm=[1, 0])] if lstm else []
    for node in enc.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = ["ids_tb" + suffix if i == "ids" and lstm else name(i) for i in node.input]
        copy.output[:] = [name(o) for o in node.output]
        nodes.append(copy)
    inputs = [helper.make_tensor_value_info("ids" + suffix, TensorProto.INT64, ["B", "T" + suffix]),
              helper.make_tensor_value_info("lengths" + suffix, TensorProto.INT32, ["B"])]
    return nodes, list(enc.initializer), inputs


def onnx_classifier_model(model: StudentClassifier) -> onnx.ModelProto:
    """The whole student as one ONNX graph. Inputs: ids (B, T) int64 right-padded with 0 ([PAD]), lengths (B,)
    int32 >= 1 (an empty text is one [PAD] token, as in the torch model); pairs also ids2, lengths2. Outputs:
    logits (B, C) and probs (B, C) = softmax(logits)."""
    nodes, inits, inputs = _encoder_branch(model, "")
    features = "h"
    if model.cfg.pair:
        nodes2, _, inputs2 = _encoder_branch(model, "2")
        nodes += nodes2
        inputs += inputs2
        nodes += [helper.make_node("Mul", ["h", "h2"], ["h_mul"]),
                  helper.make_node("Sub", ["h", "h2"], ["h_sub"]),
                  helper.make_node("Abs", ["h_sub"], ["h_abs"]),
                  helper.make_node("Concat", ["h", "h2", "h_mul", "h_abs"], ["features"], axis=1)]
        features = "features"
    layers = model.classifier_layers()  # a ReLU between consecutive layers
    for i, layer in enumerate(layers, 1):
        inits += [numpy_helper.from_array(layer.weight.detach().float().numpy(), f"fc{i}_w"),
                  numpy_helper.from_array(layer.bias.detach().float().numpy(), f"fc{i}_b")]
    x = features
    for i in range(1, len(layers) + 1):
        if i == len(layers):
            nodes.append(helper.make_node("Gemm", [x, f"fc{i}_w", f"fc{i}_b"], ["logits"], transB=1))
        else:
            nodes += [helper.make_node("Gemm", [x, f"fc{i}_w", f"fc{i}_b"], [f"fc{i}_out"], transB=1),
                      helper.make_node("Relu", [f"fc{i}_out"], [f"fc{i}_relu"])]
            x = f"fc{i}_relu"
    nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
    C = model.cfg.num_labels
    graph = helper.make_graph(nodes, f"{model.cfg.arch}_student", inputs,
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", C]),
                               helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["B", C])], inits)
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="bilstm-distill")
    onnx.checker.check_model(out)
    return out


def export_description(model: StudentClassifier, vocab: Vocab, task: Task, kind: str) -> dict:
    """export.json without the check: everything a service needs besides the graph and the vocabulary."""
    pair = model.cfg.pair
    return {
        "format": FORMAT, "version": VERSION, "kind": kind, "task": task.name,
        "labels": list(task.labels),
        "pair": pair, "text_columns": list(task.text_columns),
        "text": {  # distill.data.text.normalize(text, lowercase, tokenize), then split on single spaces
            "collapse_whitespace": True, "lowercase": task.lowercase,
            "tokenizer": "nltk-treebank" if task.tokenize else "whitespace",
            "double_quotes": "Treebank's `` and '' mapped back to \"",
        },
        "vocab": {"file": VOCAB_FILE, "size": len(vocab), "pad": PAD, "pad_id": vocab.pad_id, "unk": UNK,
                  "unk_id": vocab.unk_id},
        "max_length": None,  # the student reads every token of a text, as in training and evaluate (no truncation)
        "model": {"file": MODEL_FILE, "opset": OPSET,
                  "inputs": (["ids", "lengths", "ids2", "lengths2"] if pair else ["ids", "lengths"]),
                  "outputs": ["logits", "probs"],
                  "layout": "ids int64 (batch, time) right-padded with pad_id; lengths int32 (batch,) >= 1 "
                            "(an empty text is one pad token)"},
        "architecture": asdict(model.cfg),
    }


def write_export(model: StudentClassifier, vocab: Vocab, task: Task, kind: str, folder: Path) -> Path:
    """model.onnx, vocab.txt and export.json into `folder` (an empty scratch folder: the caller publishes it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(onnx_classifier_model(model), str(folder / MODEL_FILE))
    vocab.save(folder / VOCAB_FILE)
    (folder / EXPORT_FILE).write_text(json.dumps(export_description(model, vocab, task, kind), indent=2) + "\n")
    return folder


def add_check(folder: Path, check: dict) -> None:
    """Record how the export compared with the torch model (export.json's `check`)."""
    path = Path(folder) / EXPORT_FILE
    info = json.loads(path.read_text())
    info["check"] = check
    path.write_text(json.dumps(info, indent=2) + "\n")


def compare(got: np.ndarray, want: np.ndarray) -> dict:
    """How far the exported model's logits are from the torch model's on the same rows."""
    n = len(want)
    return {"rows": int(n),
            "max_abs_logit_diff_vs_torch": float(np.abs(got - want).max()) if n else 0.0,
            "argmax_agreement": float((got.argmax(1) == want.argmax(1)).mean()) if n else 1.0}
