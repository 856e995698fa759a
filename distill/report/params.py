"""The report stages' params (evaluate, benchmark)."""
from __future__ import annotations

from dataclasses import dataclass

from distill.config import Params, integer, param
from distill.teacher.params import max_length_field


@dataclass(frozen=True)
class EvaluateParams(Params):
    section = "evaluate"
    max_length: int = max_length_field()


@dataclass(frozen=True)
class BenchmarkParams(Params):
    section = "benchmark"
    batch_size: int = param(integer(1), "Inference batch size (paper: 512).")
    repeats: int = param(integer(1), "Timed full passes per student path; the median is reported.")
    max_sentences: int = param(integer(0), "Use the first N training rows (0 = all, as in the paper).")
    max_length: int = max_length_field()
