"""The report stage: the expensive stages' run folders (models/<task>/runs/<stage>/) merged into metrics/<task>/, and
each chart's file of the task (metrics/charts/<chart>/<task>.csv) made from them."""
import json

from conftest import one_line_error, run_stage
from distill.layout import RUN_STAGES, TaskPaths
from distill.report.charts import chart_path

TASK = "rotten_tomatoes"


def fill_runs(paths: TaskPaths) -> None:
    """One plausible file per stage, where each stage really writes it."""
    files = {"finetune_teacher": ["plots/teacher_curve.csv", "reports/teacher_finetune.json"],
             "teacher_logits": ["reports/teacher_logits.json"],
             "train_student": ["plots/student_curve.csv", "reports/train_student.json"],
             "train_baseline": ["plots/baseline_curve.csv"],
             "evaluate": ["teacher.json", "student.json", "baseline.json", "plots/confusion/student.csv",
                          "reports/evaluate.json"],
             "benchmark": ["speed.json", "reports/benchmark.json", "plots/accuracy_vs_speed.csv"]}
    assert set(files) == set(RUN_STAGES)
    for stage, names in files.items():
        for name in names:
            path = paths.run(stage) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"stage": stage, "file": name}))


def report(root, check=True):
    return run_stage("report.py", "--task", TASK, "--models-dir", str(root / "models"), "--metrics-dir",
                     str(root / "metrics"), check=check)


def test_report_copies_every_run_file_to_metrics(tmp_path):
    paths = TaskPaths(TASK, tmp_path / "data", tmp_path / "models", tmp_path / "metrics")
    fill_runs(paths)
    stale = paths.plots / "old_chart.csv"  # a file no stage writes any more does not survive
    stale.parent.mkdir(parents=True)
    stale.write_text("x")
    (paths.metrics / "experiments").mkdir()  # committed records beside the outputs are left alone
    report(tmp_path)
    got = sorted(p.relative_to(paths.metrics).as_posix() for p in paths.metrics.rglob("*") if p.is_file())
    assert got == ["baseline.json", "plots/accuracy_vs_speed.csv", "plots/baseline_curve.csv",
                   "plots/confusion/student.csv", "plots/student_curve.csv", "plots/teacher_curve.csv",
                   "reports/benchmark.json", "reports/evaluate.json", "reports/teacher_finetune.json",
                   "reports/teacher_logits.json", "reports/train_student.json", "speed.json", "student.json",
                   "teacher.json"]
    assert json.loads(paths.speed.read_text()) == {"stage": "benchmark", "file": "speed.json"}
    assert (paths.metrics / "experiments").is_dir()
    # a chart with none of its files here (no throughput curve) is not written
    charts = sorted(p.relative_to(tmp_path / "metrics").as_posix() for p in (tmp_path / "metrics").rglob("charts/*/*"))
    assert charts == [f"charts/{name}/{TASK}.csv" for name in ("accuracy_vs_speed", "confusion", "cross_entropy_loss",
                                                              "dev_accuracy", "distillation_loss")]


def test_each_chart_file_holds_every_models_rows(tmp_path):
    """One file per chart and task, the rows of the files the chart draws one after the other under the union of
    their columns, values as written; a confusion matrix, which has no `model` column, gets its file's name."""
    paths = TaskPaths(TASK, tmp_path / "data", tmp_path / "models", tmp_path / "metrics")
    fill_runs(paths)
    csvs = {("finetune_teacher", "teacher_curve.csv"):
            "model,lr,epoch,step,dev_accuracy\nteacher lr=5e-05,5e-05,1.0,319,0.8298\n",
            ("finetune_teacher", "teacher_loss.csv"):
            "model,lr,epoch,step,train_loss\nteacher lr=5e-05,5e-05,0.0596,19,0.69\n",
            ("train_student", "student_curve.csv"): "model,epoch,train_loss,dev_accuracy\nstudent,1,1.942154,0.8188\n",
            ("train_baseline", "baseline_curve.csv"):
            "model,epoch,train_loss,dev_accuracy,dev_f1\nbaseline,1,0.64,0.6878,0.2\n",
            **{("evaluate", f"confusion/{kind}.csv"): f"actual,predicted\npositive,{kind}\n"
               for kind in ("teacher", "student", "baseline")}}
    for (stage, name), text in csvs.items():
        (paths.run(stage) / "plots" / name).parent.mkdir(parents=True, exist_ok=True)
        (paths.run(stage) / "plots" / name).write_text(text)
    report(tmp_path)
    assert chart_path(paths, "dev_accuracy").read_text() == (
        "model,lr,epoch,step,dev_accuracy,train_loss,dev_f1\n"
        "teacher lr=5e-05,5e-05,1.0,319,0.8298,,\nstudent,,1,,0.8188,1.942154,\nbaseline,,1,,0.6878,0.64,0.2\n")
    assert chart_path(paths, "cross_entropy_loss").read_text() == (
        "model,lr,epoch,step,train_loss,dev_accuracy,dev_f1\n"
        "teacher lr=5e-05,5e-05,0.0596,19,0.69,,\nbaseline,,1,,0.64,0.6878,0.2\n")
    assert chart_path(paths, "distillation_loss").read_text() == csvs[("train_student", "student_curve.csv")]
    assert chart_path(paths, "confusion").read_text() == \
        "model,actual,predicted\nteacher,positive,teacher\nstudent,positive,student\nbaseline,positive,baseline\n"
    for (stage, name), text in csvs.items():  # metrics/<task>/plots/ stays the run folders' copy
        assert (paths.plots / name).read_text() == text


def test_a_missing_run_folder_names_the_stage_to_run(tmp_path):
    paths = TaskPaths(TASK, tmp_path / "data", tmp_path / "models", tmp_path / "metrics")
    fill_runs(paths)
    for f in paths.run("benchmark").rglob("*"):
        if f.is_file():
            f.unlink()
    for d in sorted(paths.run("benchmark").rglob("*"), reverse=True):
        d.rmdir()
    paths.run("benchmark").rmdir()
    line = one_line_error(report(tmp_path, check=False))
    assert "runs/benchmark: missing" in line and f"dvc repro benchmark@{TASK}" in line
    assert not paths.metrics.exists()  # nothing half-written


def test_two_stages_writing_one_file_is_an_error(tmp_path):
    paths = TaskPaths(TASK, tmp_path / "data", tmp_path / "models", tmp_path / "metrics")
    fill_runs(paths)
    (paths.run("benchmark") / "student.json").write_text("{}")
    line = one_line_error(report(tmp_path, check=False))
    assert "student.json is written by two stages" in line


def test_a_file_outside_the_metrics_layout_is_an_error(tmp_path):
    paths = TaskPaths(TASK, tmp_path / "data", tmp_path / "models", tmp_path / "metrics")
    fill_runs(paths)
    (paths.run("evaluate") / "notes.txt").write_text("x")
    assert "notes.txt is not one of metrics/<task>/'s" in one_line_error(report(tmp_path, check=False))
