"""The fused C recurrence (cell="fused", AVX-512 and AVX2 builds) and the other fast paths against nn.LSTM, exactly."""

import numpy as np
import pytest
import torch

from helpers import random_texts, small_student
from distill.report.benchmark import run_benchmark, speed_metrics
from distill.report.benchmark import reference_logits
from distill.inference.kernels import FUSED_ISAS, compiled_cell, compiled_fused, fused_isas
from distill.inference.fast import FastStudent, recurrent_flop
from distill.inference.onnx import OnnxStudent
from distill.student.model import count_parameters

torch.set_num_threads(1)


# The fused kernel's builds this CPU runs (on an AVX-512 machine both: the AVX2 build is tested there too).
ISAS = [isa for isa in FUSED_ISAS if compiled_fused(isa) is not None]
CELLS = ["torch", "onnx"] + (["c"] if compiled_cell() is not None else []) + [f"fused-{isa}" for isa in ISAS]


def make_fast(model, vocab, cell, **kw):
    if cell == "onnx":
        return OnnxStudent(model, vocab)
    if cell.startswith("fused-"):
        return FastStudent(model, vocab, cell="fused", isa=cell.split("-", 1)[1], **kw)
    return FastStudent(model, vocab, cell=cell, **kw)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("pair", [False, True])
