"""distill/layout.py: every task file's path (TaskPaths) and where relative user paths resolve from."""
from pathlib import Path

import pytest
import yaml

from distill.layout import RUN_STAGES, TaskPaths, split_file, tag_columns, user_path, workspace_root
from distill.report.charts import CHARTS, chart_path
from helpers import REPO


def test_task_paths_default_roots():
    p = TaskPaths("qqp")
    assert p.data == Path("data/qqp")
    assert (p.train, p.split("dev"), p.split("test")) == (Path("data/qqp/train.parquet"),
                                                           Path("data/qqp/dev.parquet"),
                                                           Path("data/qqp/test.parquet"))
    assert p.download_report == Path("data/qqp/download.json")
    assert (p.postag, p.tag_unigrams) == (Path("data/qqp/postag.parquet"), Path("data/qqp/tag_unigrams.parquet"))
    assert p.transfer == Path("data/qqp/transfer.parquet")
    assert p.transfer_iterations == Path("data/qqp/transfer_iterations.parquet")
    assert p.teacher_vectors == Path("data/qqp/teacher_vectors.parquet")
    assert p.logits == Path("data/qqp/teacher_logits.parquet")
    assert p.model("student") == Path("models/qqp/student")
    assert p.scores("teacher") == Path("metrics/qqp/teacher.json")
    assert p.speed == Path("metrics/qqp/speed.json")
    assert p.curve("baseline") == Path("metrics/qqp/plots/baseline_curve.csv")
    assert p.confusion == Path("metrics/qqp/plots/confusion")
    assert p.report("benchmark") == Path("metrics/qqp/reports/benchmark.json")


def test_mnli_dev_and_test_sets_share_one_file_each():
    p = TaskPaths("mnli")
    assert p.split("dev_matched") == p.split("dev_mismatched") == Path("data/mnli/dev.parquet")
    assert p.split("test_mismatched") == Path("data/mnli/test.parquet")
    assert [split_file(s) for s in ("train", "dev_matched", "test_matched")] == ["train", "dev", "test"]


def test_task_paths_other_roots(tmp_path):
    p = TaskPaths("sst2", tmp_path / "d", tmp_path / "m", tmp_path / "x")
    assert p.train == tmp_path / "d" / "sst2" / "train.parquet"
    assert p.model("teacher") == tmp_path / "m" / "sst2" / "teacher"
    assert p.report("teacher_finetune") == tmp_path / "x" / "sst2" / "reports" / "teacher_finetune.json"
    # chart first, task second: dvc.yaml's plots name each chart's folder once, for every task
    assert chart_path(p, "confusion") == tmp_path / "x" / "charts" / "confusion" / "sst2.csv"
    with pytest.raises(ValueError, match="not one of"):
        chart_path(p, "confusion_matrices")


def test_dvc_yaml_outputs_are_the_layout_paths():
    """Every per-task output and metric that dvc.yaml declares is a TaskPaths path, and the other way round."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    declared = set()
    for stage in stages.values():
        for entry in stage["do"].get("outs", []) + stage["do"].get("metrics", []):
            name = entry if isinstance(entry, str) else next(iter(entry))
            declared.add(Path(name.replace("${item}", "sst2")))
    p = TaskPaths("sst2")
    layout = {p.split("train"), p.split("dev"), p.split("test"), p.task_file, p.download_report, p.postag, p.tag_unigrams,
              p.transfer, p.transfer_iterations, p.teacher_vectors, p.logits, *(p.model(k) for k in ("teacher", "student", "baseline")),
              *(p.model("export") / k for k in ("student", "baseline")),  # the exported ONNX folders
              *(p.run(stage) for stage in RUN_STAGES),  # the expensive stages' reports, DVC-cached
              *(p.scores(k) for k in ("teacher", "student", "baseline")), p.speed, p.plots, p.metrics / "reports",
              *(chart_path(p, name) for name in CHARTS)}  # the report stage's chart files
    assert declared == layout


def test_expensive_stages_have_only_cached_outputs():
    """DVC's run cache restores only stages whose outputs are all cached: only the report stage may write
    git-tracked (cache: false) files."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    uncached = {name for name, stage in stages.items() for entry in stage["do"].get("outs", []) +
                stage["do"].get("metrics", []) if isinstance(entry, dict) and not next(iter(entry.values())).get(
                    "cache", True)}
    assert uncached == {"report"}
    assert "models/${item}/runs/benchmark" in [next(iter(e)) if isinstance(e, dict) else e
                                               for e in stages["benchmark"]["do"]["outs"]]


def test_stage_paths_point_into_the_run_folder(tmp_path):
    p = TaskPaths("sst2", tmp_path / "d", tmp_path / "m", tmp_path / "x")
    run = p.for_stage("evaluate")
    assert run.scores("student") == tmp_path / "m" / "sst2" / "runs" / "evaluate" / "student.json"
    assert run.confusion == tmp_path / "m" / "sst2" / "runs" / "evaluate" / "plots" / "confusion"
    assert run.model("student") == p.model("student") and run.train == p.train
    with pytest.raises(ValueError, match="not one of"):
        p.for_stage("download")


def test_tag_columns():
    assert tag_columns(("sentence",)) == ["tags"]
    assert tag_columns(("sentence1", "sentence2")) == ["tags1", "tags2"]


@pytest.mark.parametrize("inside", [".dvc/tmp/exps/x", ".dvc/tmp/exps/tmp/abc123/sub/dir"])
def test_workspace_root_inside_an_experiment_copy(tmp_path, inside):
    root = tmp_path / "repo"
    (root / inside).mkdir(parents=True)
    assert workspace_root(root / inside) == root.resolve()


def test_workspace_root_elsewhere_is_the_folder_itself(tmp_path, monkeypatch):
    (tmp_path / "repo" / ".dvc" / "tmp" / "runs").mkdir(parents=True)  # .dvc/tmp, but not an experiment copy
    assert workspace_root(tmp_path / "repo" / ".dvc" / "tmp" / "runs") == (tmp_path / "repo/.dvc/tmp/runs").resolve()
    monkeypatch.chdir(tmp_path)
    assert workspace_root() == tmp_path.resolve()


def test_user_path_resolves_against_the_workspace(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    exp = root / ".dvc" / "tmp" / "exps" / "run1"
    exp.mkdir(parents=True)
    monkeypatch.chdir(exp)
    # -S download.glue_mirror=../shared/glue means the same in a queued experiment as in the workspace
    assert user_path("../shared/glue") == root.resolve() / "../shared/glue"
    assert user_path(tmp_path / "abs") == tmp_path / "abs"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_path("~/glue") == tmp_path / "home" / "glue"
    monkeypatch.chdir(tmp_path)
    assert user_path("wheel.whl") == tmp_path.resolve() / "wheel.whl"
