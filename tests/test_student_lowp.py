"""The reduced-precision student (FastStudent(precision=...), benchmark.precision): each build this CPU runs against
the exact fused path, exact left untouched, the choice only ever what was asked for, and bad values one-line errors."""

import numpy as np
import pytest
import torch

import distill.inference.kernels as kernels
from conftest import one_line_error, run_stage
from distill import config
from distill.io import UserError
from distill.report.benchmark import run_benchmark, speed_metrics
from distill.report.params import PRECISIONS, BenchmarkParams
from distill.inference.kernels import LOWP_BUILDS, compiled_lowp, lowp_build_for
from distill.inference.fast import FastStudent
from helpers import random_texts, small_student, write_params

torch.set_num_threads(1)

# Every reduced build this CPU runs (on an AVX-512 VNNI machine the AVX2 int8 build too); the others are skipped.
BUILDS = [pytest.param(b, marks=pytest.mark.skipif(compiled_lowp(b) is None if b in kernels.lowp_builds() else True,
                                                   reason=f"this CPU lacks {' + '.join(sorted(LOWP_BUILDS[b][1]))} "
                                                          "(or no C compiler)"))
          for b in LOWP_BUILDS]
# Max |logit - exact logit| allowed, relative to the largest exact logit: bf16 rounds h and W_hh to 8 significant
# bits (rel. 2^-9 per product), int8 to 8 bits (h 7 bits with AVX2) with per-column and per-row scales. Over up
# to 40 steps of these jittered random models the measured worst cases (2026-11-26, this file's inputs) are
# 3.8e-3 (bf16), 1.2e-2 (int8 VNNI) and 2.1e-2 (int8 AVX2), about half the tolerances (the trained
# rotten_tomatoes student's, absolute: 0.004 bf16, 0.015 int8 VNNI; README). Argmax agreement measured >= 0.99.
RELATIVE_TOLERANCE = {"bf16-avx512": 0.01, "int8-vnni": 0.03, "int8-avx2": 0.04}