@pytest.mark.parametrize("multichannel", [False, True])
def test_fast_logits_equal_reference(student_corpus, cell, pair, multichannel):
    rng, words, vocab = student_corpus
    model = small_student(1 + pair + 2 * multichannel, vocab, pair=pair, multichannel=multichannel)
    first = random_texts(rng, 157, words)
    second = random_texts(rng, 157, words) if pair else None
    fast = make_fast(model, vocab, cell)
    assert fast.cell == {"onnx": "onnxruntime"}.get(cell, cell.split("-")[0])
    got = fast.logits(first, second, batch_size=16)  # several batches, each a shrinking batch
    # the reference, unsorted and in one different batching, straight through the nn.LSTM model
    want = reference_logits(model, vocab, first, second, batch_size=50, sort=False)
    assert got.shape == (157, 3)
    np.testing.assert_allclose(got, want, atol=1e-5 if cell.startswith("fused") else 1e-4, rtol=0)
    assert (got.argmax(1) == want.argmax(1)).all()
    # batch size does not change results; input order is preserved
    np.testing.assert_allclose(fast.logits(first, second, batch_size=1000), got, atol=1e-5, rtol=0)
    sub = fast.logits(first[5:9], second[5:9] if pair else None)
    np.testing.assert_allclose(sub, got[5:9], atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", [c for c in CELLS if c == "c" or c.startswith("fused")])
@pytest.mark.parametrize("pair", [False, True])
def test_parallel_batches_equal_one_thread(student_corpus, cell, pair):
    """Batches spread over a thread pool give the single-thread result, in input order, and torch's thread
    count is restored afterwards."""
    rng, words, vocab = student_corpus
    model = small_student(7, vocab, pair=pair)
    first = random_texts(rng, 301, words)
    second = random_texts(rng, 301, words) if pair else None
    one = make_fast(model, vocab, cell, threads=1).logits(first, second, batch_size=16)
    before = torch.get_num_threads()
    pooled = make_fast(model, vocab, cell, threads=3)
    assert pooled.threads == 3
    np.testing.assert_allclose(pooled.logits(first, second, batch_size=16), one, atol=1e-5, rtol=0)
    assert torch.get_num_threads() == before
    want = reference_logits(model, vocab, first, second, batch_size=64)
    np.testing.assert_allclose(one, want, atol=1e-4, rtol=0)


def long_texts(rng, n, words, max_len):
    """Lengths spread over 0..max_len (empty and whitespace-only texts included)."""
    return ["", " "] + [" ".join(words[i] if rng.random() < 0.9 else f"oov{i}"
                                  for i in rng.integers(0, len(words), rng.integers(1, max_len + 1)))
                         for _ in range(n - 2)]


@pytest.mark.skipif(not ISAS, reason="the fused kernel does not run or build here")
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("hidden", [1, 2, 4, 6, 8, 10, 12, 37, 150])  # every tail-panel shape of both builds
def test_fused_equals_nn_lstm(student_corpus, isa, hidden):
    """The fused kernel (both ISA builds) is the nn.LSTM model to 1e-5: single and pair, multichannel or not,
    empty texts, sequences long enough for c to grow, hidden sizes that exercise every panel shape. Its own
    seeded inputs (not the module's shared stream), so the check does not depend on which tests ran before; 4e-5:
    the vectorized exp is within 3 ulp, and 40 steps of it drift a few 1e-6 on logits of size ~0.4, but the
    reference is oneDNN's LSTM, whose own summation order differs by CPU (2.1e-5 measured at hidden 150 on an
    AMX Xeon, AVX2 build)."""
    _, words, vocab = student_corpus
    rng = np.random.default_rng(1000 + hidden)
    for pair, multichannel in [(False, True), (True, False)]:
        model = small_student(hidden + pair, vocab, pair=pair, multichannel=multichannel, hidden=hidden)
        first = long_texts(rng, 61, words, 40)
        second = long_texts(rng, 61, words, 25) if pair else None
        fast = FastStudent(model, vocab, cell="fused", isa=isa)
        assert (fast.cell, fast.isa) == ("fused", isa)
        got = fast.logits(first, second, batch_size=24)
        want = reference_logits(model, vocab, first, second, batch_size=61, sort=False)
        np.testing.assert_allclose(got, want, atol=4e-5, rtol=0)
        # the encoder alone too, against the torch-ops cell (the classifier is also checked on its own below)
        np.testing.assert_allclose(fast.encode(first, batch_size=7).numpy(),
                                   FastStudent(model, vocab, cell="torch").encode(first).numpy(), atol=4e-5, rtol=0)


@pytest.mark.skipif(not ISAS, reason="the fused kernel does not run or build here")
@pytest.mark.parametrize("isa", ISAS)
def test_fused_first_products_are_bit_identical(student_corpus, isa):
    """Step 1's product taken from the per-word table is exactly what the recurrence itself computes."""
    rng, words, vocab = student_corpus
    model = small_student(11, vocab, hidden=37)
    texts = long_texts(rng, 90, words, 30)
    fast = FastStudent(model, vocab, cell="fused", isa=isa)
    with_table = fast.encode(texts, batch_size=32).numpy()
    fast.fused_g1 = None
    assert np.array_equal(fast.encode(texts, batch_size=32).numpy(), with_table)


@pytest.mark.skipif(len(ISAS) < 2, reason="needs a CPU that runs both builds")
def test_fused_isa_builds_agree(student_corpus):
    rng, words, vocab = student_corpus
    model = small_student(12, vocab, pair=True, hidden=150)
    first, second = long_texts(rng, 50, words, 30), long_texts(rng, 50, words, 30)
    a, b = (FastStudent(model, vocab, cell="fused", isa=isa).logits(first, second) for isa in ISAS)
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)  # same products; exp and 1/x differ in the last bits


@pytest.mark.skipif(not ISAS, reason="the fused kernel does not run or build here")
@pytest.mark.parametrize("isa", ISAS)
def test_fused_vector_exp_is_accurate(isa):
    """The SIMD exp against float64: within 3 ulp where it matters (|z| <= 28), 6 ulp down to the clamp, and
    clamped outside [-86, 28]."""
    kernel = compiled_fused(isa)
    z = torch.cat([torch.linspace(-86, 28, 2_000_001), torch.randn(100_003) * 4])
    got = kernel.vexp(z).double()
    want = z.double().exp()
    ulp = (got - want).abs() / torch.from_numpy(np.spacing(want.float().numpy())).double()
    assert ulp[z.abs() <= 28].max() <= 3.0
    assert ulp.max() <= 6.0
    edges = kernel.vexp(torch.tensor([-1e30, -1000.0, -86.0, 28.0, 1000.0, 1e30, 0.0]))
    assert torch.equal(edges[:2], kernel.vexp(torch.tensor([-86.0, -86.0])))
    assert torch.equal(edges[4:6], kernel.vexp(torch.tensor([28.0, 28.0])))
    assert edges[-1] == 1.0 and torch.isfinite(edges).all()


