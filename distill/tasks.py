"""The tasks the pipeline knows: text columns, label sets, evaluation splits and metrics."""
from __future__ import annotations

from dataclasses import dataclass

from distill.io import UserError
from distill.layout import PAIR_TEXT, SINGLE_TEXT


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
    "rotten_tomatoes": Task("rotten_tomatoes", SINGLE_TEXT, 2, ("dev", "test")),
    "sst2": Task("sst2", SINGLE_TEXT, 2, ("dev",)),
    "qqp": Task("qqp", PAIR_TEXT, 2, ("dev",), f1=True),
    "mnli": Task("mnli", PAIR_TEXT, 3, ("dev_matched", "dev_mismatched")),
}

# MNLI's GLUE label strings, in GLUE's label order.
MNLI_LABELS = ("contradiction", "entailment", "neutral")


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]