def long_texts(rng, n, words, max_len):
    return ["", " "] + [" ".join(words[i] for i in rng.integers(0, len(words), rng.integers(1, max_len + 1)))
                        for _ in range(n - 2)]


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("hidden", [1, 5, 8, 16, 37, 64])  # panel tails of every width in both ISAs, odd K
def test_reduced_agrees_with_exact(student_corpus, build, hidden):
    """Logits within the build's tolerance of the exact fused path; the same argmax wherever the exact top-2
    margin exceeds twice the measured difference (where it must), and on >= 98% of all rows."""
    _, words, vocab = student_corpus
    rng = np.random.default_rng(2000 + hidden)
    for pair in (False, True):
        model = small_student(hidden + pair, vocab, pair=pair, hidden=hidden)
        first = long_texts(rng, 200, words, 40)
        second = long_texts(rng, 200, words, 25) if pair else None
        reduced = FastStudent(model, vocab, precision=build)
        assert (reduced.precision, reduced.cell) == (build, "fused")
        want = FastStudent(model, vocab).logits(first, second, batch_size=48)
        got = reduced.logits(first, second, batch_size=48)
        diff = np.abs(got - want).max()
        assert diff <= RELATIVE_TOLERANCE[build] * np.abs(want).max(), (diff, np.abs(want).max())
        top2 = np.sort(want, 1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 2 * diff
        assert (got.argmax(1) == want.argmax(1))[clear].all()
        assert (got.argmax(1) == want.argmax(1)).mean() >= 0.98
        # batching and threads do not change a reduced result either (each row's own per-step scales)
        np.testing.assert_array_equal(FastStudent(model, vocab, precision=build, threads=3).logits(
            first, second, batch_size=7), got)


@pytest.mark.parametrize("build", BUILDS)
def test_reduced_is_not_exact(student_corpus, build):
    """A reduced build really runs the reduced product (not the fp32 one by mistake): its logits differ."""
    rng, words, vocab = student_corpus
    model = small_student(4, vocab, hidden=37)
    texts = long_texts(rng, 50, words, 30)
    assert not np.array_equal(FastStudent(model, vocab, precision=build).logits(texts),
                              FastStudent(model, vocab).logits(texts))


def test_exact_is_the_default_and_unchanged(student_corpus):
    """precision="exact" is the default path itself, bit for bit (and no reduced kernel is even loaded)."""
    rng, words, vocab = student_corpus
    model = small_student(9, vocab, pair=True, hidden=37)
    first, second = long_texts(rng, 80, words, 30), long_texts(rng, 80, words, 30)
    default, exact = FastStudent(model, vocab), FastStudent(model, vocab, precision="exact")
    assert default.precision == exact.precision == "exact" and default.lowp is None and exact.lowp is None
    np.testing.assert_array_equal(exact.logits(first, second), default.logits(first, second))


def test_precision_choice(monkeypatch):
    assert kernels.PRECISIONS == PRECISIONS  # the params' choices are the kernel's
    assert lowp_build_for("exact") is None
    with pytest.raises(ValueError, match="precision must be one of"):
        lowp_build_for("fp8")
    # a CPU with AVX2 only: no bf16 (an error, never a silent fallback), int8 and auto take the AVX2 build
    monkeypatch.setattr(kernels, "cpu_flags", lambda: {"avx2", "fma"})
    with pytest.raises(ValueError, match="needs a CPU with avx512_bf16 \\+ avx512f"):
        lowp_build_for("bf16")
    assert lowp_build_for("int8") == lowp_build_for("auto") == "int8-avx2"
    monkeypatch.setattr(kernels, "cpu_flags", lambda: {"avx2", "fma", "avx512f", "avx512_vnni"})
    assert lowp_build_for("int8") == lowp_build_for("auto") == "int8-vnni"
    monkeypatch.setattr(kernels, "cpu_flags", lambda: {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"})
    assert lowp_build_for("auto") == "bf16-avx512" and lowp_build_for("int8-avx2") == "int8-avx2"
    monkeypatch.setattr(kernels, "cpu_flags", set)
    with pytest.raises(ValueError, match="needs a CPU with"):
        lowp_build_for("int8")


def test_fast_student_rejects_bad_precision(student_corpus):
    _, _, vocab = student_corpus
    model = small_student(0, vocab)
    with pytest.raises(ValueError, match="precision must be one of"):
        FastStudent(model, vocab, precision="fp8")
    if kernels.lowp_builds():
        with pytest.raises(RuntimeError, match="needs the fused cell"):
            FastStudent(model, vocab, cell="torch", precision=kernels.lowp_builds()[0])


def test_bad_precision_param_is_a_one_line_error(tmp_path):
    path = write_params(tmp_path, benchmark={"precision": "fp8"})
    with pytest.raises(UserError, match="benchmark.precision must be one of exact, bf16, int8, auto, got 'fp8'"):
        config.load(BenchmarkParams, "rotten_tomatoes", path)
    assert config.load(BenchmarkParams, "rotten_tomatoes", path, precision="int8").precision == "int8"
    proc = run_stage("benchmark.py", "--task", "rotten_tomatoes", "--set", "benchmark.precision=half",
                     "--params-file", str(path), check=False)
    assert one_line_error(proc) == "error: --set benchmark.precision must be one of exact, bf16, int8, auto, got 'half'"


@pytest.mark.skipif(not kernels.lowp_builds() or compiled_lowp(lowp_build_for("auto")) is None,
                    reason="this CPU runs no reduced-precision build (or no C compiler builds it)")
def test_run_benchmark_reports_reduced_apart(student_corpus, tiny_teacher):
    """With a reduced precision the report gains `reduced` (timings, speed-up, logit error, dev scores); the
    student, its path and speed-up stay the exact ones. Without one there is no trace of it."""
    from distill.teacher.model import load_teacher

    rng, words, vocab = student_corpus
    model = small_student(3, vocab, num_labels=2)
    first = random_texts(rng, 60, words)
    dev_texts = random_texts(rng, 30, words)
    labels = np.arange(30) % 2
    tmodel, tok = load_teacher(tiny_teacher, "cpu")
    kw = dict(batch_size=16, repeats=2, max_length=64, device=torch.device("cpu"), progress=False)
    plain = run_benchmark(first, None, (model, vocab), (tmodel.eval(), tok), **kw)
    assert "reduced" not in plain and "reduced" not in plain["student"]
    assert "reduced" not in speed_metrics(plain, "t")["t"]
    res = run_benchmark(first, None, (model, vocab), (tmodel.eval(), tok), **kw, precision="auto",
                        dev_rows=(dev_texts, None, labels))
    r, s = res["reduced"], res["student"]
    assert r["precision"] == "auto" and r["build"] == lowp_build_for("auto")
    assert len(r["seconds_all"]) == 2 and r["sentences_per_s"] == 60 / r["seconds"]
    assert r["speedup"] == res["teacher"]["seconds"] / r["seconds"]
    assert res["speedup"] == res["teacher"]["seconds"] / s["seconds"]  # the exact student's
    assert s["path"] in s["paths"] and "reduced" not in s["paths"]
    assert 0 < r["max_abs_logit_diff_vs_exact"] < 0.05 and 0.9 <= r["argmax_agreement_with_exact"] <= 1
    exact = FastStudent(model, vocab).logits(dev_texts).argmax(1)
    d = r["dev"]
    assert d["examples"] == 30 and d["exact_accuracy"] == (exact == labels).mean()
    assert d["accuracy_change_points"] == pytest.approx(100 * (d["accuracy"] - d["exact_accuracy"]))
    speed = speed_metrics(res, "t")["t"]["reduced"]
    assert speed == {"sentences_per_s": round(r["sentences_per_s"], 1), "speedup": round(r["speedup"], 1),
                     "dev_accuracy": round(d["accuracy"], 4)}
