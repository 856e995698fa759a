"""The report stages' params (evaluate, benchmark)."""
from __future__ import annotations

from dataclasses import dataclass

from distill.config import Params, choice, integer, param
from distill.teacher.params import max_length_field


@dataclass(frozen=True)
class EvaluateParams(Params):
    section = "evaluate"
    max_length: int = max_length_field()


# the student's precisions (distill.inference.kernels.PRECISIONS; spelled out here so evaluate, which shares this
# module, does not import the C kernels)
PRECISIONS = ("exact", "bf16", "int8", "auto")


@dataclass(frozen=True)
class BenchmarkParams(Params):
    section = "benchmark"
    batch_size: int = param(integer(1), "Inference batch size (paper: 512).")
    repeats: int = param(integer(1), "Timed full passes per student path; the median is reported.")
    max_sentences: int = param(integer(0), "Use the first N training rows (0 = all, as in the paper).")
    max_length: int = max_length_field()
    precision: str = param(choice(*PRECISIONS), "exact (default): the exact fp32 student only. bf16 | int8 | auto "
                           "(bf16 where the CPU has AVX512-BF16, else int8): ALSO time a reduced-precision student "
                           "path (recurrent matmul in bf16 or int8) in the same run and report its speed, logit "
                           "error and dev accuracy under 'reduced' in benchmark.json; never the reported student.")
    latency_sentences: int = param(integer(1), "Batch-1 latency: this many dev examples (the first rows of the dev "
                                   "split), each timed as one request, after a warm-up of 20 not counted; p50/p99 "
                                   "of the exported student (onnxruntime), the fast path and the teacher, one thread.")
    curve_sentences: int = param(integer(1), "Throughput vs batch size (1, 8, 64, 512): this many training examples "
                                 "(the first rows), cut into consecutive batches, one thread.")
