"""distill/tasks.py: a task's shape, how it is written to data/<task>/task.json and read back."""
import pytest

from distill.io import UserError
from distill.layout import TaskPaths
from distill.tasks import Task, load_task, read_task, write_task
from helpers import builtin_task


def test_builtin_single_sentence_tasks():
    for name, splits in (("rotten_tomatoes", ("dev", "test")), ("sst2", ("dev",))):
        t = builtin_task(name)
        assert (t.name, t.text_columns, t.num_labels, t.eval_splits) == (name, ("sentence",), 2, splits)
        assert not t.is_pair and not t.f1 and t.dev_split == "dev" and t.labels == ("negative", "positive")


def test_builtin_pair_tasks():
    qqp, mnli = builtin_task("qqp"), builtin_task("mnli")
    assert qqp.is_pair and qqp.text_columns == ("sentence1", "sentence2") and qqp.num_labels == 2
    assert qqp.f1 and qqp.f1_index == 1 and qqp.eval_splits == ("dev",)  # GLUE reports QQP's F1 of "duplicate"
    assert mnli.is_pair and mnli.num_labels == 3 and not mnli.f1
    assert mnli.eval_splits == ("dev_matched", "dev_mismatched") and mnli.dev_split == "dev_matched"
    assert mnli.labels == ("contradiction", "entailment", "neutral")  # GLUE's label order: 0, 1, 2


def test_task_json_round_trip(tmp_path):
    task = Task("tickets", ("sentence",), ("billing", "bug", "feature"), ("dev", "test"), f1_label="bug",
                lowercase=False, tokenize=True)
    paths = TaskPaths("tickets", tmp_path / "data")
    paths.data.mkdir(parents=True)
    write_task(task, paths.task_file)
    assert load_task(paths) == task and load_task(paths).f1_index == 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(text_columns=("a", "b", "c")), "1 or 2 text columns"),
    (dict(labels=("x",)), "at least 2 distinct label names"),
    (dict(labels=("x", "x")), "at least 2 distinct label names"),
    (dict(f1_label="z"), "f1_label 'z' is not one of"),
    (dict(eval_splits=()), "no evaluation split"),
])
def test_task_shape_errors(kwargs, message):
    base = dict(name="t", text_columns=("sentence",), labels=("a", "b"), eval_splits=("dev",))
    with pytest.raises(UserError, match=message):
        Task(**{**base, **kwargs})


def test_read_task_errors(tmp_path):
    with pytest.raises(UserError, match=r"task.json: not found; run the download stage for x first"):
        read_task(tmp_path / "task.json", "x")
    (tmp_path / "task.json").write_text("{oops")
    with pytest.raises(UserError, match="not JSON"):
        read_task(tmp_path / "task.json")
    (tmp_path / "task.json").write_text('{"name": "x"}')
    with pytest.raises(UserError, match="not a task description"):
        read_task(tmp_path / "task.json")
    write_task(builtin_task("sst2"), tmp_path / "task.json")
    with pytest.raises(UserError, match="describes task 'sst2', not 'qqp'"):
        read_task(tmp_path / "task.json", "qqp")
