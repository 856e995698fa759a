"""distill/tasks.py: the four tasks' text columns, labels, evaluation splits and metrics."""
import pytest
import yaml

from distill.io import UserError
from distill.tasks import MNLI_LABELS, TASKS, get_task
from helpers import REPO


def test_single_sentence_tasks():
    for name, splits in (("rotten_tomatoes", ("dev", "test")), ("sst2", ("dev",))):
        t = get_task(name)
        assert (t.name, t.text_columns, t.num_labels, t.eval_splits) == (name, ("sentence",), 2, splits)
        assert not t.is_pair and not t.f1 and t.dev_split == "dev"


def test_pair_tasks():
    qqp, mnli = get_task("qqp"), get_task("mnli")
    assert qqp.is_pair and qqp.text_columns == ("sentence1", "sentence2") and qqp.num_labels == 2
    assert qqp.f1 and qqp.eval_splits == ("dev",)  # GLUE reports QQP's F1 beside accuracy
    assert mnli.is_pair and mnli.num_labels == 3 and not mnli.f1
    assert mnli.eval_splits == ("dev_matched", "dev_mismatched") and mnli.dev_split == "dev_matched"
    assert MNLI_LABELS == ("contradiction", "entailment", "neutral")  # GLUE's label order: 0, 1, 2


def test_unknown_task_is_a_user_error():
    with pytest.raises(UserError) as err:
        get_task("cola")
    assert str(err.value) == "unknown task 'cola'; known tasks: rotten_tomatoes, sst2, qqp, mnli"


def test_params_yaml_per_task_maps_cover_exactly_the_known_tasks():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    maps = {f"{s}.{k}": v for s, section in params.items() if isinstance(section, dict)
            for k, v in section.items() if isinstance(v, dict)}
    assert maps, "params.yaml has per-task maps (augment.n_iter, student.batch_size)"
    for key, value in maps.items():
        assert set(value) == set(TASKS), key
    assert set(params["tasks"]) <= set(TASKS)
