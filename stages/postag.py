"""postag stage: Penn Treebank tags of every training sentence -> data/<task>/postag.parquet + tag_unigrams.parquet."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

import typer

from distill.cli import DataDir, PARAMS_FILE, ParamsFile, TaskName
from distill import config
from distill.data.params import PostagParams as P
from distill.data.postag import prepare_tagger, tag_frame
from distill.data.splits import load_split
from distill.io import get_logger, publish, run_cli, write_parquet
from distill.layout import TaskPaths
from distill.tasks import load_task

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("postag")


@app.command()
def main(
    task: TaskName,
    tagger: Optional[str] = typer.Option(None, help=P.help("tagger")),
    nltk_dir: Optional[Path] = typer.Option(
        None, help="Where downloaded/converted tagger models are kept. Default: $BILSTM_DISTILL_CACHE or "
        "~/.cache/bilstm-distill."),
    data_dir: DataDir = Path("data"),
    params_file: ParamsFile = PARAMS_FILE,
):
    cfg = config.load(P, task, params_file, tagger=tagger)
    paths = TaskPaths(task, data_root=data_dir)
    spec = load_task(paths)
    train = load_split(paths, spec, "train")
    log.info("read %s (%d rows)", paths.train, len(train))
    model, used = prepare_tagger(cfg.tagger, nltk_dir)
    postag, unigrams = tag_frame(model, train, spec.text_columns)
    with publish(paths.postag, paths.tag_unigrams) as (tags_tmp, unigrams_tmp):
        write_parquet(postag, tags_tmp)
        write_parquet(unigrams, unigrams_tmp)
    log.info("wrote %s (%d rows, tagger: %s)", paths.postag, len(postag), used)
    log.info("wrote %s (%d (tag, word) pairs, %d tags)", paths.tag_unigrams, len(unigrams), unigrams["tag"].nunique())


if __name__ == "__main__":
    run_cli(app)
