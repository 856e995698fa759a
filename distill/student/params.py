"""The student stages' params (teacher_vectors, train_student, train_baseline): all of the `student` section."""
from __future__ import annotations

from dataclasses import dataclass

from distill.config import Params, auto_or_boolean, boolean, choice, integer, number, param, \
    probability

EMBEDDING_SOURCES = ("word2vec-google-news-300", "glove-6b-50d", "teacher", "random")
ARCHS = ("bilstm", "cnn", "bow", "linear")  # distill.student.model builds each


def embeddings_field():
    return param(choice(*EMBEDDING_SOURCES), "Initial word vectors of the students: word2vec-google-news-300 (the "
                 "paper's; needs internet), glove-6b-50d (offline), teacher (the fine-tuned teacher's input "
                 "embeddings), random.", key="student.embeddings")


@dataclass(frozen=True)
class TeacherVectorsParams(Params):
    section = "student"
    embeddings: str = embeddings_field()


@dataclass(frozen=True)
class BaselineParams(Params):
    section = "student"
    embeddings: str = embeddings_field()
    multichannel: bool = param(boolean, "Frozen + trainable embedding copies, concatenated (Kim 2014).")
    arch: str = param(choice(*ARCHS), "The student's encoder: bilstm (the paper's), cnn (Kim 2014: filter widths "
                      "3, 4, 5, max over time), bow (mean and max of the embeddings, fastText-like) or linear (the "
                      "mean of the embeddings into the output layer, no hidden FC); pairs use the same siamese "
                      "features with each.")
    hidden: int = param(integer(1), "BiLSTM hidden units per direction (paper: 150 or 300); arch bilstm only.")
    filters: int = param(integer(1), "CNN feature maps per filter width (Kim 2014: 100); arch cnn only.")
    fc: int = param(integer(1), "ReLU layer width (paper: 200 or 400); every arch but linear.")
    lr: float = param(number(0, lo_open=True), "AdaDelta learning rate.")
    rho: float = param(number(0, 1), "AdaDelta rho.")
    batch_size: int = param(integer(1), "Training batch size (per task).", per_task=True)
    epochs: int = param(integer(1), "Maximum epochs.")
    patience: int = param(integer(1), "Stop after this many epochs without a better dev accuracy.")
    seed: int = param(integer(), "Seed of initialisation and batch order.")


@dataclass(frozen=True)
class StudentParams(BaselineParams):
    alpha: float = param(probability, "L = alpha*CE + (1-alpha)*MSE on logits (§3.2; paper: 0). The baseline is "
                         "CE only and does not read it.")
    bf16: bool | str = param(auto_or_boolean, "bf16 autocast for the student's training forward pass (weights, "
                             "loss and dev scoring stay fp32). auto: bf16 where the device has it natively (CPUs "
                             "with AVX512-BF16/AMX, GPUs of compute capability 8.0+), else fp32; true: bf16, an "
                             "error where it would be emulated (oneDNN has no emulated bf16 LSTM); false: fp32. "
                             "The baseline does not read it.")
    transfer_iters: int = param(integer(-1), "Distil on the transfer set's original rows plus the synthetic rows "
                                "of augment's first N iterations only (-1: every row; 0: the original examples): "
                                "the transfer set of augment.n_iter=N from the same teacher logits, less the few "
                                "rows whose text first occurs, at a later iteration, for an earlier example. The "
                                "baseline does not read it.")
