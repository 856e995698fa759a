"""A task as the stages after download see it: text columns, label names, evaluation splits, text handling.

The download stage resolves the task's entry under `datasets:` in params.yaml into this shape and writes it to
data/<task>/task.json; every later stage reads it from there. So they depend on the task's shape, not on where
its files came from: moving a source file re-runs download alone when the data come out the same.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from distill.io import UserError, check_published
from distill.layout import TaskPaths

TASK_FILE = "task.json"  # in data/<task>/ and in every model directory


@dataclass(frozen=True)
class Task:
    name: str
    text_columns: tuple[str, ...]  # ("sentence",) or ("sentence1", "sentence2")
    labels: tuple[str, ...]  # label names in id order: labels[i] is class i
    eval_splits: tuple[str, ...]  # labelled splits the metrics are reported on; the first selects models
    f1_label: str | None = None  # also report the F1 of this class (QQP's "duplicate", as GLUE does)
    lowercase: bool = True  # text handling, applied at download and again to predict's input
    tokenize: bool = True  # Penn Treebank tokenization (the form SST-2 ships in)

    def __post_init__(self):
        if len(self.text_columns) not in (1, 2):
            raise UserError(f"task {self.name}: 1 or 2 text columns, got {len(self.text_columns)}")
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise UserError(f"task {self.name}: at least 2 distinct label names, got {list(self.labels)}")
        if self.f1_label is not None and self.f1_label not in self.labels:
            raise UserError(f"task {self.name}: f1_label {self.f1_label!r} is not one of {list(self.labels)}")
        if not self.eval_splits:
            raise UserError(f"task {self.name}: no evaluation split")

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def dev_split(self) -> str:
        """The split used for model selection (early stopping, learning-rate grid)."""
        return self.eval_splits[0]

    @property
    def f1(self) -> bool:
        return self.f1_label is not None

    @property
    def f1_index(self) -> int:
        return self.labels.index(self.f1_label) if self.f1_label is not None else 1

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: dict, source: str) -> "Task":
        try:
            return cls(name=str(raw["name"]), text_columns=tuple(raw["text_columns"]), labels=tuple(raw["labels"]),
                       eval_splits=tuple(raw["eval_splits"]), f1_label=raw.get("f1_label"),
                       lowercase=bool(raw.get("lowercase", True)), tokenize=bool(raw.get("tokenize", True)))
        except (KeyError, TypeError) as err:
            raise UserError(f"{source}: not a task description ({type(err).__name__}: {err})") from None


def write_task(task: Task, path: str | Path) -> None:
    Path(path).write_text(json.dumps(task.as_dict(), indent=2) + "\n")


def read_task(path: str | Path, name: str | None = None) -> Task:
    """The task the download stage described in `path` (data/<task>/task.json, or a model's copy)."""
    path = Path(path)
    check_published(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found; run the download stage{f' for {name}' if name else ''} first") from None
    except ValueError as err:
        raise UserError(f"{path}: not JSON ({err})") from None
    task = Task.from_dict(raw, str(path))
    if name is not None and task.name != name:
        raise UserError(f"{path}: describes task {task.name!r}, not {name!r}")
    return task


def load_task(paths: TaskPaths) -> Task:
    return read_task(paths.task_file, paths.task)
