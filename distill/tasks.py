"""The tasks the pipeline knows: text columns, label sets, evaluation splits and metrics."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str
    text_columns: tuple[str, ...]  # ("sentence",) or ("sentence1", "sentence2")
    num_labels: int
    eval_splits: tuple[str, ...]  # labelled splits the metrics are reported on
    f1: bool = False  # also report F1 of the positive class (QQP, as GLUE does)

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def dev_split(self) -> str:
        """The split used for model selection (early stopping, learning-rate grid)."""
        return self.eval_splits[0]


TASKS: dict[str, Task] = {
    "rotten_tomatoes": Task("rotten_tomatoes", ("sentence",), 2, ("dev", "test")),
    "sst2": Task("sst2", ("sentence",), 2, ("dev",)),
    "qqp": Task("qqp", ("sentence1", "sentence2"), 2, ("dev",), f1=True),
    "mnli": Task("mnli", ("sentence1", "sentence2"), 3, ("dev_matched", "dev_mismatched")),
}

# MNLI's GLUE label strings, in GLUE's label order.
MNLI_LABELS = ("contradiction", "entailment", "neutral")


def get_task(name: str) -> Task:
    from .io import UserError

    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]
