"""distill/inference/onnx.py: the student's encoder as an ONNX graph run by onnxruntime equals the reference."""
import numpy as np
import onnx
import pytest

from distill.report.benchmark import reference_logits
from distill.inference.onnx import OnnxStudent, onnx_encoder_model
from helpers import make_student, random_texts


@pytest.mark.parametrize("pair", [False, True])
@pytest.mark.parametrize("multichannel", [False, True])
def test_onnx_logits_equal_reference(student_corpus, pair, multichannel):
    rng, words, vocab = student_corpus
    model = make_student(len(vocab), embedding_dim=5, hidden=7, fc=11, num_labels=3, pair=pair,
                         multichannel=multichannel, seed=11 + pair + 2 * multichannel, jitter=0.3)
    first = random_texts(rng, 157, words)  # includes empty texts and unknown words
    second = random_texts(rng, 157, words) if pair else None
    student = OnnxStudent(model, vocab, threads=1)
    assert student.cell == "onnxruntime"
    got = student.logits(first, second, batch_size=16)
    want = reference_logits(model, vocab, first, second, batch_size=50, sort=False)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    np.testing.assert_allclose(student.logits(first, second, batch_size=1000), got, atol=1e-5, rtol=0)


def test_graph_inputs_and_outputs(student_corpus):
    _, _, vocab = student_corpus
    graph = onnx_encoder_model(make_student(len(vocab), hidden=7)).graph
    assert [i.name for i in graph.input] == ["ids", "lengths"] and [o.name for o in graph.output] == ["h"]
    assert [n.op_type for n in graph.node] == ["Gather", "LSTM", "Transpose", "Reshape"]
    lstm = next(n for n in graph.node if n.op_type == "LSTM")
    assert {a.name: onnx.helper.get_attribute_value(a) for a in lstm.attribute} == {
        "hidden_size": 7, "direction": b"bidirectional"}
