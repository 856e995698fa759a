"""report stage: the expensive stages' reports, curves and scores (models/<task>/runs/<stage>/, DVC-cached, so a
configuration seen before is restored from DVC's run cache instead of recomputed) copied to metrics/<task>/:
{teacher,student,baseline}.json, speed.json, plots/ and reports/, the files git tracks and `dvc metrics` and `dvc exp
show` read; and the task's file of each chart `dvc plots` draws, metrics/charts/<chart>/<task>.csv (every model's rows
of metrics/<task>/plots/ that the chart shows). Cheap (file copies), so it is the one stage that runs on every new
result."""
from __future__ import annotations

from pathlib import Path

import typer

from distill.cli import MetricsDir, ModelsDir, TaskName
from distill.io import UserError, get_logger, publish, run_cli
from distill.layout import TaskPaths
from distill.report.charts import chart_path, charts_of, write_chart
from distill.report.runs import TOP_LEVEL, collect, copy_into

app = typer.Typer(add_completion=False)
log = get_logger("report")


@app.command(help=__doc__)
def main(task_name: TaskName, models_dir: ModelsDir = Path("models"), metrics_dir: MetricsDir = Path("metrics")):
    paths = TaskPaths(task_name, models_root=models_dir, metrics_root=metrics_dir)
    files = collect(paths)
    names = [name for name in TOP_LEVEL if any(rel.parts[0] == name for rel in files)]
    if not names:
        raise UserError(f"{paths.run('evaluate').parent}: the run folders hold no files")
    log.info("read %d files from %s", len(files), paths.run("evaluate").parent)
    charts = charts_of(files)
    outs = [paths.metrics / name for name in names] + [chart_path(paths, name) for name in charts]
    with publish(*outs) as tmps:
        copy_into(files, dict(zip(names, tmps)))
        for sources, tmp in zip(charts.values(), tmps[len(names):]):
            write_chart(sources, tmp)
    log.info("wrote %s", ", ".join(map(str, outs)))


if __name__ == "__main__":
    run_cli(app)