@pytest.mark.skipif(not ISAS, reason="the fused kernel does not run or build here")
@pytest.mark.parametrize("isa", ISAS)
def test_fused_classifier_equals_torch(student_corpus, isa):
    _, _, vocab = student_corpus
    for pair, hidden, labels in [(False, 150, 2), (True, 7, 3)]:
        model = small_student(13, vocab, pair=pair, hidden=hidden, num_labels=labels)
        fused, plain = FastStudent(model, vocab, cell="fused", isa=isa), FastStudent(model, vocab, cell="torch")
        for n in (0, 1, 5, 37):  # short last tiles too
            features = torch.randn(n, 2 * hidden * (4 if pair else 1))
            np.testing.assert_allclose(fused.classify(features).numpy(), plain.classify(features).numpy(),
                                       atol=1e-5, rtol=0)


def test_cell_choice(student_corpus):
    _, _, vocab = student_corpus
    model = small_student(0, vocab)
    auto = FastStudent(model, vocab)
    if ISAS:
        assert (auto.cell, auto.isa) == ("fused", fused_isas()[0])
    else:
        assert auto.cell == ("c" if compiled_cell() is not None else "torch")
    with pytest.raises(ValueError):
        FastStudent(model, vocab, cell="gpu")
    with pytest.raises(ValueError):
        FastStudent(model, vocab, cell="fused", isa="neon")
    missing = [isa for isa in FUSED_ISAS if isa not in ISAS]
    for isa in missing:
        with pytest.raises(RuntimeError):
            FastStudent(model, vocab, cell="fused", isa=isa)


@pytest.mark.parametrize("cell", [c for c in CELLS if c != "onnx"])
def test_bad_ids_are_an_error(student_corpus, cell):
    _, _, vocab = student_corpus
    fast = make_fast(small_student(0, vocab), vocab, cell)
    with pytest.raises(ValueError):
        fast.encode_ids(np.array([1, len(vocab)]), np.array([2]))
    with pytest.raises(ValueError):
        fast.encode_ids(np.array([1, 2, 3]), np.array([2]))


def test_recurrent_flop():
    assert recurrent_flop(10, 150) == 2 * 10 * 2 * 150 * 600


def test_run_benchmark_record(student_corpus, tiny_teacher):
    from distill.teacher.model import load_teacher

    rng, words, vocab = student_corpus
    model = small_student(3, vocab, pair=True, num_labels=2)
    first, second = random_texts(rng, 40, words), random_texts(rng, 40, words)
    tmodel, tok = load_teacher(tiny_teacher, "cpu")
    res = run_benchmark(first, second, (model, vocab), (tmodel.eval(), tok), batch_size=16, repeats=2, max_length=128,
                        device=torch.device("cpu"), progress=False)
    s, t = res["student"], res["teacher"]
    assert res["sentences"] == 80 and res["pair"]
    assert set(s["paths"]) == {"reference", "fast", "onnxruntime"} and s["path"] in s["paths"]
    assert all(len(p["seconds_all"]) == 2 for p in s["paths"].values())
    assert max(s["max_abs_logit_diff_vs_reference"].values()) < 1e-4
    assert s["params_m"] == pytest.approx(count_parameters(model) / 1e6)
    assert t["teacher_repeats"] == 1
    assert res["speedup"] == pytest.approx(t["seconds"] / s["seconds"])
    # the fast path's recurrent GFLOP/s against the core's measured peak
    tokens = sum(max(len(x.split()), 1) for x in first + second)
    assert s["recurrent_gflop"] == pytest.approx(recurrent_flop(tokens, 7) / 1e9)
    assert s["gflops"] == pytest.approx(s["recurrent_gflop"] / s["paths"]["fast"]["seconds"])
    assert s["peak_gflops"] > 0 and s["cell"] in ("fused", "c", "torch")
    assert ("fma_peak_gflops" in s) == (s["cell"] == "fused")
    assert speed_metrics(res, "sst2")["sst2"]["student"]["gflops"] == round(s["gflops"], 1)
