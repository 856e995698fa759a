"""postag stage: Penn Treebank tags of every training sentence -> data/<task>/postag.parquet + tag_unigrams.parquet."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from distill import config
from distill.cli import DataDir, PARAMS_FILE, ParamsFile, Settings, TaskName, settings_help
from distill.data.params import PostagParams
from distill.data.postag import prepare_tagger, tag_frame
from distill.data.splits import load_split
from distill.io import get_logger, publish, run_cli, write_parquet
from distill.layout import TaskPaths
from distill.tasks import load_task

SETTINGS = (PostagParams,)
app = typer.Typer(add_completion=False)
log = get_logger("postag")


@app.command(help=__doc__, epilog=settings_help(*SETTINGS))
def main(
    task_name: TaskName,
    settings: Settings = None,
    nltk_dir: Optional[Path] = typer.Option(
        None, help="Where downloaded/converted tagger models are kept. Default: $BILSTM_DISTILL_CACHE or "
        "~/.cache/bilstm-distill."),
    data_dir: DataDir = Path("data"),
    params_file: ParamsFile = PARAMS_FILE,
):
    (cfg,) = config.load_all(SETTINGS, task_name, params_file, settings)
    paths = TaskPaths(task_name, data_root=data_dir)
    task = load_task(paths)
    train = load_split(paths, task, "train")
    log.info("read %s (%d rows)", paths.train, len(train))
    model, used = prepare_tagger(cfg.tagger, nltk_dir)
    postag, unigrams = tag_frame(model, train, task.text_columns)
    with publish(paths.postag, paths.tag_unigrams) as (tags_tmp, unigrams_tmp):
        write_parquet(postag, tags_tmp)
        write_parquet(unigrams, unigrams_tmp)
    log.info("wrote %s (%d rows, tagger: %s)", paths.postag, len(postag), used)
    log.info("wrote %s (%d (tag, word) pairs, %d tags)", paths.tag_unigrams, len(unigrams), unigrams["tag"].nunique())


if __name__ == "__main__":
    run_cli(app)
